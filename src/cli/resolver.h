// What `kiln build` and `kiln debug graph` share to drive the Dockerfile
// frontend: the image resolver backed by the registry client (resolves a
// reference for a platform and reads the image config, fetched into the
// content store, verified) and the flags that fill ConvertOptions.
// Thread-safety: as registry::Client (thread-safe); ApplyFrontendFlags is
// reentrant.
//
// Also the build's inputs beyond the Dockerfile text: named contexts that
// are local directories, and remote build contexts (a git repository or an
// HTTP(S) URL), whose Dockerfile is read here from the resolved commit or
// the fetched body.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "content/store.h"
#include "frontend/dockerfile/convert.h"
#include "image/platform.h"
#include "ops/ops.h"
#include "registry/client.h"
#include "util/cancel.h"

namespace kiln::cli {

class RegistryImageResolver : public dockerfile::ImageResolver {
 public:
  RegistryImageResolver(registry::Client* client, const content::Store* store)
      : client_(client), store_(store) {}

  Result<dockerfile::ResolvedImage> ResolveImage(const std::string& ref,
                                                 const image::Platform& platform) override;

 private:
  registry::Client* client_;
  const content::Store* store_;
};

// --platform's value: "OS/ARCH[/VARIANT]" items separated by commas (one
// build for several platforms), each parsed and normalized as
// image::ParsePlatform and image::Normalize do, in the order given; the
// host's platform alone when `platforms` is empty. kInvalidArgument naming
// the flag for an empty or bad item, or a platform given twice (after
// normalizing: "linux/arm64" and "linux/arm64/v8" are the same).
Result<std::vector<image::Platform>> ParsePlatformList(const std::string& platforms);

// --platform (the host's when empty; the first of a list), --build-arg K=V (a bare K takes $K
// from the environment, and is skipped when unset) and --build-context
// NAME=VALUE, into `opt`. Errors name the flag.
Status ApplyFrontendFlags(const std::string& platform, const std::vector<std::string>& build_args,
                          const std::vector<std::string>& build_contexts,
                          dockerfile::ConvertOptions* opt);

// Whether `context` (the positional argument of `kiln build`) is a remote
// build context: a git URL (source::LooksLikeGitUrl, R26) or an http(s) URL.
bool IsRemoteContext(const std::string& context);

// The --build-context values that are local directories (neither
// docker-image://, oci-layout://, local:, input:, a git URL nor an HTTP(S)
// URL) are replaced in opt->named_contexts by "local:NAME", as buildx sends
// them; returns NAME -> the directory. kNotFound, naming the flag, when such
// a value is not a directory.
Result<std::map<std::string, std::filesystem::path>> TakeLocalNamedContexts(
    dockerfile::ConvertOptions* opt);

// The Dockerfile of a remote build context and what the context holds.
struct RemoteDockerfile {
  std::string text;
  // HTTP: the body is a tar archive (the context, holding the Dockerfile)
  // rather than the Dockerfile alone. Always true for git.
  bool context_is_archive = true;
};

// Reads the Dockerfile of the remote context `url`: for git, `file`
// (relative to the repository or its subdir) in the checkout of the commit
// the ref resolves to (through env->git_refs, so the build uses the same
// commit); for HTTP(S), `file` inside the body when it is a tar archive,
// else the body itself. `scratch` is a directory for temporary files.
// Errors name the URL redacted.
Result<RemoteDockerfile> ReadRemoteDockerfile(const std::string& url, const std::string& file,
                                              ops::Environment* env,
                                              const std::filesystem::path& scratch,
                                              util::Canceller* cancel);

}  // namespace kiln::cli
