// libFuzzer entry point for the comma-separated flag values of `kiln build`:
// -o/--output (exporter/outputs.h ParseOutput and ParseImageOutputOptions,
// buildctl's CSV with quoted fields), --secret (cli/secret_spec.h),
// --build-context and --platform lists (cli/resolver.h). Each input line is
// tried as every flag. Besides crashes and sanitizer findings it checks: an
// accepted -o value, written back as CSV with every field quoted, parses to
// the same output; a secret always has an id; a named context keeps its
// name and value exactly.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli/resolver.h"
#include "cli/secret_spec.h"
#include "exporter/outputs.h"
#include "util/status.h"

namespace cli = kiln::cli;
namespace xp = kiln::exporter;

namespace {

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void CheckOutput(std::string_view spec) {
  auto o = xp::ParseOutput(spec);
  if (!o.ok()) {
    KILN_CHECK(o.status().code() == kiln::StatusCode::kInvalidArgument, "ParseOutput error code");
    return;
  }
  KILN_CHECK(!o->type.empty() && o->type != "registry", "output type \"" + o->type + "\"");
  if (spec.find('=') != std::string_view::npos) {
    std::string csv = Quote("type=" + o->type);
    for (const auto& [k, v] : o->attrs) csv += "," + Quote(k + "=" + v);
    auto again = xp::ParseOutput(csv);
    KILN_CHECK(again.ok() && again->type == o->type && again->attrs == o->attrs,
               "-o written back as CSV parses differently: " + csv);
  }
  if (xp::IsImageOutput(*o)) (void)xp::ParseImageOutputOptions(*o, {"example/tag:1"});
}

void CheckSecret(std::string_view spec) {
  auto s = cli::ParseSecretSpec(spec);
  if (!s.ok()) {
    KILN_CHECK(s.status().code() == kiln::StatusCode::kInvalidArgument &&
                   s.status().message().starts_with("--secret "),
               "ParseSecretSpec error: " + s.status().ToString());
    return;
  }
  KILN_CHECK(!s->id.empty(), "a secret without an id");
}

void CheckBuildContext(std::string_view value) {
  kiln::dockerfile::ConvertOptions opt;
  kiln::Status st = cli::ApplyFrontendFlags("", {}, {std::string(value)}, &opt);
  if (!st.ok()) {
    KILN_CHECK(st.code() == kiln::StatusCode::kInvalidArgument, "build-context error code");
    return;
  }
  const size_t eq = value.find('=');
  KILN_CHECK(eq != std::string_view::npos && opt.named_contexts.size() == 1, "one context");
  const auto& [name, v] = *opt.named_contexts.begin();
  KILN_CHECK(name == value.substr(0, eq) && v == value.substr(eq + 1),
             "a named context changed on the way");
  (void)cli::IsRemoteContext(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (int n = 0; n < 16; ++n) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    CheckOutput(line);
    CheckSecret(line);
    CheckBuildContext(line);
    (void)cli::ParsePlatformList(std::string(line));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return 0;
}
