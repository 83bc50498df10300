#include "cli/config.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/json.h"
#include "util/no_space.h"

namespace kiln::cli {

namespace fs = std::filesystem;

namespace {

// Where a kiln path lives: `kiln_env` if set; for root `system_path`; else
// under $`xdg_env`/kiln; else under ~/`home_base`/kiln (HOME, else the
// password database).
fs::path KilnPath(const char* kiln_env, const fs::path& system_path, const char* xdg_env,
                  const fs::path& home_base, const fs::path& leaf) {
  if (const char* p = std::getenv(kiln_env); p != nullptr && *p != '\0') return p;
  if (::geteuid() == 0) return system_path;
  const auto under = [&](const fs::path& dir) { return leaf.empty() ? dir : dir / leaf; };
  if (const char* x = std::getenv(xdg_env); x != nullptr && *x != '\0') {
    return under(fs::path(x) / "kiln");
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    const passwd* pw = ::getpwuid(::geteuid());
    home = pw != nullptr ? pw->pw_dir : nullptr;
  }
  if (home == nullptr || *home == '\0') return {};
  return under(fs::path(home) / home_base / "kiln");
}

// The "network" object: durations in seconds, min-rate in bytes per second.
Status ParseNetwork(const nlohmann::json& value, const std::string& where,
                    util::NetworkOptions* net) {
  const std::string known = "timeout, connect-timeout, stall-timeout, min-rate";
  if (!value.is_object()) {
    return Status::InvalidArgument(where + ": \"network\" must be an object (members: " + known +
                                   ")");
  }
  for (const auto& [key, v] : value.items()) {
    const std::string name = "network." + key;
    if (key == "min-rate") {
      if (!v.is_number_unsigned()) {
        return Status::InvalidArgument(where + ": " + name +
                                       " must be a whole number of bytes per second (0: the "
                                       "deadline never grows with progress)");
      }
      net->min_rate = v.get<uint64_t>();
      continue;
    }
    std::chrono::milliseconds* target = key == "timeout"           ? &net->timeout
                                        : key == "connect-timeout" ? &net->connect_timeout
                                        : key == "stall-timeout"   ? &net->stall_timeout
                                                                   : nullptr;
    if (target == nullptr) {
      return Status::InvalidArgument(where + ": unknown setting \"" + name + "\" (known: " + known +
                                     ")");
    }
    // Seconds; at least a millisecond, at most a day.
    if (!v.is_number() || v.get<double>() < 0.001 || v.get<double>() > 86400) {
      return Status::InvalidArgument(where + ": " + name +
                                     " must be a number of seconds between 0.001 and 86400");
    }
    *target = std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000 + 0.5));
  }
  return Status::Ok();
}

}  // namespace

fs::path DefaultRoot() {
  return KilnPath("KILN_ROOT", "/var/lib/kiln", "XDG_DATA_HOME", ".local/share", "");
}

Status PrepareRoot(const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    if (IsNoSpace(ec.value())) return NoSpace(root.string(), "creating the state root");
    return Status::IOError("cannot create " + root.string() + ": " + ec.message());
  }
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    return Status::IOError("cannot stat " + root.string() + ": " + ErrnoText(errno));
  }
  if ((st.st_mode & 077) == 0 || st.st_uid != ::geteuid()) return Status::Ok();
  if (::chmod(root.c_str(), st.st_mode & 07700) != 0) {
    return Status::IOError("cannot make the state root " + root.string() +
                           " private (mode 0700): " + ErrnoText(errno));
  }
  return Status::Ok();
}

fs::path DefaultConfigPath() {
  return KilnPath("KILN_CONFIG", "/etc/kiln/config.json", "XDG_CONFIG_HOME", ".config",
                  "config.json");
}

Result<Config> LoadConfig(const fs::path& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!required && !fs::exists(path, ec)) {
      Config none;
      none.network.config_file = path.string();
      return none;
    }
    return Status::NotFound("cannot read kiln config " + path.string() +
                            (fs::exists(path, ec) ? ": permission denied" : ": no such file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::string where = "kiln config " + path.string();
  KILN_ASSIGN_OR_RETURN(nlohmann::json doc, util::ParseJson(text.str(), where));
  if (!doc.is_object()) return Status::InvalidArgument(where + ": expected a JSON object");
  Config config;
  config.network.config_file = path.string();
  for (const auto& [key, value] : doc.items()) {
    if (key == "network") {
      KILN_RETURN_IF_ERROR(ParseNetwork(value, where, &config.network));
      continue;
    }
    if (key != "insecure-registries") {
      return Status::InvalidArgument(where + ": unknown setting \"" + key +
                                     "\" (known: insecure-registries, network)");
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
