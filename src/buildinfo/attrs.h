// Request attributes and dependencies of a record (R27-R31 with kiln's K3,
// K8, K9, K10).
//
// FilterAttrs() decides which request attributes a record keeps;
// DecodeDeps() reads the records of named input contexts from their
// `input-metadata:<input>` attributes; BridgeMerge() combines both with the
// frontend's own record for one result key (BuildKit's GetMetadata), without
// touching the caller's request map.
//
// Differences from BuildKit, all deliberate: `platform` is kept as written
// (K9); every kept value and every dependency record is redacted (K8);
// platform suffixes are compared exactly (K3): under the key of platform P
// only `input-metadata:<x>::P` is read, and a `context:<name>` for which
// several keys would collapse onto one name is kept under its own keys
// instead of one of them winning by chance.
//
// Called by the solver's frontend bridge after every frontend solve.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "buildinfo/buildinfo.h"
#include "util/status.h"

namespace kiln::buildinfo {

// Plain request attributes (frontend options), as a client sends them.
using RequestAttrs = std::map<std::string, std::string>;

// R29: "build-arg:" followed by a BuildKit control argument name (prefix
// match, case-sensitive): BUILDKIT_CACHE_MOUNT_NS, _CONTEXT_KEEP_GIT_DIR,
// _INLINE_BUILDINFO_ATTRS, _INLINE_CACHE, _MULTI_PLATFORM,
// _SANDBOX_HOSTNAME, _SYNTAX.
bool IsControlArg(std::string_view key);

// P(K): the platform after "containerimage.buildinfo/", or "" for the bare
// key (and for any key without a '/').
std::string_view PlatformOfKey(std::string_view key);

// R28-R30 with K9/K8/K3, for result key `key`: drops null values and control
// args; keeps build-arg:*, label:*, platform, context, filename, source,
// shm-size, target, ulimit and context:* (platform suffixes resolved as R30;
// collisions kept under their own keys); drops everything else. Kept values
// are redacted.
Attrs FilterAttrs(std::string_view key, const Attrs& attrs);

// R27's overlay: `request` overlaid with the non-null values of `decoded`.
RequestAttrs OverlayAttrs(const RequestAttrs& request, const Attrs& decoded);

// R31 with K3/K8: the records of named input contexts, keyed by input name
// (the text before "::"). Only `input-metadata:<x>` attributes whose
// platform suffix equals P(key) exactly (none for the bare key) are read; a
// value without a containerimage.buildinfo member is skipped. Errors
// (kInvalidArgument, naming the attribute): a value that is not a JSON
// object of strings, bad base64, a bad record.
Result<std::map<std::string, BuildInfo>> DecodeDeps(std::string_view key, const Attrs& attrs);

// R27 (GetMetadata) for result key `key`: `metadata` is the frontend's
// record for the key, if any. The frontend name, when non-empty, replaces
// the record's; attrs = FilterAttrs(request overlaid with the record's
// attrs); deps = DecodeDeps(...) overlaid with the record's deps (the
// record wins per name), redacted; sources are untouched. Without metadata:
// {frontend, FilterAttrs(request), DecodeDeps(request)}.
//
// `deps_from_request = false` takes deps from the frontend's record only:
// kiln's Dockerfile frontend records a dep exactly for each named context
// the build used (K10), so records of unused inputs must not be added here.
// The default reproduces BuildKit (R27), for frontends that do not.
Result<BuildInfo> BridgeMerge(std::string_view key, std::string_view frontend,
                              const RequestAttrs& request, const std::optional<BuildInfo>& metadata,
                              bool deps_from_request = true);

}  // namespace kiln::buildinfo
