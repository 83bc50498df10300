// The image writer: turns exported layers (layers.h) and the frontend's
// config template into an image in the content store: config (with the
// build-sources record embedded per K1/K9/K11) and manifest, in OCI or
// Docker schema2 media types; and the exporter response that
// `--metadata-file` is written from.
//
// Dates. With SOURCE_DATE_EPOCH, the config's `created` and every history
// entry the frontend made (those without a date) are that time; the base
// image's entries keep theirs. Without it, an entry the frontend made gets
// the commit time of its layer's snapshot (kiln.created), an entry without
// a layer the date of the entry before it, and the config's `created` is
// the date of the last entry: rebuilding from the cache reproduces the same
// config and the same image digest.
//
// Thread-safety: the functions are reentrant.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "content/store.h"
#include "exporter/layers.h"
#include "image/config.h"
#include "image/descriptor.h"
#include "util/status.h"

namespace kiln::exporter {

struct ImageRequest {
  image::ImageConfig config;  // the frontend's template
  std::vector<Layer> layers;
  const buildinfo::BuildInfo* record = nullptr;  // null: the result has none
  buildinfo::ExportOptions record_options;
  // false: Docker schema2 manifest, config and layer media types.
  bool oci_mediatypes = true;
  std::optional<int64_t> source_date_epoch;
};

struct WrittenImage {
  image::Descriptor manifest;
  image::Descriptor config;
  std::string config_bytes;
  std::string manifest_bytes;
  std::vector<image::Descriptor> layers;  // with the manifest's media types
};

// Writes config and manifest into `store`.
Result<WrittenImage> WriteImage(const content::Store& store, const ImageRequest& request);

// One platform's image of a multi-platform build.
struct PlatformImage {
  image::Platform platform;  // os, architecture and variant (kept, unlike BuildKit 0.10)
  WrittenImage image;
};

// An OCI image index (or, without OCI media types, a Docker manifest list)
// over per-platform images, in the store.
struct WrittenIndex {
  image::Descriptor descriptor;  // the index itself
  std::string bytes;
  std::vector<PlatformImage> images;  // in the index's order
};

// Writes the index of `images` (in the order given) into `store`; every
// manifest gets its platform. kInvalidArgument when two images have the same
// platform or an image's manifest media type does not fit the index's.
Result<WrittenIndex> WriteIndex(const content::Store& store, std::vector<PlatformImage> images,
                                bool oci_mediatypes);

// "2023-11-14T22:13:20Z" for 1700000000: the RFC 3339 form Go gives a
// time.Unix(epoch, 0).UTC().
std::string EpochTime(int64_t seconds);

// The exporter response: containerimage.digest, containerimage.config.digest,
// containerimage.descriptor (base64 JSON), image.name when named, and
// containerimage.buildinfo (base64 of the full record, R40).
Result<std::map<std::string, std::string>> Response(const WrittenImage& image,
                                                    const buildinfo::BuildInfo* record,
                                                    const std::vector<std::string>& names);

// The exporter response of a multi-platform build: each platform's record
// under its key (buildinfo::ResponseKey(image::Format(platform)), R40),
// containerimage.digest and containerimage.descriptor naming the index, and
// image.name when named. `records` are by key.
Result<std::map<std::string, std::string>> IndexResponse(
    const WrittenIndex& index, const std::map<std::string, buildinfo::BuildInfo>& records,
    const std::vector<std::string>& names);

}  // namespace kiln::exporter
