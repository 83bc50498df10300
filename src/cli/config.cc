#include "cli/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/json.h"

namespace kiln::cli {

namespace fs = std::filesystem;

fs::path DefaultConfigPath() {
  if (const char* p = std::getenv("KILN_CONFIG"); p != nullptr && *p != '\0') return p;
  if (::geteuid() == 0) return "/etc/kiln/config.json";
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0') {
    return fs::path(x) / "kiln/config.json";
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/") / ".config/kiln/config.json";
}

Result<Config> LoadConfig(const fs::path& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!required && !fs::exists(path, ec)) return Config{};
    return Status::NotFound("cannot read kiln config " + path.string() +
                            (fs::exists(path, ec) ? ": permission denied" : ": no such file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::string where = "kiln config " + path.string();
  KILN_ASSIGN_OR_RETURN(nlohmann::json doc, util::ParseJson(text.str(), where));
  if (!doc.is_object()) return Status::InvalidArgument(where + ": expected a JSON object");
  Config config;
  for (const auto& [key, value] : doc.items()) {
    if (key != "insecure-registries") {
      return Status::InvalidArgument(where + ": unknown setting \"" + key +
                                     "\" (known: insecure-registries)");
    }
    if (!value.is_array()) {
      return Status::InvalidArgument(where +
                                     ": \"insecure-registries\" must be an array of "
                                     "\"host[:port]\" strings");
    }
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_string() || value[i].get<std::string>().empty()) {
        return Status::InvalidArgument(where + ": insecure-registries[" + std::to_string(i) +
                                       "] must be a non-empty \"host[:port]\" string");
      }
      config.insecure_registries.push_back(value[i].get<std::string>());
    }
  }
  return config;
}

}  // namespace kiln::cli
