// Media types of OCI and Docker image objects, and predicates over them.
//
// The strings are those of the OCI image-spec (v1.0/v1.1) and of Docker's
// image manifest v2 schema 2; the kiln exporters write the OCI ones by
// default and the Docker ones for `oci-mediatypes=false`, and the image
// source and registry client accept both. Docker schema 1 manifests are named
// so callers can recognize and refuse them; kiln does not read them.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <string_view>

namespace kiln::image {

// OCI image-spec.
inline constexpr std::string_view kMediaTypeOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeOciManifest =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeOciLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeOciLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kMediaTypeOciLayerNondistributable =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kMediaTypeOciLayerNondistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeOciLayerNondistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
inline constexpr std::string_view kMediaTypeOciEmpty = "application/vnd.oci.empty.v1+json";

// Docker image manifest v2.
inline constexpr std::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kMediaTypeDockerLayer =
    "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kMediaTypeDockerLayerZstd =
    "application/vnd.docker.image.rootfs.diff.tar.zstd";
inline constexpr std::string_view kMediaTypeDockerLayerForeign =
    "application/vnd.docker.image.rootfs.foreign.diff.tar";
inline constexpr std::string_view kMediaTypeDockerLayerForeignGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// Schema 1 (legacy, not read by kiln).
inline constexpr std::string_view kMediaTypeDockerManifestSchema1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kMediaTypeDockerManifestSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

// BuildKit's cache manifest config (registry cache export).
inline constexpr std::string_view kMediaTypeBuildkitCacheConfig =
    "application/vnd.buildkit.cacheconfig.v0";

// An image index: OCI index or Docker manifest list.
bool IsIndex(std::string_view media_type);
// An image manifest: OCI manifest or Docker schema 2 manifest (not schema 1).
bool IsManifest(std::string_view media_type);
// An image configuration: OCI config or Docker container image v1.
bool IsConfig(std::string_view media_type);
// A filesystem layer: any OCI layer type (including nondistributable and
// compressions kiln cannot read) or a Docker rootfs diff, foreign or not.
bool IsLayer(std::string_view media_type);
// A layer kiln must not push: OCI nondistributable or Docker foreign.
bool IsNondistributableLayer(std::string_view media_type);

// How a layer blob is compressed, judged from its media type.
enum class LayerCompression {
  kUncompressed,
  kGzip,
  kZstd,
  kUnknown,  // not a layer type, or a compression kiln does not know
};
LayerCompression LayerCompressionOf(std::string_view media_type);

}  // namespace kiln::image
