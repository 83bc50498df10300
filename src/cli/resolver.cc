#include "cli/resolver.h"

#include "image/config.h"
#include "image/reference.h"

namespace kiln::cli {

Result<dockerfile::ResolvedImage> RegistryImageResolver::ResolveImage(
    const std::string& ref, const image::Platform& platform) {
  KILN_ASSIGN_OR_RETURN(image::Reference parsed, image::ParseNormalizedNamed(ref));
  KILN_ASSIGN_OR_RETURN(registry::Resolved resolved, client_->Resolve(parsed, platform));
  KILN_RETURN_IF_ERROR(client_->FetchBlob(parsed, resolved.config, *store_));
  KILN_ASSIGN_OR_RETURN(std::string config, store_->Read(resolved.config.digest));
  KILN_ASSIGN_OR_RETURN(image::ImageConfig cfg, image::ParseImageConfig(config));
  return dockerfile::ResolvedImage{resolved.top.digest.str(), std::move(cfg)};
}

}  // namespace kiln::cli
