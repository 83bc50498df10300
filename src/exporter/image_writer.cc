#include "exporter/image_writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/reference.h"
#include "snapshot/labels.h"
#include "util/base64.h"
#include "util/compress.h"

namespace kiln::exporter {
namespace {

std::vector<std::string> SplitComma(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    out.emplace_back(s.substr(start, comma == std::string_view::npos ? s.npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

// "size mtime_ns inode" of a regular file, nullopt when it is not one.
std::optional<std::string> FileStamp(const std::filesystem::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return std::to_string(st.st_size) + " " +
         std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                        st.st_mtim.tv_nsec) +
         " " + std::to_string(st.st_ino);
}

std::string Label(const snapshot::Info& info, std::string_view key) {
  auto it = info.labels.find(std::string(key));
  return it == info.labels.end() ? "" : it->second;
}

// Built images use OCI media types; a pulled Docker layer keeps its bytes.
std::string OciLayerType(std::string_view t) {
  if (t == image::kMediaTypeDockerLayerGzip) return std::string(image::kMediaTypeOciLayerGzip);
  if (t == image::kMediaTypeDockerLayer) return std::string(image::kMediaTypeOciLayer);
  if (t == image::kMediaTypeDockerLayerZstd) return std::string(image::kMediaTypeOciLayerZstd);
  return std::string(t);
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

 private:
  static constexpr size_t kMax = 16;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  bool done_ = false, closed_ = false;
};

// Diff (reading files, building the tar, hashing the diff_id) runs on its
// own thread; compression and the store write on this one, so the two
// halves of a layer's export overlap.
Status CompressLayer(snapshot::Snapshotter& snapshots, const content::Store& store, Layer* layer,
                     LayerStats* stats, std::mutex* mu) {
  KILN_ASSIGN_OR_RETURN(content::Writer writer, store.NewWriter());
  util::Sha256 diff;
  KILN_ASSIGN_OR_RETURN(
      std::unique_ptr<util::Compressor> gz,
      util::NewCompressor(util::Compression::kGzip,
                          [&writer](std::string_view c) { return writer.Write(c); }));
  ChunkQueue queue;
  Status diff_status;
  std::thread producer([&] {
    std::string pending;
    diff_status = snapshots.Diff(layer->snapshot, [&](std::string_view chunk) -> Status {
      diff.Update(chunk);
      pending.append(chunk);
      if (pending.size() >= (1u << 20)) {
        if (!queue.Push(std::move(pending))) return Status::Cancelled("layer export stopped");
        pending.clear();
      }
      return Status::Ok();
    });
    if (diff_status.ok() && !pending.empty()) (void)queue.Push(std::move(pending));
    queue.Finish();
  });
  Status compress_status;
  while (std::optional<std::string> chunk = queue.Pop()) {
    compress_status = gz->Write(*chunk);
    if (!compress_status.ok()) {
      queue.Close();
      break;
    }
  }
  producer.join();
  KILN_RETURN_IF_ERROR(compress_status);
  KILN_RETURN_IF_ERROR(diff_status);
  KILN_RETURN_IF_ERROR(gz->Finish());
  const uint64_t size = writer.size();
  const uint64_t raw = diff.size();
  KILN_ASSIGN_OR_RETURN(util::Digest digest, writer.Commit());
  layer->diff_id = diff.Finish();
  layer->blob.media_type = std::string(image::kMediaTypeOciLayerGzip);
  layer->blob.digest = digest;
  layer->blob.size = static_cast<int64_t>(size);
  const std::string& id = layer->snapshot;
  KILN_RETURN_IF_ERROR(snapshots.SetLabel(id, snapshot::kLabelLayerDiffId, layer->diff_id.str()));
  KILN_RETURN_IF_ERROR(
      snapshots.SetLabel(id, snapshot::kLabelLayerMediaType, layer->blob.media_type));
  KILN_RETURN_IF_ERROR(snapshots.SetLabel(id, snapshot::kLabelLayerSize, std::to_string(size)));
  // The digest label last: its presence says the others are complete.
  KILN_RETURN_IF_ERROR(snapshots.SetLabel(id, snapshot::kLabelLayerDigest, digest.str()));
  if (stats) {
    std::lock_guard<std::mutex> lock(*mu);
    ++stats->compressed;
    stats->uncompressed_bytes += raw;
    stats->compressed_bytes += size;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<Layer>> ExportLayers(snapshot::Snapshotter& snapshots,
                                        const content::Store& store, const std::string& top,
                                        int parallelism, util::Canceller* cancel,
                                        LayerStats* stats) {
  std::vector<Layer> layers;
  std::vector<size_t> todo;
  for (std::string id = top; !id.empty();) {
    KILN_ASSIGN_OR_RETURN(snapshot::Info info, snapshots.Stat(id));
    Layer l;
    l.snapshot = id;
    l.created = Label(info, snapshot::kLabelCreated);
    const std::string digest = Label(info, snapshot::kLabelLayerDigest);
    Result<util::Digest> d = util::Digest::Parse(digest);
    Result<util::Digest> diff = util::Digest::Parse(Label(info, snapshot::kLabelLayerDiffId));
    if (!digest.empty() && d.ok() && diff.ok() && store.Has(*d)) {
      l.blob.digest = *d;
      l.blob.media_type = OciLayerType(Label(info, snapshot::kLabelLayerMediaType));
      l.blob.size = std::stoll("0" + Label(info, snapshot::kLabelLayerSize));
      l.diff_id = *diff;
      if (stats) ++stats->reused;
    } else if (Label(info, snapshot::kLabelCreated).empty() && !digest.empty()) {
      return Status::NotFound("layer " + digest + " of snapshot " + id +
                              " is no longer in the content store; run `kiln prune` and build "
                              "again to pull it anew");
    }
    layers.push_back(std::move(l));
    id = info.parent;
  }
  std::reverse(layers.begin(), layers.end());
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].blob.digest.empty()) todo.push_back(i);
  }
  std::mutex mu;
  std::atomic<size_t> next{0};
  Status first;
  auto worker = [&] {
    for (;;) {
      const size_t k = next.fetch_add(1);
      if (k >= todo.size()) return;
      Status st = cancel ? cancel->Check() : Status::Ok();
      if (st.ok()) st = CompressLayer(snapshots, store, &layers[todo[k]], stats, &mu);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st.Annotate("export layer " + layers[todo[k]].snapshot);
        next.store(todo.size());
      }
    }
  };
  const size_t n = std::min<size_t>(todo.size(), static_cast<size_t>(std::max(1, parallelism)));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  if (n > 0) worker();
  for (std::thread& t : threads) t.join();
  if (!first.ok()) return first;
  return layers;
}

Result<WrittenImage> WriteImage(const content::Store& store, const ImageRequest& req) {
  image::ImageConfig config = req.config;
  config.rootfs.type = "layers";
  config.rootfs.diff_ids.clear();
  for (const Layer& l : req.layers) config.rootfs.diff_ids.push_back(l.diff_id);

  // Exactly one non-empty history entry per layer (BuildKit's normalization).
  std::vector<image::HistoryEntry>& h = config.history;
  size_t with_layer = 0;
  for (const image::HistoryEntry& e : h) with_layer += e.empty_layer ? 0 : 1;
  if (with_layer < req.layers.size()) {
    std::vector<image::HistoryEntry> pad(req.layers.size() - with_layer);
    h.insert(h.begin(), pad.begin(), pad.end());
  } else {
    for (size_t i = h.size(); i-- > 0 && with_layer > req.layers.size();) {
      if (!h[i].empty_layer) {
        h[i].empty_layer = true;
        --with_layer;
      }
    }
  }
  std::string date = config.created;
  size_t layer = 0;
  for (image::HistoryEntry& e : h) {
    if (!e.empty_layer) {
      const std::string& made = req.layers[layer++].created;
      if (e.created.empty() && !made.empty()) e.created = made;
    }
    if (e.created.empty()) e.created = date;
    if (!e.created.empty()) date = e.created;
  }
  if (!date.empty()) config.created = date;

  KILN_ASSIGN_OR_RETURN(
      std::string config_json,
      buildinfo::PatchImageConfig(config.ToJson(), req.record, req.record_options));
  WrittenImage out;
  out.config_bytes = config_json;
  KILN_ASSIGN_OR_RETURN(util::Digest config_digest, store.Put(config_json));
  out.config.media_type = std::string(image::kMediaTypeOciConfig);
  out.config.digest = config_digest;
  out.config.size = static_cast<int64_t>(config_json.size());

  image::Manifest m;
  m.media_type = std::string(image::kMediaTypeOciManifest);
  m.config = out.config;
  for (const Layer& l : req.layers) {
    m.layers.push_back(l.blob);
    out.layers.push_back(l.blob);
  }
  out.manifest_bytes = m.ToJson();
  KILN_ASSIGN_OR_RETURN(util::Digest manifest_digest, store.Put(out.manifest_bytes));
  out.manifest.media_type = std::string(image::kMediaTypeOciManifest);
  out.manifest.digest = manifest_digest;
  out.manifest.size = static_cast<int64_t>(out.manifest_bytes.size());
  return out;
}

Result<Output> ParseOutput(std::string_view spec) {
  Output out;
  if (spec.find('=') == std::string_view::npos) {
    out.type = "local";
    out.attrs["dest"] = std::string(spec);
    return out;
  }
  for (const std::string& part : SplitComma(spec)) {
    const size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("output \"" + std::string(spec) + "\": \"" + part +
                                     "\" is not KEY=VALUE");
    }
    std::string key = part.substr(0, eq);
    std::string value = part.substr(eq + 1);
    if (key == "type") {
      out.type = value;
    } else {
      out.attrs[key] = value;
    }
  }
  if (out.type.empty()) {
    return Status::InvalidArgument("output \"" + std::string(spec) + "\": no type= given");
  }
  return out;
}

Status WriteOutput(const content::Store& store, const Output& output, const WrittenImage& img,
                   const std::vector<std::string>& names, const std::filesystem::path& state_dir,
                   bool* skipped) {
  if (skipped) *skipped = false;
  if (output.type != "oci") {
    return Status::Unimplemented("output type \"" + output.type +
                                 "\" is not supported yet (supported: type=oci)");
  }
  auto dest_it = output.attrs.find("dest");
  if (dest_it == output.attrs.end() || dest_it->second.empty()) {
    return Status::InvalidArgument("output type=oci needs dest=FILE (or dest=DIR,tar=false)");
  }
  bool tar = true;
  if (auto it = output.attrs.find("tar"); it != output.attrs.end()) {
    if (it->second == "false" || it->second == "0") {
      tar = false;
    } else if (it->second != "true" && it->second != "1") {
      return Status::InvalidArgument("output option tar: invalid value \"" + it->second +
                                     "\" (expected true or false)");
    }
  }
  image::Descriptor top = img.manifest;
  std::vector<std::string> all_names = names;
  if (auto it = output.attrs.find("name"); it != output.attrs.end()) {
    for (const std::string& n : SplitComma(it->second)) all_names.push_back(n);
  }
  if (!all_names.empty()) {
    KILN_ASSIGN_OR_RETURN(image::Reference ref, image::ParseNormalizedNamed(all_names.front()));
    ref = image::TagNameOnly(ref);
    top.annotations["io.containerd.image.name"] = ref.String();
    if (!ref.tag.empty()) top.annotations["org.opencontainers.image.ref.name"] = ref.tag;
  }
  image::Index index;
  index.media_type = std::string(image::kMediaTypeOciIndex);
  index.manifests.push_back(top);
  const std::string index_json = index.ToJson();
  std::vector<content::BlobRef> blobs;
  blobs.push_back({img.manifest.digest, static_cast<uint64_t>(img.manifest.size)});
  blobs.push_back({img.config.digest, static_cast<uint64_t>(img.config.size)});
  for (const image::Descriptor& l : img.layers) {
    blobs.push_back({l.digest, static_cast<uint64_t>(l.size)});
  }
  const std::filesystem::path dest = dest_it->second;
  content::WriteOptions wo;
  wo.source_verifies = true;  // the store's reader verifies every blob
  if (!tar) {
    return content::WriteOciLayout(dest, index_json, blobs, content::StoreBlobSource(store), wo);
  }
  std::string identity = "kiln-oci-archive-v1\n" + index_json + "\n";
  for (const content::BlobRef& b : blobs) {
    identity += b.digest.str() + " " + std::to_string(b.size) + "\n";
  }
  const std::string id = util::Sha256Of(identity).str();
  std::filesystem::path record;
  if (!state_dir.empty()) {
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(dest, ec);
    record = state_dir / std::string(util::Sha256Of(abs.string()).hex());
    if (std::optional<std::string> stamp = FileStamp(dest)) {
      std::ifstream in(record);
      std::string got_id, got_stamp;
      if (std::getline(in, got_id) && std::getline(in, got_stamp) && got_id == id &&
          got_stamp == *stamp) {
        if (skipped) *skipped = true;
        return Status::Ok();
      }
    }
  }
  KILN_RETURN_IF_ERROR(
      content::WriteOciArchive(dest, index_json, blobs, content::StoreBlobSource(store), wo));
  if (!record.empty()) {
    // Best effort: without the record the next build writes the file again.
    std::optional<std::string> stamp = FileStamp(dest);
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (stamp && !ec) {
      const std::filesystem::path temp = record.string() + ".tmp";
      {
        std::ofstream out(temp, std::ios::trunc);
        out << id << "\n" << *stamp << "\n";
      }
      std::filesystem::rename(temp, record, ec);
    }
  }
  return Status::Ok();
}

Result<std::map<std::string, std::string>> Response(const WrittenImage& img,
                                                    const buildinfo::BuildInfo* record,
                                                    const std::vector<std::string>& names) {
  std::map<std::string, std::string> r;
  if (record) {
    KILN_ASSIGN_OR_RETURN(
        r, buildinfo::ExporterResponse({{std::string(buildinfo::kMetadataKey), *record}}));
  }
  r["containerimage.digest"] = img.manifest.digest.str();
  r["containerimage.config.digest"] = img.config.digest.str();
  r["containerimage.descriptor"] = util::Base64Encode(img.manifest.ToJson());
  if (!names.empty()) {
    std::string joined;
    for (const std::string& n : names) joined += (joined.empty() ? "" : ",") + n;
    r["image.name"] = joined;
  }
  return r;
}

}  // namespace kiln::exporter
