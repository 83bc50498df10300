#include "exporter/layers.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "image/media_types.h"
#include "snapshot/labels.h"
#include "util/metrics.h"

namespace kiln::exporter {
namespace {

std::string Label(const snapshot::Info& info, std::string_view key, std::string_view suffix = "") {
  auto it = info.labels.find(std::string(key) + std::string(suffix));
  return it == info.labels.end() ? "" : it->second;
}

// Built images use OCI media types; a pulled Docker layer keeps its bytes.
std::string OciLayerType(std::string_view t) {
  if (t == image::kMediaTypeDockerLayerGzip) return std::string(image::kMediaTypeOciLayerGzip);
  if (t == image::kMediaTypeDockerLayer) return std::string(image::kMediaTypeOciLayer);
  if (t == image::kMediaTypeDockerLayerZstd) return std::string(image::kMediaTypeOciLayerZstd);
  return std::string(t);
}

std::string_view MediaTypeFor(util::Compression c) {
  switch (c) {
    case util::Compression::kNone:
      return image::kMediaTypeOciLayer;
    case util::Compression::kZstd:
      return image::kMediaTypeOciLayerZstd;
    case util::Compression::kGzip:
      break;
  }
  return image::kMediaTypeOciLayerGzip;
}

util::Compression CompressionOf(std::string_view oci_media_type) {
  if (oci_media_type == image::kMediaTypeOciLayer ||
      oci_media_type == image::kMediaTypeOciLayerNondistributable) {
    return util::Compression::kNone;
  }
  if (oci_media_type == image::kMediaTypeOciLayerZstd ||
      oci_media_type == image::kMediaTypeOciLayerNondistributableZstd) {
    return util::Compression::kZstd;
  }
  return util::Compression::kGzip;
}

// The blob a snapshot's labels name for a variant, if the store has it.
std::optional<Layer> LabelledBlob(const snapshot::Info& info, const content::Store& store,
                                  std::string_view suffix) {
  Result<util::Digest> d = util::Digest::Parse(Label(info, snapshot::kLabelLayerDigest, suffix));
  Result<util::Digest> diff = util::Digest::Parse(Label(info, snapshot::kLabelLayerDiffId, suffix));
  if (!d.ok() || !diff.ok() || !store.Has(*d)) return std::nullopt;
  Layer l;
  l.blob.digest = *d;
  l.blob.media_type = OciLayerType(Label(info, snapshot::kLabelLayerMediaType, suffix));
  l.blob.size = std::stoll("0" + Label(info, snapshot::kLabelLayerSize, suffix));
  l.diff_id = *diff;
  return l;
}

// A bounded hand-off of byte chunks between two threads.
class ChunkQueue {
 public:
  // Blocks while full; false once the consumer has given up.
  bool Push(std::string chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return q_.size() < kMax || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }
  // Blocks while empty; nullopt at the end.
  std::optional<std::string> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty() || done_ || closed_; });
    if (q_.empty()) return std::nullopt;
    std::string c = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return c;
  }
  void Finish() {  // producer: no more chunks
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void Close() {  // consumer: stop the producer
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  // Buffers go round: the consumer hands a chunk back when done with it and
  // the producer fills it again, so a layer's export allocates (and
  // page-faults in) a handful of buffers, not one per megabyte.
  void Recycle(std::string chunk) {
    chunk.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMax) free_.push_back(std::move(chunk));
  }
  std::string Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      std::string fresh;
      fresh.reserve(kChunk + (64u << 10));
      return fresh;
    }
    std::string c = std::move(free_.back());
    free_.pop_back();
    return c;
  }

  static constexpr size_t kChunk = 1u << 20;

 private:
  static constexpr size_t kMax = 16;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  std::vector<std::string> free_;
  bool done_ = false, closed_ = false;
};

std::chrono::nanoseconds ThreadCpuTime() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// What one layer's export needs to know.
struct Job {
  Layer* layer;
  bool pulled;   // recompress the pulled blob rather than diff the snapshot
  size_t index;  // in the chain, base first (LayerSink)
};

class Exporter {
 public:
  Exporter(snapshot::Snapshotter& snapshots, const content::Store& store,
           const LayerOptions& options, LayerStats* stats, const util::TaskReporter& report,
           std::atomic<uint64_t>* done_bytes, util::Canceller* cancel)
      : cancel_(cancel),
        snapshots_(snapshots),
        store_(store),
        options_(options),
        suffix_(VariantSuffix(options)),
        stats_(stats),
        report_(report),
        done_bytes_(done_bytes) {}

  // The uncompressed tar is made on one thread (Diff: reading files,
  // building the tar, hashing the diff_id; or decompressing a pulled blob)
  // and compressed, hashed and stored on this one, so the two halves of a
  // layer's export overlap.
  Status Run(const Job& job, LayerSink* sink) {
    Status st = Make(job, sink ? sink->Begin(job.index) : nullptr);
    if (sink) sink->End(job.index, *job.layer, st);
    return st;
  }

 private:
  Status Make(const Job& job, const util::ByteSink& tap) {
    Layer* layer = job.layer;
    // A new layer is written once and not read back soon (an archive being
    // written gets its bytes from the tap): past the page cache.
    KILN_ASSIGN_OR_RETURN(content::Writer writer, store_.NewWriter(/*direct=*/true));
    util::Sha256 diff;
    // Compressed bytes go to the store (hashed and written) on a third
    // thread, so this one only compresses.
    ChunkQueue written;
    Status write_status;
    std::thread store_writer([&] {
      while (std::optional<std::string> chunk = written.Pop()) {
        write_status = writer.Write(*chunk);
        if (write_status.ok() && tap) write_status = tap(*chunk);
        if (!write_status.ok()) {
          written.Close();
          return;
        }
        written.Recycle(std::move(*chunk));
      }
    });
    std::string out_pending = written.Take();
    auto flush_out = [&]() -> Status {
      if (out_pending.empty()) return Status::Ok();
      if (!written.Push(std::move(out_pending))) {
        return Status::Cancelled("layer export stopped");
      }
      out_pending = written.Take();
      return Status::Ok();
    };
    Result<std::unique_ptr<util::Compressor>> made = util::NewCompressor(
        options_.compression,
        [&](std::string_view c) -> Status {
          out_pending.append(c);
          return out_pending.size() >= ChunkQueue::kChunk ? flush_out() : Status::Ok();
        },
        options_.level);
    ChunkQueue queue;
    Status source_status;
    std::thread producer([&] {
      if (!made.ok()) {
        queue.Finish();
        return;
      }
      std::string pending = queue.Take();
      auto sink = [&](std::string_view chunk) -> Status {
        diff.Update(chunk);
        pending.append(chunk);
        if (pending.size() >= ChunkQueue::kChunk) {
          if (!queue.Push(std::move(pending))) return Status::Cancelled("layer export stopped");
          pending = queue.Take();
        }
        return Status::Ok();
      };
      if (job.pulled) {
        source_status = Decompressed(layer->blob.digest, sink);
      } else {
        snapshot::DiffOptions dopt;
        dopt.clamp_mtime = options_.source_date_epoch;
        source_status = snapshots_.Diff(layer->snapshot, sink, dopt);
      }
      if (source_status.ok() && !pending.empty()) (void)queue.Push(std::move(pending));
      queue.Finish();
    });
    // `--debug stats`: the compressing thread's CPU time, next to the wall
    // time of the whole export (is the compressor the critical path?).
    static util::Metric compress_cpu("    compressing threads (CPU time)");
    const std::chrono::nanoseconds cpu_start = ThreadCpuTime();
    Status compress_status = made.status();
    while (compress_status.ok()) {
      // A cancelled build stops within a chunk, not at the end of the layer.
      if (cancel_ != nullptr && cancel_->cancelled()) {
        compress_status = cancel_->Check();
        break;
      }
      std::optional<std::string> chunk = queue.Pop();
      if (!chunk) break;
      compress_status = (*made)->Write(*chunk);
      if (compress_status.ok()) Progress(chunk->size());
      queue.Recycle(std::move(*chunk));
    }
    if (!compress_status.ok()) queue.Close();
    producer.join();
    if (compress_status.ok() && source_status.ok()) compress_status = (*made)->Finish();
    if (compress_status.ok() && source_status.ok()) compress_status = flush_out();
    compress_cpu.Add(ThreadCpuTime() - cpu_start);
    written.Finish();
    store_writer.join();
    // The first failure stopped the others, which then report a stop: the
    // writer's error first, then the compressor's, then the source's.
    KILN_RETURN_IF_ERROR(write_status);
    KILN_RETURN_IF_ERROR(compress_status);
    KILN_RETURN_IF_ERROR(source_status);
    const uint64_t size = writer.size();
    const uint64_t raw = diff.size();
    Result<util::Digest> committed = [&] {
      KILN_METRIC("    commit layer blob (fsync)");
      return writer.Commit();
    }();
    KILN_ASSIGN_OR_RETURN(util::Digest digest, std::move(committed));
    const util::Digest diff_id = diff.Finish();
    if (job.pulled && diff_id != layer->diff_id) {
      return Status::DigestMismatch("layer " + layer->blob.digest.str() + " decompresses to " +
                                    diff_id.str() + ", not to its diff_id " + layer->diff_id.str());
    }
    layer->diff_id = diff_id;
    layer->blob.media_type = std::string(MediaTypeFor(options_.compression));
    layer->blob.digest = digest;
    layer->blob.size = static_cast<int64_t>(size);
    const std::string& id = layer->snapshot;
    auto set = [&](std::string_view key, const std::string& value) {
      return snapshots_.SetLabel(id, std::string(key) + suffix_, value);
    };
    KILN_RETURN_IF_ERROR(set(snapshot::kLabelLayerDiffId, layer->diff_id.str()));
    KILN_RETURN_IF_ERROR(set(snapshot::kLabelLayerMediaType, layer->blob.media_type));
    KILN_RETURN_IF_ERROR(set(snapshot::kLabelLayerSize, std::to_string(size)));
    // The digest label last: its presence says the others are complete.
    KILN_RETURN_IF_ERROR(set(snapshot::kLabelLayerDigest, digest.str()));
    if (stats_) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_->compressed;
      stats_->uncompressed_bytes += raw;
      stats_->compressed_bytes += size;
    }
    return Status::Ok();
  }

 public:
  void Report(util::TaskUpdate::State state, const std::string& error = "") {
    if (!report_) return;
    util::TaskUpdate u;
    u.id = "export-layers";
    u.name = "exporting layers";
    u.state = state;
    u.current = done_bytes_->load();
    u.error = error;
    report_(u);
  }

 private:
  // A pulled blob's uncompressed bytes, verified against its digest.
  Status Decompressed(const util::Digest& blob, const util::ByteSink& sink) {
    KILN_ASSIGN_OR_RETURN(content::BlobReader reader, store_.OpenReader(blob));
    auto reader_ptr = std::make_shared<content::BlobReader>(std::move(reader));
    util::ByteSource plain =
        util::Decompress([reader_ptr](char* buf, size_t cap) -> Result<size_t> {
          return reader_ptr->Read(buf, cap);
        });
    std::vector<char> buf(1 << 20);
    for (;;) {
      KILN_ASSIGN_OR_RETURN(size_t n, plain(buf.data(), buf.size()));
      if (n == 0) return Status::Ok();
      KILN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
    }
  }

  void Progress(uint64_t bytes) {
    const uint64_t before = done_bytes_->fetch_add(bytes);
    if (report_ && (before >> 24) != ((before + bytes) >> 24)) {  // every 16 MiB
      Report(util::TaskUpdate::State::kRunning);
    }
  }

  util::Canceller* cancel_;  // may be null
  snapshot::Snapshotter& snapshots_;
  const content::Store& store_;
  const LayerOptions& options_;
  const std::string suffix_;
  LayerStats* stats_;
  const util::TaskReporter& report_;
  std::mutex mu_;
  std::atomic<uint64_t>* done_bytes_;  // shared by the exporters of one call
};

}  // namespace

std::string VariantSuffix(const LayerOptions& options) {
  std::string s;
  switch (options.compression) {
    case util::Compression::kGzip:
      s = "gzip";
      break;
    case util::Compression::kZstd:
      s = "zstd";
      break;
    case util::Compression::kNone:
      s = "none";
      break;
  }
  if (options.level != 0 && options.compression != util::Compression::kNone) {
    s += "-l" + std::to_string(options.level);
  }
  if (options.source_date_epoch) s += "-epoch" + std::to_string(*options.source_date_epoch);
  return s == "gzip" ? "" : "." + s;
}

Result<std::vector<Layer>> ExportLayers(snapshot::Snapshotter& snapshots,
                                        const content::Store& store, const std::string& top,
                                        const LayerOptions& options, int parallelism,
                                        util::Canceller* cancel, LayerStats* stats,
                                        const util::TaskReporter& report, LayerSink* sink) {
  KILN_METRIC("  layers (diff, compress, store)");
  const std::string suffix = VariantSuffix(options);
  // A pulled layer's own blob is found without a suffix; only a forced
  // recompression is a variant of it, and the clamp never applies to it.
  LayerOptions pulled_options = options;
  pulled_options.source_date_epoch.reset();
  const std::string pulled_suffix = VariantSuffix(pulled_options);
  std::vector<Layer> layers;
  std::vector<bool> pulled;
  for (std::string id = top; !id.empty();) {
    KILN_ASSIGN_OR_RETURN(snapshot::Info info, snapshots.Stat(id));
    Layer l;
    l.snapshot = id;
    l.created = Label(info, snapshot::kLabelCreated);
    const bool is_pulled = l.created.empty();
    if (is_pulled) {
      std::optional<Layer> own = LabelledBlob(info, store, "");
      if (!own) {
        return Status::NotFound("layer " + Label(info, snapshot::kLabelLayerDigest) +
                                " of snapshot " + id +
                                " is no longer in the content store; run `kiln prune` and build "
                                "again to pull it anew");
      }
      if (options.force && CompressionOf(own->blob.media_type) != options.compression) {
        if (std::optional<Layer> v = LabelledBlob(info, store, pulled_suffix)) {
          own = v;
        } else {
          own->blob.media_type.clear();  // to recompress from own->blob.digest
        }
      }
      l.blob = own->blob;
      l.diff_id = own->diff_id;
    } else if (std::optional<Layer> v = LabelledBlob(info, store, suffix)) {
      l.blob = v->blob;
      l.diff_id = v->diff_id;
    }
    layers.push_back(std::move(l));
    pulled.push_back(is_pulled);
    id = info.parent;
  }
  std::reverse(layers.begin(), layers.end());
  std::reverse(pulled.begin(), pulled.end());
  std::vector<Job> todo;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].blob.digest.empty() || layers[i].blob.media_type.empty()) {
      todo.push_back({&layers[i], static_cast<bool>(pulled[i]), i});
    } else if (stats) {
      ++stats->reused;
    }
  }
  if (sink) {
    std::vector<Layer> view = layers;
    for (const Job& j : todo) view[j.index].blob = image::Descriptor();  // to be made
    sink->Layers(view);
  }
  // Both exporters count into one total, the "exporting layers" task's.
  std::atomic<uint64_t> done_bytes{0};
  Exporter exporter(snapshots, store, options, stats, report, &done_bytes, cancel);
  // A recompressed pulled layer is labelled with the suffix without the clamp.
  Exporter pulled_exporter(snapshots, store, pulled_options, stats, report, &done_bytes, cancel);
  if (!todo.empty()) exporter.Report(util::TaskUpdate::State::kRunning);
  std::mutex mu;
  std::atomic<size_t> next{0};
  Status first;
  auto worker = [&] {
    for (;;) {
      const size_t k = next.fetch_add(1);
      if (k >= todo.size()) return;
      Status st = cancel ? cancel->Check() : Status::Ok();
      if (st.ok()) st = (todo[k].pulled ? pulled_exporter : exporter).Run(todo[k], sink);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st.Annotate("export layer " + todo[k].layer->snapshot);
        next.store(todo.size());
      }
    }
  };
  const size_t n = std::min<size_t>(todo.size(), static_cast<size_t>(std::max(1, parallelism)));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  if (n > 0) worker();
  for (std::thread& t : threads) t.join();
  if (!todo.empty()) {
    exporter.Report(first.ok() ? util::TaskUpdate::State::kDone : util::TaskUpdate::State::kError,
                    first.ok() ? "" : first.message());
  }
  if (!first.ok()) return first;
  return layers;
}

}  // namespace kiln::exporter
