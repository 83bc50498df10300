#include "cli/registry_commands.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "cli/config.h"
#include "cli/image_location.h"
#include "cli/inspect.h"
#include "cli/ref_index.h"
#include "content/layout.h"
#include "content/store.h"
#include "image/config.h"
#include "image/descriptor.h"
#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "image/reference.h"
#include "registry/client.h"
#include "util/json.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using image::Descriptor;
using util::Digest;

constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";
constexpr int kParallelism = 4;  // blobs transferred at once
constexpr int kMaxIndexDepth = 8;
// Configs are read whole; anything larger is not a config kiln will parse.
constexpr int64_t kMaxConfigSize = 8 << 20;

Result<registry::Client> NewClient(const GlobalOptions& global) {
  registry::RegistryOptions options;
  options.insecure_registries = global.insecure_registries;
  ApplyNetworkOptions(global.network, &options);
  return registry::Client::Create(std::move(options));
}

Result<content::Store> OpenStore(const GlobalOptions& global) {
  if (global.root.empty()) {
    return Status::InvalidArgument("no state root: pass --root or set KILN_ROOT");
  }
  KILN_RETURN_IF_ERROR(PrepareRoot(global.root));  // 0700
  return content::Store::Open(global.root / "content");
}

Result<image::Platform> PlatformOrHost(const std::string& specifier) {
  if (specifier.empty()) return image::DefaultPlatform();
  KILN_ASSIGN_OR_RETURN(image::Platform p, image::ParsePlatform(specifier));
  return image::Normalize(std::move(p));
}

// Runs fn(0) .. fn(n-1) on up to `parallelism` threads; the first error
// stops the remaining items from starting and is returned.
Status ParallelFor(size_t n, int parallelism, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first = Status::Ok();
  auto worker = [&] {
    while (!failed.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status st = fn(i);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = std::move(st);
        failed = true;
      }
    }
  };
  const size_t threads = std::min<size_t>(n, static_cast<size_t>(std::max(parallelism, 1)));
  if (threads <= 1) {
    worker();
    return first;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (size_t i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return first;
}

// Where an image's documents and blobs come from: a registry repository or
// an opened OCI layout / archive. Everything returned is verified against
// its digest.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // How the image is named in output ("127.0.0.1:5000/x:latest",
  // "oci-layout:///tmp/x:v1").
  virtual std::string Name() const = 0;
  // `Name()@digest` for a manifest inside the image.
  virtual std::string ChildName(const Digest& digest) const = 0;
  // The manifest or index the location names, with its bytes as stored.
  virtual Result<registry::FetchedManifest> Top() = 0;
  // A manifest or index the image reaches.
  virtual Result<std::string> ReadManifest(const Descriptor& desc) = 0;
  // A small blob (a config).
  virtual Result<std::string> ReadBlob(const Descriptor& desc) = 0;
  // Puts `blobs` into `store`, skipping those it has.
  virtual Status CopyToStore(const std::vector<Descriptor>& blobs, const content::Store& store) = 0;
};

class RegistrySource : public ImageSource {
 public:
  RegistrySource(registry::Client* client, image::Reference ref, const content::Store* store)
      : client_(client), ref_(std::move(ref)), store_(store) {}

  std::string Name() const override { return ref_.String(); }
  std::string ChildName(const Digest& digest) const override {
    return ref_.Name() + "@" + digest.str();
  }
  Result<registry::FetchedManifest> Top() override { return client_->FetchManifest(ref_); }
  Result<std::string> ReadManifest(const Descriptor& desc) override {
    image::Reference by_digest = ref_;
    by_digest.tag.clear();
    by_digest.digest = desc.digest.str();
    KILN_ASSIGN_OR_RETURN(registry::FetchedManifest m, client_->FetchManifest(by_digest));
    return std::move(m.bytes);
  }
  Result<std::string> ReadBlob(const Descriptor& desc) override {
    if (desc.size > kMaxConfigSize) {
      return Status::ResourceExhausted(ref_.Name() + ": blob " + desc.digest.str() + " is " +
                                       std::to_string(desc.size) + " bytes, too large to read");
    }
    KILN_RETURN_IF_ERROR(client_->FetchBlob(ref_, desc, *store_));
    return store_->Read(desc.digest);
  }
  Status CopyToStore(const std::vector<Descriptor>& blobs, const content::Store& store) override {
    return ParallelFor(blobs.size(), kParallelism,
                       [&](size_t i) { return client_->FetchBlob(ref_, blobs[i], store); });
  }

 private:
  registry::Client* client_;
  image::Reference ref_;
  const content::Store* store_;
};

class ArchiveSource : public ImageSource {
 public:
  ArchiveSource(content::ImageArchive archive, ImageLocation loc)
      : archive_(std::move(archive)), loc_(std::move(loc)) {}

  std::string Name() const override { return loc_.String(); }
  std::string ChildName(const Digest& digest) const override {
    return loc_.String() + "@" + digest.str();
  }
  Result<registry::FetchedManifest> Top() override {
    const std::string where = loc_.String();
    if (archive_.format() == content::Format::kDockerArchive) {
      return Status::Unimplemented(where +
                                   " is a Docker image archive; only OCI layouts and "
                                   "OCI archives are supported here");
    }
    auto index = image::ParseIndex(archive_.index_json());
    if (!index.ok()) return index.status().Annotate(where + ": index.json");
    std::vector<std::string> tags;
    const Descriptor* found = nullptr;
    for (const auto& d : index->manifests) {
      auto it = d.annotations.find(std::string(kRefNameAnnotation));
      const std::string tag = it == d.annotations.end() ? "" : it->second;
      if (!tag.empty()) tags.push_back(tag);
      if (!loc_.tag.empty() && tag == loc_.tag && found == nullptr) found = &d;
    }
    if (!loc_.tag.empty() && found == nullptr) {
      return Status::NotFound(where + ": no image tagged \"" + loc_.tag + "\" in index.json" +
                              TagList(tags));
    }
    if (found == nullptr) {
      if (index->manifests.empty()) return Status::NotFound(where + ": index.json lists no image");
      if (index->manifests.size() > 1) {
        return Status::InvalidArgument(where + ": index.json lists " +
                                       std::to_string(index->manifests.size()) +
                                       " images; name one with :TAG" + TagList(tags));
      }
      found = &index->manifests.front();
    }
    registry::FetchedManifest top;
    top.descriptor = *found;
    KILN_ASSIGN_OR_RETURN(top.bytes, archive_.ReadBlob(found->digest));
    return top;
  }
  Result<std::string> ReadManifest(const Descriptor& desc) override {
    return archive_.ReadBlob(desc.digest);
  }
  Result<std::string> ReadBlob(const Descriptor& desc) override {
    return archive_.ReadBlob(desc.digest);
  }
  Status CopyToStore(const std::vector<Descriptor>& blobs, const content::Store& store) override {
    for (const auto& d : blobs) KILN_RETURN_IF_ERROR(archive_.CopyBlobToStore(d.digest, store));
    return Status::Ok();
  }

 private:
  static std::string TagList(const std::vector<std::string>& tags) {
    if (tags.empty()) return " (it has no tagged images)";
    std::string s = " (tags:";
    for (const auto& t : tags) s += " " + t;
    return s + ")";
  }

  content::ImageArchive archive_;
  ImageLocation loc_;
};

// An opened source and the registry client it uses (heap-allocated: the
// source points to it, and OpenedSource is moved).
struct OpenedSource {
  std::unique_ptr<registry::Client> client;
  std::unique_ptr<ImageSource> source;
};

Result<OpenedSource> OpenSource(const GlobalOptions& global, const ImageLocation& loc,
                                const content::Store* store) {
  OpenedSource out;
  switch (loc.transport) {
    case Transport::kRegistry: {
      KILN_ASSIGN_OR_RETURN(registry::Client client, NewClient(global));
      out.client = std::make_unique<registry::Client>(std::move(client));
      out.source = std::make_unique<RegistrySource>(out.client.get(), loc.reference, store);
      return out;
    }
    case Transport::kOciLayout: {
      KILN_ASSIGN_OR_RETURN(content::ImageArchive a,
                            content::ImageArchive::OpenLayoutDir(loc.path));
      out.source = std::make_unique<ArchiveSource>(std::move(a), loc);
      return out;
    }
    case Transport::kOciArchive: {
      KILN_ASSIGN_OR_RETURN(content::ImageArchive a, content::ImageArchive::OpenArchive(loc.path));
      out.source = std::make_unique<ArchiveSource>(std::move(a), loc);
      return out;
    }
  }
  return Status::Internal("unknown transport");
}

// Every blob of an image, gathered by walking it from the top.
struct ImageBlobs {
  std::vector<content::BlobRef> all;  // every blob once, manifests included
  std::vector<Descriptor> leaves;     // configs and layers, to transfer
  std::set<Digest> seen;
  uint64_t bytes = 0;

  bool Add(const Descriptor& d) {
    if (!seen.insert(d.digest).second) return false;
    all.push_back({d.digest, static_cast<uint64_t>(d.size)});
    bytes += static_cast<uint64_t>(d.size);
    return true;
  }
};

// Stores the manifest or index `desc` (whose verified bytes are `bytes`) and
// walks what it reaches: child manifests are stored now, configs and layers
// are collected in out->leaves for a parallel transfer afterwards.
Status WalkImage(ImageSource& source, const content::Store& store, const Descriptor& desc,
                 const std::string& bytes, int depth, ImageBlobs* out) {
  if (depth > kMaxIndexDepth) {
    return Status::InvalidArgument("index nesting deeper than " + std::to_string(kMaxIndexDepth) +
                                   " levels at " + desc.digest.str());
  }
  if (!out->Add(desc)) return Status::Ok();
  if (!store.Has(desc.digest)) {
    KILN_RETURN_IF_ERROR(store.Put(bytes, &desc.digest).status());
  }
  if (image::IsIndex(desc.media_type)) {
    auto index = image::ParseIndex(bytes);
    if (!index.ok()) return index.status().Annotate(source.ChildName(desc.digest));
    for (const auto& child : index->manifests) {
      if (out->seen.contains(child.digest)) continue;
      if (image::IsIndex(child.media_type) || image::IsManifest(child.media_type)) {
        KILN_ASSIGN_OR_RETURN(std::string child_bytes, source.ReadManifest(child));
        KILN_RETURN_IF_ERROR(WalkImage(source, store, child, child_bytes, depth + 1, out));
      } else if (out->Add(child)) {
        out->leaves.push_back(child);
      }
    }
    return Status::Ok();
  }
  if (!image::IsManifest(desc.media_type)) {
    return Status::Unimplemented(source.ChildName(desc.digest) + ": media type \"" +
                                 desc.media_type + "\" is neither an image index nor a manifest");
  }
  auto manifest = image::ParseManifest(bytes);
  if (!manifest.ok()) return manifest.status().Annotate(source.ChildName(desc.digest));
  if (out->Add(manifest->config)) out->leaves.push_back(manifest->config);
  for (const auto& layer : manifest->layers) {
    // Foreign / nondistributable layers stay where their URLs say, as
    // Client::Push leaves them: they are neither fetched nor written.
    if (image::IsNondistributableLayer(layer.media_type)) continue;
    if (out->Add(layer)) out->leaves.push_back(layer);
  }
  return Status::Ok();
}

// The top of the image to copy or inspect: what the location names, or with
// `platform`, that platform's manifest from an index.
Result<registry::FetchedManifest> SelectTop(ImageSource& source,
                                            const std::optional<image::Platform>& platform) {
  KILN_ASSIGN_OR_RETURN(registry::FetchedManifest top, source.Top());
  top.descriptor.size = static_cast<int64_t>(top.bytes.size());
  if (!platform || !image::IsIndex(top.descriptor.media_type)) return top;
  auto index = image::ParseIndex(top.bytes);
  if (!index.ok()) return index.status().Annotate(source.Name());
  auto picked = image::PickManifest(*index, *platform);
  if (!picked.ok()) return picked.status().Annotate(source.Name());
  registry::FetchedManifest narrowed;
  narrowed.descriptor = std::move(*picked);
  KILN_ASSIGN_OR_RETURN(narrowed.bytes, source.ReadManifest(narrowed.descriptor));
  return narrowed;
}

// One manifest of the inspected image and the record of its config.
struct InspectedManifest {
  Descriptor descriptor;
  std::string platform;  // as the index gives it; "" when it gives none
};

image::Platform ConfigPlatform(const image::ImageConfig& config) {
  image::Platform p;
  p.os = config.os;
  p.architecture = config.architecture;
  p.variant = config.variant;
  return p;
}

// The record of the image whose manifest is `desc`, with the platform its
// config names. Images whose config is not an image config (attestations,
// artifacts) have none: nullopt.
struct ImageRecord {
  image::Platform platform;
  std::optional<buildinfo::BuildInfo> record;
};

Result<std::optional<ImageRecord>> ReadImageRecord(ImageSource& source, const Descriptor& desc,
                                                   const std::string& bytes) {
  auto manifest = image::ParseManifest(bytes);
  if (!manifest.ok()) return manifest.status().Annotate(source.ChildName(desc.digest));
  if (!image::IsConfig(manifest->config.media_type)) return std::optional<ImageRecord>();
  KILN_ASSIGN_OR_RETURN(std::string config_json, source.ReadBlob(manifest->config));
  auto config = image::ParseImageConfig(config_json);
  if (!config.ok()) return config.status().Annotate("config " + manifest->config.digest.str());
  auto record = buildinfo::ExtractFromImageConfig(config_json);
  if (!record.ok()) return record.status().Annotate("config " + manifest->config.digest.str());
  return std::optional<ImageRecord>(ImageRecord{ConfigPlatform(*config), std::move(*record)});
}

std::string IndentLines(const std::string& text, const std::string& pad) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out += pad;
    out.append(text, start, end - start);
    out += '\n';
    start = end + 1;
  }
  return out;
}

std::string Field(std::string_view name, std::string_view value, const std::string& pad) {
  std::string line = pad + std::string(name) + ":";
  line.append(11 - std::min<size_t>(name.size() + 1, 10), ' ');
  return line + std::string(value) + "\n";
}

}  // namespace

std::string HumanSize(uint64_t bytes) {
  if (bytes < 1000) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes) / 1000;
  size_t unit = 0;
  while (value >= 999.95 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

Result<std::string> RunPull(const GlobalOptions& global, const PullOptions& options) {
  KILN_ASSIGN_OR_RETURN(ImageLocation loc, ParseImageLocation(options.reference));
  if (!loc.is_registry()) {
    return Status::InvalidArgument("kiln pull takes a registry reference, not \"" +
                                   options.reference + "\" (use kiln copy for layouts)");
  }
  KILN_ASSIGN_OR_RETURN(image::Platform platform, PlatformOrHost(options.platform));
  KILN_ASSIGN_OR_RETURN(content::Store store, OpenStore(global));
  KILN_ASSIGN_OR_RETURN(registry::Client client, NewClient(global));
  KILN_ASSIGN_OR_RETURN(registry::PullResult pulled, client.Pull(loc.reference, platform, store));
  const registry::Resolved& r = pulled.resolved;

  std::string shown;
  if (r.manifest.platform && !r.manifest.platform->os.empty()) {
    shown = image::Format(*r.manifest.platform);
  } else if (auto config = store.Read(r.config.digest); config.ok()) {
    auto parsed = image::ParseImageConfig(*config);
    if (parsed.ok() && !parsed->os.empty()) shown = image::Format(ConfigPlatform(*parsed));
  }
  if (shown.empty()) shown = image::Format(platform);

  KILN_RETURN_IF_ERROR(RecordReference(global.root, loc.reference.String(), r.top.digest));
  return "pulled " + loc.reference.String() + " " + r.top.digest.str() + " (" + shown + " " +
         r.manifest.digest.str() + "): " + std::to_string(pulled.blobs_fetched) +
         " blobs fetched, " + std::to_string(pulled.blobs_skipped) + " present, " +
         HumanSize(pulled.bytes_fetched) + "\n";
}

Result<std::string> RunInspect(const GlobalOptions& global, const InspectOptions& options) {
  KILN_ASSIGN_OR_RETURN(ImageLocation loc, ParseImageLocation(options.location));
  // Configs read from a registry are kept in the store, as a pull would.
  std::optional<content::Store> store;
  if (loc.is_registry()) {
    KILN_ASSIGN_OR_RETURN(content::Store s, OpenStore(global));
    store.emplace(std::move(s));
  }
  KILN_ASSIGN_OR_RETURN(OpenedSource opened, OpenSource(global, loc, store ? &*store : nullptr));
  ImageSource& source = *opened.source;
  KILN_ASSIGN_OR_RETURN(registry::FetchedManifest top, source.Top());
  if (options.raw) return std::move(top.bytes);

  const Descriptor& desc = top.descriptor;
  std::vector<InspectedManifest> manifests;
  RecordsByKey records;
  if (image::IsIndex(desc.media_type)) {
    auto index = image::ParseIndex(top.bytes);
    if (!index.ok()) return index.status().Annotate(source.Name());
    for (const auto& child : index->manifests) {
      InspectedManifest m{child, child.platform ? image::Format(*child.platform) : ""};
      manifests.push_back(m);
      if (!image::IsManifest(child.media_type)) continue;
      // BuildKit's attestation manifests say unknown/unknown.
      if (child.platform && child.platform->os == "unknown") continue;
      KILN_ASSIGN_OR_RETURN(std::string bytes, source.ReadManifest(child));
      KILN_ASSIGN_OR_RETURN(std::optional<ImageRecord> img, ReadImageRecord(source, child, bytes));
      if (!img) continue;
      const image::Platform p = child.platform ? *child.platform : img->platform;
      std::string key = buildinfo::ResponseKey(image::Format(image::Normalize(p)));
      if (records.contains(key)) key += " (" + child.digest.str() + ")";
      records[key] = std::move(img->record);
    }
  } else if (image::IsManifest(desc.media_type)) {
    KILN_ASSIGN_OR_RETURN(std::optional<ImageRecord> img, ReadImageRecord(source, desc, top.bytes));
    if (img) records[std::string(buildinfo::kMetadataKey)] = std::move(img->record);
  } else {
    return Status::Unimplemented(source.Name() + ": media type \"" + desc.media_type +
                                 "\" is neither an image index nor a manifest");
  }

  if (options.format == "json") {
    auto compact = util::GoCompact(top.bytes);
    if (!compact.ok()) return compact.status().Annotate(source.Name());
    util::JsonWriter w;
    w.BeginObject();
    w.Key("name");
    w.String(source.Name());
    w.Key("manifest");
    w.Raw(*compact);
    w.Key("buildinfo");
    WriteRecordsJson(w, records);
    w.EndObject();
    KILN_ASSIGN_OR_RETURN(std::string indented, util::GoIndent(w.str()));
    return indented + "\n";
  }

  std::string out = Field("Name", source.Name(), "");
  out += Field("MediaType", desc.media_type, "");
  out += Field("Digest", desc.digest.str(), "");
  if (!manifests.empty()) {
    out += "\nManifests:\n";
    bool first = true;
    for (const auto& m : manifests) {
      if (!first) out += "\n";
      first = false;
      out += Field("Name", source.ChildName(m.descriptor.digest), "  ");
      out += Field("MediaType", m.descriptor.media_type, "  ");
      if (!m.platform.empty()) out += Field("Platform", m.platform, "  ");
    }
  }
  out += "\nBuild sources:\n";
  out += records.empty() ? "  (no image configs)\n" : IndentLines(FormatPretty(records), "  ");
  return out;
}

Result<std::string> RunCopy(const GlobalOptions& global, const CopyOptions& options) {
  KILN_ASSIGN_OR_RETURN(ImageLocation src, ParseImageLocation(options.source));
  KILN_ASSIGN_OR_RETURN(ImageLocation dst, ParseImageLocation(options.destination));
  std::optional<image::Platform> platform;
  if (!options.platform.empty()) {
    KILN_ASSIGN_OR_RETURN(image::Platform p, PlatformOrHost(options.platform));
    platform = std::move(p);
  }
  KILN_ASSIGN_OR_RETURN(content::Store store, OpenStore(global));
  KILN_ASSIGN_OR_RETURN(OpenedSource opened, OpenSource(global, src, &store));
  ImageSource& source = *opened.source;

  KILN_ASSIGN_OR_RETURN(registry::FetchedManifest top, SelectTop(source, platform));
  ImageBlobs blobs;
  KILN_RETURN_IF_ERROR(WalkImage(source, store, top.descriptor, top.bytes, 0, &blobs));
  KILN_RETURN_IF_ERROR(source.CopyToStore(blobs.leaves, store));

  std::string pushed;
  if (dst.is_registry()) {
    registry::Client* client = opened.client.get();
    std::optional<registry::Client> own;
    if (client == nullptr) {
      KILN_ASSIGN_OR_RETURN(registry::Client c, NewClient(global));
      own.emplace(std::move(c));
      client = &*own;
    }
    registry::PushOptions push;
    push.parallelism = kParallelism;
    if (src.is_registry() && src.reference.domain == dst.reference.domain) {
      push.mount_from.push_back(src.reference);
    }
    registry::PushStats stats;
    KILN_RETURN_IF_ERROR(client->Push(store, top.descriptor, dst.reference, push, &stats));
    pushed = " (" + std::to_string(stats.blobs_uploaded) + " uploaded, " +
             std::to_string(stats.blobs_mounted) + " mounted, " +
             std::to_string(stats.blobs_existing) + " present)";
  } else {
    Descriptor entry = top.descriptor;
    if (!dst.tag.empty()) entry.annotations[std::string(kRefNameAnnotation)] = dst.tag;
    image::Index index;
    index.media_type = std::string(image::kMediaTypeOciIndex);
    index.manifests.push_back(std::move(entry));
    const std::string index_json = index.ToJson();
    const content::BlobSource from_store = content::StoreBlobSource(store);
    if (dst.transport == Transport::kOciLayout) {
      KILN_RETURN_IF_ERROR(content::WriteOciLayout(dst.path, index_json, blobs.all, from_store));
    } else {
      KILN_RETURN_IF_ERROR(content::WriteOciArchive(dst.path, index_json, blobs.all, from_store));
    }
  }
  return "copied " + src.String() + " -> " + dst.String() + " " + top.descriptor.digest.str() +
         ": " + std::to_string(blobs.all.size()) + " blobs, " + HumanSize(blobs.bytes) + pushed +
         "\n";
}

void ApplyNetworkOptions(const util::NetworkOptions& net, registry::RegistryOptions* options) {
  options->connect_timeout = net.connect_timeout;
  options->low_speed_time = net.stall_timeout;
  options->timeout = net.timeout;
  options->min_rate = net.min_rate;
  options->timeout_hint = util::RaiseHint(net, "timeout");
}

}  // namespace kiln::cli
