#include "source/image.h"

#include <string>
#include <vector>

#include "image/config.h"
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

Result<PulledImage> ImageSource::Pull(const std::string& ref, const image::Platform& platform,
                                      util::Canceller* cancel) {
  KILN_ASSIGN_OR_RETURN(image::Reference parsed, image::ParseNormalizedNamed(ref));
  KILN_ASSIGN_OR_RETURN(registry::PullResult pulled, client_->Pull(parsed, platform, store_));
  const registry::Resolved& r = pulled.resolved;
  KILN_ASSIGN_OR_RETURN(std::string config_bytes, store_.Read(r.config.digest));
  KILN_ASSIGN_OR_RETURN(image::ImageConfig config, image::ParseImageConfig(config_bytes));
  const std::vector<util::Digest>& diff_ids = config.rootfs.diff_ids;
  if (diff_ids.size() != r.layers.size()) {
    return Status::InvalidArgument("image " + ref + ": the manifest lists " +
                                   std::to_string(r.layers.size()) + " layers but the config " +
                                   std::to_string(diff_ids.size()) + " diff_ids");
  }
  const std::vector<util::Digest> chain = ChainIds(diff_ids);
  PulledImage out;
  out.manifest = r.manifest.digest;
  out.layers = static_cast<int>(r.layers.size());
  std::string parent;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    if (cancel) KILN_RETURN_IF_ERROR(cancel->Check());
    const image::Descriptor& layer = r.layers[i];
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
