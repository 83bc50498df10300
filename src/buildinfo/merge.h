// Building the final record of one result: the merge of what the frontend
// asked for with what the source ops reported (BuildKit's Encode, R14-R21),
// dedup against dependencies (R19), and the image-config Format (R38).
//
// kiln's rules on top of BuildKit's (K3): merge entries are keyed by (type,
// identifier), so a git remote and an HTTP URL spelled alike never collide;
// every output list is ordered by (ref, type, pin); matching never depends on
// iteration order (exact alias matches first, then pin matches, each over the
// reported identifiers in sorted order); and Finalize is idempotent:
// feeding a finalized record back in (as the gateway path does, R20) gives
// the same record. A frontend source without an alias is taken to be an
// entry of an already finalized record: its ref is kept as is, it matches a
// reported image by its ref or its ref+"@"+pin, and if nothing reports it, it
// is kept (whatever its type).
//
// Called by the solver after evaluating each result ref, and by the exporter
// (Format) before embedding the record into an image config.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "buildinfo/buildinfo.h"
#include "util/status.h"

namespace kiln::buildinfo {

// identifier -> pin, as reported by the source ops reachable from a result
// (see walk.h). Ordered, so iteration is deterministic.
using SourcePins = std::map<std::string, std::string>;

// R15-R18 with K3: the merged, sorted list, before dedup against deps.
// Errors: an identifier that does not parse (unknown scheme, bad image
// reference), or a consumed or leftover frontend image ref that does not
// normalize (R21); the message names the offending text (redacted).
Result<std::vector<Source>> MergeSources(const SourcePins& reported,
                                         const std::vector<Source>& frontend);

// R19 (v0.10.1+): drops a source equal to a source of any dep (at any
// depth), or an image source whose ref contains '@' and whose pin equals an
// image dep source's pin; then removes exact duplicates and sorts (K3).
std::vector<Source> DedupAgainstDeps(std::vector<Source> sources,
                                     const std::map<std::string, BuildInfo>& deps);

// The final record of a result (BuildKit's Encode): `metadata` is the
// frontend's record for this result key (empty when there is none);
// frontend, attrs and deps pass through (redacted, K8), sources become
// DedupAgainstDeps(MergeSources(...)). Fails like MergeSources, and with
// kResourceExhausted when the result breaks the size limit (K12).
Result<BuildInfo> Finalize(const BuildInfo& metadata, const SourcePins& reported);

// R38 (v0.10.1+): with remove_attrs, drops attrs and, when there are deps,
// appends every dep's sources (recursively) to the top level, removes exact
// duplicates, sorts (K3) and drops deps. Without it the record is unchanged.
// The result is redacted (K8).
BuildInfo Format(BuildInfo bi, bool remove_attrs);
// Format on bytes: "" for empty input, otherwise Encode(Format(Decode(json))).
Result<std::string> FormatJson(std::string_view json, bool remove_attrs);

}  // namespace kiln::buildinfo
