// Small POSIX file helpers shared by store.cc and layout.cc. Internal to the
// content module: not installed, not for other modules (util/ will grow a
// public fs helper; these can move there then).
//
// Every function retries EINTR and returns kIOError messages that name the
// path and include strerror(errno).
//
// Thread-safety: stateless functions; a UniqueFd is owned by one thread.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "util/io.h"
#include "util/status.h"

namespace kiln::content::internal {

// Owns a file descriptor; closes it on destruction.
using UniqueFd = util::UniqueFd;

// "<what> <path>: <strerror(err)>", as a kIOError (kNotFound for ENOENT).
Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err);

// Writes all of `data`, retrying short writes.
Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path);
// Reads up to `capacity` bytes; 0 only at end of file.
Result<size_t> ReadSome(int fd, void* buf, size_t capacity, const std::filesystem::path& path);
// fsync() of a directory, so a rename or unlink in it is durable.
Status FsyncDir(const std::filesystem::path& dir);
// Creates `dir` and its parents (mode 0755 minus umask); ok if it exists.
Status MakeDirs(const std::filesystem::path& dir);
// Removes `path` recursively; a missing path is not an error.
Status RemoveAll(const std::filesystem::path& path);

}  // namespace kiln::content::internal
