// Writes small OCI image layouts for end-to-end tests, with layers whose tar
// entries the test chooses freely (including hostile ones: path traversal,
// symlinks out of the root, hard links to outside paths), so kiln's handling
// of untrusted layers can be exercised through `kiln copy` and `kiln build`.
// Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/status.h"

namespace kiln::testing {

// One tar member, written exactly as given (no path cleaning).
struct TarEntry {
  std::string path;
  char type = 'f';   // 'f' file, 'd' directory, 'l' symlink, 'h' hard link, 'b' block device
  std::string data;  // file content, the symlink / hard-link target, or "MAJOR:MINOR" ('b')
  unsigned mode = 0644;
};

// An uncompressed ustar/pax tar of `entries`, in order.
Result<std::string> MakeTar(const std::vector<TarEntry>& entries);

// Writes an OCI layout at `dir` holding one linux/amd64 image tagged `tag`
// with one gzip layer per element of `layers`, bottom first. Returns the
// manifest digest.
Result<std::string> WriteOciLayout(const std::filesystem::path& dir, const std::string& tag,
                                   const std::vector<std::vector<TarEntry>>& layers);

}  // namespace kiln::testing
