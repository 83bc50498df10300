// Image sources: a base image pulled by the digest the frontend resolved
// (spec K5) and unpacked into snapshots, one per layer, bottom first.
//
// A layer's snapshot is named after its chain id ("layer-" + the first 32
// hex digits of the chain id), so every build on this root shares one
// unpacked copy of a layer stack, and a snapshot already present is used
// as is. Each layer snapshot carries labels the exporter reads to reuse the
// pulled compressed blob instead of compressing the layer again:
// kiln.layer.digest, kiln.layer.diffid, kiln.layer.mediatype,
// kiln.layer.size. The uncompressed stream of every layer is checked against
// the config's diff_id while it is applied (kDigestMismatch).
//
// Thread-safety: Pull may be called from several threads; the registry
// client and the snapshotter are thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "content/store.h"
#include "image/platform.h"
#include "registry/client.h"
#include "snapshot/labels.h"
#include "snapshot/snapshotter.h"
#include "util/cancel.h"
#include "util/digest.h"
#include "util/status.h"

namespace kiln::source {

struct PulledImage {
  std::string snapshot;  // the top layer's snapshot; "" for an image without layers
  util::Digest manifest;
  int layers = 0;
  int layers_unpacked = 0;  // layers this call applied (the rest were present)
};

// An image read from an OCI image layout directory (`oci-layout://PATH`
// named contexts) and copied into the content store.
struct LayoutImage {
  util::Digest top;       // the descriptor chosen in the layout (an index or a manifest)
  util::Digest manifest;  // the manifest for the platform
  std::string config;     // that manifest's config bytes
};

// Opens the OCI layout at `dir` and picks: `digest` when given (an entry of
// index.json or any blob of the layout), else index.json's only entry, else
// its entry for `platform`; an index is resolved to its manifest for
// `platform`. Copies that manifest, its config and its layers into `store`
// (verified). Errors are one line naming the layout directory.
Result<LayoutImage> ImportLayoutImage(const std::filesystem::path& dir,
                                      const std::optional<util::Digest>& digest,
                                      const image::Platform& platform, const content::Store& store);

// The snapshot name of a layer stack.
std::string LayerSnapshotName(const util::Digest& chain_id);
// OCI chain ids: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
std::vector<util::Digest> ChainIds(const std::vector<util::Digest>& diff_ids);

class ImageSource {
 public:
  ImageSource(registry::Client* client, content::Store store,
              std::shared_ptr<snapshot::Snapshotter> snapshots)
      : client_(client), store_(std::move(store)), snapshots_(std::move(snapshots)) {}

  // `ref` is a normalized reference with a digest ("docker.io/library/alpine:3.15@sha256:...").
  Result<PulledImage> Pull(const std::string& ref, const image::Platform& platform,
                           util::Canceller* cancel);

  // Unpacks the image whose manifest (and its config and layers) are in
  // the store already, such as one ImportLayoutImage() copied; `what` names
  // it in errors.
  Result<PulledImage> Unpack(const std::string& what, const util::Digest& manifest,
                             util::Canceller* cancel);

 private:
  Result<PulledImage> UnpackLayers(const std::string& what, const util::Digest& manifest,
                                   const util::Digest& config,
                                   const std::vector<image::Descriptor>& layers,
                                   util::Canceller* cancel);

  registry::Client* client_;
  content::Store store_;
  std::shared_ptr<snapshot::Snapshotter> snapshots_;
};

}  // namespace kiln::source
