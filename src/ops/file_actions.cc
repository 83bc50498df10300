#include "ops/file_actions.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/no_space.h"
#include "util/sparse.h"
#include "util/userdb.h"

// Choices where BuildKit leaves room, kept here so callers can rely on them:
// - Directories that already exist in the destination are merged into; their
//   owner, mode and times are left as they were. Directories the copy
//   creates get the source directory's mode and times (or --chmod).
// - Missing destination parents are created 0755, owned by the --chown
//   identity when one is given (as BuildKit does), else by 0:0.
// - Hard links inside a copied tree are copied as separate files.
// - An existing non-directory at a destination name is replaced; a
//   directory is never replaced by a non-directory (an error names it).
// - An excluded directory that holds included paths is copied (with its own
//   metadata) with only those paths.

namespace kiln::ops {
namespace {

using util::RootDir;
using util::UniqueFd;

// "<what> /<path>: <errno text>".
Status Errno(std::string_view what, std::string_view path, int err) {
  if (IsNoSpace(err)) {
    return NoSpace("/" + std::string(path), "writing it in the step's snapshot");
  }
  return Status(CodeForErrno(err),
                std::string(what) + " /" + std::string(path) + ": " + ErrnoText(err));
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "/" + b;
}

std::string Dirname(const std::string& clean) {
  size_t slash = clean.rfind('/');
  return slash == std::string::npos ? "" : clean.substr(0, slash);
}

std::string Basename(const std::string& clean) {
  size_t slash = clean.rfind('/');
  return slash == std::string::npos ? clean : clean.substr(slash + 1);
}

// `path` made absolute against `cwd` (not cleaned).
std::string Absolute(const std::string& path, const std::string& cwd) {
  if (!path.empty() && path[0] == '/') return path;
  return cwd + "/" + path;
}

// Whether `path` names a directory by its spelling: "a/", "a/.", "/", ".".
bool SpelledAsDir(const std::string& path) {
  if (path.empty()) return false;
  if (path.back() == '/') return true;
  return path == "." || (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0);
}

// ---- Wildcards: Go's filepath.Match, one path component at a time. ----

bool HasWildcard(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '*' || s[i] == '?' || s[i] == '[') return true;
  }
  return false;
}

// Matches a character class starting after '['; sets *end past ']'.
// Returns false with *bad set on a malformed class.
bool MatchClass(std::string_view pat, size_t* pos, char c, bool* bad) {
  size_t i = *pos;
  bool negated = false;
  if (i < pat.size() && pat[i] == '^') {
    negated = true;
    ++i;
  }
  bool matched = false;
  int n = 0;
  for (;;) {
    if (i >= pat.size()) {
      *bad = true;
      return false;
    }
    if (pat[i] == ']' && n > 0) {
      ++i;
      break;
    }
    char lo = pat[i];
    if (lo == '\\') {
      if (++i >= pat.size()) {
        *bad = true;
        return false;
      }
      lo = pat[i];
    }
    ++i;
    char hi = lo;
    if (i + 1 < pat.size() && pat[i] == '-' && pat[i + 1] != ']') {
      ++i;
      hi = pat[i];
      if (hi == '\\') {
        if (++i >= pat.size()) {
          *bad = true;
          return false;
        }
        hi = pat[i];
      }
      ++i;
    }
    if (lo <= c && c <= hi) matched = true;
    ++n;
  }
  *pos = i;
  return matched != negated;
}

// Go filepath.Match for a single component (no '/'); *bad on a malformed
// pattern.
bool MatchComponent(std::string_view pat, std::string_view name, bool* bad) {
  size_t p = 0, n = 0;
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pat.size()) {
      char pc = pat[p];
      if (pc == '*') {
        star_p = ++p;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++n;
        continue;
      }
      if (pc == '[') {
        size_t q = p + 1;
        bool ok = MatchClass(pat, &q, name[n], bad);
        if (*bad) return false;
        if (ok) {
          p = q;
          ++n;
          continue;
        }
      } else {
        char lit = pc;
        size_t q = p + 1;
        if (pc == '\\' && q < pat.size()) {
          lit = pat[q];
          ++q;
        }
        if (lit == name[n]) {
          p = q;
          ++n;
          continue;
        }
      }
    }
    if (star_p != std::string_view::npos) {
      p = star_p;
      n = ++star_n;
      continue;
    }
    return false;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

std::vector<std::string> Split(const std::string& clean) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < clean.size()) {
    size_t j = clean.find('/', i);
    if (j == std::string::npos) j = clean.size();
    out.push_back(clean.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Sorted entry names of the directory `fd` (without "." and "..").
Result<std::vector<std::string>> ListDir(int fd, const std::string& display) {
  int dupfd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return Errno("readdir", display, errno);
  DIR* dir = ::fdopendir(dupfd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dupfd);
    return Errno("readdir", display, err);
  }
  ::rewinddir(dir);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(dir)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return Errno("readdir", display, err);
  std::sort(names.begin(), names.end());
  return names;
}

bool Excluded(const CopySource& src, const std::string& clean) {
  return src.excluded && !clean.empty() && src.excluded(clean);
}

// Paths in `root` matching the wildcard pattern `clean`, sorted per
// directory; excluded paths left out.
Result<std::vector<std::string>> Glob(const RootDir& root, const CopySource& src,
                                      const std::string& clean) {
  std::vector<std::string> cur = {""};
  for (const std::string& comp : Split(clean)) {
    std::vector<std::string> next;
    bool wild = HasWildcard(comp);
    for (const std::string& prefix : cur) {
      if (!wild) {
        std::string cand = Join(prefix, comp);
        if (root.Lstat(cand).ok()) next.push_back(cand);
        continue;
      }
      auto dir = root.OpenAt(prefix, O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) continue;  // not a directory or gone: no matches below it
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir->get(), prefix));
      for (const std::string& name : names) {
        bool bad = false;
        bool m = MatchComponent(comp, name, &bad);
        if (bad) return Status::InvalidArgument("syntax error in pattern /" + clean);
        if (m) next.push_back(Join(prefix, name));
      }
    }
    cur = std::move(next);
  }
  std::vector<std::string> out;
  for (std::string& p : cur) {
    if (!Excluded(src, p)) out.push_back(std::move(p));
  }
  return out;
}

// ---- The copier ----

// A source entry, opened without following symlinks (except where the
// caller chose to follow a top-level one inside the source root).
struct SrcEntry {
  struct stat st {};
  UniqueFd fd;       // O_RDONLY, for regular files and directories
  std::string link;  // symlink target
};

Result<SrcEntry> FinishOpen(SrcEntry e, const std::string& display) {
  if (S_ISLNK(e.st.st_mode)) return e;
  if (S_ISREG(e.st.st_mode) || S_ISDIR(e.st.st_mode)) {
    struct stat now;
    if (::fstat(e.fd.get(), &now) != 0) return Errno("stat", display, errno);
    if ((now.st_mode & S_IFMT) != (e.st.st_mode & S_IFMT)) {
      return Status::FailedPrecondition("copy /" + display +
                                        ": the file changed type while being copied");
    }
    e.st = now;
  }
  return e;
}

// Opens the entry `name` of the directory `dirfd` itself.
Result<SrcEntry> OpenChild(int dirfd, const std::string& name, const std::string& display) {
  SrcEntry e;
  if (::fstatat(dirfd, name.c_str(), &e.st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("lstat", display, errno);
  }
  if (S_ISLNK(e.st.st_mode)) {
    std::string buf(static_cast<size_t>(e.st.st_size > 0 ? e.st.st_size : 255) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
      if (n < 0) return Errno("readlink", display, errno);
      if (static_cast<size_t>(n) < buf.size()) {
        buf.resize(static_cast<size_t>(n));
        break;
      }
      buf.resize(buf.size() * 2);
    }
    e.link = std::move(buf);
    return e;
  }
  if (S_ISREG(e.st.st_mode) || S_ISDIR(e.st.st_mode)) {
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    if (S_ISDIR(e.st.st_mode)) flags |= O_DIRECTORY;
    int fd = ::openat(dirfd, name.c_str(), flags);
    if (fd < 0) return Errno("open", display, errno);
    e.fd.reset(fd);
  }
  return FinishOpen(std::move(e), display);
}

// Opens the top-level source `clean`; with `follow` a symlink is followed
// inside the source root.
Result<SrcEntry> OpenTop(const RootDir& root, const std::string& clean, bool follow) {
  if (!follow && !clean.empty()) {
    std::string name;
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, root.OpenParent(clean, &name));
    return OpenChild(parent.get(), name, clean);
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd path_fd, root.OpenAt(clean, O_PATH));
  SrcEntry e;
  if (::fstat(path_fd.get(), &e.st) != 0) return Errno("stat", clean, errno);
  if (S_ISREG(e.st.st_mode) || S_ISDIR(e.st.st_mode)) {
    // Reopen the object itself (not a path) for reading.
    std::string proc = "/proc/self/fd/" + std::to_string(path_fd.get());
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (S_ISDIR(e.st.st_mode) ? O_DIRECTORY : 0);
    int fd = ::open(proc.c_str(), flags);
    if (fd < 0) return Errno("open", clean, errno);
    e.fd.reset(fd);
  }
  return FinishOpen(std::move(e), clean);
}

// Copies the file's bytes keeping its holes (a sparse file stays sparse).
Status CopyData(int in, int out, const std::string& display) {
  Status st = util::CopySparse(in, out);
  if (st.code() == StatusCode::kResourceExhausted) {
    return NoSpace("/" + display, "writing it in the step's snapshot");
  }
  if (!st.ok()) return Status(st.code(), "copy /" + display + ": " + st.message());
  return Status::Ok();
}

// Copies user.* and security.capability from `in` to `out`, best effort on
// filesystems without xattr support.
Status CopyXattrs(int in, int out, const std::string& display) {
  ssize_t size = ::flistxattr(in, nullptr, 0);
  if (size <= 0) return Status::Ok();
  std::string names(static_cast<size_t>(size), '\0');
  size = ::flistxattr(in, names.data(), names.size());
  if (size < 0) return Status::Ok();
  names.resize(static_cast<size_t>(size));
  for (size_t i = 0; i < names.size();) {
    std::string name = names.c_str() + i;
    i += name.size() + 1;
    if (name.rfind("user.", 0) != 0 && name != "security.capability") continue;
    ssize_t vlen = ::fgetxattr(in, name.c_str(), nullptr, 0);
    if (vlen < 0) continue;
    std::string value(static_cast<size_t>(vlen), '\0');
    vlen = ::fgetxattr(in, name.c_str(), value.data(), value.size());
    if (vlen < 0) continue;
    value.resize(static_cast<size_t>(vlen));
    if (::fsetxattr(out, name.c_str(), value.data(), value.size(), 0) != 0 && errno != ENOTSUP) {
      return Status::IOError("set xattr " + name + " on /" + display + ": " + ErrnoText(errno));
    }
  }
  return Status::Ok();
}

class Copier {
 public:
  Copier(const CopySource& src, const graph::FileCopy& copy,
         const std::optional<util::Identity>& chown, const util::Canceller* cancel)
      : src_(src), copy_(copy), chown_(chown), cancel_(cancel) {}

  // Copies `e` (source path `rel`) to the entry `name` of the destination
  // directory `dirfd` (destination path `display`).
  Status CopyEntry(SrcEntry& e, const std::string& rel, int dirfd, const std::string& name,
                   const std::string& display) {
    // Ctrl-C during a COPY of many or large files stops at the next file.
    if (cancel_ != nullptr && cancel_->cancelled()) return cancel_->Check();
    struct stat existing;
    bool exists = ::fstatat(dirfd, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return Errno("lstat", display, errno);
    mode_t type = e.st.st_mode & S_IFMT;

    if (type == S_IFDIR) {
      if (exists && !S_ISDIR(existing.st_mode)) {
        return Status::FailedPrecondition("cannot copy to non-directory: /" + display);
      }
      bool created = !exists;
      if (created && ::mkdirat(dirfd, name.c_str(), 0700) != 0)
        return Errno("mkdir", display, errno);
      int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Errno("open", display, errno);
      UniqueFd out(fd);
      if (created) KILN_RETURN_IF_ERROR(ApplyOwnerMode(e, out.get(), display));
      KILN_RETURN_IF_ERROR(CopyChildren(e, rel, out.get(), display));
      if (created) return SetTimes(e, out.get(), display);
      return Status::Ok();
    }

    if (exists) {
      if (S_ISDIR(existing.st_mode)) {
        return Status::FailedPrecondition("cannot overwrite directory /" + display +
                                          " with a non-directory");
      }
      if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT)
        return Errno("unlink", display, errno);
    }

    if (type == S_IFREG) {
      int fd =
          ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) return Errno("create", display, errno);
      UniqueFd out(fd);
      KILN_RETURN_IF_ERROR(CopyData(e.fd.get(), out.get(), display));
      KILN_RETURN_IF_ERROR(ApplyOwnerMode(e, out.get(), display));
      return SetTimes(e, out.get(), display);
    }

    if (type == S_IFLNK) {
      if (::symlinkat(e.link.c_str(), dirfd, name.c_str()) != 0)
        return Errno("symlink", display, errno);
    } else if (type == S_IFCHR || type == S_IFBLK || type == S_IFIFO) {
      if (::mknodat(dirfd, name.c_str(), type | 0600, e.st.st_rdev) != 0)
        return Errno("mknod", display, errno);
    } else {
      return Status::Ok();  // sockets are not copied
    }
    auto [uid, gid] = OwnerFor(e);
    if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
      return Errno("chown", display, errno);
    if (type != S_IFLNK) {
      mode_t mode = copy_.mode ? static_cast<mode_t>(*copy_.mode) : e.st.st_mode & 07777;
      if (::fchmodat(dirfd, name.c_str(), mode & 07777, 0) != 0)
        return Errno("chmod", display, errno);
    }
    struct timespec ts[2] = {e.st.st_atim, e.st.st_mtim};
    if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
      return Errno("utimes", display, errno);
    return Status::Ok();
  }

  // Copies the entries of the source directory `e` into `outfd`.
  Status CopyChildren(SrcEntry& e, const std::string& rel, int outfd, const std::string& display) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(e.fd.get(), rel));
    for (const std::string& name : names) {
      std::string child_rel = Join(rel, name);
      bool hidden = Excluded(src_, child_rel);
      if (hidden && !MaySearch(child_rel)) continue;
      KILN_ASSIGN_OR_RETURN(SrcEntry child, OpenChild(e.fd.get(), name, child_rel));
      if (hidden) {
        if (!S_ISDIR(child.st.st_mode)) continue;
        KILN_ASSIGN_OR_RETURN(bool visible, HasVisible(child, child_rel));
        if (!visible) continue;
      }
      KILN_RETURN_IF_ERROR(CopyEntry(child, child_rel, outfd, name, Join(display, name)));
    }
    return Status::Ok();
  }

  // Whether the excluded path `rel` must be searched for included paths.
  bool MaySearch(const std::string& rel) const {
    return !src_.may_include_below || src_.may_include_below(rel);
  }

  // Whether the directory `e` (itself excluded) holds an included path.
  Result<bool> HasVisible(const SrcEntry& e, const std::string& rel) const {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(e.fd.get(), rel));
    for (const std::string& name : names) {
      std::string child_rel = Join(rel, name);
      if (!Excluded(src_, child_rel)) return true;
      if (!MaySearch(child_rel)) continue;
      struct stat st;
      if (::fstatat(e.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(st.st_mode)) {
        continue;
      }
      KILN_ASSIGN_OR_RETURN(SrcEntry child, OpenChild(e.fd.get(), name, child_rel));
      KILN_ASSIGN_OR_RETURN(bool visible, HasVisible(child, child_rel));
      if (visible) return true;
    }
    return false;
  }

  std::pair<uid_t, gid_t> OwnerFor(const SrcEntry& e) const {
    if (chown_) return {chown_->uid, chown_->gid};
    if (src_.keep_owner) return {e.st.st_uid, e.st.st_gid};
    return {0, 0};
  }

 private:
  Status ApplyOwnerMode(const SrcEntry& e, int out, const std::string& display) {
    auto [uid, gid] = OwnerFor(e);
    if (::fchown(out, uid, gid) != 0) return Errno("chown", display, errno);
    KILN_RETURN_IF_ERROR(CopyXattrs(e.fd.get(), out, display));
    mode_t mode = copy_.mode ? static_cast<mode_t>(*copy_.mode) : e.st.st_mode & 07777;
    if (::fchmod(out, mode & 07777) != 0) return Errno("chmod", display, errno);
    return Status::Ok();
  }

  Status SetTimes(const SrcEntry& e, int out, const std::string& display) {
    struct timespec ts[2] = {e.st.st_atim, e.st.st_mtim};
    if (::futimens(out, ts) != 0) return Errno("utimes", display, errno);
    return Status::Ok();
  }

  const CopySource& src_;
  const graph::FileCopy& copy_;
  const std::optional<util::Identity>& chown_;
  const util::Canceller* cancel_;  // may be null
};

// ---- ADD: local archive unpacking ----

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

struct DirTimes {
  std::string path;
  struct timespec ts[2];
};

// Extracts the archive read by `a` (first header already read into
// `entry`) into `root`, which is the destination directory.
Status Extract(struct archive* a, struct archive_entry* entry, const RootDir& root,
               const std::optional<util::Identity>& chown) {
  auto fail = [](const std::string& msg) { return Status::IOError(msg); };
  std::vector<DirTimes> dirs;
  for (;;) {
    std::string clean =
        util::CleanInRoot(archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "");
    if (!clean.empty()) {
      std::string display = "/" + clean;
      KILN_RETURN_IF_ERROR(root.MkdirAll(Dirname(clean), 0755, chown ? int(chown->uid) : -1,
                                         chown ? int(chown->gid) : -1));
      std::string name;
      KILN_ASSIGN_OR_RETURN(UniqueFd parent, root.OpenParent(clean, &name));
      int pfd = parent.get();
      mode_t type = archive_entry_filetype(entry);
      const char* hardlink = archive_entry_hardlink(entry);
      struct stat existing;
      bool exists = ::fstatat(pfd, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
      if (exists && !(type == AE_IFDIR && !hardlink && S_ISDIR(existing.st_mode))) {
        KILN_RETURN_IF_ERROR(root.RemoveAll(clean));
      }
      uid_t uid = chown ? chown->uid : static_cast<uid_t>(archive_entry_uid(entry));
      gid_t gid = chown ? chown->gid : static_cast<gid_t>(archive_entry_gid(entry));
      mode_t perm = archive_entry_perm(entry) & 07777;
      struct timespec ts[2];
      ts[0].tv_sec = archive_entry_atime_is_set(entry) ? archive_entry_atime(entry)
                                                       : archive_entry_mtime(entry);
      ts[0].tv_nsec = archive_entry_atime_is_set(entry) ? archive_entry_atime_nsec(entry) : 0;
      ts[1].tv_sec = archive_entry_mtime(entry);
      ts[1].tv_nsec = archive_entry_mtime_nsec(entry);
      bool set_meta = true;
      if (hardlink) {
        std::string target = util::CleanInRoot(hardlink);
        std::string tname;
        KILN_ASSIGN_OR_RETURN(UniqueFd tparent, root.OpenParent(target, &tname));
        if (tname.empty() || ::linkat(tparent.get(), tname.c_str(), pfd, name.c_str(), 0) != 0) {
          return fail("link " + display + " to /" + target + ": " +
                      ErrnoText(tname.empty() ? EINVAL : errno));
        }
        set_meta = false;
      } else if (type == AE_IFDIR) {
        if (!exists && ::mkdirat(pfd, name.c_str(), 0700) != 0) return Errno("mkdir", clean, errno);
        DirTimes dt;
        dt.path = clean;
        dt.ts[0] = ts[0];
        dt.ts[1] = ts[1];
        dirs.push_back(dt);
      } else if (type == AE_IFREG) {
        int fd =
            ::openat(pfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) return Errno("create", clean, errno);
        UniqueFd out(fd);
        for (;;) {
          const void* buf;
          size_t size;
          la_int64_t offset;
          int r = archive_read_data_block(a, &buf, &size, &offset);
          if (r == ARCHIVE_EOF) break;
          if (r < ARCHIVE_WARN) return fail("read " + display + ": " + archive_error_string(a));
          // Holes of sparse entries and runs of zero blocks stay holes.
          Status wrote = util::WriteSparse(
              out.get(), std::string_view(static_cast<const char*>(buf), size), offset);
          if (wrote.code() == StatusCode::kResourceExhausted) {
            return NoSpace("/" + clean, "writing it in the step's snapshot");
          }
          if (!wrote.ok()) return Status(wrote.code(), "/" + clean + ": " + wrote.message());
        }
        if (::ftruncate(out.get(), archive_entry_size(entry)) != 0)
          return Errno("truncate", clean, errno);
      } else if (type == AE_IFLNK) {
        const char* target = archive_entry_symlink(entry);
        if (::symlinkat(target ? target : "", pfd, name.c_str()) != 0)
          return Errno("symlink", clean, errno);
      } else if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO) {
        dev_t dev = makedev(archive_entry_rdevmajor(entry), archive_entry_rdevminor(entry));
        if (::mknodat(pfd, name.c_str(), type | 0600, dev) != 0)
          return Errno("mknod", clean, errno);
      } else {
        set_meta = false;  // sockets and unknown types are skipped
      }
      if (set_meta) {
        if (::fchownat(pfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
          return Errno("chown", clean, errno);
        if (type != AE_IFLNK && ::fchmodat(pfd, name.c_str(), perm, 0) != 0)
          return Errno("chmod", clean, errno);
        if (type != AE_IFDIR && ::utimensat(pfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
          return Errno("utimes", clean, errno);
        }
      }
    }
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail(std::string("read archive: ") + archive_error_string(a));
  }
  // Directory times last, deepest first, so that creating entries does not
  // disturb them.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    std::string name;
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, root.OpenParent(it->path, &name));
    if (::utimensat(parent.get(), name.c_str(), it->ts, AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno("utimes", it->path, errno);
    }
  }
  return Status::Ok();
}

// If the regular file `e` is a tar archive (plain, gzip, bzip2 or xz),
// extracts it into the destination directory `dest_clean` and returns true;
// returns false for any other file.
Result<bool> TryUnpack(const SrcEntry& e, const RootDir& dest, const std::string& dest_clean,
                       const std::optional<util::Identity>& chown, const std::string& what) {
  if (!S_ISREG(e.st.st_mode) || e.st.st_size == 0) return false;
  // A fresh open file description (a dup would share the offset). Opened
  // before the archive handle so that it outlives it: archive_read_free
  // still reads through the descriptor it was given.
  std::string proc = "/proc/self/fd/" + std::to_string(e.fd.get());
  int fd = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", what, errno);
  UniqueFd in(fd);
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  if (!a) return Status::Internal(what + ": archive_read_new failed");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_fd(a.get(), in.get(), 1 << 16) != ARCHIVE_OK) return false;
  struct archive_entry* entry = nullptr;
  int r = archive_read_next_header(a.get(), &entry);
  if (r == ARCHIVE_EOF) {
    // A recognised but empty archive: nothing to extract, but it is one.
    if (archive_format(a.get()) == 0) return false;
    KILN_RETURN_IF_ERROR(dest.MkdirAll(dest_clean, 0755, chown ? int(chown->uid) : -1,
                                       chown ? int(chown->gid) : -1));
    return true;
  }
  if (r < ARCHIVE_WARN) return false;
  KILN_RETURN_IF_ERROR(
      dest.MkdirAll(dest_clean, 0755, chown ? int(chown->uid) : -1, chown ? int(chown->gid) : -1));
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, dest.OpenAt(dest_clean, O_RDONLY | O_DIRECTORY));
  // The destination directory is the root of the extraction: entries can
  // not reach outside it.
  KILN_ASSIGN_OR_RETURN(RootDir sub, RootDir::Open("/proc/self/fd/" + std::to_string(dir.get())));
  // Errors name paths inside the extraction directory; say which one.
  Status st = Extract(a.get(), entry, sub, chown);
  if (!st.ok()) return Status(st.code(), what + " into /" + dest_clean + ": " + st.message());
  return true;
}

// ---- Actions ----

std::string OwnerSpec(const graph::Owner& o) {
  if (o.group.empty()) return o.user;
  return o.user + ":" + o.group;
}

Result<std::optional<util::Identity>> ResolveOwner(const RootDir& dest,
                                                   const std::optional<graph::Owner>& owner,
                                                   const std::string& what) {
  if (!owner) return std::optional<util::Identity>();
  auto id = util::ResolveUser(dest, OwnerSpec(*owner));
  if (!id.ok()) return id.status().Annotate(what);
  return std::optional<util::Identity>(std::move(id).value());
}

Status DoCopy(const RootDir& dest, const graph::FileCopy& c, const std::vector<CopySource>& sources,
              const FileActionContext& ctx) {
  std::string what = "copy " + c.src;
  if (c.source_input < 0 || static_cast<size_t>(c.source_input) >= sources.size()) {
    return Status::InvalidArgument(what + ": source input " + std::to_string(c.source_input) +
                                   " out of range (" + std::to_string(sources.size()) + " inputs)");
  }
  const CopySource& src = sources[static_cast<size_t>(c.source_input)];
  std::string src_clean = util::CleanInRoot(c.src);
  std::string dest_abs = Absolute(c.dest, ctx.cwd);
  std::string dest_clean = util::CleanInRoot(dest_abs);
  bool dest_is_dir = SpelledAsDir(dest_abs) || dest_clean.empty();

  // Which source paths the action names.
  std::vector<std::string> matches;
  bool wildcard = c.allow_wildcard && HasWildcard(src_clean);
  if (wildcard) {
    if (src.root != nullptr) {
      auto globbed = Glob(*src.root, src, src_clean);
      if (!globbed.ok()) return globbed.status().Annotate(what);
      matches = std::move(globbed).value();
    }
    if (matches.empty()) {
      if (c.allow_empty_wildcard) return Status::Ok();
      return Status::NotFound(what + ": no source files were specified: no files match /" +
                              src_clean);
    }
    if (matches.size() > 1) dest_is_dir = true;
  } else {
    bool present = src_clean.empty() || (src.root != nullptr && src.root->Lstat(src_clean).ok());
    if (!present || Excluded(src, src_clean)) {
      return Status::NotFound(what + ": lstat /" + src_clean + ": no such file or directory");
    }
    matches.push_back(src_clean);
  }

  KILN_ASSIGN_OR_RETURN(std::optional<util::Identity> chown, ResolveOwner(dest, c.owner, what));
  int cuid = chown ? static_cast<int>(chown->uid) : -1;
  int cgid = chown ? static_cast<int>(chown->gid) : -1;

  if (!c.create_dest_path) {
    std::string must = dest_is_dir ? dest_clean : Dirname(dest_clean);
    auto st = dest.Stat(must);
    if (!st.ok() || !S_ISDIR(st->st_mode)) {
      return Status::NotFound(what + ": destination directory /" + must + " does not exist");
    }
  }
  if (dest_is_dir) KILN_RETURN_IF_ERROR(dest.MkdirAll(dest_clean, 0755, cuid, cgid).Annotate(what));

  Copier copier(src, c, chown, ctx.cancel);
  for (const std::string& m : matches) {
    if (src.root == nullptr) {  // the root of scratch: an empty directory
      KILN_RETURN_IF_ERROR(dest.MkdirAll(dest_clean, 0755, cuid, cgid).Annotate(what));
      continue;
    }
    auto opened = OpenTop(*src.root, m, c.follow_symlinks);
    if (!opened.ok()) {
      if (opened.status().code() == StatusCode::kNotFound) {
        return Status::NotFound(what + ": lstat /" + m + ": no such file or directory");
      }
      return opened.status().Annotate(what);
    }
    SrcEntry e = std::move(opened).value();

    if (c.attempt_unpack && S_ISREG(e.st.st_mode)) {
      KILN_ASSIGN_OR_RETURN(bool unpacked,
                            TryUnpack(e, dest, dest_clean, chown, what + ": unpack /" + m));
      if (unpacked) continue;
    }

    auto dest_st = dest.Stat(dest_clean);
    bool dest_dir_exists = dest_st.ok() && S_ISDIR(dest_st->st_mode);
    if (S_ISDIR(e.st.st_mode) && c.dir_copy_contents) {
      if (dest_dir_exists) {
        // Merge into the existing directory (symlinks on the way resolved
        // inside the destination root); its metadata stays.
        KILN_ASSIGN_OR_RETURN(UniqueFd out, dest.OpenAt(dest_clean, O_RDONLY | O_DIRECTORY));
        KILN_RETURN_IF_ERROR(copier.CopyChildren(e, m, out.get(), dest_clean).Annotate(what));
        continue;
      }
      if (dest_st.ok()) {
        return Status::FailedPrecondition(what + ": cannot copy to non-directory: /" + dest_clean);
      }
    }
    std::string target = dest_clean;
    if (dest_dir_exists && !(S_ISDIR(e.st.st_mode) && c.dir_copy_contents)) {
      std::string base = Basename(m);
      if (base.empty()) {
        // The source root copied as a directory into an existing one: merge.
        KILN_ASSIGN_OR_RETURN(UniqueFd out, dest.OpenAt(dest_clean, O_RDONLY | O_DIRECTORY));
        KILN_RETURN_IF_ERROR(copier.CopyChildren(e, m, out.get(), dest_clean).Annotate(what));
        continue;
      }
      target = Join(dest_clean, base);
    }
    if (target.empty()) {
      return Status::InvalidArgument(what +
                                     ": cannot replace the destination root with a non-directory");
    }
    if (c.create_dest_path) {
      KILN_RETURN_IF_ERROR(dest.MkdirAll(Dirname(target), 0755, cuid, cgid).Annotate(what));
    }
    std::string name;
    auto parent = dest.OpenParent(target, &name);
    if (!parent.ok()) return parent.status().Annotate(what);
    KILN_RETURN_IF_ERROR(copier.CopyEntry(e, m, parent->get(), name, target).Annotate(what));
  }
  return Status::Ok();
}

Status DoMkdir(const RootDir& dest, const graph::FileMkdir& m, const FileActionContext& ctx) {
  std::string clean = util::CleanInRoot(Absolute(m.path, ctx.cwd));
  std::string what = "mkdir /" + clean;
  KILN_ASSIGN_OR_RETURN(std::optional<util::Identity> owner, ResolveOwner(dest, m.owner, what));
  int uid = owner ? static_cast<int>(owner->uid) : -1;
  int gid = owner ? static_cast<int>(owner->gid) : -1;
  if (clean.empty()) return Status::Ok();
  if (m.make_parents) {
    Status st = dest.MkdirAll(clean, m.mode & 07777, uid, gid);
    if (!st.ok()) return Status(st.code(), what + ": " + st.message());
    return Status::Ok();
  }
  std::string name;
  auto parent = dest.OpenParent(clean, &name);
  if (!parent.ok()) {
    if (parent.status().code() == StatusCode::kNotFound) {
      return Status::NotFound(what + ": parent directory /" + Dirname(clean) + " does not exist");
    }
    return parent.status().Annotate(what);
  }
  if (::mkdirat(parent->get(), name.c_str(), m.mode & 07777) != 0) {
    int err = errno;
    struct stat st;
    if (err == EEXIST && ::fstatat(parent->get(), name.c_str(), &st, 0) == 0 &&
        S_ISDIR(st.st_mode)) {
      return Status::Ok();
    }
    if (err == EEXIST) return Status::FailedPrecondition(what + ": a non-directory is in the way");
    return Status(CodeForErrno(err), what + ": " + ErrnoText(err));
  }
  if (uid >= 0 && ::fchownat(parent->get(), name.c_str(), static_cast<uid_t>(uid),
                             static_cast<gid_t>(gid), AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("chown", clean, errno);
  }
  if (::fchmodat(parent->get(), name.c_str(), m.mode & 07777, 0) != 0)
    return Errno("chmod", clean, errno);
  return Status::Ok();
}

Status DoMkfile(const RootDir& dest, const graph::FileMkfile& m, const FileActionContext& ctx) {
  std::string clean = util::CleanInRoot(Absolute(m.path, ctx.cwd));
  std::string what = "mkfile /" + clean;
  if (clean.empty()) return Status::InvalidArgument(what + ": the root is a directory");
  KILN_ASSIGN_OR_RETURN(std::optional<util::Identity> owner, ResolveOwner(dest, m.owner, what));
  std::string name;
  auto parent = dest.OpenParent(clean, &name);
  if (!parent.ok()) {
    if (parent.status().code() == StatusCode::kNotFound) {
      return Status::NotFound(what + ": parent directory /" + Dirname(clean) + " does not exist");
    }
    return parent.status().Annotate(what);
  }
  int pfd = parent->get();
  struct stat st;
  if (::fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode))
      return Status::FailedPrecondition(what + ": a directory is in the way");
    if (::unlinkat(pfd, name.c_str(), 0) != 0) return Errno("unlink", clean, errno);
  }
  int fd = ::openat(pfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", clean, errno);
  UniqueFd out(fd);
  KILN_RETURN_IF_ERROR(util::FdSink(out.get())(m.data).Annotate(what));
  uid_t uid = owner ? owner->uid : 0;
  gid_t gid = owner ? owner->gid : 0;
  if (::fchown(out.get(), uid, gid) != 0) return Errno("chown", clean, errno);
  if (::fchmod(out.get(), m.mode & 07777) != 0) return Errno("chmod", clean, errno);
  return Status::Ok();
}

Status DoRm(const RootDir& dest, const graph::FileRm& r, const FileActionContext& ctx) {
  std::string clean = util::CleanInRoot(Absolute(r.path, ctx.cwd));
  std::string what = "rm /" + clean;
  std::vector<std::string> targets;
  if (r.allow_wildcard && HasWildcard(clean)) {
    CopySource all;
    KILN_ASSIGN_OR_RETURN(targets, Glob(dest, all, clean));
    if (targets.empty() && !r.allow_not_found) {
      return Status::NotFound(what + ": no files match /" + clean);
    }
  } else {
    if (!r.allow_not_found && !dest.Lstat(clean).ok()) {
      return Status::NotFound(what + ": no such file or directory");
    }
    targets.push_back(clean);
  }
  for (const std::string& t : targets) {
    if (t.empty()) return Status::InvalidArgument(what + ": cannot remove the root");
    Status st = dest.RemoveAll(t);
    if (!st.ok()) return Status(st.code(), what + ": " + st.message());
  }
  return Status::Ok();
}

}  // namespace

Status ApplyFileActions(const util::RootDir& dest, const std::vector<graph::FileAction>& actions,
                        const std::vector<CopySource>& sources, const FileActionContext& context) {
  for (const graph::FileAction& action : actions) {
    if (context.cancel != nullptr) KILN_RETURN_IF_ERROR(context.cancel->Check());
    Status st;
    if (const auto* c = std::get_if<graph::FileCopy>(&action)) {
      st = DoCopy(dest, *c, sources, context);
    } else if (const auto* m = std::get_if<graph::FileMkdir>(&action)) {
      st = DoMkdir(dest, *m, context);
    } else if (const auto* f = std::get_if<graph::FileMkfile>(&action)) {
      st = DoMkfile(dest, *f, context);
    } else if (const auto* r = std::get_if<graph::FileRm>(&action)) {
      st = DoRm(dest, *r, context);
    }
    KILN_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

}  // namespace kiln::ops
