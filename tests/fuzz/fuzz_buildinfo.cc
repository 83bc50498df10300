// libFuzzer entry point for the build-sources record decoder
// (buildinfo/buildinfo.h, exporter.h), as `kiln buildinfo inspect` meets it:
// a record in JSON, in base64, and inside an image config's
// "moby.buildkit.buildinfo.v1" member. Besides crashes and sanitizer
// findings (deep nesting included) it checks that a decoded record encodes
// to bytes that decode to the same record and encode to the same bytes, and
// that Format, RedactRecord, CheckSize and the metadata-file writer accept
// whatever Decode accepted.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "buildinfo/merge.h"
#include "buildinfo/redact.h"
#include "util/base64.h"
#include "util/status.h"

namespace bi = kiln::buildinfo;

namespace {

void CheckRecord(const bi::BuildInfo& record) {
  const std::string bytes = bi::Encode(record);
  auto again = bi::Decode(bytes);
  KILN_CHECK(again.ok(), "an encoded record does not decode: " + again.status().ToString());
  KILN_CHECK(*again == record, "Decode(Encode(r)) != r: " + bytes);
  KILN_CHECK(bi::Encode(*again) == bytes, "Encode is not a fixed point: " + bytes);
  auto b64 = bi::DecodeBase64(bi::EncodeBase64(record));
  KILN_CHECK(b64.ok() && *b64 == record, "base64 round trip");
  (void)bi::Format(record, true);
  (void)bi::Format(record, false);
  bi::BuildInfo redacted = record;
  bi::RedactRecord(&redacted);
  (void)bi::Encode(redacted);
  (void)bi::CheckSize(record);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto r = bi::Decode(text); r.ok()) {
    CheckRecord(*r);
  } else {
    KILN_CHECK(r.status().code() == kiln::StatusCode::kInvalidArgument,
               "Decode error code: " + r.status().ToString());
  }
  if (auto r = bi::DecodeBase64(text); r.ok()) CheckRecord(*r);
  (void)bi::FormatJson(text, true);

  // The image config forms: the input as a config, and as the record
  // inside a config (both member names).
  (void)bi::ExtractFromImageConfig(text);
  const std::string b64 = kiln::util::Base64Encode(text);
  for (std::string_view member : {bi::kImageConfigField, bi::kImageConfigFieldLegacy}) {
    const std::string config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"" +
                               std::string(member) + "\":\"" + b64 + "\"}";
    auto extracted = bi::ExtractFromImageConfig(config);
    if (extracted.ok() && extracted->has_value()) CheckRecord(**extracted);
  }
  (void)bi::MetadataFileContent(
      {{std::string(bi::kMetadataKey), b64}, {"other", std::string(text)}});
  (void)bi::RedactUrl(text);
  (void)bi::RedactText(text);
  return 0;
}
