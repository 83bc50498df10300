// Tree operations for the snapshot drivers: copy, merge, remove, usage.
#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "snapshot/internal.h"
#include "util/no_space.h"
#include "util/sparse.h"

namespace kiln::snapshot::internal {

Status ErrnoError(std::string_view what, const fs::path& path) {
  int e = errno;
  if (IsNoSpace(e)) return NoSpaceFor(what, path.string());
  return Status::IOError(std::string(what) + " " + path.string() + ": " + std::strerror(e));
}

std::string RandomHex(size_t n) {
  std::string raw((n + 1) / 2, '\0');
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t r = getrandom(raw.data() + got, raw.size() - got, 0);
    KILN_CHECK(r > 0 || errno == EINTR, "getrandom failed");
    if (r > 0) got += static_cast<size_t>(r);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  out.resize(n);
  return out;
}

namespace {

bool KeptXattr(std::string_view name) {
  return name.starts_with("user.") || name == "security.capability";
}

// Directory entries of `dir` except "." and "..", sorted by bytes.
Result<std::vector<std::string>> ListDir(const fs::path& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return ErrnoError("cannot open directory", dir);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Status CopyXattrs(const fs::path& src, const fs::path& dst) {
  KILN_ASSIGN_OR_RETURN(auto xattrs, LayerXattrs(src));
  for (const auto& [name, value] : xattrs) {
    if (::lsetxattr(dst.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
      return ErrnoError("cannot set xattr " + name + " on", dst);
    }
  }
  return Status::Ok();
}

// Owner, mode and xattrs of `src` onto `dst` (times are set by the caller).
Status CopyMeta(const fs::path& src, const fs::path& dst, const struct stat& st) {
  if (::lchown(dst.c_str(), st.st_uid, st.st_gid) != 0) return ErrnoError("cannot chown", dst);
  if (!S_ISLNK(st.st_mode)) {
    // After chown, which clears setuid/setgid.
    if (::chmod(dst.c_str(), st.st_mode & 07777) != 0) return ErrnoError("cannot chmod", dst);
  }
  return CopyXattrs(src, dst);
}

Status SetTimes(const fs::path& dst, const struct stat& st) {
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoError("cannot set times of", dst);
  }
  return Status::Ok();
}

// Copies the bytes of `src` into the new file `dst`, keeping holes: the copy
// driver copies every file of the parent for each step, so a sparse file
// copied in full would grow with every step.
Status CopyFileData(const fs::path& src, const fs::path& dst, const struct stat&) {
  util::UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return ErrnoError("cannot open", src);
  util::UniqueFd out(
      ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoError("cannot create", dst);
  Status st = util::CopySparse(in.get(), out.get());
  if (st.code() == StatusCode::kResourceExhausted) {
    return NoSpace(dst.string(), "copying " + src.string());
  }
  if (!st.ok()) {
    return Status(st.code(),
                  "cannot copy " + src.string() + " to " + dst.string() + ": " + st.message());
  }
  return Status::Ok();
}

using LinkMap = std::map<std::pair<dev_t, ino_t>, fs::path>;

// Creates `dst` (absent) as a copy of the non-directory `src`.
Status CopyNode(const fs::path& src, const fs::path& dst, const struct stat& st, LinkMap* links) {
  if (st.st_nlink > 1) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = links->find(key);
    if (it != links->end()) {
      if (::link(it->second.c_str(), dst.c_str()) != 0) return ErrnoError("cannot link", dst);
      return Status::Ok();
    }
    (*links)[key] = dst;
  }
  switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      KILN_RETURN_IF_ERROR(CopyFileData(src, dst, st));
      break;
    case S_IFLNK: {
      KILN_ASSIGN_OR_RETURN(std::string target, ReadLink(src));
      if (::symlink(target.c_str(), dst.c_str()) != 0) return ErrnoError("cannot symlink", dst);
      break;
    }
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) return ErrnoError("cannot mknod", dst);
      break;
    default:
      return Status::Internal("unexpected file type at " + src.string());
  }
  KILN_RETURN_IF_ERROR(CopyMeta(src, dst, st));
  return SetTimes(dst, st);
}

Status CopyDirContents(const fs::path& src, const fs::path& dst, LinkMap* links);

Status CopyAny(const fs::path& src, const fs::path& dst, const struct stat& st, LinkMap* links) {
  if (!S_ISDIR(st.st_mode)) return CopyNode(src, dst, st, links);
  if (::mkdir(dst.c_str(), 0700) != 0) return ErrnoError("cannot create directory", dst);
  KILN_RETURN_IF_ERROR(CopyDirContents(src, dst, links));
  KILN_RETURN_IF_ERROR(CopyMeta(src, dst, st));
  return SetTimes(dst, st);
}

Status CopyDirContents(const fs::path& src, const fs::path& dst, LinkMap* links) {
  KILN_ASSIGN_OR_RETURN(auto names, ListDir(src));
  for (const std::string& name : names) {
    fs::path s = src / name, d = dst / name;
    struct stat st;
    if (::lstat(s.c_str(), &st) != 0) return ErrnoError("cannot stat", s);
    KILN_RETURN_IF_ERROR(CopyAny(s, d, st, links));
  }
  return Status::Ok();
}

Status MergeDir(const fs::path& upper, const fs::path& dst, LinkMap* links) {
  KILN_ASSIGN_OR_RETURN(auto names, ListDir(upper));
  for (const std::string& name : names) {
    fs::path s = upper / name, d = dst / name;
    struct stat st, dst_st;
    if (::lstat(s.c_str(), &st) != 0) return ErrnoError("cannot stat", s);
    bool exists = ::lstat(d.c_str(), &dst_st) == 0;
    if (IsWhiteout(st)) {
      KILN_RETURN_IF_ERROR(RemoveTree(d));
      continue;
    }
    if (S_ISDIR(st.st_mode) && exists && S_ISDIR(dst_st.st_mode)) {
      if (IsOpaqueDir(s)) {
        KILN_ASSIGN_OR_RETURN(auto old, ListDir(d));
        for (const std::string& o : old) KILN_RETURN_IF_ERROR(RemoveTree(d / o));
      }
      KILN_RETURN_IF_ERROR(MergeDir(s, d, links));
      KILN_RETURN_IF_ERROR(CopyMeta(s, d, st));
      KILN_RETURN_IF_ERROR(SetTimes(d, st));
      continue;
    }
    if (exists) KILN_RETURN_IF_ERROR(RemoveTree(d));
    if (S_ISDIR(st.st_mode)) {
      // A new directory: merging into an empty one drops nested markers.
      if (::mkdir(d.c_str(), 0700) != 0) return ErrnoError("cannot create directory", d);
      KILN_RETURN_IF_ERROR(MergeDir(s, d, links));
      KILN_RETURN_IF_ERROR(CopyMeta(s, d, st));
      KILN_RETURN_IF_ERROR(SetTimes(d, st));
    } else {
      KILN_RETURN_IF_ERROR(CopyNode(s, d, st, links));
    }
  }
  return Status::Ok();
}

Status RemoveChildrenAt(int dirfd, const fs::path& shown) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ErrnoError("cannot dup descriptor of", shown);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return ErrnoError("cannot read directory", shown);
  }
  std::vector<std::string> names;
  while (dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) KILN_RETURN_IF_ERROR(RemoveTreeAt(dirfd, n, shown / n));
  return Status::Ok();
}

void UsageWalk(const fs::path& path, std::set<std::pair<dev_t, ino_t>>* seen, uint64_t* total) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen->insert({st.st_dev, st.st_ino}).second) {
    return;
  }
  *total += static_cast<uint64_t>(st.st_blocks) * 512;
  if (!S_ISDIR(st.st_mode)) return;
  auto names = ListDir(path);
  if (!names.ok()) return;
  for (const std::string& n : *names) UsageWalk(path / n, seen, total);
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> LayerXattrs(const fs::path& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
  if (len < 0) {
    if (errno == ENOTSUP) return out;
    return ErrnoError("cannot list xattrs of", path);
  }
  std::string names(static_cast<size_t>(len), '\0');
  len = ::llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) return ErrnoError("cannot list xattrs of", path);
  names.resize(static_cast<size_t>(len));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (!KeptXattr(name)) continue;
    ssize_t vlen = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (vlen < 0) return ErrnoError("cannot read xattr " + name + " of", path);
    std::string value(static_cast<size_t>(vlen), '\0');
    vlen = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (vlen < 0) return ErrnoError("cannot read xattr " + name + " of", path);
    value.resize(static_cast<size_t>(vlen));
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool IsOpaqueDir(const fs::path& path) {
  char v[4];
  ssize_t n = ::lgetxattr(path.c_str(), std::string(kOpaqueXattr).c_str(), v, sizeof v);
  return n == 1 && v[0] == 'y';
}

Result<std::string> ReadLink(const fs::path& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoError("cannot read link", path);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

Status RemoveTreeAt(int dirfd, const std::string& name, const fs::path& shown) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("cannot stat", shown);
  }
  if (S_ISDIR(st.st_mode)) {
    util::UniqueFd sub(
        ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return ErrnoError("cannot open directory", shown);
    KILN_RETURN_IF_ERROR(RemoveChildrenAt(sub.get(), shown));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) {
      return ErrnoError("cannot remove directory", shown);
    }
    return Status::Ok();
  }
  if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError("cannot remove", shown);
  }
  return Status::Ok();
}

Status RemoveTree(const fs::path& path) {
  fs::path parent = path.parent_path();
  util::UniqueFd dir(
      ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("cannot open directory", parent);
  }
  return RemoveTreeAt(dir.get(), path.filename().string(), path);
}

Status CopyTree(const fs::path& src, const fs::path& dst) {
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) return ErrnoError("cannot stat", src);
  LinkMap links;
  return CopyAny(src, dst, st, &links);
}

Status MergeUpper(const fs::path& upper, const fs::path& dst) {
  LinkMap links;
  return MergeDir(upper, dst, &links);
}

uint64_t DiskUsage(const fs::path& path) {
  std::set<std::pair<dev_t, ino_t>> seen;
  uint64_t total = 0;
  UsageWalk(path, &seen, &total);
  return total;
}

}  // namespace kiln::snapshot::internal
