#include "cli/inspect.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "buildinfo/exporter.h"
#include "content/layout.h"
#include "image/config.h"
#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "util/json.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using buildinfo::BuildInfo;

// One image config found in the input, with the platform it is for.
struct FoundImage {
  std::string label;  // where it was found, for messages and key collisions
  image::Platform platform;
  std::optional<BuildInfo> record;
};

Result<FoundImage> ReadConfig(std::string_view config_json, std::string label,
                              const std::optional<image::Platform>& hint) {
  KILN_ASSIGN_OR_RETURN(image::ImageConfig config, image::ParseImageConfig(config_json));
  auto record = buildinfo::ExtractFromImageConfig(config_json);
  if (!record.ok()) return record.status().Annotate(label);
  FoundImage img{std::move(label), {}, std::move(*record)};
  if (hint && !hint->os.empty()) {
    img.platform = *hint;
  } else {
    img.platform.os = config.os;
    img.platform.architecture = config.architecture;
    img.platform.variant = config.variant;
  }
  return img;
}

// Walks a descriptor of an OCI layout: an index recursively, a manifest to
// its config. Other artifacts (attestations, signatures) are not images.
Status WalkDescriptor(const content::ImageArchive& archive, const image::Descriptor& desc,
                      int depth, std::vector<FoundImage>* out) {
  if (depth > 8) {
    return Status::InvalidArgument("index nesting deeper than 8 levels at " + desc.digest.str());
  }
  if (image::IsIndex(desc.media_type)) {
    KILN_ASSIGN_OR_RETURN(std::string raw, archive.ReadBlob(desc.digest));
    auto index = image::ParseIndex(raw);
    if (!index.ok()) return index.status().Annotate("index " + desc.digest.str());
    for (const auto& child : index->manifests) {
      KILN_RETURN_IF_ERROR(WalkDescriptor(archive, child, depth + 1, out));
    }
    return Status::Ok();
  }
  if (!image::IsManifest(desc.media_type)) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(std::string raw, archive.ReadBlob(desc.digest));
  auto manifest = image::ParseManifest(raw);
  if (!manifest.ok()) return manifest.status().Annotate("manifest " + desc.digest.str());
  if (!image::IsConfig(manifest->config.media_type)) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(std::string config, archive.ReadBlob(manifest->config.digest));
  KILN_ASSIGN_OR_RETURN(
      FoundImage img, ReadConfig(config, "config " + manifest->config.digest.str(), desc.platform));
  img.label = "manifest " + desc.digest.str();
  out->push_back(std::move(img));
  return Status::Ok();
}

Result<std::vector<FoundImage>> FromOciLayout(const content::ImageArchive& archive) {
  auto index = image::ParseIndex(archive.index_json());
  if (!index.ok()) return index.status().Annotate(archive.path().string() + ": index.json");
  std::vector<FoundImage> found;
  for (const auto& desc : index->manifests) {
    KILN_RETURN_IF_ERROR(WalkDescriptor(archive, desc, 0, &found));
  }
  return found;
}

// `docker save` archives: manifest.json lists each image's config file,
// named by its digest ("<hex>.json" or "blobs/sha256/<hex>"), read verified.
Result<std::vector<FoundImage>> FromDockerArchive(const content::ImageArchive& archive) {
  const std::string where = archive.path().string() + ": manifest.json";
  KILN_ASSIGN_OR_RETURN(nlohmann::json list,
                        util::ParseJson(archive.docker_manifest_json(), where));
  if (!list.is_array()) return Status::InvalidArgument(where + ": expected a JSON array");
  std::vector<FoundImage> found;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& entry = list[i];
    if (!entry.is_object() || !entry.contains("Config") || !entry["Config"].is_string()) {
      return Status::InvalidArgument(where + ": entry " + std::to_string(i) +
                                     " has no \"Config\" string");
    }
    std::string name = entry["Config"].get<std::string>();
    std::string hex = fs::path(name).filename().string();
    if (hex.size() > 5 && hex.ends_with(".json")) hex.resize(hex.size() - 5);
    auto digest = util::Digest::Parse("sha256:" + hex);
    if (!digest.ok()) {
      return Status::InvalidArgument(where + ": config file \"" + name +
                                     "\" is not named by its sha256 digest, so it cannot be "
                                     "verified");
    }
    KILN_ASSIGN_OR_RETURN(std::string config, archive.ReadBlob(*digest));
    KILN_ASSIGN_OR_RETURN(FoundImage img, ReadConfig(config, "config " + name, std::nullopt));
    found.push_back(std::move(img));
  }
  return found;
}

Result<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool LooksLikeJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c)) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  }
  return false;
}

Result<std::vector<FoundImage>> FindImages(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return Status::NotFound("cannot open " + path.string() + ": no such file or directory");
  }
  if (fs::is_directory(st)) {
    KILN_ASSIGN_OR_RETURN(content::ImageArchive layout, content::ImageArchive::OpenLayoutDir(path));
    return FromOciLayout(layout);
  }
  if (LooksLikeJson(path)) {
    KILN_ASSIGN_OR_RETURN(std::string config, ReadSmallFile(path));
    KILN_ASSIGN_OR_RETURN(FoundImage img, ReadConfig(config, path.string(), std::nullopt));
    return std::vector<FoundImage>{std::move(img)};
  }
  KILN_ASSIGN_OR_RETURN(content::ImageArchive archive, content::ImageArchive::OpenArchive(path));
  if (archive.format() == content::Format::kDockerArchive) return FromDockerArchive(archive);
  return FromOciLayout(archive);
}

void AppendRecordPretty(std::string* out, const BuildInfo& bi, const std::string& pad) {
  if (!bi.frontend.empty()) *out += pad + "frontend  " + bi.frontend + "\n";
  if (!bi.attrs.empty()) {
    *out += pad + "attrs\n";
    for (const auto& [k, v] : bi.attrs)
      *out += pad + "  " + k + " = " + v.value_or("(null)") + "\n";
  }
  if (!bi.sources.empty()) {
    *out += pad + "sources\n";
    size_t width = 0;
    for (const auto& s : bi.sources) width = std::max(width, s.type.size());
    for (const auto& s : bi.sources) {
      *out += pad + "  " + s.type + std::string(width - s.type.size() + 2, ' ') + s.ref + "\n";
      *out += pad + "  " + std::string(width + 2, ' ') + "pin " +
              (s.pin.empty() ? "(none)" : s.pin) + "\n";
    }
  }
  if (!bi.deps.empty()) {
    *out += pad + "deps\n";
    for (const auto& [name, dep] : bi.deps) {
      *out += pad + "  " + name + "\n";
      AppendRecordPretty(out, dep, pad + "    ");
    }
  }
}

}  // namespace

Result<RecordsByKey> CollectRecords(const fs::path& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<FoundImage> images, FindImages(path));
  if (images.empty()) {
    return Status::NotFound(path.string() + ": no image manifests found");
  }
  bool any = false;
  for (const auto& img : images) any = any || img.record.has_value();
  if (!any) {
    return Status::NotFound(
        path.string() + ": no build sources recorded: no image config has a " +
        std::string(buildinfo::kImageConfigField) +
        " member (built with buildinfo=false, or by a tool that does not record them)");
  }
  RecordsByKey records;
  for (auto& img : images) {
    std::string key = images.size() == 1
                          ? std::string(buildinfo::kMetadataKey)
                          : buildinfo::ResponseKey(image::Format(image::Normalize(img.platform)));
    if (records.contains(key)) key += " (" + img.label + ")";  // same platform twice
    records[key] = std::move(img.record);
  }
  return records;
}

void WriteRecordsJson(util::JsonWriter& w, const RecordsByKey& records) {
  w.BeginObject();
  for (const auto& [key, record] : records) {
    w.Key(key);
    if (record) {
      w.Raw(buildinfo::Encode(*record));
    } else {
      w.Null();
    }
  }
  w.EndObject();
}

std::string FormatJson(const RecordsByKey& records) {
  util::JsonWriter w;
  WriteRecordsJson(w, records);
  auto indented = util::GoIndent(w.str());
  KILN_CHECK(indented.ok(), "kiln wrote invalid JSON: " + w.str());
  return *indented + "\n";
}

std::string FormatPretty(const RecordsByKey& records) {
  std::string out;
  bool first = true;
  for (const auto& [key, record] : records) {
    if (!first) out += "\n";
    first = false;
    out += key + "\n";
    if (!record) {
      out += "  (no build sources recorded)\n";
    } else if (record->empty()) {
      out += "  (empty record)\n";
    } else {
      AppendRecordPretty(&out, *record, "  ");
    }
  }
  return out;
}

}  // namespace kiln::cli
