#include "util/rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace kiln::util {
namespace {

// "<op> /<path> in <root>: <errno text>".
Status PathError(std::string_view op, std::string_view clean, const std::filesystem::path& root,
                 int err) {
  std::string msg(op);
  msg += " /";
  msg += clean;
  msg += " in ";
  msg += root.string();
  msg += ": ";
  msg += ErrnoText(err);
  return Status(CodeForErrno(err), std::move(msg));
}

// openat2 relative to `dirfd` with the root at `dirfd`. Returns -1 with
// errno set on failure. EAGAIN (a concurrent rename somewhere on the
// system) is retried a bounded number of times.
int OpenInRoot(int dirfd, const std::string& path, int flags, mode_t mode) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  if (flags & (O_CREAT | O_TMPFILE)) how.mode = mode;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* p = path.empty() ? "." : path.c_str();
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, dirfd, p, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if ((errno == EAGAIN || errno == EINTR) && attempt < 64) continue;
    return -1;
  }
}

// Empties the directory `dirfd` without following any symlink.
Status RemoveContents(int dirfd, const std::string& where, const std::filesystem::path& root) {
  int dupfd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return PathError("dup", where, root, errno);
  DIR* dir = ::fdopendir(dupfd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dupfd);
    return PathError("opendir", where, root, err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(dir)) {
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  int read_err = errno;
  ::closedir(dir);
  if (read_err != 0) return PathError("readdir", where, root, read_err);
  for (const std::string& name : names) {
    std::string child = where.empty() ? name : where + "/" + name;
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) return PathError("unlink", child, root, errno);
    int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) return PathError("open", child, root, errno);
    UniqueFd subfd(sub);
    KILN_RETURN_IF_ERROR(RemoveContents(subfd.get(), child, root));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return PathError("rmdir", child, root, errno);
    }
  }
  return Status::Ok();
}

}  // namespace

std::string CleanInRoot(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view comp = path.substr(i, j - i);
    if (comp.empty() || comp == ".") {
      // skip
    } else if (comp == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(comp);
    }
    i = j + 1;
  }
  std::string out;
  for (std::string_view p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

Result<RootDir> RootDir::Open(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Status(CodeForErrno(err), "open root " + dir.string() + ": " + ErrnoText(err));
  }
  return RootDir(UniqueFd(fd), dir);
}

Result<UniqueFd> RootDir::OpenAt(std::string_view path, int flags, mode_t mode) const {
  std::string clean = CleanInRoot(path);
  int fd = OpenInRoot(fd_.get(), clean, flags, mode);
  if (fd < 0) return PathError("open", clean, path_, errno);
  return UniqueFd(fd);
}

Result<UniqueFd> RootDir::OpenParent(std::string_view path, std::string* name) const {
  std::string clean = CleanInRoot(path);
  std::string parent;
  size_t slash = clean.rfind('/');
  if (slash == std::string::npos) {
    *name = clean;
  } else {
    parent = clean.substr(0, slash);
    *name = clean.substr(slash + 1);
  }
  int fd = OpenInRoot(fd_.get(), parent, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return PathError("open", parent, path_, errno);
  return UniqueFd(fd);
}

Result<struct stat> RootDir::Lstat(std::string_view path) const {
  std::string name;
  KILN_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(path, &name));
  struct stat st;
  int rc = name.empty() ? ::fstat(parent.get(), &st)
                        : ::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return PathError("lstat", CleanInRoot(path), path_, errno);
  return st;
}

Result<struct stat> RootDir::Stat(std::string_view path) const {
  std::string clean = CleanInRoot(path);
  int fd = OpenInRoot(fd_.get(), clean, O_PATH, 0);
  if (fd < 0) return PathError("stat", clean, path_, errno);
  UniqueFd owned(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return PathError("stat", clean, path_, errno);
  return st;
}

Status RootDir::MkdirAll(std::string_view path, mode_t mode, int uid, int gid) const {
  std::string clean = CleanInRoot(path);
  std::string prefix;
  UniqueFd cur(OpenInRoot(fd_.get(), "", O_RDONLY | O_DIRECTORY, 0));
  if (!cur.valid()) return PathError("open", "", path_, errno);
  size_t i = 0;
  while (i < clean.size()) {
    size_t j = clean.find('/', i);
    if (j == std::string::npos) j = clean.size();
    std::string comp = clean.substr(i, j - i);
    i = j + 1;
    if (!prefix.empty()) prefix += '/';
    prefix += comp;
    if (::mkdirat(cur.get(), comp.c_str(), mode) == 0) {
      // Exact mode regardless of the umask; owner when asked.
      if (uid >= 0 || gid >= 0) {
        if (::fchownat(cur.get(), comp.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid),
                       AT_SYMLINK_NOFOLLOW) != 0) {
          return PathError("chown", prefix, path_, errno);
        }
      }
      if (::fchmodat(cur.get(), comp.c_str(), mode & 07777, 0) != 0) {
        return PathError("chmod", prefix, path_, errno);
      }
    } else if (errno != EEXIST) {
      return PathError("mkdir", prefix, path_, errno);
    }
    // Open the prefix from the root so that a symlinked component is
    // resolved inside the root.
    int next = OpenInRoot(fd_.get(), prefix, O_RDONLY | O_DIRECTORY, 0);
    if (next < 0) {
      int err = errno;
      if (err == ENOTDIR) {
        return Status::FailedPrecondition("mkdir /" + prefix + " in " + path_.string() +
                                          ": a non-directory is in the way");
      }
      if (err == ENOENT) {
        return Status::FailedPrecondition("mkdir /" + prefix + " in " + path_.string() +
                                          ": a dangling symlink is in the way");
      }
      return PathError("open", prefix, path_, err);
    }
    cur.reset(next);
  }
  return Status::Ok();
}

Status RootDir::RemoveAll(std::string_view path) const {
  std::string clean = CleanInRoot(path);
  if (clean.empty()) {
    return Status::InvalidArgument("remove / in " + path_.string() + ": cannot remove the root");
  }
  std::string name;
  auto parent = OpenParent(clean, &name);
  if (!parent.ok()) {
    if (parent.status().code() == StatusCode::kNotFound) return Status::Ok();
    // A non-directory parent means the path cannot exist.
    if (parent.status().code() == StatusCode::kFailedPrecondition) return Status::Ok();
    return parent.status();
  }
  int pfd = parent->get();
  if (::unlinkat(pfd, name.c_str(), 0) == 0 || errno == ENOENT) return Status::Ok();
  if (errno != EISDIR && errno != EPERM) return PathError("unlink", clean, path_, errno);
  int sub = ::openat(pfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) return PathError("open", clean, path_, errno);
  UniqueFd subfd(sub);
  KILN_RETURN_IF_ERROR(RemoveContents(subfd.get(), clean, path_));
  if (::unlinkat(pfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return PathError("rmdir", clean, path_, errno);
  }
  return Status::Ok();
}

Result<std::string> RootDir::Readlink(std::string_view path) const {
  std::string name;
  KILN_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(path, &name));
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n =
        ::readlinkat(parent.get(), name.empty() ? "." : name.c_str(), buf.data(), buf.size());
    if (n < 0) return PathError("readlink", CleanInRoot(path), path_, errno);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

std::string RootDir::ProcPath() const { return "/proc/self/fd/" + std::to_string(fd_.get()); }

}  // namespace kiln::util
