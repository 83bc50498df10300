// The databases source/ keeps under the state root (ROOT/http-cache.db, the
// context indexes ROOT/contexts/<hash>.db) opened by processes that start
// together on a fresh root.
//
// Guards issue 15, failure 8: builds started together on a fresh root failed
// with "HTTP cache ROOT/http-cache.db: create schema: database is locked"
// (and the same for the context index): `PRAGMA journal_mode=WAL` and the
// schema DDL return SQLITE_BUSY at once, whatever the busy timeout, while
// another process sets up the same file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "content/store.h"
#include "source/http.h"
#include "source/local.h"

namespace kiln::source {
namespace {

namespace fs = std::filesystem;

// What each process does once released; "" or the error.
using Work = std::string (*)(const fs::path& root, const fs::path& context);

std::string OpenHttpCache(const fs::path& root, const fs::path&) {
  auto store = content::Store::Open(root / "content");
  if (!store.ok()) return store.status().ToString();
  auto http = HttpSource::Open(*store, root / "http-cache.db");
  return http.ok() ? "" : http.status().ToString();
}

std::string OpenContextIndex(const fs::path& root, const fs::path& context) {
  LocalOptions o;
  o.dir = context;
  o.index_dir = root / "contexts";
  auto ctx = LocalContext::Open(std::move(o));
  if (!ctx.ok()) return ctx.status().ToString();
  auto sum = (*ctx)->Checksum({"a.txt"});  // writes the index
  return sum.ok() ? "" : sum.status().ToString();
}

// Runs `work` in `processes` processes released at once (a pipe closing),
// on a fresh root per round; returns how many failed and the first error.
std::pair<int, std::string> Together(Work work, int rounds, int processes) {
  std::string tmpl = (fs::temp_directory_path() / "kiln-state-db-test-XXXXXX").string();
  KILN_CHECK(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
  const fs::path dir = tmpl;
  fs::create_directories(dir / "ctx");
  std::ofstream(dir / "ctx" / "a.txt") << "a\n";
  int failed = 0;
  std::string first;
  for (int round = 0; round < rounds; ++round) {
    const fs::path root = dir / ("root" + std::to_string(round));
    int go[2];
    int out[2];
    KILN_CHECK(::pipe(go) == 0 && ::pipe(out) == 0, "pipe");
    std::vector<pid_t> pids;
    for (int i = 0; i < processes; ++i) {
      const pid_t pid = ::fork();
      KILN_CHECK(pid >= 0, "fork");
      if (pid == 0) {
        ::close(go[1]);
        ::close(out[0]);
        char c;
        (void)!::read(go[0], &c, 1);  // returns when the parent closes its end
        const std::string err = work(root, dir / "ctx");
        if (!err.empty()) (void)!::write(out[1], (err + "\n").data(), err.size() + 1);
        ::_exit(err.empty() ? 0 : 1);
      }
      pids.push_back(pid);
    }
    ::close(go[0]);
    ::close(out[1]);
    ::close(go[1]);  // go
    std::string messages;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) {
      messages.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    }
    if (first.empty()) first = messages;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return {failed, first};
}

TEST(StateDbTest, ProcessesOpeningAFreshHttpCacheTogetherAllSucceed) {
  auto [failed, first] = Together(OpenHttpCache, 100, 8);
  EXPECT_EQ(failed, 0) << failed << " of 800 opens failed; the first: " << first;
}

TEST(StateDbTest, ProcessesOpeningAFreshContextIndexTogetherAllSucceed) {
  auto [failed, first] = Together(OpenContextIndex, 100, 8);
  EXPECT_EQ(failed, 0) << failed << " of 800 opens failed; the first: " << first;
}

}  // namespace
}  // namespace kiln::source
