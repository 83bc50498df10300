// The SQLite cache store: records, schema versioning, and several users of
// one file at once (two instances, threads, and a forked child process).
#include "solver/cache_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

namespace kiln::solver {
namespace {

using util::Digest;
using util::Sha256Of;

class CacheStoreTest : public ::testing::Test {
 protected:
  CacheStoreTest() {
    char tmpl[] = "/tmp/kiln-cache-store-test-XXXXXX";
    KILN_CHECK(mkdtemp(tmpl) != nullptr, "mkdtemp failed");
    dir_ = tmpl;
    file_ = dir_ / "cache.db";
  }
  ~CacheStoreTest() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<CacheStore> Open() {
    auto store = CacheStore::Open(file_);
    KILN_CHECK(store.ok(), store.status().ToString());
    return *store;
  }

  // Runs one SQL statement on the file directly; returns the first column
  // of the first row ("" when none).
  std::string RawSql(const std::string& sql) {
    sqlite3* db = nullptr;
    KILN_CHECK(sqlite3_open(file_.c_str(), &db) == SQLITE_OK, "sqlite3_open failed");
    std::string out;
    sqlite3_stmt* stmt = nullptr;
    KILN_CHECK(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK,
               sqlite3_errmsg(db));
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  static Digest Key(int i) { return Sha256Of("key " + std::to_string(i)); }

  std::filesystem::path dir_;
  std::filesystem::path file_;
};

TEST_F(CacheStoreTest, SaveAndLookup) {
  auto store = Open();
  std::string binary("a\0b", 3);
  ASSERT_TRUE(store->Save(Key(1), {"snapshot-1", "", binary}).ok());
  auto found = store->Lookup(Key(1));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  const CacheRecord& record = **found;
  EXPECT_EQ(record.key, Key(1));
  EXPECT_EQ(record.results, (std::vector<std::string>{"snapshot-1", "", binary}));
  EXPECT_GT(record.created_unix, 0);
  EXPECT_GE(record.last_used_unix, record.created_unix);

  auto missing = store->Lookup(Key(2));
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(CacheStoreTest, SaveReplacesARecord) {
  auto store = Open();
  ASSERT_TRUE(store->Save(Key(1), {"old-0", "old-1"}).ok());
  ASSERT_TRUE(store->Save(Key(1), {"new-0"}).ok());
  auto found = store->Lookup(Key(1));
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->results, std::vector<std::string>{"new-0"});
  auto all = store->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST_F(CacheStoreTest, DeleteListAndClear) {
  auto store = Open();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->Save(Key(i), {"r" + std::to_string(i)}).ok());
  }
  ASSERT_TRUE(store->Delete(Key(2)).ok());
  ASSERT_TRUE(store->Delete(Key(99)).ok());  // deleting a missing key is fine
  auto found = store->Lookup(Key(2));
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());

  auto all = store->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 4u);
  std::set<std::string> results;
  for (const CacheRecord& r : *all) results.insert(r.results.at(0));
  EXPECT_EQ(results, (std::set<std::string>{"r0", "r1", "r3", "r4"}));

  auto cleared = store->Clear();
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(*cleared, 4);
  all = store->List();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(CacheStoreTest, RecordsPersistAcrossOpens) {
  ASSERT_TRUE(Open()->Save(Key(7), {"seven"}).ok());
  auto found = Open()->Lookup(Key(7));
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->results, std::vector<std::string>{"seven"});
}

TEST_F(CacheStoreTest, UsesWalAndRecordsTheSchemaVersion) {
  Open();
  EXPECT_EQ(RawSql("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawSql("PRAGMA user_version"), "1");
}

TEST_F(CacheStoreTest, CreatesTheParentDirectory) {
  file_ = dir_ / "root" / "nested" / "cache.db";
  auto store = Open();
  ASSERT_TRUE(store->Save(Key(1), {"x"}).ok());
  EXPECT_TRUE(std::filesystem::exists(file_));
}

TEST_F(CacheStoreTest, NewerSchemaIsRefused) {
  Open();
  RawSql("PRAGMA user_version=7");
  auto store = CacheStore::Open(file_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(),
            file_.string() +
                ": cache database schema version 7 is newer than this kiln supports (1); use a "
                "newer kiln, or delete the file to start with an empty build cache");
}

TEST_F(CacheStoreTest, NotADatabaseIsRefused) {
  {
    std::ofstream out(file_);
    out << "this is not an SQLite database, just some text long enough to have a header\n";
  }
  auto store = CacheStore::Open(file_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(),
            file_.string() +
                ": not a kiln cache database (file is not a database); move it away or delete it");
}

TEST_F(CacheStoreTest, TwoInstancesOnOneFile) {
  auto first = Open();
  auto second = Open();
  ASSERT_TRUE(first->Save(Key(1), {"from first"}).ok());
  auto seen = second->Lookup(Key(1));
  ASSERT_TRUE(seen.ok());
  ASSERT_TRUE(seen->has_value());
  EXPECT_EQ((*seen)->results, std::vector<std::string>{"from first"});

  // Both write and read at once from their own threads.
  constexpr int kPerWriter = 200;
  auto work = [&](CacheStore* store, int base, Status* status) {
    for (int i = 0; i < kPerWriter && status->ok(); ++i) {
      *status = store->Save(Key(base + i), {std::to_string(base + i)});
      if (!status->ok()) break;
      auto other = store->Lookup(Key(base + i));
      if (!other.ok()) *status = other.status();
    }
  };
  Status first_status, second_status;
  std::thread a(work, first.get(), 1000, &first_status);
  std::thread b(work, second.get(), 2000, &second_status);
  a.join();
  b.join();
  ASSERT_TRUE(first_status.ok()) << first_status.ToString();
  ASSERT_TRUE(second_status.ok()) << second_status.ToString();
  auto all = first->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u + 2 * kPerWriter);
}

TEST_F(CacheStoreTest, ForkedChildWritesWhileParentReads) {
  Open();  // create the schema first
  constexpr int kRecords = 300;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child opens its own connection (never one made before fork).
    auto store = CacheStore::Open(file_);
    if (!store.ok()) _exit(2);
    for (int i = 0; i < kRecords; ++i) {
      if (!(*store)->Save(Key(i), {"child " + std::to_string(i)}).ok()) _exit(3);
    }
    _exit(0);
  }
  auto store = Open();
  int status = 0;
  size_t reads = 0;
  Status read_error;
  for (;;) {
    pid_t done = waitpid(child, &status, WNOHANG);
    auto all = store->List();
    if (!all.ok()) {
      read_error = all.status();
      waitpid(child, &status, 0);
      break;
    }
    ++reads;
    auto last = store->Lookup(Key(kRecords / 2));
    if (!last.ok()) {
      read_error = last.status();
      waitpid(child, &status, 0);
      break;
    }
    if (done == child) break;
  }
  ASSERT_TRUE(read_error.ok()) << read_error.ToString();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_GE(reads, 1u);
  auto all = store->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<size_t>(kRecords));
  auto one = store->Lookup(Key(123));
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->results, std::vector<std::string>{"child 123"});
}

}  // namespace
}  // namespace kiln::solver
