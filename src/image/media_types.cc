#include "image/media_types.h"

namespace kiln::image {
namespace {

constexpr std::string_view kOciLayerPrefix = "application/vnd.oci.image.layer.";
constexpr std::string_view kDockerLayerPrefix = "application/vnd.docker.image.rootfs.";

}  // namespace

bool IsIndex(std::string_view mt) {
  return mt == kMediaTypeOciIndex || mt == kMediaTypeDockerManifestList;
}

bool IsManifest(std::string_view mt) {
  return mt == kMediaTypeOciManifest || mt == kMediaTypeDockerManifest;
}

bool IsConfig(std::string_view mt) {
  return mt == kMediaTypeOciConfig || mt == kMediaTypeDockerConfig;
}

bool IsLayer(std::string_view mt) {
  if (mt.starts_with(kOciLayerPrefix)) return true;
  if (mt.starts_with(kDockerLayerPrefix)) {
    std::string_view rest = mt.substr(kDockerLayerPrefix.size());
    return rest.starts_with("diff.tar") || rest.starts_with("foreign.diff.tar");
  }
  return false;
}

bool IsNondistributableLayer(std::string_view mt) {
  return mt.starts_with("application/vnd.oci.image.layer.nondistributable.") ||
         mt.starts_with("application/vnd.docker.image.rootfs.foreign.");
}

LayerCompression LayerCompressionOf(std::string_view mt) {
  if (!IsLayer(mt)) return LayerCompression::kUnknown;
  if (mt.ends_with(".tar")) return LayerCompression::kUncompressed;
  if (mt.ends_with("+gzip") || mt.ends_with(".tar.gzip")) return LayerCompression::kGzip;
  if (mt.ends_with("+zstd") || mt.ends_with(".tar.zstd")) return LayerCompression::kZstd;
  return LayerCompression::kUnknown;
}

}  // namespace kiln::image
