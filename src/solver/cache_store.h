// The cache store: cache key -> the serialized results of a vertex's
// outputs, persisted in SQLite (ROOT/cache.db, WAL mode, busy timeout) so a
// second `kiln build` of an unchanged Dockerfile runs nothing. Several
// processes may use one file at once. docs/cache.md describes the schema.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/digest.h"
#include "util/status.h"

namespace kiln::solver {

struct CacheRecord {
  util::Digest key;
  std::vector<std::string> results;  // one serialized Ref per output
  int64_t created_unix = 0;
  int64_t last_used_unix = 0;
};

class CacheStore {
 public:
  // Opens (creating) the database. A file from a newer schema version is
  // kFailedPrecondition with what to do.
  static Result<std::shared_ptr<CacheStore>> Open(const std::filesystem::path& file);
  ~CacheStore();

  // The record for `key`, touching last_used; nullopt on a miss.
  Result<std::optional<CacheRecord>> Lookup(const util::Digest& key);
  Status Save(const util::Digest& key, const std::vector<std::string>& results);
  Status Delete(const util::Digest& key);
  Result<std::vector<CacheRecord>> List();
  // Deletes every record; returns how many.
  Result<int64_t> Clear();

  struct Impl;

 private:
  explicit CacheStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::solver
