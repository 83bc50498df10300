#include "cli/secret_spec.h"

#include <filesystem>
#include <map>

namespace kiln::cli {

Result<SecretSpec> ParseSecretSpec(std::string_view spec_view) {
  const std::string spec(spec_view);
  std::map<std::string, std::string> kv;
  size_t start = 0;
  for (;;) {
    const size_t comma = spec.find(',', start);
    const std::string part =
        spec.substr(start, comma == std::string::npos ? spec.npos : comma - start);
    const size_t eq = part.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("--secret " + spec + ": \"" + part +
                                     "\" is not KEY=VALUE (expected id=ID,src=FILE or "
                                     "id=ID,env=VAR)");
    }
    kv[part.substr(0, eq)] = part.substr(eq + 1);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  SecretSpec out;
  out.id = kv["id"];
  out.src = kv.count("src") ? kv["src"] : kv["source"];
  out.env = kv["env"];
  if (out.id.empty()) {
    out.id = !out.src.empty() ? std::filesystem::path(out.src).filename().string() : out.env;
  }
  if (out.id.empty()) return Status::InvalidArgument("--secret " + spec + ": no id given");
  return out;
}

}  // namespace kiln::cli
