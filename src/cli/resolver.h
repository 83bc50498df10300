// The Dockerfile frontend's image resolver backed by the registry client:
// resolves a reference for a platform and reads the image config (fetched
// into the content store, verified). Used by `kiln build` and `kiln debug
// graph`. Thread-safety: as registry::Client (thread-safe).
#pragma once

#include <string>

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

}  // namespace kiln::cli
