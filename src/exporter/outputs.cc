#include "exporter/outputs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>

#include "buildinfo/exporter.h"
#include "content/layout.h"
#include "image/index.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "image/reference.h"
#include "util/json.h"

namespace kiln::exporter {
namespace {

using OptionSet = std::set<std::string, std::less<>>;

// The options each output type takes (K11: anything else is an error).
const std::map<std::string, OptionSet, std::less<>>& KnownOptions() {
  static const OptionSet image_common = {
      "name",      "oci-mediatypes", "compression", "compression-level", "force-compression",
      "buildinfo", "buildinfo-attrs"};
  static const std::map<std::string, OptionSet, std::less<>> k = [] {
    std::map<std::string, OptionSet, std::less<>> m;
    OptionSet image = image_common;
    image.insert({"push", "registry.insecure"});
    m["image"] = image;
    OptionSet archive = image_common;
    archive.insert({"dest", "tar"});
    m["oci"] = archive;
    m["docker"] = archive;
    // The filesystem exporters ignore the record options (R37) but take them.
    m["local"] = {"dest", "buildinfo", "buildinfo-attrs"};
    m["tar"] = {"dest", "buildinfo", "buildinfo-attrs"};
    return m;
  }();
  return k;
}

// Go's encoding/csv on one line, as buildctl reads -o: fields split at
// commas; a field that starts with a quote runs to the closing quote ("" is
// a literal quote).
Result<std::vector<std::string>> SplitCsv(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    std::string field;
    if (i < s.size() && s[i] == '"') {
      ++i;
      for (;;) {
        if (i >= s.size()) return Status::InvalidArgument("unterminated quote");
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += s[i++];
      }
      if (i < s.size() && s[i] != ',') {
        return Status::InvalidArgument("extraneous text after a closing quote");
      }
    } else {
      const size_t comma = s.find(',', i);
      field = std::string(s.substr(i, comma == std::string_view::npos ? s.npos : comma - i));
      i = comma == std::string_view::npos ? s.size() : comma;
    }
    out.push_back(std::move(field));
    if (i >= s.size()) return out;
    ++i;  // the comma
  }
}

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

// "true"/"1" -> true, "false"/"0" -> false, "" -> `def`.
Result<bool> BoolOption(const Output& o, std::string_view key, bool def) {
  auto it = o.attrs.find(std::string(key));
  if (it == o.attrs.end() || it->second.empty()) return def;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return Status::InvalidArgument("output type=" + o.type + ": option " + std::string(key) +
                                 ": invalid value \"" + it->second +
                                 "\" (expected true, false, 1 or 0)");
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

Status WriteArchiveOutput(const OutputEnv& env, const Output& output,
                          const ImageOutputOptions& options, const WrittenImage& img,
                          OutputResult* result, ArchiveStream* started);
Status PushImageOutput(const OutputEnv& env, const Output& output,
                       const ImageOutputOptions& options, const image::Descriptor& top,
                       uint64_t total, OutputResult* result);
Status WriteIndexArchiveOutput(const OutputEnv& env, const Output& output,
                               const ImageOutputOptions& options, const WrittenIndex& index,
                               OutputResult* result);

}  // namespace

Result<Output> ParseOutput(std::string_view spec) {
  Output out;
  if (spec.empty()) {
    // Not a directory named "": a mistyped flag must not export to the
    // working directory or fail later without naming the flag.
    return Status::InvalidArgument(
        "output \"\": empty (expected a directory, - for a tar on stdout, or "
        "type=TYPE[,KEY=VALUE...])");
  }
  if (spec.find('=') == std::string_view::npos) {
    // buildx: "-o -" is a tar on stdout, any other bare value a directory.
    out.type = spec == "-" ? "tar" : "local";
    out.attrs["dest"] = std::string(spec);
    return out;
  }
  Result<std::vector<std::string>> parts = SplitCsv(spec);
  if (!parts.ok()) {
    return Status::InvalidArgument("output \"" + std::string(spec) +
                                   "\": " + parts.status().message());
  }
  for (const std::string& part : *parts) {
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
    return Status::InvalidArgument("output \"" + std::string(spec) +
                                   "\": no type= given (expected one of image, registry, oci, "
                                   "docker, local, tar)");
  }
  if (out.type == "registry") {  // buildx's alias
    out.type = "image";
    out.attrs["push"] = "true";
  }
  auto known = KnownOptions().find(out.type);
  if (known == KnownOptions().end()) {
    return Status::InvalidArgument("output \"" + std::string(spec) + "\": unknown type \"" +
                                   out.type +
                                   "\" (expected one of image, registry, oci, docker, local, tar)");
  }
  Status st = buildinfo::ValidateExporterOptions(out.type, out.attrs, known->second);
  if (!st.ok()) {
    std::string accepted;
    for (const std::string& o : known->second) accepted += (accepted.empty() ? "" : ", ") + o;
    return Status::InvalidArgument(st.message() + " (type=" + out.type + " takes " + accepted +
                                   ")");
  }
  if ((out.type == "local" || out.type == "tar") &&
      (!out.attrs.count("dest") || out.attrs["dest"].empty())) {
    return Status::InvalidArgument("output type=" + out.type + " needs dest=" +
                                   (out.type == "local" ? "DIR" : "FILE (or - for stdout)"));
  }
  return out;
}

bool IsImageOutput(const Output& output) {
  return output.type == "image" || output.type == "oci" || output.type == "docker";
}

Result<ImageOutputOptions> ParseImageOutputOptions(const Output& output,
                                                   const std::vector<std::string>& tags) {
  ImageOutputOptions o;
  KILN_ASSIGN_OR_RETURN(o.oci_mediatypes,
                        BoolOption(output, "oci-mediatypes", output.type == "oci"));
  KILN_ASSIGN_OR_RETURN(o.push, BoolOption(output, "push", false));
  KILN_ASSIGN_OR_RETURN(o.layers.force, BoolOption(output, "force-compression", false));
  if (auto it = output.attrs.find("compression"); it != output.attrs.end()) {
    if (it->second == "gzip" || it->second.empty()) {
      o.layers.compression = util::Compression::kGzip;
    } else if (it->second == "zstd") {
      o.layers.compression = util::Compression::kZstd;
    } else if (it->second == "uncompressed") {
      o.layers.compression = util::Compression::kNone;
    } else {
      return Status::InvalidArgument("output type=" + output.type + ": compression \"" +
                                     it->second +
                                     "\" is not supported (expected gzip, zstd or "
                                     "uncompressed)");
    }
  }
  if (auto it = output.attrs.find("compression-level"); it != output.attrs.end()) {
    int level = -1;
    try {
      size_t used = 0;
      level = std::stoi(it->second, &used);
      if (used != it->second.size()) level = -1;
    } catch (const std::exception&) {
      level = -1;
    }
    const int max = o.layers.compression == util::Compression::kZstd ? 22 : 9;
    if (level < 0 || level > max) {
      return Status::InvalidArgument("output type=" + output.type + ": compression-level \"" +
                                     it->second + "\" is not a level from 0 to " +
                                     std::to_string(max));
    }
    o.layers.level = level;
  }
  // Docker schema2 has no zstd layers that every client reads: zstd implies
  // OCI media types, as BuildKit does.
  if (o.layers.compression == util::Compression::kZstd) o.oci_mediatypes = true;
  if (auto it = output.attrs.find("name"); it != output.attrs.end() && !it->second.empty()) {
    for (const std::string& n : SplitComma(it->second)) {
      if (!n.empty()) o.names.push_back(n);
    }
  }
  for (const std::string& t : tags) o.names.push_back(t);
  for (const std::string& n : o.names) {
    Result<image::Reference> ref = image::ParseNormalizedNamed(n);
    if (!ref.ok()) {
      return Status::InvalidArgument("output type=" + output.type + ": invalid image name \"" + n +
                                     "\": " + ref.status().message());
    }
  }
  if (o.push && o.names.empty()) {
    return Status::InvalidArgument("output type=image,push=true needs a name (name=REF or -t REF)");
  }
  return o;
}

Status WriteImageOutput(const OutputEnv& env, const Output& output,
                        const ImageOutputOptions& options, const WrittenImage& image,
                        OutputResult* result, ArchiveStream* started) {
  if (result) *result = OutputResult{};
  if (output.type == "oci" || output.type == "docker") {
    return WriteArchiveOutput(env, output, options, image, result, started);
  }
  if (output.type == "image") {
    // Without push the image is only named; the caller records the names.
    if (!options.push) return Status::Ok();
    uint64_t total = static_cast<uint64_t>(image.config.size);
    for (const image::Descriptor& l : image.layers) total += static_cast<uint64_t>(l.size);
    return PushImageOutput(env, output, options, image.manifest, total, result);
  }
  return Status::InvalidArgument("output type \"" + output.type + "\" is not an image output");
}

Status WriteImageOutput(const OutputEnv& env, const Output& output,
                        const ImageOutputOptions& options, const WrittenIndex& index,
                        OutputResult* result) {
  if (result) *result = OutputResult{};
  if (output.type == "docker") {
    std::string list;
    for (const PlatformImage& pi : index.images) {
      list += (list.empty() ? "" : ", ") + image::Format(pi.platform);
    }
    return Status::InvalidArgument(
        "output type=docker holds one platform, and this build made " +
        std::to_string(index.images.size()) + " (" + list +
        "): use type=oci or type=image for several platforms, or build one --platform");
  }
  if (output.type == "oci") return WriteIndexArchiveOutput(env, output, options, index, result);
  if (output.type == "image") {
    if (!options.push) return Status::Ok();
    uint64_t total = 0;
    std::set<util::Digest> seen;
    for (const PlatformImage& pi : index.images) {
      if (seen.insert(pi.image.config.digest).second) {
        total += static_cast<uint64_t>(pi.image.config.size);
      }
      for (const image::Descriptor& l : pi.image.layers) {
        if (seen.insert(l.digest).second) total += static_cast<uint64_t>(l.size);
      }
    }
    return PushImageOutput(env, output, options, index.descriptor, total, result);
  }
  return Status::InvalidArgument("output type \"" + output.type + "\" is not an image output");
}

std::string PlatformFolder(const image::Platform& platform) {
  std::string out = image::Format(platform);
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

namespace {

// The names of a Docker archive's RepoTags: familiar "name:tag" forms
// (digest references cannot be tags and are left out).
std::vector<image::Reference> DockerTags(const std::vector<std::string>& names) {
  std::vector<image::Reference> tags;
  for (const std::string& n : names) {
    Result<image::Reference> ref = image::ParseNormalizedNamed(n);
    if (!ref.ok()) continue;  // ParseImageOutputOptions checked them
    image::Reference tagged = image::TagNameOnly(*ref);
    if (tagged.tag.empty()) continue;
    tagged.digest.clear();
    if (std::find(tags.begin(), tags.end(), tagged) == tags.end()) tags.push_back(tagged);
  }
  return tags;
}

std::string BlobPath(const util::Digest& d) {
  return "blobs/" + std::string(d.algorithm()) + "/" + std::string(d.hex());
}

// manifest.json and repositories of a Docker archive whose blobs are in the
// OCI layout beside them (paths "blobs/sha256/<hex>").
std::vector<content::ExtraFile> DockerArchiveFiles(const WrittenImage& img,
                                                   const std::vector<std::string>& names) {
  const std::vector<image::Reference> tags = DockerTags(names);
  nlohmann::json entry = nlohmann::json::object();
  entry["Config"] = BlobPath(img.config.digest);
  nlohmann::json repo_tags = nlohmann::json::array();
  for (const image::Reference& t : tags) repo_tags.push_back(t.FamiliarString());
  entry["RepoTags"] = repo_tags;
  nlohmann::json layers = nlohmann::json::array();
  for (const image::Descriptor& l : img.layers) layers.push_back(BlobPath(l.digest));
  entry["Layers"] = layers;
  std::vector<content::ExtraFile> files;
  files.push_back({"manifest.json", nlohmann::json::array({entry}).dump()});
  // `repositories`: repository -> tag -> the id of the image's top layer
  // (the blob's hex, as Docker 25 and later write it). An image without
  // layers has no such id and no `repositories`.
  if (!tags.empty() && !img.layers.empty()) {
    nlohmann::json repos = nlohmann::json::object();
    for (const image::Reference& t : tags) {
      image::Reference name = t;
      name.tag.clear();
      repos[name.FamiliarString()][t.tag] = std::string(img.layers.back().digest.hex());
    }
    files.push_back({"repositories", repos.dump()});
  }
  return files;
}

// The annotations index.json gives the top descriptor: the first name, as
// containerd and BuildKit name an image in an OCI layout.
Status AnnotateName(const std::vector<std::string>& names, image::Descriptor* top) {
  if (names.empty()) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(image::Reference ref, image::ParseNormalizedNamed(names.front()));
  ref = image::TagNameOnly(ref);
  top->annotations["io.containerd.image.name"] = ref.String();
  if (!ref.tag.empty()) top->annotations["org.opencontainers.image.ref.name"] = ref.tag;
  return Status::Ok();
}

Status WriteArchive(const OutputEnv& env, const Output& output, const std::string& dest_text,
                    bool tar, const image::Descriptor& top,
                    const std::vector<content::BlobRef>& blobs,
                    std::vector<content::ExtraFile> extra, bool* skipped,
                    const std::vector<util::Digest>& leading = {},
                    ArchiveStream* started = nullptr);

// The dest= of an archive output (type=oci, type=docker).
Result<std::string> ArchiveDest(const Output& output) {
  auto it = output.attrs.find("dest");
  if (it == output.attrs.end() || it->second.empty()) {
    return Status::InvalidArgument(
        "output type=" + output.type +
        " needs dest=FILE (or dest=- for stdout, or dest=DIR,tar=false)");
  }
  return it->second;
}

// type=oci and type=docker: the image as an OCI layout (a tar, a directory
// with tar=false, or a tar on stdout with dest=-); type=docker adds
// manifest.json and repositories for `docker load`.
Status WriteArchiveOutput(const OutputEnv& env, const Output& output,
                          const ImageOutputOptions& options, const WrittenImage& img,
                          OutputResult* result, ArchiveStream* started) {
  const bool docker = output.type == "docker";
  bool* skipped = result ? &result->skipped : nullptr;
  if (skipped) *skipped = false;
  KILN_ASSIGN_OR_RETURN(const std::string dest, ArchiveDest(output));
  KILN_ASSIGN_OR_RETURN(const bool tar, BoolOption(output, "tar", true));
  image::Descriptor top = img.manifest;
  const std::vector<std::string>& all_names = options.names;
  KILN_RETURN_IF_ERROR(AnnotateName(all_names, &top));
  std::vector<content::BlobRef> blobs;
  blobs.push_back({img.manifest.digest, static_cast<uint64_t>(img.manifest.size)});
  blobs.push_back({img.config.digest, static_cast<uint64_t>(img.config.size)});
  for (const image::Descriptor& l : img.layers) {
    blobs.push_back({l.digest, static_cast<uint64_t>(l.size)});
  }
  std::vector<content::ExtraFile> extra;
  if (docker) extra = DockerArchiveFiles(img, all_names);
  // The layers first, base first: the order an ArchiveStream writes them in.
  std::vector<util::Digest> leading;
  for (const image::Descriptor& l : img.layers) leading.push_back(l.digest);
  return WriteArchive(env, output, dest, tar, top, blobs, std::move(extra), skipped, leading,
                      started);
}

// The OCI layout or archive of `top` (its index.json names `top` alone) with
// `blobs` and `extra` files, skipped when unchanged (WriteImageOutput).
Status WriteArchive(const OutputEnv& env, const Output& output, const std::string& dest_text,
                    bool tar, const image::Descriptor& top,
                    const std::vector<content::BlobRef>& blobs,
                    std::vector<content::ExtraFile> extra, bool* skipped,
                    const std::vector<util::Digest>& leading, ArchiveStream* started) {
  const content::Store& store = *env.store;
  const std::filesystem::path& state_dir = env.state_dir;
  image::Index index;
  index.media_type = std::string(image::kMediaTypeOciIndex);
  index.manifests.push_back(top);
  const std::string index_json = index.ToJson();
  const std::filesystem::path dest = dest_text;
  content::WriteOptions wo;
  wo.source_verifies = true;  // the store's reader verifies every blob
  // Blob bodies file to file (copy_file_range), hashed meanwhile.
  wo.blob_file = content::StoreBlobFile(store);
  wo.extra_files = std::move(extra);
  wo.leading_blobs = leading;
  wo.cancel = env.cancel;
  if (started != nullptr && started->writer() != nullptr &&
      (!tar || dest_text == "-" || started->dest() != std::filesystem::path(dest_text))) {
    return Status::Internal("output type=" + output.type + ": the archive begun for " +
                            started->dest().string() + " is not this output's");
  }
  if (!tar) {
    if (dest_text == "-") {
      return Status::InvalidArgument("output type=" + output.type +
                                     ": tar=false writes a directory; dest=- (stdout) needs a tar");
    }
    return content::WriteOciLayout(dest, index_json, blobs, content::StoreBlobSource(store), wo);
  }
  if (dest_text == "-") {
    return content::WriteOciArchiveToFd(STDOUT_FILENO, "stdout", index_json, blobs,
                                        content::StoreBlobSource(store), wo);
  }
  // The unchanged-archive skip: the identity of what would be written and
  // the stamp of the file kiln wrote last time, under ROOT/outputs.
  std::string identity = "kiln-oci-archive-v1\n" + index_json + "\n";
  for (const content::BlobRef& b : blobs) {
    identity += b.digest.str() + " " + std::to_string(b.size) + "\n";
  }
  for (const content::ExtraFile& f : wo.extra_files) {
    identity += "file " + f.name + " " + util::Sha256Of(f.data).str() + "\n";
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
  if (started != nullptr && started->writer() != nullptr) {
    // Begun while the layers were made: the rest (config, manifest,
    // index.json) goes in now.
    KILN_RETURN_IF_ERROR(started->status());
    KILN_RETURN_IF_ERROR(
        started->writer()->Commit(index_json, blobs, content::StoreBlobSource(store), wo));
  } else {
    KILN_RETURN_IF_ERROR(
        content::WriteOciArchive(dest, index_json, blobs, content::StoreBlobSource(store), wo));
  }
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

// type=oci for a multi-platform build: index.json names the index (with the
// name annotations), whose manifests, configs and layers follow, each blob
// once.
Status WriteIndexArchiveOutput(const OutputEnv& env, const Output& output,
                               const ImageOutputOptions& options, const WrittenIndex& index,
                               OutputResult* result) {
  bool* skipped = result ? &result->skipped : nullptr;
  if (skipped) *skipped = false;
  KILN_ASSIGN_OR_RETURN(const std::string dest, ArchiveDest(output));
  KILN_ASSIGN_OR_RETURN(const bool tar, BoolOption(output, "tar", true));
  image::Descriptor top = index.descriptor;
  KILN_RETURN_IF_ERROR(AnnotateName(options.names, &top));
  std::vector<content::BlobRef> blobs;
  std::set<util::Digest> seen;
  auto add = [&](const image::Descriptor& d) {
    if (seen.insert(d.digest).second) blobs.push_back({d.digest, static_cast<uint64_t>(d.size)});
  };
  add(index.descriptor);
  for (const PlatformImage& pi : index.images) {
    add(pi.image.manifest);
    add(pi.image.config);
    for (const image::Descriptor& l : pi.image.layers) add(l);
  }
  return WriteArchive(env, output, dest, tar, top, blobs, {}, skipped);
}

// type=image,push=true: pushes the image under each name in turn. Progress:
// one task per reference ("push:<ref>"), one sub-task per blob with bytes.
// Each name pushed is a mount source for the next.
Status PushImageOutput(const OutputEnv& env, const Output& output,
                       const ImageOutputOptions& options, const image::Descriptor& top,
                       uint64_t total, OutputResult* result) {
  if (env.client == nullptr || env.store == nullptr) {
    return Status::Internal("push: no registry client or content store");
  }
  KILN_ASSIGN_OR_RETURN(const bool insecure, BoolOption(output, "registry.insecure", false));
  registry::PushOptions po;
  po.insecure = insecure;
  po.mount_from = env.mount_from;
  std::vector<std::string> done;
  for (const std::string& name : options.names) {
    if (env.cancel != nullptr && env.cancel->cancelled()) {
      return Status::Cancelled("push cancelled");
    }
    KILN_ASSIGN_OR_RETURN(image::Reference ref, image::ParseNormalizedNamed(name));
    ref = image::TagNameOnly(ref);
    const std::string shown = ref.String();
    if (std::find(done.begin(), done.end(), shown) != done.end()) continue;
    const std::string task = "push:" + shown;
    util::TaskUpdate u;
    u.id = task;
    u.name = "pushing " + shown;
    u.total = total;
    util::Report(env.report, u);
    // Bytes per blob, summed into the reference's task.
    std::mutex mu;
    std::map<util::Digest, uint64_t> sent;
    po.progress = [&](const registry::PushProgress& p) {
      if (!env.report) return;
      util::TaskUpdate b;
      b.id = task + ":" + p.blob.digest.str();
      b.parent = task;
      const std::string short_digest =
          p.blob.digest.str().substr(0, std::min<size_t>(p.blob.digest.str().size(), 19));
      b.total = static_cast<uint64_t>(p.blob.size);
      b.current = p.sent;
      switch (p.state) {
        case registry::PushProgress::State::kUploading:
          b.name = "pushing " + short_digest;
          break;
        case registry::PushProgress::State::kUploaded:
          b.name = "pushing " + short_digest;
          b.state = util::TaskUpdate::State::kDone;
          break;
        case registry::PushProgress::State::kMounted:
          b.name = short_digest + " mounted from " + p.mounted_from;
          b.state = util::TaskUpdate::State::kDone;
          break;
        case registry::PushProgress::State::kExisting:
          b.name = short_digest + " already exists";
          b.state = util::TaskUpdate::State::kDone;
          break;
      }
      util::TaskUpdate parent;
      {
        std::lock_guard<std::mutex> lock(mu);
        sent[p.blob.digest] = p.sent;
        uint64_t sum = 0;
        for (const auto& [d, n] : sent) sum += n;
        parent.id = task;
        parent.name = "pushing " + shown;
        parent.total = total;
        parent.current = std::min(sum, total);
      }
      env.report(b);
      env.report(parent);
    };
    Status st = env.client->Push(*env.store, top, ref, po);
    po.progress = nullptr;
    if (!st.ok()) {
      u.state = util::TaskUpdate::State::kError;
      u.error = st.message();
      util::Report(env.report, u);
      return st;
    }
    u.state = util::TaskUpdate::State::kDone;
    u.current = total;
    util::Report(env.report, u);
    done.push_back(shown);
    if (result) result->pushed.push_back(shown);
    // The next name may be another repository of the same registry: mount.
    po.mount_from.push_back(ref);
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------
// ArchiveStream

ArchiveStream::ArchiveStream(const content::Store& store, std::filesystem::path dest)
    : store_(store), dest_(std::move(dest)) {}

ArchiveStream::~ArchiveStream() = default;  // an uncommitted writer removes its temp file

Status ArchiveStream::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void ArchiveStream::Layers(const std::vector<Layer>& layers) {
  std::lock_guard<std::mutex> lock(mu_);
  layers_ = layers;
  const bool making = std::any_of(layers.begin(), layers.end(),
                                  [](const Layer& l) { return l.blob.digest.empty(); });
  // Every blob there already: nothing to overlap, and the ordinary path may
  // find the archive unchanged and leave it alone.
  if (!making) return;
  Result<std::unique_ptr<content::ArchiveWriter>> w = content::ArchiveWriter::Create(dest_);
  if (!w.ok()) {
    status_ = w.status().Annotate("writing OCI archive " + dest_.string());
    return;
  }
  writer_ = std::move(*w);
  AdvanceLocked();
}

util::ByteSink ArchiveStream::Begin(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!writer_ || !status_.ok() || streaming_ || index != head_) return nullptr;
  status_ = writer_->BeginBlob();
  if (!status_.ok()) return nullptr;
  streaming_ = true;
  // Only this layer's storing thread writes to the archive until End: the
  // others' End calls stop at the head, which is this layer.
  content::ArchiveWriter* w = writer_.get();
  return [w](std::string_view chunk) { return w->WriteBlob(chunk); };
}

void ArchiveStream::End(size_t index, const Layer& layer, const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!writer_ || index >= layers_.size()) return;
  if (streaming_ && index == head_) {
    streaming_ = false;
    if (status.ok() && status_.ok()) {
      status_ = writer_->EndBlob({layer.blob.digest, static_cast<uint64_t>(layer.blob.size)});
    } else {
      writer_->AbortBlob();
    }
  }
  if (!status.ok()) return;  // the export fails; the archive is abandoned
  layers_[index] = layer;
  AdvanceLocked();
}

// Copies the finished layers at the head from the store, up to the first
// one still being made.
void ArchiveStream::AdvanceLocked() {
  while (status_.ok() && head_ < layers_.size() && !layers_[head_].blob.digest.empty()) {
    const Layer& l = layers_[head_];
    if (!writer_->Has(l.blob.digest)) {
      status_ = writer_->AddBlobFile({l.blob.digest, static_cast<uint64_t>(l.blob.size)},
                                     store_.BlobPath(l.blob.digest));
    }
    ++head_;
  }
}

Result<std::unique_ptr<ArchiveStream>> StartArchiveOutput(const OutputEnv& env,
                                                          const Output& output) {
  if (output.type != "oci" && output.type != "docker") return std::unique_ptr<ArchiveStream>();
  KILN_ASSIGN_OR_RETURN(const std::string dest, ArchiveDest(output));
  KILN_ASSIGN_OR_RETURN(const bool tar, BoolOption(output, "tar", true));
  if (!tar || dest == "-" || env.store == nullptr) return std::unique_ptr<ArchiveStream>();
  return std::make_unique<ArchiveStream>(*env.store, dest);
}

}  // namespace kiln::exporter
