// Descriptor: the OCI content descriptor, a typed pointer to a blob
// (mediaType, digest, size) with optional urls, annotations, platform and
// artifactType.
//
// Used by Manifest (config, layers, subject) and Index (manifests), by the
// content store and OCI layout (index.json entries), the registry client and
// the exporters (the "containerimage.descriptor" response value).
//
// JSON (Go-compatible, see util/json.h): canonical member order is the Go
// struct order of image-spec's Descriptor: mediaType, digest, size, urls,
// annotations, platform, artifactType; digest and size are always written,
// the others only when non-empty. The platform object's order is
// architecture, os, os.version, os.features, variant. Members kiln does not
// model ("data", future fields) are kept and written back, and a parsed
// document's member order is kept (see member_layout.h).
//
// Thread-safety: value types; no internal synchronization.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/member_layout.h"
#include "image/platform.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/status.h"

namespace kiln::image {

struct Descriptor {
  std::string media_type;
  util::Digest digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;

  MemberLayout layout;           // unknown members and member order of this object
  MemberLayout platform_layout;  // the same for the "platform" object

  // Compact Go-compatible JSON.
  std::string ToJson() const;
  // Writes this descriptor as one value into `w` (for documents that embed
  // descriptors, such as an OCI layout's index.json).
  void WriteJson(util::JsonWriter& w) const;
};

// Parses one descriptor object. mediaType, digest and size are required; the
// digest must be sha256 or sha512 (util::Digest); size must not be negative.
// Errors are kInvalidArgument and name the member: `invalid descriptor:
// digest: invalid digest "sha256:abc": sha256 needs 64 hex digits, found 3`.
Result<Descriptor> ParseDescriptor(std::string_view json);

}  // namespace kiln::image
