// What `kiln build` and `kiln debug graph` share to drive the Dockerfile
// frontend: the image resolver backed by the registry client (resolves a
// reference for a platform and reads the image config, fetched into the
// content store, verified) and the flags that fill ConvertOptions.
// Thread-safety: as registry::Client (thread-safe); ApplyFrontendFlags is
// reentrant.
#pragma once

#include <string>
#include <vector>

#include "content/store.h"
#include "frontend/dockerfile/convert.h"
#include "registry/client.h"

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

// --platform (the host's when empty), --build-arg K=V (a bare K takes $K
// from the environment, and is skipped when unset) and --build-context
// NAME=VALUE, into `opt`. Errors name the flag.
Status ApplyFrontendFlags(const std::string& platform, const std::vector<std::string>& build_args,
                          const std::vector<std::string>& build_contexts,
                          dockerfile::ConvertOptions* opt);

}  // namespace kiln::cli
