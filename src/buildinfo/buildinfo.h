// Build sources ("buildinfo"): the record kiln carries in every image it
// builds, saying exactly what the image was built from.
//
// This header owns the data model and its canonical bytes (spec K2, R1-R6):
// Encode() writes the JSON exactly as Go's encoding/json writes BuildKit
// v0.10's types (member order frontend, attrs, sources, deps; type, ref,
// alias, pin; omitempty; Go string escaping), Decode() reads it with Go's
// semantics (unknown members ignored, member names matched ASCII
// case-insensitively, null attribute values kept). The base64 helpers give
// the form carried by the exporter response and the image config. The other
// headers of this module build records (merge.h, attrs.h), protect them
// (redact.h) and move them in and out of images and responses (exporter.h).
//
// Called by the frontend, the solver, the exporters and the CLI.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kiln::buildinfo {

// Source types: the scheme names of the identifiers they come from.
inline constexpr std::string_view kTypeDockerImage = "docker-image";
inline constexpr std::string_view kTypeGit = "git";
inline constexpr std::string_view kTypeHttp = "http";

// The image-config members holding the record (K1): kiln writes .v1 only and
// reads both.
inline constexpr std::string_view kImageConfigField = "moby.buildkit.buildinfo.v1";
inline constexpr std::string_view kImageConfigFieldLegacy = "moby.buildkit.buildinfo.v0";
// The inline-cache member that sits next to it (R39).
inline constexpr std::string_view kInlineCacheField = "moby.buildkit.cache.v0";
// Metadata/response key of a single-platform result; a multi-platform result
// uses kMetadataKey + "/" + platform (R13, R40).
inline constexpr std::string_view kMetadataKey = "containerimage.buildinfo";

// Deepest `deps` nesting Decode() accepts (a record of a build whose named
// contexts carry records of their own nests one level per context).
inline constexpr int kMaxDepsDepth = 100;

// K12: a record larger than this after encoding is refused.
inline constexpr size_t kMaxRecordSize = size_t{1} << 20;

// One input of a build.
struct Source {
  std::string type;   // kTypeDockerImage, kTypeGit or kTypeHttp
  std::string ref;    // what the user asked for, normalized and redacted
  std::string alias;  // frontend -> solver join key (R23); never in a final record
  std::string pin;    // the immutable thing it resolved to (digest, commit)

  friend auto operator<=>(const Source&, const Source&) = default;
  friend bool operator==(const Source&, const Source&) = default;
};

// Attribute values are optional strings: null is not "" (R4).
using Attrs = std::map<std::string, std::optional<std::string>>;

// The record. `deps` nest without a depth limit in BuildKit (R1); Decode()
// refuses more than kMaxDepsDepth levels, since every walk of a record
// (decode, encode, merge, redact, compare, destroy) recurses once per level
// and a hostile image config could otherwise overflow the stack.
struct BuildInfo {
  std::string frontend;
  Attrs attrs;
  std::vector<Source> sources;
  std::map<std::string, BuildInfo> deps;  // keyed by input-context name

  bool empty() const {
    return frontend.empty() && attrs.empty() && sources.empty() && deps.empty();
  }
  friend bool operator==(const BuildInfo&, const BuildInfo&) = default;
};

// The total order of final source lists (K3): ref, then type, then pin
// (bytewise); alias last so the order is total even on frontend lists.
bool SourceLess(const Source& a, const Source& b);
void SortSources(std::vector<Source>* sources);

// Canonical compact JSON bytes (K2). "{}" for an empty record.
std::string Encode(const BuildInfo& bi);
void AppendSourceJson(std::string* out, const Source& s);

// Parses a record. kInvalidArgument for bad JSON or a member of the wrong
// JSON type; the message names the member ("build sources: member \"sources\":
// expected an array, found string").
Result<BuildInfo> Decode(std::string_view json);

// Standard base64 (with padding) of Encode(bi).
std::string EncodeBase64(const BuildInfo& bi);
// Base64-decodes then Decode()s; errors say which step failed.
Result<BuildInfo> DecodeBase64(std::string_view text);

// K12: OK when Encode(bi) is at most `limit` bytes; otherwise
// kResourceExhausted naming the size, the limit and the largest contributors
// (attribute, dependency and source entries with their encoded sizes).
Status CheckSize(const BuildInfo& bi, size_t limit = kMaxRecordSize);
// Encode() after CheckSize().
Result<std::string> EncodeChecked(const BuildInfo& bi, size_t limit = kMaxRecordSize);

}  // namespace kiln::buildinfo
