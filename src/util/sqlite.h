// Opening the SQLite databases kiln keeps under its state root (the build
// cache ROOT/cache.db, the HTTP cache ROOT/http-cache.db, the context
// indexes ROOT/contexts/<hash>.db) the one way that is safe when several kiln
// processes start on a fresh root at the same moment.
//
// SQLite's busy timeout does not cover everything an open does: switching a
// new file to WAL (`PRAGMA journal_mode=WAL`) and the first schema DDL can
// return SQLITE_BUSY at once, without calling the busy handler, while another
// process is doing the same. So OpenSqlite does the whole setup (create the
// file 0600, WAL, synchronous, schema) while holding an flock() on the
// database's directory, in a BEGIN IMMEDIATE transaction, and retries
// SQLITE_BUSY until the busy timeout has passed. After setup, ordinary
// statements rely on the busy timeout (every write is one statement in
// autocommit mode or a BEGIN IMMEDIATE transaction, for which SQLite waits).
//
// A full disk (SQLITE_FULL, or an I/O error whose errno is ENOSPC/EDQUOT) is
// reported as util's NoSpace status by SqliteNoSpace, whatever the module.
//
// Callers: solver/cache_store.cc, source/http.cc, source/local.cc.
// Thread-safety: OpenSqlite may be called from any thread and process; the
// handle it returns is used as its caller's options say (see full_mutex).
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/no_space.h"
#include "util/status.h"

namespace kiln::util {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;

struct SqliteOptions {
  // What the file is, for messages: "build cache database", "HTTP cache",
  // "context index".
  std::string kind = "database";
  // Appended to I/O error messages: what the user can do about a broken
  // file, e.g. " (the file is a cache: delete it to start afresh)".
  std::string hint;
  int busy_timeout_ms = 10'000;
  // SQLITE_OPEN_FULLMUTEX (the handle is shared by threads without a lock
  // of the caller's) instead of SQLITE_OPEN_NOMUTEX.
  bool full_mutex = false;
  // PRAGMA synchronous=NORMAL: commits do not fsync (WAL stays consistent
  // on power loss, the last commits may be lost). Right for caches.
  bool synchronous_normal = true;
  // Called before anything in the file changes (before WAL): refuse a file
  // this kiln cannot use (e.g. a newer schema). May be empty.
  std::function<Status(sqlite3*)> check;
  // Called inside BEGIN IMMEDIATE, once per open: create or migrate the
  // schema (another process may have done it already). May be empty.
  std::function<Status(sqlite3*)> setup;
};

// Opens (creating) `file` and its parent directory as the header says. The
// file, its -wal and -shm are mode 0600 (tightened when wider). Errors name
// the file: kFailedPrecondition for a file that is not an SQLite database
// ("<file>: not a <kind> (file is not a database); move it away or delete
// it"), NoSpace for a full disk, kIOError otherwise.
Result<SqliteHandle> OpenSqlite(const std::filesystem::path& file, const SqliteOptions& options);

// When the last error on `db` means the disk is full: the NoSpace status
// for `file` and `doing`; nullopt otherwise.
std::optional<Status> SqliteNoSpace(sqlite3* db, const std::filesystem::path& file,
                                    std::string_view doing);

}  // namespace kiln::util
