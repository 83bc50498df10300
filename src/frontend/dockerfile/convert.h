// The Dockerfile frontend's conversion: Dockerfile + build attributes ->
// the build graph of one target platform, the image-config template of the
// target stage, and the frontend's own build-sources record.
//
// Semantics follow BuildKit v0.10 (Dockerfile syntax 1.4): stages and
// `target`; global ARGs before the first FROM (usable in FROM), ARGs
// re-declared inside a stage, build-arg overrides, the automatic platform
// ARGs (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, BUILDPLATFORM,
// BUILDOS, BUILDARCH, BUILDVARIANT) and the proxy ARGs; ENV/ARG expansion
// where Docker expands; ONBUILD triggers of a base image; `COPY --from` a
// stage (by name or index), an image or a named context; stages the target
// does not reach are neither resolved nor converted. Beyond 1.4: `ADD <git
// url>` with `--keep-git-dir` (1.5) is a git source op whose tree is copied
// to the destination; `oci-layout://` named contexts are resolved through
// the ImageResolver, which returns the platform's manifest digest for the
// image op.
//
// The build-sources record (spec Part B §5, R23/R24 with kiln's K5/K10):
// one `docker-image` source per resolved base image reachable from the
// target, with `ref` as written (after ARG substitution), `alias` the
// normalized name [":" tag] "@" digest and `pin` the digest; the image op is
// made from the alias, so the graph pulls exactly what the record names.
// Unlike BuildKit (K5), a `docker-image://` named context is resolved and
// pinned the same way, and recorded with the context's ref. A layerless base
// image is still a source op (K4/W7). `deps` hold the records of input
// contexts (`input:NAME` with metadata) that a reached stage used (K10).
//
// Base images are resolved through ImageResolver (the registry client in a
// build, a table in tests). Thread-safety: ConvertToGraph is reentrant; the
// resolver is called from the calling thread only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buildinfo/buildinfo.h"
#include "frontend/dockerfile/parser/parser.h"
#include "graph/graph.h"
#include "image/config.h"
#include "image/platform.h"
#include "util/status.h"

namespace kiln::dockerfile {

// What the frontend learns about a base image.
struct ResolvedImage {
  std::string digest;         // what the reference resolved to (index digest when multi-platform)
  image::ImageConfig config;  // the config of the platform asked for
  // oci-layout:// contexts only: the manifest digest for the platform, which
  // the caller has put into the content store for the image op to unpack.
  std::string manifest;
};

class ImageResolver {
 public:
  virtual ~ImageResolver() = default;
  // `ref` is normalized with a tag or digest ("docker.io/library/alpine:3.15").
  // Errors are returned to the user annotated with the Dockerfile location.
  virtual Result<ResolvedImage> ResolveImage(const std::string& ref,
                                             const image::Platform& platform) = 0;
};

// An input the caller solved or will solve itself (BuildKit's `input:NAME`):
// its filesystem, the image config it carries and its build sources.
struct InputContext {
  graph::Output state;
  std::optional<image::ImageConfig> config;
  std::optional<buildinfo::BuildInfo> buildinfo;
};

struct ConvertOptions {
  std::string filename = "Dockerfile";  // for error messages
  std::string target;                   // stage name; "" = the last stage
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;  // label:NAME attributes, set on the target
  image::Platform target_platform;
  image::Platform build_platform;
  // The `context` attribute: "" for the local build context, else a git or
  // HTTP(S) URL (R26).
  std::string context;
  // For an HTTP(S) `context`: whether the URL holds a tar archive (unpacked
  // as the context) rather than the Dockerfile alone (an empty context).
  bool context_is_archive = true;
  // Named contexts, `context:NAME` attributes: NAME or NAME::os/arch -> value
  // (docker-image://REF, local:NAME, input:NAME, a git or HTTP URL).
  std::map<std::string, std::string> named_contexts;
  std::map<std::string, InputContext> inputs;  // by input name
  ImageResolver* resolver = nullptr;           // required when an image is used
  bool no_cache = false;                       // every op ignores the cache
  // --no-cache-filter: the ops of these stages (by name, case-insensitive)
  // ignore the cache.
  std::vector<std::string> no_cache_stages;
};

struct ConvertResult {
  graph::Output root;            // the target stage's filesystem (scratch when empty)
  image::ImageConfig config;     // template: platform, Config, history (no rootfs/created)
  buildinfo::BuildInfo sources;  // the frontend's record: sources with aliases, deps
  std::vector<Warning> warnings;
  std::string target_stage;  // the stage built ("stage-N" when unnamed)
};

// Errors come back ready to show: for bad Dockerfile input the message is
// "<filename>:<line>: <what>" with the line and a caret (FormatSourceError).
Result<ConvertResult> ConvertToGraph(std::string_view dockerfile, const ConvertOptions& options);

// The automatic platform ARGs for a target and build platform, in the order
// BuildKit defines them.
std::vector<std::pair<std::string, std::string>> PlatformArgs(const image::Platform& target,
                                                              const image::Platform& build);

// R26: whether a `context` value names a git repository.
bool IsGitContext(std::string_view context);

}  // namespace kiln::dockerfile
