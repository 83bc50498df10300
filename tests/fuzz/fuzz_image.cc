// libFuzzer entry point for the image documents a registry or an archive
// serves: manifests, indexes, image configs and descriptors
// (image/manifest.h, index.h, config.h, descriptor.h), and the platform
// strings inside them. Every input is offered to each parser. Besides
// crashes and sanitizer findings it checks the models' promises: what a
// parser accepts, ToJson() writes back as a document the same parser
// accepts, and writing that again gives the same bytes (a fixed point
// after one round); an error is kInvalidArgument with the parser's prefix;
// PickManifest never returns an entry that is not a manifest for the
// platform asked for.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/config.h"
#include "image/descriptor.h"
#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "util/status.h"

namespace image = kiln::image;
using kiln::StatusCode;

namespace {

template <typename Parse, typename Write>
void RoundTrip(std::string_view text, std::string_view prefix, Parse parse, Write write) {
  auto r = parse(text);
  if (!r.ok()) {
    KILN_CHECK(r.status().code() == StatusCode::kInvalidArgument, "error code");
    KILN_CHECK(r.status().message().starts_with(prefix),
               "error without its prefix: " + r.status().message());
    return;
  }
  const std::string once = write(*r);
  auto again = parse(once);
  KILN_CHECK(again.ok(), "written document does not parse: " + again.status().ToString() +
                             "\n  input: " + std::string(text) + "\n  written: " + once);
  const std::string twice = write(*again);
  KILN_CHECK(twice == once, "write(parse(write(x))) != write(x):\n  " + once + "\n  " + twice);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  RoundTrip(text, "invalid image manifest: ", image::ParseManifest,
            [](const image::Manifest& m) { return m.ToJson(); });
  RoundTrip(text, "invalid descriptor: ", image::ParseDescriptor,
            [](const image::Descriptor& d) { return d.ToJson(); });
  RoundTrip(text, "invalid image config: ", image::ParseImageConfig,
            [](const image::ImageConfig& c) { return c.ToJson(); });
  RoundTrip(text, "invalid image config: ", image::ParseImageConfig,
            [](const image::ImageConfig& c) { return c.ToJsonSortedTopLevel(); });
  RoundTrip(text, "invalid image config: ", image::ParseImageConfig, [](image::ImageConfig c) {
    c.ClearLayouts();
    return c.ToJson();
  });
  RoundTrip(text, "invalid image index: ", image::ParseIndex,
            [](const image::Index& i) { return i.ToJson(); });

  if (auto index = image::ParseIndex(text); index.ok()) {
    for (std::string_view want : {"linux/amd64", "linux/arm64", "linux/arm/v7", "windows/amd64"}) {
      const image::Platform p = *image::ParsePlatform(want);
      auto picked = image::PickManifest(*index, p);
      if (picked.ok()) {
        KILN_CHECK(image::IsManifest(picked->media_type), "picked a non-manifest");
        KILN_CHECK(picked->platform && image::Matches(p, *picked->platform),
                   "picked a manifest for another platform");
      } else {
        KILN_CHECK(picked.status().code() == StatusCode::kNotFound, "PickManifest error code");
      }
    }
  }

  // Platform strings: the first line.
  const std::string_view first = text.substr(0, text.find('\n'));
  if (auto p = image::ParsePlatform(first); p.ok()) {
    const image::Platform n = image::Normalize(*p);
    KILN_CHECK(image::Normalize(n) == n, "Normalize is not idempotent: " + image::Format(n));
    KILN_CHECK(image::Matches(n, n), "a platform does not match itself");
    auto again = image::ParsePlatform(image::Format(n));
    (void)again;
  } else {
    KILN_CHECK(p.status().code() == StatusCode::kInvalidArgument, "ParsePlatform error code");
  }
  (void)image::IsIndex(first);
  (void)image::IsLayer(first);
  (void)image::LayerCompressionOf(first);
  return 0;
}
