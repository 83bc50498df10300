// Reads an image kiln wrote (an OCI archive or layout directory) the way a
// consumer would, independently of kiln's exporter: index.json -> manifest
// -> config and layers, each layer's tar applied in order with OCI
// whiteouts, into an in-memory filesystem the tests look into.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace kiln::testing {

struct FsEntry {
  char type = 'f';  // 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c'/'b' device, 'p' fifo
  unsigned mode = 0;
  long uid = 0, gid = 0;
  long long mtime = 0;
  std::string data;  // file content, or the link target
};

struct OciImage {
  std::string index_json;
  std::string manifest_json;
  std::string manifest_digest;
  std::string config_json;
  std::vector<std::string> layer_digests;
  std::vector<std::string> layer_tars;       // uncompressed
  std::map<std::string, FsEntry> files;      // path without leading "/", after all layers
  std::map<std::string, std::string> blobs;  // every blob file, by "sha256:<hex>"
};

// `path` is an OCI archive (.tar) or an OCI layout directory.
Result<OciImage> ReadOciImage(const std::filesystem::path& path);

// The paths of one layer's tar, in order, as written.
Result<std::vector<std::string>> TarPaths(const std::string& tar);

}  // namespace kiln::testing
