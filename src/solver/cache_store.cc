#include "solver/cache_store.h"

#include <sqlite3.h>

#include <ctime>
#include <mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include "util/sqlite.h"

namespace kiln::solver {
namespace {

// The schema this code writes (PRAGMA user_version). docs/cache.md
// describes it; bump it (and migrate) whenever a table changes.
constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 10'000;

constexpr const char* kCreateSchema = R"sql(
CREATE TABLE cache_records (
  key            TEXT PRIMARY KEY NOT NULL,
  outputs        INTEGER NOT NULL,
  created_unix   INTEGER NOT NULL,
  last_used_unix INTEGER NOT NULL
);
CREATE TABLE cache_results (
  key    TEXT NOT NULL,
  output INTEGER NOT NULL,
  value  BLOB NOT NULL,
  PRIMARY KEY (key, output)
);
CREATE INDEX cache_records_last_used ON cache_records (last_used_unix);
)sql";

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  sqlite3_stmt** out() { return &stmt_; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

struct CacheStore::Impl {
  std::filesystem::path file;
  std::mutex mu;  // one connection, used by one thread at a time
  sqlite3* db = nullptr;

  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // "<file>: <what>: <sqlite's message>" as kIOError; a full disk as
  // util::NoSpace.
  Status Error(std::string_view what) const {
    if (auto full = util::SqliteNoSpace(db, file, std::string(what) + " in the build cache")) {
      return *full;
    }
    return Status::IOError(file.string() + ": " + std::string(what) + ": " +
                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
  }

  Status Exec(const char* sql, std::string_view what) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(what);
    return Status::Ok();
  }

  Status Prepare(Stmt& stmt, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, stmt.out(), nullptr) != SQLITE_OK) {
      return Error(std::string("preparing \"") + sql + "\"");
    }
    return Status::Ok();
  }

  Status BindText(Stmt& stmt, int index, std::string_view text) {
    if (sqlite3_bind_text(stmt.get(), index, text.data(), static_cast<int>(text.size()),
                          SQLITE_TRANSIENT) != SQLITE_OK) {
      return Error("binding a parameter");
    }
    return Status::Ok();
  }

  // Steps a statement that returns no rows.
  Status Run(Stmt& stmt, std::string_view what) {
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error(what);
    return Status::Ok();
  }

  Result<int> UserVersion() {
    Stmt stmt;
    KILN_RETURN_IF_ERROR(Prepare(stmt, "PRAGMA user_version"));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return Error("reading the schema version");
    return sqlite3_column_int(stmt.get(), 0);
  }

  Status CheckVersion(int version) const {
    if (version <= kSchemaVersion) return Status::Ok();
    return Status::FailedPrecondition(
        file.string() + ": cache database schema version " + std::to_string(version) +
        " is newer than this kiln supports (" + std::to_string(kSchemaVersion) +
        "); use a newer kiln, or delete the file to start with an empty build cache");
  }

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (rolled back on error).
  // IMMEDIATE takes the write lock up front, so a concurrent writer waits in
  // the busy handler instead of failing on a lock upgrade.
  template <typename F>
  Status Transaction(F&& body) {
    KILN_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE", "starting a transaction"));
    Status status = body();
    if (status.ok()) status = Exec("COMMIT", "committing a transaction");
    if (!status.ok()) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }

  Status DeleteLocked(std::string_view key) {
    Stmt records;
    Stmt results;
    KILN_RETURN_IF_ERROR(Prepare(records, "DELETE FROM cache_records WHERE key = ?1"));
    KILN_RETURN_IF_ERROR(BindText(records, 1, key));
    KILN_RETURN_IF_ERROR(Run(records, "deleting a cache record"));
    KILN_RETURN_IF_ERROR(Prepare(results, "DELETE FROM cache_results WHERE key = ?1"));
    KILN_RETURN_IF_ERROR(BindText(results, 1, key));
    return Run(results, "deleting a cache record's results");
  }

  // Reads the results of `key` (in output order); nullopt when the record
  // is inconsistent (fewer result rows than outputs).
  Result<std::optional<std::vector<std::string>>> ReadResults(std::string_view key,
                                                              int64_t outputs) {
    Stmt stmt;
    KILN_RETURN_IF_ERROR(
        Prepare(stmt, "SELECT output, value FROM cache_results WHERE key = ?1 ORDER BY output"));
    KILN_RETURN_IF_ERROR(BindText(stmt, 1, key));
    std::vector<std::string> results;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      if (sqlite3_column_int64(stmt.get(), 0) != static_cast<int64_t>(results.size())) {
        return std::optional<std::vector<std::string>>();
      }
      const void* blob = sqlite3_column_blob(stmt.get(), 1);
      int size = sqlite3_column_bytes(stmt.get(), 1);
      results.emplace_back(static_cast<const char*>(blob), static_cast<size_t>(size));
    }
    if (rc != SQLITE_DONE) return Error("reading cache results");
    if (static_cast<int64_t>(results.size()) != outputs) {
      return std::optional<std::vector<std::string>>();
    }
    return std::optional<std::vector<std::string>>(std::move(results));
  }
};

CacheStore::CacheStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CacheStore::~CacheStore() = default;

Result<std::shared_ptr<CacheStore>> CacheStore::Open(const std::filesystem::path& file) {
  auto impl = std::make_unique<Impl>();
  impl->file = file;
  Impl* db = impl.get();
  // util::OpenSqlite makes setup safe for processes starting together on a
  // fresh root (failure 8 of issue 15): WAL, synchronous=NORMAL (the
  // database stays consistent on power loss; it may lose the last commits,
  // which for a cache only means running those steps again), and the schema
  // in one BEGIN IMMEDIATE under a lock.
  util::SqliteOptions options;
  options.kind = "kiln cache database";
  options.busy_timeout_ms = kBusyTimeoutMs;
  // Refuse a newer schema before changing anything in the file.
  options.check = [db](sqlite3* handle) -> Status {
    db->db = handle;
    KILN_ASSIGN_OR_RETURN(int version, db->UserVersion());
    return db->CheckVersion(version);
  };
  options.setup = [db](sqlite3* handle) -> Status {
    db->db = handle;
    KILN_ASSIGN_OR_RETURN(int current, db->UserVersion());
    KILN_RETURN_IF_ERROR(db->CheckVersion(current));
    if (current == kSchemaVersion) return Status::Ok();  // another process created it
    KILN_RETURN_IF_ERROR(db->Exec(kCreateSchema, "creating the cache schema"));
    std::string set_version = "PRAGMA user_version=" + std::to_string(kSchemaVersion);
    return db->Exec(set_version.c_str(), "setting the schema version");
  };
  Result<util::SqliteHandle> handle = util::OpenSqlite(file, options);
  db->db = nullptr;  // the callbacks borrowed it; `handle` owns it
  if (!handle.ok()) return handle.status();
  impl->db = handle->release();
  return std::shared_ptr<CacheStore>(new CacheStore(std::move(impl)));
}

Result<std::optional<CacheRecord>> CacheStore::Lookup(const util::Digest& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl* db = impl_.get();
  std::optional<CacheRecord> found;
  KILN_RETURN_IF_ERROR(db->Transaction([&]() -> Status {
    Stmt stmt;
    KILN_RETURN_IF_ERROR(
        db->Prepare(stmt, "SELECT outputs, created_unix FROM cache_records WHERE key = ?1"));
    KILN_RETURN_IF_ERROR(db->BindText(stmt, 1, key.str()));
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc != SQLITE_ROW) return db->Error("looking up a cache record");
    int64_t outputs = sqlite3_column_int64(stmt.get(), 0);
    int64_t created = sqlite3_column_int64(stmt.get(), 1);
    KILN_ASSIGN_OR_RETURN(auto results, db->ReadResults(key.str(), outputs));
    if (!results) return db->DeleteLocked(key.str());  // inconsistent: a miss
    int64_t now = NowUnix();
    Stmt touch;
    KILN_RETURN_IF_ERROR(
        db->Prepare(touch, "UPDATE cache_records SET last_used_unix = ?2 WHERE key = ?1"));
    KILN_RETURN_IF_ERROR(db->BindText(touch, 1, key.str()));
    sqlite3_bind_int64(touch.get(), 2, now);
    KILN_RETURN_IF_ERROR(db->Run(touch, "updating a cache record's last use"));
    found = CacheRecord{key, std::move(*results), created, now};
    return Status::Ok();
  }));
  return found;
}

Status CacheStore::Save(const util::Digest& key, const std::vector<std::string>& results) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl* db = impl_.get();
  return db->Transaction([&]() -> Status {
    KILN_RETURN_IF_ERROR(db->DeleteLocked(key.str()));
    int64_t now = NowUnix();
    Stmt record;
    KILN_RETURN_IF_ERROR(db->Prepare(record,
                                     "INSERT INTO cache_records (key, outputs, created_unix, "
                                     "last_used_unix) VALUES (?1, ?2, ?3, ?3)"));
    KILN_RETURN_IF_ERROR(db->BindText(record, 1, key.str()));
    sqlite3_bind_int64(record.get(), 2, static_cast<int64_t>(results.size()));
    sqlite3_bind_int64(record.get(), 3, now);
    KILN_RETURN_IF_ERROR(db->Run(record, "saving a cache record"));
    for (size_t i = 0; i < results.size(); ++i) {
      Stmt result;
      KILN_RETURN_IF_ERROR(db->Prepare(
          result, "INSERT INTO cache_results (key, output, value) VALUES (?1, ?2, ?3)"));
      KILN_RETURN_IF_ERROR(db->BindText(result, 1, key.str()));
      sqlite3_bind_int64(result.get(), 2, static_cast<int64_t>(i));
      sqlite3_bind_blob64(result.get(), 3, results[i].data(), results[i].size(), SQLITE_TRANSIENT);
      KILN_RETURN_IF_ERROR(db->Run(result, "saving a cache result"));
    }
    return Status::Ok();
  });
}

Status CacheStore::Delete(const util::Digest& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl* db = impl_.get();
  return db->Transaction([&]() { return db->DeleteLocked(key.str()); });
}

Result<std::vector<CacheRecord>> CacheStore::List() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl* db = impl_.get();
  std::vector<CacheRecord> records;
  // A deferred (read) transaction: one consistent snapshot of both tables.
  KILN_RETURN_IF_ERROR(db->Exec("BEGIN", "starting a transaction"));
  Status status = [&]() -> Status {
    Stmt stmt;
    KILN_RETURN_IF_ERROR(db->Prepare(
        stmt, "SELECT key, outputs, created_unix, last_used_unix FROM cache_records ORDER BY key"));
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      std::string text(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)),
                       static_cast<size_t>(sqlite3_column_bytes(stmt.get(), 0)));
      auto key = util::Digest::Parse(text);
      if (!key.ok()) {
        return Status::IOError(db->file.string() + ": cache record key \"" + text +
                               "\" is not a digest: " + key.status().message());
      }
      int64_t outputs = sqlite3_column_int64(stmt.get(), 1);
      KILN_ASSIGN_OR_RETURN(auto results, db->ReadResults(text, outputs));
      if (!results) continue;  // inconsistent; Lookup drops it
      records.push_back(CacheRecord{*key, std::move(*results), sqlite3_column_int64(stmt.get(), 2),
                                    sqlite3_column_int64(stmt.get(), 3)});
    }
    if (rc != SQLITE_DONE) return db->Error("listing cache records");
    return Status::Ok();
  }();
  sqlite3_exec(db->db, status.ok() ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
  KILN_RETURN_IF_ERROR(status);
  return records;
}

Result<int64_t> CacheStore::Clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl* db = impl_.get();
  int64_t count = 0;
  KILN_RETURN_IF_ERROR(db->Transaction([&]() -> Status {
    KILN_RETURN_IF_ERROR(db->Exec("DELETE FROM cache_records", "clearing cache records"));
    count = sqlite3_changes64(db->db);
    return db->Exec("DELETE FROM cache_results", "clearing cache results");
  }));
  return count;
}

}  // namespace kiln::solver
