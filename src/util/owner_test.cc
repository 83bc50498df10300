// Owner tags and locks (util/owner.h) with real processes: a live owner's
// entries are never stale, a killed one's are, and only one reaper at a
// time takes a dead owner.
#include "util/owner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace kiln::util {
namespace {

namespace fs = std::filesystem;

class OwnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-owner-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A child process that registers on root_, reports its tag on a pipe and
  // waits to be killed.
  pid_t StartOwner(std::string* tag) {
    int p[2];
    EXPECT_EQ(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      Result<OwnerRegistration> r = OwnerRegistration::Register(root_);
      if (!r.ok()) _exit(1);
      (void)!write(p[1], OwnerTag().data(), OwnerTag().size());
      close(p[1]);
      pause();
      _exit(0);
    }
    close(p[1]);
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof buf);
    close(p[0]);
    tag->assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
    return pid;
  }

  fs::path root_;
};

TEST(OwnerTagTest, TagsAreParsedFromNames) {
  EXPECT_EQ(OwnerTag().size(), 13u);
  EXPECT_EQ(TagOf(OwnerTag() + "-abc"), std::optional<std::string_view>(OwnerTag()));
  EXPECT_EQ(TagOf("k0123456789ab-x"), std::optional<std::string_view>("k0123456789ab"));
  EXPECT_EQ(TagOf("kiln-0123456789abcdef"), std::nullopt);
  EXPECT_EQ(TagOf("0123456789ab"), std::nullopt);
  EXPECT_EQ(TagOf("k0123456789ab"), std::nullopt) << "a tag alone names no entry";
  EXPECT_EQ(TagOf("k0123456789AB-x"), std::nullopt);
}

// Guards issue 15 failure 7: a reaper must tell a killed kiln's entries
// from a live one's.
TEST_F(OwnerTest, LiveOwnersAreKeptAndKilledOnesAreStale) {
  std::string live_tag, dead_tag;
  pid_t live = StartOwner(&live_tag);
  pid_t dead = StartOwner(&dead_tag);
  ASSERT_EQ(live_tag.size(), 13u);
  ASSERT_EQ(dead_tag.size(), 13u);
  ASSERT_EQ(kill(dead, SIGKILL), 0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);

  Result<OwnerRegistration> me = OwnerRegistration::Register(root_);
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  {
    Result<StaleOwners> owners = StaleOwners::Find(root_);
    ASSERT_TRUE(owners.ok()) << owners.status().ToString();
    EXPECT_FALSE(owners->IsStale(live_tag + "-x", false));
    EXPECT_FALSE(owners->IsStale(OwnerTag() + "-x", true)) << "this process's own entries";
    EXPECT_TRUE(owners->IsStale(dead_tag + "-x", false));
    EXPECT_TRUE(owners->IsStale("k000000000000-x", false)) << "no owner file: gone";
    EXPECT_FALSE(owners->IsStale("legacy-name", false));
    EXPECT_TRUE(owners->IsStale("legacy-name", true));

    // A second reaper meanwhile sees the dead owner as taken (alive).
    Result<StaleOwners> other = StaleOwners::Find(root_);
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(other->IsStale(dead_tag + "-x", false));
  }
  // The first reaper removed the dead owner's file; the live one stays.
  EXPECT_FALSE(fs::exists(root_ / "owners" / dead_tag));
  EXPECT_TRUE(fs::exists(root_ / "owners" / live_tag));
  kill(live, SIGKILL);
  waitpid(live, nullptr, 0);
}

}  // namespace
}  // namespace kiln::util
