#include "content/fs_internal.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "util/no_space.h"

namespace kiln::content::internal {

Status ErrnoStatus(std::string_view what, const std::filesystem::path& path, int err) {
  if (IsNoSpace(err)) return NoSpaceFor(what, path.string());
  std::string msg = std::string(what) + " " + path.string() + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(std::move(msg));
  return Status::IOError(std::move(msg));
}

Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<size_t> ReadSome(int fd, void* buf, size_t capacity, const std::filesystem::path& path) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, capacity);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoStatus("cannot read", path, errno);
  }
}

Status FsyncDir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0 && errno != EINVAL) {  // EINVAL: fs without dir fsync
    return ErrnoStatus("cannot fsync directory", dir, errno);
  }
  return Status::Ok();
}

Status MakeDirs(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    if (IsNoSpace(ec.value())) return NoSpace(dir.string(), "creating a directory");
    return Status::IOError("cannot create directory " + dir.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Status RemoveAll(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status::IOError("cannot remove " + path.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace kiln::content::internal
