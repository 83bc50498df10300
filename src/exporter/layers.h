// Layer export: the blobs of a snapshot chain, compressed once and reused.
//
// Each snapshot of the chain, bottom first, is one layer. A snapshot's
// labels (snapshot/labels.h) name the blob of each *variant* already made
// of it (the compression, its level when not the default, and the clamp of
// SOURCE_DATE_EPOCH); a variant found in the store is reused as is, so a
// layer is never compressed twice for the same options. Pulled base layers
// keep their blob whatever the requested compression, unless `force` asks
// for them to be recompressed (decompressed from the store, compressed
// again; their diff_id does not change).
//
// A new layer is diffed (snapshot::Snapshotter::Diff, a deterministic tar)
// on one thread and compressed, hashed and stored on another, several
// layers at once.
//
// Thread-safety: reentrant; ExportLayers uses its own threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "content/store.h"
#include "image/descriptor.h"
#include "snapshot/snapshotter.h"
#include "util/cancel.h"
#include "util/compress.h"
#include "util/progress.h"
#include "util/status.h"

namespace kiln::exporter {

struct Layer {
  image::Descriptor blob;  // in the store; OCI media type (image_writer maps to Docker)
  util::Digest diff_id;
  std::string created;  // the snapshot's kiln.created, "" for pulled layers
  std::string snapshot;
};

struct LayerOptions {
  util::Compression compression = util::Compression::kGzip;
  int level = 0;       // 0 = the library's default for layers
  bool force = false;  // recompress pulled layers whose compression differs
  // SOURCE_DATE_EPOCH: mtimes in new layers are clamped to it.
  std::optional<int64_t> source_date_epoch;
};

struct LayerStats {
  int compressed = 0;  // layers diffed (or recompressed) and compressed by this call
  int reused = 0;      // layers whose blob was already in the store
  uint64_t uncompressed_bytes = 0;
  uint64_t compressed_bytes = 0;
};

// Sees the layers of one ExportLayers call as they are made: an archive
// output written while the layers are compressed (outputs.h,
// StartArchiveOutput), so that copying the blobs into it does not wait for
// the last layer. Begin and End are called from ExportLayers' threads, for
// several layers at once.
class LayerSink {
 public:
  virtual ~LayerSink() = default;
  // The chain, base first, before any layer is made; a layer to be made has
  // an empty blob digest.
  virtual void Layers(const std::vector<Layer>& layers) = 0;
  // Layer `index` is about to be made: a sink for its compressed bytes, in
  // order, as they are stored, or null when not wanted. An error from the
  // sink fails the export.
  virtual util::ByteSink Begin(size_t index) = 0;
  // Layer `index` is made (`layer` complete) or failed (`status`).
  virtual void End(size_t index, const Layer& layer, const Status& status) = 0;
};

// The snapshot label suffix that names a variant: "" for gzip at the
// default level without a clamp (the labels of snapshot/labels.h as they
// are), else e.g. ".zstd", ".gzip-l9", ".none-epoch1700000000".
std::string VariantSuffix(const LayerOptions& options);

// The layers of the chain ending at snapshot `top` ("" = no layers).
// `report` (may be null) gets one task, "exporting layers", with bytes.
Result<std::vector<Layer>> ExportLayers(snapshot::Snapshotter& snapshots,
                                        const content::Store& store, const std::string& top,
                                        const LayerOptions& options, int parallelism,
                                        util::Canceller* cancel, LayerStats* stats = nullptr,
                                        const util::TaskReporter& report = nullptr,
                                        LayerSink* sink = nullptr);

}  // namespace kiln::exporter
