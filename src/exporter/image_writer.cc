#include "exporter/image_writer.h"

#include <ctime>

#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "util/base64.h"

namespace kiln::exporter {
namespace {

// Docker schema2's name for an OCI layer media type.
std::string DockerLayerType(std::string_view t) {
  if (t == image::kMediaTypeOciLayerGzip) return std::string(image::kMediaTypeDockerLayerGzip);
  if (t == image::kMediaTypeOciLayer) return std::string(image::kMediaTypeDockerLayer);
  if (t == image::kMediaTypeOciLayerZstd) return std::string(image::kMediaTypeDockerLayerZstd);
  if (t == image::kMediaTypeOciLayerNondistributableGzip) {
    return std::string(image::kMediaTypeDockerLayerForeignGzip);
  }
  if (t == image::kMediaTypeOciLayerNondistributable) {
    return std::string(image::kMediaTypeDockerLayerForeign);
  }
  return std::string(t);
}

}  // namespace

std::string EpochTime(int64_t seconds) {
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
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
  if (req.source_date_epoch) {
    const std::string epoch = EpochTime(*req.source_date_epoch);
    for (image::HistoryEntry& e : h) {
      if (e.created.empty()) e.created = epoch;
    }
    config.created = epoch;
  } else {
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
  }

  KILN_ASSIGN_OR_RETURN(
      std::string config_json,
      buildinfo::PatchImageConfig(config.ToJson(), req.record, req.record_options));
  WrittenImage out;
  out.config_bytes = config_json;
  KILN_ASSIGN_OR_RETURN(util::Digest config_digest, store.Put(config_json));
  out.config.media_type =
      std::string(req.oci_mediatypes ? image::kMediaTypeOciConfig : image::kMediaTypeDockerConfig);
  out.config.digest = config_digest;
  out.config.size = static_cast<int64_t>(config_json.size());

  image::Manifest m;
  m.media_type = std::string(req.oci_mediatypes ? image::kMediaTypeOciManifest
                                                : image::kMediaTypeDockerManifest);
  m.config = out.config;
  for (const Layer& l : req.layers) {
    image::Descriptor blob = l.blob;
    if (!req.oci_mediatypes) blob.media_type = DockerLayerType(blob.media_type);
    m.layers.push_back(blob);
    out.layers.push_back(blob);
  }
  out.manifest_bytes = m.ToJson();
  KILN_ASSIGN_OR_RETURN(util::Digest manifest_digest, store.Put(out.manifest_bytes));
  out.manifest.media_type = m.media_type;
  out.manifest.digest = manifest_digest;
  out.manifest.size = static_cast<int64_t>(out.manifest_bytes.size());
  return out;
}

Result<WrittenIndex> WriteIndex(const content::Store& store, std::vector<PlatformImage> images,
                                bool oci_mediatypes) {
  const std::string_view manifest_type =
      oci_mediatypes ? image::kMediaTypeOciManifest : image::kMediaTypeDockerManifest;
  image::Index index;
  index.media_type =
      std::string(oci_mediatypes ? image::kMediaTypeOciIndex : image::kMediaTypeDockerManifestList);
  for (size_t i = 0; i < images.size(); ++i) {
    const PlatformImage& pi = images[i];
    for (size_t j = 0; j < i; ++j) {
      if (images[j].platform == pi.platform) {
        return Status::InvalidArgument("two images for platform " + image::Format(pi.platform));
      }
    }
    if (pi.image.manifest.media_type != manifest_type) {
      return Status::InvalidArgument("the image for " + image::Format(pi.platform) + " is a " +
                                     pi.image.manifest.media_type + ", not a " +
                                     std::string(manifest_type));
    }
    image::Descriptor d;
    d.media_type = pi.image.manifest.media_type;
    d.digest = pi.image.manifest.digest;
    d.size = pi.image.manifest.size;
    d.platform = pi.platform;
    index.manifests.push_back(std::move(d));
  }
  WrittenIndex out;
  out.bytes = index.ToJson();
  KILN_ASSIGN_OR_RETURN(util::Digest digest, store.Put(out.bytes));
  out.descriptor.media_type = index.media_type;
  out.descriptor.digest = digest;
  out.descriptor.size = static_cast<int64_t>(out.bytes.size());
  out.images = std::move(images);
  return out;
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

Result<std::map<std::string, std::string>> IndexResponse(
    const WrittenIndex& index, const std::map<std::string, buildinfo::BuildInfo>& records,
    const std::vector<std::string>& names) {
  using Response = std::map<std::string, std::string>;
  KILN_ASSIGN_OR_RETURN(Response r, buildinfo::ExporterResponse(records));
  r["containerimage.digest"] = index.descriptor.digest.str();
  r["containerimage.descriptor"] = util::Base64Encode(index.descriptor.ToJson());
  if (!names.empty()) {
    std::string joined;
    for (const std::string& n : names) joined += (joined.empty() ? "" : ",") + n;
    r["image.name"] = joined;
  }
  return r;
}

}  // namespace kiln::exporter
