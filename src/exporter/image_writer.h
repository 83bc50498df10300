// The image writer: turns a solved result (a snapshot chain) and the
// frontend's config template into an OCI image in the content store:
// layers, config (with the build-sources record embedded per K1/K9/K11) and
// manifest; then the outputs (`type=oci` as an archive or a directory) and
// the exporter response that `--metadata-file` is written from.
//
// Layers. Each snapshot of the chain, bottom first, is one layer. A
// snapshot whose labels (snapshot/labels.h) name a blob already in the
// store is reused as is (pulled base layers, and layers an earlier build
// compressed): a layer is never compressed twice. The others are diffed
// (snapshot::Snapshotter::Diff, a deterministic tar), gzip-compressed and
// stored, several at once, and then labelled.
//
// Dates. History entries the frontend made carry no date; each gets the
// commit time of its layer's snapshot (kiln.created), an entry without a
// layer the date of the entry before it, and the config's `created` is the
// date of the last entry. Rebuilding from the cache therefore reproduces
// the same config and the same image digest.
//
// Thread-safety: the functions are reentrant; ExportLayers uses its own
// threads.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "content/layout.h"
#include "content/store.h"
#include "image/config.h"
#include "image/descriptor.h"
#include "snapshot/snapshotter.h"
#include "util/cancel.h"
#include "util/status.h"

namespace kiln::exporter {

struct Layer {
  image::Descriptor blob;  // compressed, in the store
  util::Digest diff_id;
  std::string created;  // the snapshot's kiln.created, "" for pulled layers
  std::string snapshot;
};

struct LayerStats {
  int compressed = 0;  // layers diffed and compressed by this call
  int reused = 0;      // layers whose blob was already in the store
  uint64_t uncompressed_bytes = 0;
  uint64_t compressed_bytes = 0;
};

// The layers of the chain ending at snapshot `top` ("" = no layers).
Result<std::vector<Layer>> ExportLayers(snapshot::Snapshotter& snapshots,
                                        const content::Store& store, const std::string& top,
                                        int parallelism, util::Canceller* cancel,
                                        LayerStats* stats = nullptr);

struct ImageRequest {
  image::ImageConfig config;  // the frontend's template
  std::vector<Layer> layers;
  const buildinfo::BuildInfo* record = nullptr;  // null: the result has none
  buildinfo::ExportOptions record_options;
};

struct WrittenImage {
  image::Descriptor manifest;
  image::Descriptor config;
  std::string config_bytes;
  std::string manifest_bytes;
  std::vector<image::Descriptor> layers;
};

// Writes config and manifest (OCI media types) into `store`.
Result<WrittenImage> WriteImage(const content::Store& store, const ImageRequest& request);

// One `-o` output.
struct Output {
  std::string type;                          // "oci"
  std::map<std::string, std::string> attrs;  // dest, tar, name, buildinfo, buildinfo-attrs, ...
};

// Parses "type=oci,dest=out.tar[,tar=false][,name=...]"; kInvalidArgument
// naming the bad part. A bare path ("-o out") is `type=local,dest=out`.
Result<Output> ParseOutput(std::string_view spec);

// Writes `image` to the output's destination. `name` (from -t or
// name=...) becomes the index annotations of an OCI output.
//
// With a `state_dir` (ROOT/outputs), an OCI archive whose content would be
// exactly what an earlier build wrote there is not written again: each
// write records, per destination, the identity of the content (the index
// and every blob's digest and size) and the file's stamp (size, mtime,
// inode); when both still match, the file is left as it is (as make trusts
// a target's stamp). `*skipped` (when non-null) says so.
Status WriteOutput(const content::Store& store, const Output& output, const WrittenImage& image,
                   const std::vector<std::string>& names,
                   const std::filesystem::path& state_dir = {}, bool* skipped = nullptr);

// The exporter response: containerimage.digest, containerimage.config.digest,
// containerimage.descriptor (base64 JSON), image.name when named, and
// containerimage.buildinfo (base64 of the full record, R40).
Result<std::map<std::string, std::string>> Response(const WrittenImage& image,
                                                    const buildinfo::BuildInfo* record,
                                                    const std::vector<std::string>& names);

}  // namespace kiln::exporter
