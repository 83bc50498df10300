// Index: an image index, OCI (application/vnd.oci.image.index.v1+json) or
// Docker manifest list (application/vnd.docker.distribution.manifest.list.v2+json),
// and the choice of a manifest from it for a platform.
//
// Written by the exporters for multi-platform builds and by the OCI layout
// (index.json); read by the image source and the registry client.
//
// JSON (Go-compatible, see util/json.h): canonical member order is the Go
// struct order of image-spec v1.1's Index: schemaVersion, mediaType,
// artifactType, manifests, subject, annotations. schemaVersion and manifests
// are always written ("manifests":null when empty, as Go writes a nil slice);
// the others only when non-empty. Unknown members and a parsed document's
// member order are kept (see member_layout.h).
//
// Thread-safety: value types and pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/descriptor.h"
#include "image/member_layout.h"
#include "image/platform.h"
#include "util/status.h"

namespace kiln::image {

struct Index {
  int64_t schema_version = 2;
  std::string media_type;
  std::string artifact_type;  // OCI v1.1
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;  // OCI v1.1
  std::map<std::string, std::string> annotations;

  MemberLayout layout;  // unknown members and member order

  std::string ToJson() const;
};

// Parses and validates an index. Errors (kInvalidArgument) start with
// "invalid image index: " and name the member, e.g. "manifests[1].size:
// required member is missing", "schemaVersion: expected 2, found 1".
Result<Index> ParseIndex(std::string_view json);

// Picks the manifest for `want` from `index`: the first entry, in index
// order, whose media type is a manifest (IsManifest) and whose platform
// Matches() `want` (equality after Normalize(); no variant fallback, see
// platform.h). Entries without a platform (attestations, or indexes that
// leave the platform to the config) and nested indexes are skipped.
// kNotFound when nothing matches; the message lists the platforms the index
// has: `no manifest for linux/s390x in the index (it has linux/amd64,
// linux/arm64)`.
Result<Descriptor> PickManifest(const Index& index, const Platform& want);

}  // namespace kiln::image
