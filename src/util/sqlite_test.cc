// util::OpenSqlite: processes opening one fresh database together, modes,
// refusing a file that is no database, and a full disk read as such.
#include "util/sqlite.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace kiln::util {
namespace {

namespace fs = std::filesystem;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "kiln-sqlite-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static SqliteOptions Options() {
    SqliteOptions o;
    o.kind = "test database";
    o.setup = [](sqlite3* db) -> Status {
      if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB)", nullptr,
                       nullptr, nullptr) != SQLITE_OK) {
        return Status::IOError(sqlite3_errmsg(db));
      }
      return Status::Ok();
    };
    return o;
  }

  fs::path dir_;
};

// Guards issue 15, failure 8 at the level of the helper: processes that open
// one new database at the same moment all succeed (WAL setup and schema DDL
// returned SQLITE_BUSY without waiting).
TEST_F(SqliteTest, ProcessesOpeningAFreshDatabaseTogetherAllSucceed) {
  constexpr int kRounds = 30;
  constexpr int kProcesses = 8;
  for (int round = 0; round < kRounds; ++round) {
    const fs::path file = dir_ / ("r" + std::to_string(round)) / "x.db";
    pid_t pids[kProcesses];
    for (int i = 0; i < kProcesses; ++i) {
      pids[i] = ::fork();
      ASSERT_GE(pids[i], 0);
      if (pids[i] == 0) {
        auto db = OpenSqlite(file, Options());
        if (!db.ok()) {
          std::fprintf(stderr, "%s\n", db.status().ToString().c_str());
          ::_exit(1);
        }
        const std::string sql = "INSERT INTO t VALUES ('" + std::to_string(i) + "', x'00')";
        ::_exit(sqlite3_exec(db->get(), sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK ? 0
                                                                                             : 2);
      }
    }
    for (pid_t pid : pids) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round;
    }
  }
}

// Guards issue 15 (smaller): databases were world-readable.
TEST_F(SqliteTest, FilesArePrivate) {
  const fs::path file = dir_ / "sub" / "x.db";
  {
    auto db = OpenSqlite(file, Options());
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_EQ(
        sqlite3_exec(db->get(), "INSERT INTO t VALUES ('a', x'00')", nullptr, nullptr, nullptr),
        SQLITE_OK);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      fs::path p = file;
      p += suffix;
      struct stat st;
      ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
      EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
    }
  }
  // An existing file with a wider mode is tightened.
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto again = OpenSqlite(file, Options());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteTest, NotADatabaseIsRefused) {
  const fs::path file = dir_ / "x.db";
  std::ofstream(file) << "this is not an SQLite database, just some text long enough\n";
  auto db = OpenSqlite(file, Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      db.status().message(),
      file.string() + ": not a test database (file is not a database); move it away or delete it");
}

// Guards issue 15 (smaller): a full disk read "disk I/O error". On a full
// filesystem (a tiny tmpfs, when the test may mount one) opening and writing
// say "no space left on device" with the file and what was being done.
TEST_F(SqliteTest, FullDiskSaysSo) {
  const fs::path mnt = dir_ / "mnt";
  fs::create_directories(mnt);
  if (::mount("kiln-test", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  // Fill the filesystem but for a few bytes.
  {
    std::ofstream fill(mnt / "fill", std::ios::binary);
    std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  auto db = OpenSqlite(mnt / "x.db", Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kResourceExhausted) << db.status().ToString();
  EXPECT_EQ(
      db.status().message().rfind("no space left on device: " + (mnt / "x.db").string() + " (", 0),
      0u)
      << db.status().message();
  EXPECT_NE(db.status().message().find("); free space or run kiln prune"), std::string::npos)
      << db.status().message();
}

}  // namespace
}  // namespace kiln::util
