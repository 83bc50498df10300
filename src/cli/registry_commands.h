// `kiln pull`, `kiln inspect` and `kiln copy`: images in registries, OCI
// layouts and OCI archives (see image_location.h for how they are named).
//
//   pull [--platform P] REF
//       Resolves REF, pulls the platform's manifest (the host's by default),
//       config and layers into ROOT/content and records REF -> top digest in
//       ROOT/refs.json (ref_index.h). Output, one line:
//         pulled REF TOP (PLATFORM MANIFEST): N blobs fetched, M present, SIZE
//       REF normalized (":latest" added), TOP the digest REF resolved to,
//       MANIFEST the platform's manifest (== TOP for a single manifest), SIZE
//       the bytes downloaded ("2.1 MB", decimal units).
//   inspect [--raw] [--format pretty|json] LOCATION
//       The top manifest or index, each platform manifest of an index, and
//       the build sources of each image, keyed like the exporter response
//       (buildinfo::ResponseKey). --raw: the top document's bytes exactly as
//       served. --format json: {"name", "manifest", "buildinfo"}.
//   copy [--platform P | --all] SRC DST
//       Every blob of SRC (all platforms by default; --platform narrows an
//       index to one manifest, which becomes the copy's top) through
//       ROOT/content to DST. Bytes and digests are unchanged. Output, one
//       line:
//         copied SRC -> DST TOP: N blobs, SIZE[ (U uploaded, M mounted, E present)]
//       the part in brackets for a registry destination.
//
// Registry credentials come from the docker config (registry/auth.h;
// DOCKER_CONFIG honoured). Errors are Status values whose messages name the
// registry, repository or path; credentials never appear in them.
//
// Called by main.cc only. Thread-safety: plain functions; each call creates
// its own registry client.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "registry/client.h"
#include "util/network.h"
#include "util/status.h"

namespace kiln::cli {

struct GlobalOptions {
  std::filesystem::path root;                    // state root; the content store is ROOT/content
  std::vector<std::string> insecure_registries;  // from the kiln config (cli/config.h)
  util::NetworkOptions network;                  // from the kiln config (cli/config.h)
};

struct PullOptions {
  std::string reference;
  std::string platform;  // "" = the host's
};

struct InspectOptions {
  std::string location;
  bool raw = false;
  std::string format = "pretty";  // or "json"
};

struct CopyOptions {
  std::string source;
  std::string destination;
  std::string platform;  // "" = every platform (--all)
};

// Each returns what to print on stdout (the summary line, or the inspect
// output, newline-terminated except --raw).
Result<std::string> RunPull(const GlobalOptions& global, const PullOptions& options);
Result<std::string> RunInspect(const GlobalOptions& global, const InspectOptions& options);
Result<std::string> RunCopy(const GlobalOptions& global, const CopyOptions& options);

// "0 B", "512 B", "2.1 MB", "1.0 GB": decimal units, one decimal above bytes.
std::string HumanSize(uint64_t bytes);

// Copies the kiln config's network limits into registry options.
void ApplyNetworkOptions(const util::NetworkOptions& net, registry::RegistryOptions* options);

}  // namespace kiln::cli
