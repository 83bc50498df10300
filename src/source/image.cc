#include "source/image.h"

#include <string>
#include <vector>

#include "content/layout.h"
#include "image/config.h"
#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/reference.h"
#include "util/compress.h"

namespace kiln::source {

std::string LayerSnapshotName(const util::Digest& chain_id) {
  return "layer-" + std::string(chain_id.hex().substr(0, 32));
}

std::vector<util::Digest> ChainIds(const std::vector<util::Digest>& diff_ids) {
  std::vector<util::Digest> out;
  for (const util::Digest& d : diff_ids) {
    if (out.empty()) {
      out.push_back(d);
    } else {
      out.push_back(util::Sha256Of(out.back().str() + " " + d.str()));
    }
  }
  return out;
}

Result<LayoutImage> ImportLayoutImage(const std::filesystem::path& dir,
                                      const std::optional<util::Digest>& digest,
                                      const image::Platform& platform,
                                      const content::Store& store) {
  const std::string where = "OCI layout " + dir.string();
  Result<LayoutImage> out = [&]() -> Result<LayoutImage> {
    KILN_ASSIGN_OR_RETURN(content::ImageArchive layout, content::ImageArchive::OpenLayoutDir(dir));
    KILN_ASSIGN_OR_RETURN(image::Index top_index, image::ParseIndex(layout.index_json()));
    image::Descriptor chosen;
    if (digest) {
      chosen.digest = *digest;
      for (const image::Descriptor& d : top_index.manifests) {
        if (d.digest == *digest) chosen = d;
      }
      if (chosen.media_type.empty()) {
        // Not an entry of index.json: any blob of the layout, by its content.
        KILN_ASSIGN_OR_RETURN(std::string bytes, layout.ReadBlob(*digest));
        chosen.media_type = image::ParseIndex(bytes).ok() && !image::ParseManifest(bytes).ok()
                                ? std::string(image::kMediaTypeOciIndex)
                                : std::string(image::kMediaTypeOciManifest);
      }
    } else if (top_index.manifests.size() == 1) {
      chosen = top_index.manifests[0];
    } else if (top_index.manifests.empty()) {
      return Status::NotFound("index.json lists no image");
    } else {
      Result<image::Descriptor> picked = image::PickManifest(top_index, platform);
      if (!picked.ok()) {
        return Status::NotFound("index.json lists " + std::to_string(top_index.manifests.size()) +
                                " images and none for " + image::Format(platform) +
                                " (name one with oci-layout://PATH@DIGEST)");
      }
      chosen = *picked;
    }
    LayoutImage img;
    img.top = chosen.digest;
    img.manifest = chosen.digest;
    KILN_RETURN_IF_ERROR(layout.CopyBlobToStore(chosen.digest, store));
    if (image::IsIndex(chosen.media_type)) {
      KILN_ASSIGN_OR_RETURN(std::string bytes, layout.ReadBlob(chosen.digest));
      KILN_ASSIGN_OR_RETURN(image::Index index, image::ParseIndex(bytes));
      KILN_ASSIGN_OR_RETURN(image::Descriptor m, image::PickManifest(index, platform));
      img.manifest = m.digest;
      KILN_RETURN_IF_ERROR(layout.CopyBlobToStore(m.digest, store));
    }
    KILN_ASSIGN_OR_RETURN(std::string bytes, layout.ReadBlob(img.manifest));
    KILN_ASSIGN_OR_RETURN(image::Manifest manifest, image::ParseManifest(bytes));
    KILN_RETURN_IF_ERROR(layout.CopyBlobToStore(manifest.config.digest, store));
    for (const image::Descriptor& l : manifest.layers) {
      KILN_RETURN_IF_ERROR(layout.CopyBlobToStore(l.digest, store));
    }
    KILN_ASSIGN_OR_RETURN(img.config, store.Read(manifest.config.digest));
    return img;
  }();
  if (!out.ok()) return out.status().Annotate(where);
  return out;
}

Result<PulledImage> ImageSource::Pull(const std::string& ref, const image::Platform& platform,
                                      util::Canceller* cancel) {
  KILN_ASSIGN_OR_RETURN(image::Reference parsed, image::ParseNormalizedNamed(ref));
  KILN_ASSIGN_OR_RETURN(registry::PullResult pulled, client_->Pull(parsed, platform, store_));
  const registry::Resolved& r = pulled.resolved;
  return UnpackLayers(ref, r.manifest.digest, r.config.digest, r.layers, cancel);
}

Result<PulledImage> ImageSource::Unpack(const std::string& what, const util::Digest& manifest,
                                        util::Canceller* cancel) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, store_.Read(manifest));
  Result<image::Manifest> m = image::ParseManifest(bytes);
  if (!m.ok()) return m.status().Annotate("image " + what);
  return UnpackLayers(what, manifest, m->config.digest, m->layers, cancel);
}

Result<PulledImage> ImageSource::UnpackLayers(const std::string& ref, const util::Digest& manifest,
                                              const util::Digest& config_digest,
                                              const std::vector<image::Descriptor>& layers,
                                              util::Canceller* cancel) {
  KILN_ASSIGN_OR_RETURN(std::string config_bytes, store_.Read(config_digest));
  KILN_ASSIGN_OR_RETURN(image::ImageConfig config, image::ParseImageConfig(config_bytes));
  const std::vector<util::Digest>& diff_ids = config.rootfs.diff_ids;
  if (diff_ids.size() != layers.size()) {
    return Status::InvalidArgument("image " + ref + ": the manifest lists " +
                                   std::to_string(layers.size()) + " layers but the config " +
                                   std::to_string(diff_ids.size()) + " diff_ids");
  }
  const std::vector<util::Digest> chain = ChainIds(diff_ids);
  PulledImage out;
  out.manifest = manifest;
  out.layers = static_cast<int>(layers.size());
  std::string parent;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (cancel) KILN_RETURN_IF_ERROR(cancel->Check());
    const image::Descriptor& layer = layers[i];
    const std::string name = LayerSnapshotName(chain[i]);
    if (snapshots_->Stat(name).ok()) {
      parent = name;
      continue;
    }
    KILN_ASSIGN_OR_RETURN(content::BlobReader reader, store_.OpenReader(layer.digest));
    util::ByteSource compressed = [&reader](char* buf, size_t cap) {
      return reader.Read(buf, cap);
    };
    util::ByteSource plain = util::Decompress(compressed);
    util::Sha256 hash;
    util::ByteSource hashed = [&](char* buf, size_t cap) -> Result<size_t> {
      KILN_ASSIGN_OR_RETURN(size_t n, plain(buf, cap));
      hash.Update(buf, n);
      return n;
    };
    std::map<std::string, std::string> labels{
        {std::string(snapshot::kLabelLayerDigest), layer.digest.str()},
        {std::string(snapshot::kLabelLayerDiffId), diff_ids[i].str()},
        {std::string(snapshot::kLabelLayerMediaType), layer.media_type},
        {std::string(snapshot::kLabelLayerSize), std::to_string(layer.size)},
    };
    Result<std::string> applied = snapshots_->Apply(parent, name, hashed, labels);
    if (!applied.ok()) {
      return applied.status().Annotate("image " + ref + ": layer " + layer.digest.str());
    }
    // Apply() reads nothing when another process unpacked the layer first.
    if (hash.size() > 0 || diff_ids[i] == util::Sha256Of("")) {
      // Drain what the tar reader left unread (padding after the end marker).
      std::vector<char> rest(1 << 16);
      for (;;) {
        KILN_ASSIGN_OR_RETURN(size_t n, hashed(rest.data(), rest.size()));
        if (n == 0) break;
      }
      const util::Digest got = hash.Finish();
      if (got != diff_ids[i]) {
        (void)snapshots_->Remove(*applied);
        return Status(StatusCode::kDigestMismatch,
                      "image " + ref + ": layer " + layer.digest.str() + " uncompresses to " +
                          got.str() + " but the config says " + diff_ids[i].str());
      }
      ++out.layers_unpacked;
    }
    parent = *applied;
  }
  out.snapshot = parent;
  return out;
}

}  // namespace kiln::source
