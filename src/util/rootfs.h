// Path operations confined to a directory tree that may hold hostile
// content: a pulled layer, a container's filesystem after a RUN, a build
// context. Every path is resolved with openat2(RESOLVE_IN_ROOT) against an
// open descriptor of the root, so `..`, absolute symlinks and symlinked
// parents are resolved as if the root were `/` and can never reach outside
// it. The final component of a path is never followed when the operation
// acts on the entry itself (Lstat, Remove, Mknod, Symlink, Link's target
// name, Chown/Chmod/Utimes via *NoFollow).
//
// Callers: snapshot/ (layer apply), ops/ (file actions), executor/ (working
// dir, secret targets), source/ (context reads).
//
// Thread-safety: a RootDir is an open directory descriptor; its methods
// may be called from several threads at once.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "util/io.h"
#include "util/status.h"

namespace kiln::util {

class RootDir {
 public:
  // Opens `dir` (which must exist and be a directory).
  static Result<RootDir> Open(const std::filesystem::path& dir);

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }

  // Opens `path` (relative or absolute; both are inside the root) with
  // openat2 RESOLVE_IN_ROOT. `flags` as for open(2); O_CLOEXEC is added.
  // With O_NOFOLLOW the final component is not followed.
  Result<UniqueFd> OpenAt(std::string_view path, int flags, mode_t mode = 0) const;
  // Opens the directory holding `path`'s final component, resolved in the
  // root, and stores the final component in `*name` ("" for the root).
  Result<UniqueFd> OpenParent(std::string_view path, std::string* name) const;

  // lstat of the entry itself; kNotFound when absent.
  Result<struct stat> Lstat(std::string_view path) const;
  // stat following symlinks inside the root; kNotFound when absent.
  Result<struct stat> Stat(std::string_view path) const;
  // Creates `path` and missing parents with `mode`; existing directories
  // are kept. A non-directory in the way is kFailedPrecondition naming it.
  // New directories get `uid`/`gid` when they are >= 0.
  Status MkdirAll(std::string_view path, mode_t mode, int uid = -1, int gid = -1) const;
  // Removes `path` (recursively for a directory); absent is OK.
  Status RemoveAll(std::string_view path) const;
  // Reads the target of the symlink `path`.
  Result<std::string> Readlink(std::string_view path) const;

  // A host path for `path` resolved in the root (through /proc/self/fd), for
  // handing to a program that takes paths. Valid while this RootDir lives.
  std::string ProcPath() const;

 private:
  RootDir(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::filesystem::path path_;
};

// Cleans an in-root path: collapses "//", "." and ".." lexically (never
// above the root) and drops leading and trailing slashes; "" is the root.
std::string CleanInRoot(std::string_view path);

}  // namespace kiln::util
