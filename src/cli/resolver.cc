#include "cli/resolver.h"

#include <cstdlib>

#include "image/config.h"
#include "image/platform.h"
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

Status ApplyFrontendFlags(const std::string& platform, const std::vector<std::string>& build_args,
                          const std::vector<std::string>& build_contexts,
                          dockerfile::ConvertOptions* opt) {
  opt->build_platform = image::DefaultPlatform();
  opt->target_platform = opt->build_platform;
  if (!platform.empty()) {
    KILN_ASSIGN_OR_RETURN(image::Platform p, image::ParsePlatform(platform));
    opt->target_platform = image::Normalize(p);
  }
  for (const std::string& kv : build_args) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) {
      opt->build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (const char* v = std::getenv(kv.c_str())) {
      opt->build_args[kv] = v;
    }
  }
  for (const std::string& kv : build_contexts) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--build-context " + kv + ": expected NAME=VALUE");
    }
    opt->named_contexts[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return Status::Ok();
}

}  // namespace kiln::cli
