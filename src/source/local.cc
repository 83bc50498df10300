#include "source/local.h"

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "util/sqlite.h"

namespace kiln::source {
namespace {

constexpr std::string_view kChecksumVersion = "kiln-context-checksum-v1\n";

std::string ErrnoText(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

bool HasMeta(std::string_view s) { return s.find_first_of("*?[\\") != std::string_view::npos; }

std::vector<std::string> SplitPath(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) slash = s.size();
    if (slash > start) out.emplace_back(s.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string Join(const std::string& dir, std::string_view name) {
  if (dir.empty() || dir == ".") return std::string(name);
  std::string out = dir;
  out += '/';
  out += name;
  return out;
}

// The validity stamp of a file's memoized content hash (see local.h): any
// write changes mtime or ctime, a replacement changes the inode.
struct Stamp {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  int64_t ino = 0;
  bool operator==(const Stamp&) const = default;
};

Stamp StampOf(const struct stat& st) {
  return Stamp{static_cast<int64_t>(st.st_size),
               static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
               static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
               static_cast<int64_t>(st.st_ino)};
}

struct IndexRow {
  Stamp stamp;
  std::string hex;  // sha256 of the content
};

// Whether some pattern of `m` could match a path strictly below `dir`
// (component-wise wildcard match of the pattern's leading components; any
// `**` may reach anywhere).
bool AnyPatternBelow(const IgnoreMatcher& m, const std::vector<std::string>& parts) {
  for (const IgnoreMatcher::Pattern& p : m.patterns()) {
    if (!p.exclusion) continue;
    bool possible = true;
    bool deep = false;
    for (size_t k = 0; k < parts.size(); ++k) {
      if (k >= p.dirs.size()) {
        possible = false;
        break;
      }
      if (p.dirs[k].find("**") != std::string::npos) {
        deep = true;
        break;
      }
      auto r = PathMatch(p.dirs[k], parts[k]);
      if (!r.ok() || !*r) {
        possible = false;
        break;
      }
    }
    if (deep || (possible && p.dirs.size() > parts.size())) return true;
  }
  return false;
}

}  // namespace

struct LocalContext::Impl {
  Impl(LocalOptions o, std::filesystem::path d, util::RootDir r)
      : options(std::move(o)), dir(std::move(d)), root(std::move(r)) {}
  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  LocalOptions options;
  std::filesystem::path dir;  // absolute, symlinks resolved
  util::RootDir root;
  std::optional<IgnoreMatcher> includes;  // include_patterns, when any

  // The persistent index; null without index_dir.
  sqlite3* db = nullptr;
  std::filesystem::path index_path;
  mutable std::mutex mu;  // guards db, index, index_loaded
  mutable bool index_loaded = false;
  mutable std::unordered_map<std::string, IndexRow> index;

  mutable std::atomic<uint64_t> files_read{0};

  // A path is selected when an include pattern (if any) matches it or a
  // parent, and .dockerignore does not exclude it.
  bool Selected(const std::string& path) const {
    if (path.empty() || path == ".") return true;
    if (includes && !includes->Excluded(path)) return false;
    return !options.excludes.Excluded(path);
  }

  // Whether an unselected directory may still hold selected entries.
  bool MayHoldSelected(const std::string& path) const {
    if (includes && !includes->Excluded(path) && !AnyPatternBelow(*includes, SplitPath(path))) {
      return false;
    }
    if (options.excludes.Excluded(path) && !options.excludes.MayIncludeBelow(path)) return false;
    return true;
  }

  Status IndexError(std::string_view what) const {
    if (auto full = util::SqliteNoSpace(db, index_path, "updating the context index")) {
      return *full;
    }
    return Status::IOError("context index " + index_path.string() + ": " + std::string(what) +
                           ": " + (db ? sqlite3_errmsg(db) : "cannot open") +
                           " (the index is a cache: delete the file to rebuild it)");
  }

  Status OpenIndex() {
    if (options.index_dir.empty()) return Status::Ok();
    index_path = options.index_dir / (std::string(util::Sha256Of(dir.string()).hex()) + ".db");
    // util::OpenSqlite: WAL and the schema set up safely while other kiln
    // processes open the same index (issue 15, failure 8), mode 0600.
    util::SqliteOptions o;
    o.kind = "context index";
    o.hint = " (the index is a cache: delete the file to rebuild it)";
    o.full_mutex = true;
    o.setup = [](sqlite3* handle) -> Status {
      const char* schema =
          "CREATE TABLE IF NOT EXISTS files ("
          " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
          " ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL, sha256 TEXT NOT NULL) WITHOUT ROWID;";
      if (sqlite3_exec(handle, schema, nullptr, nullptr, nullptr) != SQLITE_OK) {
        return Status::IOError(std::string("creating the schema: ") + sqlite3_errmsg(handle));
      }
      return Status::Ok();
    };
    KILN_ASSIGN_OR_RETURN(util::SqliteHandle handle, util::OpenSqlite(index_path, o));
    db = handle.release();
    return Status::Ok();
  }

  // Loads the index into memory on first use. Requires mu.
  Status LoadIndexLocked() const {
    if (index_loaded || db == nullptr) return Status::Ok();
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT path, size, mtime_ns, ctime_ns, ino, sha256 FROM files", -1,
                           &stmt, nullptr) != SQLITE_OK) {
      return IndexError("read");
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      IndexRow row;
      std::string path(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                       sqlite3_column_bytes(stmt, 0));
      row.stamp = Stamp{sqlite3_column_int64(stmt, 1), sqlite3_column_int64(stmt, 2),
                        sqlite3_column_int64(stmt, 3), sqlite3_column_int64(stmt, 4)};
      row.hex.assign(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 5)),
                     sqlite3_column_bytes(stmt, 5));
      index.emplace(std::move(path), std::move(row));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return IndexError("read");
    index_loaded = true;
    return Status::Ok();
  }

  // Stores new rows (memory and, with an index file, on disk).
  Status SaveRows(std::vector<std::pair<std::string, IndexRow>>& rows) const {
    std::lock_guard<std::mutex> lock(mu);
    if (db != nullptr && !rows.empty()) {
      if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        return IndexError("begin");
      }
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db,
                             "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, ino, "
                             "sha256) VALUES (?, ?, ?, ?, ?, ?)",
                             -1, &stmt, nullptr) != SQLITE_OK) {
        Status st = IndexError("write");
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
      }
      for (const auto& [path, row] : rows) {
        sqlite3_bind_text(stmt, 1, path.data(), static_cast<int>(path.size()), SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, row.stamp.size);
        sqlite3_bind_int64(stmt, 3, row.stamp.mtime_ns);
        sqlite3_bind_int64(stmt, 4, row.stamp.ctime_ns);
        sqlite3_bind_int64(stmt, 5, row.stamp.ino);
        sqlite3_bind_text(stmt, 6, row.hex.data(), static_cast<int>(row.hex.size()), SQLITE_STATIC);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
          Status st = IndexError("write");
          sqlite3_finalize(stmt);
          sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
          return st;
        }
        sqlite3_reset(stmt);
      }
      sqlite3_finalize(stmt);
      if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        Status st = IndexError("commit");
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
      }
    }
    for (auto& [path, row] : rows) index[path] = std::move(row);
    return Status::Ok();
  }

  Status WalkError(const std::string& rel, std::string_view op, int err) const {
    return Status(
        err == ENOENT ? StatusCode::kNotFound : StatusCode::kIOError,
        std::string(op) + " " + (dir / rel).string() + " in the build context: " + ErrnoText(err));
  }

  // Appends the present entries below the directory `rel` (open as `fd`),
  // each directory before its contents.
  Status WalkBelow(int fd, const std::string& rel, std::vector<ContextEntry>* out) const {
    int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return WalkError(rel, "read directory", errno);
    DIR* d = ::fdopendir(dup_fd);
    if (d == nullptr) {
      int err = errno;
      ::close(dup_fd);
      return WalkError(rel, "read directory", err);
    }
    ::rewinddir(d);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return WalkError(rel, "read directory", err);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string child = Join(rel, name);
      struct stat st;
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed while we walk
        return WalkError(child, "lstat", errno);
      }
      bool selected = Selected(child);
      if (S_ISDIR(st.st_mode)) {
        if (!selected && !MayHoldSelected(child)) continue;
        util::UniqueFd cfd(
            ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!cfd.valid()) {
          if (errno == ENOENT) continue;
          return WalkError(child, "open", errno);
        }
        size_t mark = out->size();
        out->push_back(ContextEntry{child, st});
        KILN_RETURN_IF_ERROR(WalkBelow(cfd.get(), child, out));
        if (!selected && out->size() == mark + 1) out->pop_back();
      } else if (selected) {
        out->push_back(ContextEntry{child, st});
      }
    }
    return Status::Ok();
  }

  // Whether the entry `path` (lstat `st`) is part of the context: selected,
  // or a directory holding selected entries.
  Result<bool> Present(const std::string& path, const struct stat& st) const {
    if (Selected(path)) return true;
    if (!S_ISDIR(st.st_mode) || !MayHoldSelected(path)) return false;
    auto fd = root.OpenAt(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.ok()) return fd.status();
    std::vector<ContextEntry> below;
    KILN_RETURN_IF_ERROR(WalkBelow(fd->get(), path, &below));
    return !below.empty();
  }

  // The sha256 (hex) of a regular file, counting the read; `*stamp` becomes
  // the stamp that was valid for the whole read, or stays empty when the
  // file changed meanwhile (its hash is then not memoized).
  Result<std::string> HashFile(const std::string& path, std::optional<Stamp>* stamp,
                               std::vector<char>& buf) const {
    auto fd = root.OpenAt(path, O_RDONLY | O_NOFOLLOW);
    if (!fd.ok()) return fd.status();
    struct stat before;
    if (::fstat(fd->get(), &before) != 0) return WalkError(path, "stat", errno);
    util::Sha256 hash;
    while (true) {
      ssize_t n = ::read(fd->get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return WalkError(path, "read", errno);
      }
      if (n == 0) break;
      hash.Update(buf.data(), static_cast<size_t>(n));
    }
    struct stat after;
    if (::fstat(fd->get(), &after) != 0) return WalkError(path, "stat", errno);
    files_read.fetch_add(1, std::memory_order_relaxed);
    if (StampOf(before) == StampOf(after) && hash.size() == static_cast<uint64_t>(after.st_size)) {
      *stamp = StampOf(after);
    }
    return std::string(hash.Finish().hex());
  }
};

LocalContext::LocalContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LocalContext::~LocalContext() = default;

Result<std::shared_ptr<LocalContext>> LocalContext::Open(LocalOptions options) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::canonical(options.dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return Status::NotFound("build context directory " + options.dir.string() +
                              " does not exist");
    }
    return Status::IOError("build context directory " + options.dir.string() + ": " + ec.message());
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::InvalidArgument("build context " + options.dir.string() + " is not a directory");
  }
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(dir));
  std::vector<std::string> include_patterns;
  for (const std::string& p : options.include_patterns) {
    if (!p.empty()) include_patterns.push_back(p);
  }
  auto impl = std::make_unique<Impl>(std::move(options), dir, std::move(root));
  if (!include_patterns.empty()) {
    auto m = IgnoreMatcher::FromPatterns(include_patterns);
    if (!m.ok()) return m.status().Annotate("local.includepattern");
    impl->includes = std::move(*m);
  }
  KILN_RETURN_IF_ERROR(impl->OpenIndex());
  return std::shared_ptr<LocalContext>(new LocalContext(std::move(impl)));
}

const std::filesystem::path& LocalContext::dir() const { return impl_->dir; }
const util::RootDir& LocalContext::root() const { return impl_->root; }
uint64_t LocalContext::files_read() const { return impl_->files_read.load(); }

bool LocalContext::Excluded(std::string_view path) const {
  std::string clean = util::CleanInRoot(path);
  return !impl_->Selected(clean);
}

bool LocalContext::MayIncludeBelow(std::string_view dir) const {
  return impl_->MayHoldSelected(util::CleanInRoot(dir));
}

Result<std::vector<ContextEntry>> LocalContext::Match(std::string_view pattern) const {
  std::vector<ContextEntry> out;
  std::vector<std::string> parts = SplitPath(pattern);
  if (!HasMeta(pattern)) {
    std::string clean = util::CleanInRoot(pattern);
    auto st = impl_->root.Lstat(clean.empty() ? "." : clean);
    if (!st.ok()) {
      if (st.status().code() == StatusCode::kNotFound ||
          st.status().code() == StatusCode::kFailedPrecondition) {
        return out;
      }
      return st.status();
    }
    if (clean.empty()) {
      out.push_back(ContextEntry{".", *st});
      return out;
    }
    KILN_ASSIGN_OR_RETURN(bool present, impl_->Present(clean, *st));
    if (present) out.push_back(ContextEntry{clean, *st});
    return out;
  }
  // Wildcards: expand component by component, as a shell glob would.
  std::vector<std::string> current{""};
  for (size_t k = 0; k < parts.size(); ++k) {
    const std::string& part = parts[k];
    if (part == ".") continue;
    std::vector<std::string> next;
    if (part == "..") {
      for (const std::string& c : current) {
        next.push_back(util::CleanInRoot(c + "/.."));
      }
    } else if (!HasMeta(part)) {
      for (const std::string& c : current) next.push_back(Join(c, part));
    } else {
      for (const std::string& c : current) {
        auto fd = impl_->root.OpenAt(c.empty() ? "." : c, O_RDONLY | O_DIRECTORY);
        if (!fd.ok()) continue;  // absent or not a directory: no match there
        DIR* d = ::fdopendir(fd->release());
        if (d == nullptr) continue;
        std::vector<std::string> names;
        while (struct dirent* e = ::readdir(d)) {
          std::string_view n = e->d_name;
          if (n == "." || n == "..") continue;
          auto m = PathMatch(part, n);
          if (!m.ok()) {
            ::closedir(d);
            return Status::InvalidArgument("invalid source pattern \"" + std::string(pattern) +
                                           "\": " + m.status().message());
          }
          if (*m) names.emplace_back(n);
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& n : names) next.push_back(Join(c, n));
      }
    }
    current = std::move(next);
  }
  std::sort(current.begin(), current.end());
  current.erase(std::unique(current.begin(), current.end()), current.end());
  for (const std::string& path : current) {
    auto st = impl_->root.Lstat(path.empty() ? "." : path);
    if (!st.ok()) {
      if (st.status().code() == StatusCode::kNotFound ||
          st.status().code() == StatusCode::kFailedPrecondition) {
        continue;
      }
      return st.status();
    }
    if (path.empty()) {
      out.push_back(ContextEntry{".", *st});
      continue;
    }
    KILN_ASSIGN_OR_RETURN(bool present, impl_->Present(path, *st));
    if (present) out.push_back(ContextEntry{path, *st});
  }
  return out;
}

Result<util::Digest> LocalContext::Checksum(const std::vector<std::string>& patterns) const {
  const Impl& impl = *impl_;
  // Every selected entry, by path.
  std::map<std::string, struct stat> entries;
  std::vector<std::string> sources = patterns.empty() ? std::vector<std::string>{"."} : patterns;
  for (const std::string& pattern : sources) {
    KILN_ASSIGN_OR_RETURN(std::vector<ContextEntry> matched, Match(pattern));
    for (const ContextEntry& e : matched) {
      entries.emplace(e.path, e.st);
      if (!S_ISDIR(e.st.st_mode)) continue;
      auto fd = impl.root.OpenAt(e.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!fd.ok()) return fd.status();
      std::vector<ContextEntry> below;
      KILN_RETURN_IF_ERROR(impl.WalkBelow(fd->get(), e.path, &below));
      for (ContextEntry& b : below) entries.emplace(std::move(b.path), b.st);
    }
  }

  // Content hashes: from the index when the stamp still matches.
  std::unordered_map<std::string, std::string> hashes;
  std::vector<const std::string*> todo;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    KILN_RETURN_IF_ERROR(impl.LoadIndexLocked());
    for (const auto& [path, st] : entries) {
      if (!S_ISREG(st.st_mode)) continue;
      auto it = impl.index.find(path);
      if (it != impl.index.end() && it->second.stamp == StampOf(st)) {
        hashes.emplace(path, it->second.hex);
      } else {
        todo.push_back(&path);
      }
    }
  }
  if (!todo.empty()) {
    std::vector<std::string> results(todo.size());
    std::vector<std::optional<Stamp>> stamps(todo.size());
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    Status first_error;
    auto work = [&] {
      std::vector<char> buf(256 * 1024);
      while (true) {
        size_t i = next.fetch_add(1);
        if (i >= todo.size()) return;
        auto hex = impl.HashFile(*todo[i], &stamps[i], buf);
        if (!hex.ok()) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (first_error.ok()) first_error = hex.status();
          next.store(todo.size());
          return;
        }
        results[i] = std::move(*hex);
      }
    };
    size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
    threads = std::min(threads, (todo.size() + 63) / 64);
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    KILN_RETURN_IF_ERROR(first_error);
    std::vector<std::pair<std::string, IndexRow>> rows;
    for (size_t i = 0; i < todo.size(); ++i) {
      hashes.emplace(*todo[i], results[i]);
      if (stamps[i]) rows.push_back({*todo[i], IndexRow{*stamps[i], results[i]}});
    }
    KILN_RETURN_IF_ERROR(impl.SaveRows(rows));
  }

  // The digest: one record per entry, in path order.
  util::Sha256 digest;
  digest.Update(kChecksumVersion);
  char mode[16];
  for (const auto& [path, st] : entries) {
    std::string record = path;
    record += '\0';
    std::string target;
    std::string content;
    char type;
    switch (st.st_mode & S_IFMT) {
      case S_IFREG:
        type = 'f';
        content = hashes[path];
        break;
      case S_IFDIR:
        type = 'd';
        break;
      case S_IFLNK: {
        type = 'l';
        auto t = impl.root.Readlink(path);
        if (!t.ok()) return t.status();
        target = *t;
        break;
      }
      case S_IFIFO:
        type = 'p';
        break;
      case S_IFSOCK:
        type = 's';
        break;
      case S_IFCHR:
      case S_IFBLK:
        type = S_ISCHR(st.st_mode) ? 'c' : 'b';
        content = std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
        break;
      default:
        type = '?';
    }
    std::snprintf(mode, sizeof(mode), "%o", static_cast<unsigned>(st.st_mode & 07777));
    record += type;
    record += '\0';
    record += mode;
    record += '\0';
    record += target;
    record += '\0';
    record += content;
    record += '\n';
    digest.Update(record);
  }
  return digest.Finish();
}

}  // namespace kiln::source
