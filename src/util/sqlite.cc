#include "util/sqlite.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>

#include "util/io.h"

namespace kiln::util {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool Busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

// Holds an flock() on a directory while the database in it is set up, so
// two kiln processes never race through WAL setup and schema creation.
class DirLock {
 public:
  static Result<DirLock> Take(const fs::path& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
      return Status(CodeForErrno(errno), "cannot open " + dir.string() + ": " + ErrnoText(errno));
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) {
        return Status::IOError("cannot lock " + dir.string() + ": " + ErrnoText(errno));
      }
    }
    return DirLock(std::move(fd));
  }

 private:
  explicit DirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // closing it releases the lock
};

// Narrows the mode of `path` to 0600 when it is wider; a missing file is fine.
Status Tighten(const fs::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IOError("cannot stat " + path.string() + ": " + ErrnoText(errno));
  }
  if ((st.st_mode & 077) == 0) return Status::Ok();
  if (::chmod(path.c_str(), st.st_mode & 0700) != 0) {
    return Status::IOError("cannot make " + path.string() +
                           " private (mode 0600): " + ErrnoText(errno));
  }
  return Status::Ok();
}

class Opener {
 public:
  Opener(const fs::path& file, const SqliteOptions& options)
      : file_(file),
        options_(options),
        deadline_(Clock::now() + std::chrono::milliseconds(options.busy_timeout_ms)) {}

  Result<SqliteHandle> Open() {
    const fs::path dir = file_.has_parent_path() ? file_.parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      if (IsNoSpace(ec.value())) return NoSpace(dir.string(), "creating the " + options_.kind);
      return Status::IOError(dir.string() + ": creating the directory of the " + options_.kind +
                             ": " + ec.message());
    }
    KILN_ASSIGN_OR_RETURN(DirLock lock, DirLock::Take(dir));

    sqlite3* raw = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                      (options_.full_mutex ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX);
    const int rc = sqlite3_open_v2(file_.c_str(), &raw, flags, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) return Error(rc, "opening the " + options_.kind);
    sqlite3_busy_timeout(db_.get(), options_.busy_timeout_ms);
    // The file exists now (SQLite creates it 0644 less the umask) and is
    // empty or holds data: make it private before SQLite creates -wal and
    // -shm, which copy the database's mode.
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      fs::path p = file_;
      p += suffix;
      KILN_RETURN_IF_ERROR(Tighten(p));
    }

    if (options_.check) KILN_RETURN_IF_ERROR(Mapped(options_.check(db_.get())));
    KILN_RETURN_IF_ERROR(Retry("enabling WAL mode", [this] {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v2(db_.get(), "PRAGMA journal_mode=WAL", -1, &stmt, nullptr);
      if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) rc = SQLITE_OK;
      }
      sqlite3_finalize(stmt);
      return rc;
    }));
    if (options_.synchronous_normal) {
      KILN_RETURN_IF_ERROR(Retry("setting synchronous mode", [this] {
        return sqlite3_exec(db_.get(), "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
      }));
    }
    if (options_.setup) KILN_RETURN_IF_ERROR(Setup());
    return std::move(db_);
  }

 private:
  // "<file>: <doing>: <sqlite's message><hint>", or NoSpace, or (for a file
  // that is not a database) kFailedPrecondition.
  Status Error(int rc, const std::string& doing) const {
    if (auto full =
            SqliteNoSpace(db_.get(), file_, "setting up the " + options_.kind + ": " + doing)) {
      return *full;
    }
    if ((rc & 0xff) == SQLITE_NOTADB) {
      return Status::FailedPrecondition(file_.string() + ": not a " + options_.kind +
                                        " (file is not a database); move it away or delete it");
    }
    const char* msg = db_ != nullptr ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
    return Status::IOError(file_.string() + ": " + doing + ": " + msg + options_.hint);
  }

  // A caller's callback failed: a full disk or a file that is no database
  // still reads the same as when this code sees it.
  Status Mapped(Status s) const {
    if (s.ok() || s.code() != StatusCode::kIOError) return s;
    const int rc = sqlite3_extended_errcode(db_.get());
    if (auto full =
            SqliteNoSpace(db_.get(), file_, "setting up the " + options_.kind + ": schema")) {
      return *full;
    }
    if ((rc & 0xff) == SQLITE_NOTADB) return Error(rc, "reading the " + options_.kind);
    return s;
  }

  // Runs `step` (returning an SQLite code) until it is not busy or the
  // busy timeout has passed.
  template <typename F>
  Status Retry(const std::string& doing, F&& step) {
    for (auto pause = std::chrono::milliseconds(1);; pause = std::min(pause * 2, kMaxPause)) {
      const int rc = step();
      if (rc == SQLITE_OK) return Status::Ok();
      if (!Busy(rc) || Clock::now() >= deadline_) return Error(rc, doing);
      std::this_thread::sleep_for(pause);
    }
  }

  // The caller's setup in BEGIN IMMEDIATE ... COMMIT; a busy BEGIN or COMMIT
  // is retried, a failed setup rolled back.
  Status Setup() {
    for (;;) {
      KILN_RETURN_IF_ERROR(Retry("starting the schema transaction", [this] {
        return sqlite3_exec(db_.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
      }));
      Status s = Mapped(options_.setup(db_.get()));
      if (s.ok()) {
        s = Retry("committing the schema",
                  [this] { return sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr); });
      }
      if (s.ok()) return s;
      const int rc = sqlite3_extended_errcode(db_.get());
      if (sqlite3_get_autocommit(db_.get()) == 0) {
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
      // DDL that met a busy lock inside the transaction: start over.
      if (Busy(rc) && s.code() == StatusCode::kIOError && Clock::now() < deadline_) continue;
      return s;
    }
  }

  static constexpr std::chrono::milliseconds kMaxPause{50};

  const fs::path& file_;
  const SqliteOptions& options_;
  const Clock::time_point deadline_;
  SqliteHandle db_;
};

}  // namespace

Result<SqliteHandle> OpenSqlite(const std::filesystem::path& file, const SqliteOptions& options) {
  return Opener(file, options).Open();
}

std::optional<Status> SqliteNoSpace(sqlite3* db, const std::filesystem::path& file,
                                    std::string_view doing) {
  if (db == nullptr) return std::nullopt;
  const int rc = sqlite3_extended_errcode(db);
  if ((rc & 0xff) == SQLITE_FULL ||
      ((rc & 0xff) == SQLITE_IOERR && IsNoSpace(sqlite3_system_errno(db)))) {
    return NoSpace(file.string(), doing);
  }
  return std::nullopt;
}

}  // namespace kiln::util
