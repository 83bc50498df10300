// Manifest: an image manifest, OCI (application/vnd.oci.image.manifest.v1+json)
// or Docker schema 2 (application/vnd.docker.distribution.manifest.v2+json);
// both have the same shape.
//
// Written by the exporters, read by the image source and the registry client.
//
// JSON (Go-compatible, see util/json.h): canonical member order is the Go
// struct order of image-spec v1.1's Manifest: schemaVersion, mediaType,
// artifactType, config, layers, subject, annotations. schemaVersion, config
// and layers are always written ("layers":null when there are none, as Go
// writes a nil slice and BuildKit writes a manifest without layers); the
// others only when non-empty. Unknown members and a parsed document's member
// order are kept (see member_layout.h).
//
// Thread-safety: a value type; no internal synchronization.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/descriptor.h"
#include "image/member_layout.h"
#include "util/status.h"

namespace kiln::image {

struct Manifest {
  int64_t schema_version = 2;
  std::string media_type;     // "" when the document has none (allowed by OCI)
  std::string artifact_type;  // OCI v1.1
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;  // OCI v1.1 referrers
  std::map<std::string, std::string> annotations;

  MemberLayout layout;  // unknown members and member order

  std::string ToJson() const;
};

// Parses and validates a manifest. Errors (kInvalidArgument) start with
// "invalid image manifest: " and name the member, e.g.
//   layers[2].digest: invalid digest "sha256:abc": sha256 needs 64 hex digits, found 3
//   schemaVersion: expected 2, found 1
//   config: required member is missing
//   mediaType: "application/vnd.oci.image.index.v1+json" is an index, not a manifest
Result<Manifest> ParseManifest(std::string_view json);

}  // namespace kiln::image
