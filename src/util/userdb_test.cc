#include "util/userdb.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace kiln::util {
namespace {

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "# a comment\n"
    "\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "nohome:x:1001:1001::\n"
    "  spaced:x:1002:1002::/home/spaced:/bin/sh  \r\n"
    "app:x:2000:2000:Second app:/home/app2:/bin/sh\n";

constexpr std::string_view kGroup =
    "root:x:0:\n"
    "daemon:x:1:\n"
    "app:x:1000:\n"
    "staff:x:50:app,daemon\n"
    "audio:x:29:daemon, app\n"
    "wheel:x:10:root\n"
    "self:x:1000:app\n"
    "nohome:x:1001:\n";

Identity Resolve(std::string_view spec) {
  Result<Identity> r = ResolveUserFrom(kPasswd, kGroup, spec);
  EXPECT_TRUE(r.ok()) << spec << ": " << r.status().ToString();
  return r.ok() ? *r : Identity{};
}

TEST(UserDb, EmptyIsRootWithItsHomeAndGroups) {
  Identity id = Resolve("");
  EXPECT_EQ(id.uid, 0u);
  EXPECT_EQ(id.gid, 0u);
  EXPECT_EQ(id.home, "/root");
  EXPECT_EQ(id.additional_gids, std::vector<unsigned>({10}));
}

TEST(UserDb, EmptyWithoutFilesIsRootWithSlashHome) {
  Result<Identity> r = ResolveUserFrom("", "", "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 0u);
  EXPECT_EQ(r->gid, 0u);
  EXPECT_EQ(r->home, "/");
  EXPECT_TRUE(r->additional_gids.empty());
}

TEST(UserDb, NameGivesUidGidHomeAndSupplementaryGroups) {
  Identity id = Resolve("app");
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 1000u);
  EXPECT_EQ(id.home, "/home/app");  // first entry wins over the later "app"
  // staff and audio list app (audio with a space after the comma); "self"
  // is app's primary group and is left out.
  EXPECT_EQ(id.additional_gids, std::vector<unsigned>({29, 50}));
}

TEST(UserDb, NumericUserListedInPasswd) {
  Identity id = Resolve("1000");
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 1000u);
  EXPECT_EQ(id.home, "/home/app");
  EXPECT_EQ(id.additional_gids, std::vector<unsigned>({29, 50}));
}

TEST(UserDb, NumericUserNotInPasswdHasGidZero) {
  Identity id = Resolve("4242");
  EXPECT_EQ(id.uid, 4242u);
  EXPECT_EQ(id.gid, 0u);
  EXPECT_EQ(id.home, "/");
  EXPECT_TRUE(id.additional_gids.empty());
}

TEST(UserDb, UidGidNumbersNeedNoEntries) {
  Identity id = Resolve("4242:4343");
  EXPECT_EQ(id.uid, 4242u);
  EXPECT_EQ(id.gid, 4343u);
  EXPECT_TRUE(id.additional_gids.empty());
}

TEST(UserDb, ExplicitGroupReplacesGidAndDropsSupplementaryGroups) {
  Identity id = Resolve("app:staff");
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 50u);
  EXPECT_EQ(id.home, "/home/app");
  EXPECT_TRUE(id.additional_gids.empty());

  id = Resolve("1000:50");
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 50u);
  EXPECT_TRUE(id.additional_gids.empty());

  id = Resolve("4242:staff");
  EXPECT_EQ(id.uid, 4242u);
  EXPECT_EQ(id.gid, 50u);

  id = Resolve("app:777");
  EXPECT_EQ(id.gid, 777u);
}

TEST(UserDb, EmptyGroupAfterColonIsNoGroup) {
  Identity id = Resolve("app:");
  EXPECT_EQ(id.gid, 1000u);
  EXPECT_EQ(id.additional_gids, std::vector<unsigned>({29, 50}));
}

TEST(UserDb, MissingHomeFieldIsSlash) {
  Identity id = Resolve("nohome");
  EXPECT_EQ(id.uid, 1001u);
  EXPECT_EQ(id.home, "/");
}

TEST(UserDb, LinesAreTrimmed) {
  Identity id = Resolve("spaced");
  EXPECT_EQ(id.uid, 1002u);
  EXPECT_EQ(id.home, "/home/spaced");
}

TEST(UserDb, UnknownUserNameIsAnError) {
  Result<Identity> r = ResolveUserFrom(kPasswd, kGroup, "nobody");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "unable to find user nobody: no matching entries in /etc/passwd");

  r = ResolveUserFrom("", "", "app");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "unable to find user app: no matching entries in /etc/passwd");
}

TEST(UserDb, UnknownGroupNameIsAnError) {
  Result<Identity> r = ResolveUserFrom(kPasswd, kGroup, "app:nogroup");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "unable to find group nogroup: no matching entries in /etc/group");
}

TEST(UserDb, OutOfRangeIdIsAnError) {
  Result<Identity> r = ResolveUserFrom(kPasswd, kGroup, "2147483648");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "user 2147483648 is out of range: uids and gids must be in range 0-2147483647");

  r = ResolveUserFrom(kPasswd, kGroup, "app:99999999999999999999");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message(),
      "group 99999999999999999999 is out of range: uids and gids must be in range 0-2147483647");

  Identity id = Resolve("2147483647:2147483647");
  EXPECT_EQ(id.uid, 2147483647u);
  EXPECT_EQ(id.gid, 2147483647u);
}

TEST(UserDb, MalformedLinesAreSkippedOrReadLeniently) {
  // A short line and a non-numeric uid field (read as 0, like the C library).
  std::string_view passwd = "broken\nodd:x:abc:7:::\napp:x:1000:1000::/home/app:/bin/sh\n";
  Result<Identity> r = ResolveUserFrom(passwd, "", "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 1000u);
  r = ResolveUserFrom(passwd, "", "odd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 0u);
  EXPECT_EQ(r->gid, 7u);
}

// ResolveUser reads the files inside a real directory tree.
class UserDbRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-userdb-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ / "root/etc");
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Write(const std::filesystem::path& p, std::string_view text) {
    std::ofstream out(p);
    out << text;
  }
  Result<Identity> ResolveIn(std::string_view spec) {
    Result<RootDir> root = RootDir::Open(dir_ / "root");
    if (!root.ok()) return root.status();
    return ResolveUser(*root, spec);
  }
  std::filesystem::path dir_;
};

TEST_F(UserDbRootTest, ReadsPasswdAndGroupOfTheRoot) {
  Write(dir_ / "root/etc/passwd", kPasswd);
  Write(dir_ / "root/etc/group", kGroup);
  Result<Identity> r = ResolveIn("app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 1000u);
  EXPECT_EQ(r->home, "/home/app");
  EXPECT_EQ(r->additional_gids, std::vector<unsigned>({29, 50}));
}

TEST_F(UserDbRootTest, MissingFilesCountAsEmpty) {
  std::filesystem::remove(dir_ / "root/etc");
  Result<Identity> r = ResolveIn("");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 0u);
  EXPECT_EQ(r->home, "/");
  r = ResolveIn("1000:1000");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->gid, 1000u);
  r = ResolveIn("app");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "unable to find user app: no matching entries in /etc/passwd");
}

TEST_F(UserDbRootTest, SymlinksResolveInsideTheRoot) {
  // An absolute symlink is followed as if the root were "/": it reaches the
  // root's /shadow-passwd, never the host's file of that name.
  Write(dir_ / "shadow-passwd", "app:x:1:1::/host:/bin/sh\n");
  Write(dir_ / "root/shadow-passwd", "app:x:1000:1000::/home/app:/bin/sh\n");
  std::filesystem::create_symlink("/shadow-passwd", dir_ / "root/etc/passwd");
  // A relative link climbing out of the root stops at the root.
  Write(dir_ / "host-group", "staff:x:50:app\n");
  std::filesystem::create_symlink("../../host-group", dir_ / "root/etc/group");
  Result<Identity> r = ResolveIn("app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uid, 1000u);
  EXPECT_EQ(r->home, "/home/app");
  EXPECT_TRUE(r->additional_gids.empty());  // /host-group is not in the root
}

TEST_F(UserDbRootTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(mkfifo((dir_ / "root/etc/passwd").c_str(), 0644), 0);
  Result<Identity> r = ResolveIn("app");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "/etc/passwd in " + (dir_ / "root").string() +
                " is not a regular file; replace it with a passwd/group file");
}

}  // namespace
}  // namespace kiln::util
