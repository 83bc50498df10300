// The local build context: a directory on the host, filtered by
// .dockerignore. COPY reads files in place through a LocalContext; `RUN
// --mount=type=bind` of the context mounts a copy of the selected path made
// the same way (ops/), so ignored files and symlinks out of the context are
// never visible to a RUN.
//
// Checksums. Checksum(patterns) is the content digest of exactly the paths
// a COPY selects (its sources, wildcards expanded, directories recursively,
// excluded paths left out): a digest over each selected entry's relative
// path, type, mode bits, link target and content sha256, in path order.
// Changing a file outside the selection changes nothing. Content hashes are
// memoized in an index file (ROOT/contexts/<sha256 of the context's
// absolute path>.db, SQLite) keyed by path with (size, mtime ns, ctime ns,
// inode) as the validity stamp, so an unchanged context is not re-read.
//
// Thread-safety: a LocalContext may be used from several threads.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/dockerignore.h"
#include "util/digest.h"
#include "util/rootfs.h"
#include "util/status.h"

namespace kiln::source {

struct LocalOptions {
  std::filesystem::path dir;        // the context directory
  std::filesystem::path index_dir;  // ROOT/contexts; "" = no persistent index
  IgnoreMatcher excludes;  // from .dockerignore (and the Dockerfile is never excluded from reads by
                           // the frontend)
  std::vector<std::string> include_patterns;  // "" = everything (local.includepattern)
};

struct ContextEntry {
  std::string path;  // relative, "/"-separated
  struct stat st;
};

class LocalContext {
 public:
  static Result<std::shared_ptr<LocalContext>> Open(LocalOptions options);
  ~LocalContext();

  const std::filesystem::path& dir() const;
  // The context as a confined tree (reads must check Excluded()).
  const util::RootDir& root() const;
  bool Excluded(std::string_view path) const;
  // Whether the excluded directory `dir` may still hold a path that is not
  // excluded (a `!` pattern below it), so a walk must descend into it.
  bool MayIncludeBelow(std::string_view dir) const;

  // Entries matching `pattern` (a COPY source: a path or a wildcard pattern,
  // relative to the context root; "." or "/" = the root), not excluded,
  // sorted. A pattern matching nothing yields an empty list.
  Result<std::vector<ContextEntry>> Match(std::string_view pattern) const;
  // The content digest of everything the patterns select (see above); when
  // `patterns` is empty, of the whole context.
  Result<util::Digest> Checksum(const std::vector<std::string>& patterns) const;

  // How many regular files Checksum() has read since Open (the others came
  // from the index): for stats and tests.
  uint64_t files_read() const;

  struct Impl;

 private:
  explicit LocalContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::source
