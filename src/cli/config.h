// kiln's configuration file: settings that belong to the machine or the user
// rather than to one build. It holds Docker's `insecure-registries`
// (registries spoken to over plain HTTP although they are not on the
// loopback interface) and the limits on network waits (docs/network.md):
//
//   {"insecure-registries": ["registry.lan:5000", "10.0.0.5:5000"],
//    "network": {"timeout": 300, "connect-timeout": 30, "stall-timeout": 30,
//                "min-rate": 65536}}
//
// Durations are seconds (a number, fractions allowed), min-rate bytes per
// second. The file is JSON. Unknown members are an error naming them, so a
// misspelled setting never silently does nothing.
//
// Called by main.cc. Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/network.h"
#include "util/status.h"

namespace kiln::cli {

struct Config {
  std::vector<std::string> insecure_registries;  // "host[:port]", as in references
  // The "network" settings over util::NetworkOptions' defaults;
  // config_file names this file.
  util::NetworkOptions network;
};

// The default state root: $KILN_ROOT, else /var/lib/kiln for root, else
// $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
std::filesystem::path DefaultRoot();

// Creates the state root (its missing parents as the umask says) and makes
// the root itself private, 0700, also when it exists with a wider mode: it
// holds pulled images, build caches and build outputs. Nothing else is
// chmod()ed. A root owned by someone else is left as it is.
Status PrepareRoot(const std::filesystem::path& root);

// $KILN_CONFIG, else /etc/kiln/config.json for root, else
// $XDG_CONFIG_HOME/kiln/config.json, else ~/.config/kiln/config.json.
std::filesystem::path DefaultConfigPath();

// Reads `path`. A missing file gives the empty Config when `required` is
// false (the default location need not exist) and kNotFound when true (the
// user named it). Errors name the file and the member.
Result<Config> LoadConfig(const std::filesystem::path& path, bool required);

}  // namespace kiln::cli
