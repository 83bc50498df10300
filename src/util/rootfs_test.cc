#include "util/rootfs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace kiln::util {
namespace {

namespace fs = std::filesystem;

class RootDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    base_ = fs::temp_directory_path() / ("kiln-rootfs-" + std::to_string(rd()));
    fs::create_directories(base_ / "root");
    fs::create_directories(base_ / "outside");
    root_ = base_ / "root";
    WriteFile(base_ / "outside" / "sentinel", "keep");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }
  static void WriteFile(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary);
    out << data;
  }
  static std::string ReadFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  RootDir OpenRoot() {
    auto r = RootDir::Open(root_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return std::move(r).value();
  }
  // Writes `data` through RootDir::OpenAt with O_CREAT.
  Status Create(const RootDir& root, std::string_view path, const std::string& data) {
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, root.OpenAt(path, O_CREAT | O_WRONLY | O_TRUNC, 0644));
    if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      return Status::IOError("short write");
    }
    return Status::Ok();
  }

  fs::path base_;
  fs::path root_;
};

TEST(CleanInRootTest, Cases) {
  EXPECT_EQ(CleanInRoot(""), "");
  EXPECT_EQ(CleanInRoot("/"), "");
  EXPECT_EQ(CleanInRoot("."), "");
  EXPECT_EQ(CleanInRoot("/a//b/./c/"), "a/b/c");
  EXPECT_EQ(CleanInRoot("../../a/../b"), "b");
  EXPECT_EQ(CleanInRoot("a/b/../../.."), "");
  EXPECT_EQ(CleanInRoot("a/.../b"), "a/.../b");
}

TEST_F(RootDirTest, OpenMissingRootIsNotFound) {
  auto r = RootDir::Open(base_ / "nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "open root " + (base_ / "nope").string() + ": no such file or directory");
}

TEST_F(RootDirTest, HostileSymlinksResolveInsideRoot) {
  fs::create_symlink("/", root_ / "a");
  fs::create_symlink("../../..", root_ / "b");
  fs::create_directories(root_ / "etc");
  fs::create_symlink("/etc/passwd", root_ / "c");
  fs::create_symlink(base_ / "outside", root_ / "d");  // absolute host path to outside
  RootDir root = OpenRoot();

  ASSERT_TRUE(Create(root, "a/x", "ax").ok());
  ASSERT_TRUE(Create(root, "b/y", "by").ok());
  ASSERT_TRUE(Create(root, "c", "cc").ok());
  // `d` points at the host path of outside/; in the root that path does not exist.
  Status st = Create(root, "d/sentinel", "evil");
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
  ASSERT_TRUE(Create(root, "/../../../z", "zz").ok());

  EXPECT_EQ(ReadFile(root_ / "x"), "ax");
  EXPECT_EQ(ReadFile(root_ / "y"), "by");
  EXPECT_EQ(ReadFile(root_ / "etc" / "passwd"), "cc");
  EXPECT_EQ(ReadFile(root_ / "z"), "zz");
  EXPECT_EQ(ReadFile(base_ / "outside" / "sentinel"), "keep");
  EXPECT_FALSE(fs::exists(base_ / "x"));
  EXPECT_FALSE(fs::exists(base_ / "y"));
  EXPECT_FALSE(fs::exists(base_ / "z"));
}

TEST_F(RootDirTest, OpenParentResolvesAllButLast) {
  fs::create_directories(root_ / "real");
  fs::create_symlink("/real", root_ / "link");
  fs::create_symlink("/etc/shadow", root_ / "real" / "last");
  RootDir root = OpenRoot();
  std::string name;
  auto p = root.OpenParent("link/last", &name);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(name, "last");
  struct stat st;
  ASSERT_EQ(::fstatat(p->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));

  auto r = root.OpenParent("/", &name);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(name, "");
}

TEST_F(RootDirTest, LstatAndStat) {
  fs::create_directories(root_ / "dir");
  WriteFile(root_ / "dir" / "f", "12345");
  fs::create_symlink("/dir/f", root_ / "l");
  fs::create_symlink("/etc/passwd", root_ / "host");  // absent inside the root
  RootDir root = OpenRoot();

  auto l = root.Lstat("l");
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(S_ISLNK(l->st_mode));
  auto s = root.Stat("l");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(S_ISREG(s->st_mode));
  EXPECT_EQ(s->st_size, 5);

  auto h = root.Stat("host");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(h.status().message(),
            "stat /host in " + root_.string() + ": no such file or directory");

  auto m = root.Lstat("/dir/missing");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(),
            "lstat /dir/missing in " + root_.string() + ": no such file or directory");

  auto rootst = root.Lstat("/");
  ASSERT_TRUE(rootst.ok());
  EXPECT_TRUE(S_ISDIR(rootst->st_mode));
}

TEST_F(RootDirTest, MkdirAllThroughInRootSymlinks) {
  fs::create_directories(root_ / "usr");
  fs::create_symlink("/", root_ / "usr" / "local");  // usr/local -> /
  RootDir root = OpenRoot();
  ASSERT_TRUE(root.MkdirAll("usr/local/bin/deep", 0750, 12, 34).ok());
  EXPECT_TRUE(fs::is_directory(root_ / "bin" / "deep"));
  struct stat st;
  ASSERT_EQ(::lstat((root_ / "bin" / "deep").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 12u);
  EXPECT_EQ(st.st_gid, 34u);
  // Existing directories keep their owner.
  ASSERT_EQ(::lstat((root_ / "usr").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  // Existing path is fine.
  EXPECT_TRUE(root.MkdirAll("/bin/deep", 0755).ok());
  EXPECT_FALSE(fs::exists(base_ / "bin"));
}

TEST_F(RootDirTest, MkdirAllNonDirectoryInTheWay) {
  WriteFile(root_ / "file", "x");
  fs::create_symlink("/nowhere", root_ / "dangling");
  RootDir root = OpenRoot();
  Status st = root.MkdirAll("file/sub", 0755);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "mkdir /file in " + root_.string() + ": a non-directory is in the way");
  st = root.MkdirAll("dangling/sub", 0755);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(),
            "mkdir /dangling in " + root_.string() + ": a dangling symlink is in the way");
}

TEST_F(RootDirTest, RemoveAllNeverFollowsSymlinks) {
  fs::create_directories(root_ / "victim" / "sub");
  WriteFile(root_ / "victim" / "sub" / "f", "x");
  fs::create_symlink(base_ / "outside", root_ / "victim" / "out");  // host path
  fs::create_symlink("../../outside", root_ / "victim" / "sub" / "rel");
  WriteFile(root_ / "keep", "k");
  RootDir root = OpenRoot();
  ASSERT_TRUE(root.RemoveAll("victim").ok());
  EXPECT_FALSE(fs::exists(root_ / "victim"));
  EXPECT_TRUE(fs::exists(root_ / "keep"));
  EXPECT_EQ(ReadFile(base_ / "outside" / "sentinel"), "keep");

  // A symlink to an outside dir as the target itself: only the link goes.
  fs::create_symlink(base_ / "outside", root_ / "outlink");
  ASSERT_TRUE(root.RemoveAll("outlink").ok());
  EXPECT_FALSE(fs::is_symlink(root_ / "outlink"));
  EXPECT_EQ(ReadFile(base_ / "outside" / "sentinel"), "keep");

  // Absent is fine, as is a path below a file.
  EXPECT_TRUE(root.RemoveAll("missing/deeper").ok());
  EXPECT_TRUE(root.RemoveAll("keep/below").ok());
  Status st = root.RemoveAll("/");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "remove / in " + root_.string() + ": cannot remove the root");
}

TEST_F(RootDirTest, RemoveAllThroughSymlinkedParentStaysInside) {
  fs::create_directories(root_ / "in" / "x");
  fs::create_symlink("/", root_ / "up");
  RootDir root = OpenRoot();
  // up/in/x resolves to /in/x inside the root.
  ASSERT_TRUE(root.RemoveAll("up/in/x").ok());
  EXPECT_FALSE(fs::exists(root_ / "in" / "x"));
  EXPECT_TRUE(fs::exists(root_ / "in"));
}

TEST_F(RootDirTest, Readlink) {
  fs::create_symlink("../../etc/shadow", root_ / "l");
  WriteFile(root_ / "f", "x");
  RootDir root = OpenRoot();
  auto r = root.Readlink("l");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "../../etc/shadow");
  auto bad = root.Readlink("f");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "readlink /f in " + root_.string() + ": invalid argument");
}

TEST_F(RootDirTest, OpenErrors) {
  WriteFile(root_ / "f", "x");
  RootDir root = OpenRoot();
  auto r = root.OpenAt("f/x", O_RDONLY);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "open /f/x in " + root_.string() + ": not a directory");
  fs::create_symlink("f", root_ / "l");
  auto nf = root.OpenAt("l", O_RDONLY | O_NOFOLLOW);
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(RootDirTest, ProcPathNamesTheRoot) {
  WriteFile(root_ / "f", "hello");
  RootDir root = OpenRoot();
  EXPECT_EQ(ReadFile(fs::path(root.ProcPath()) / "f"), "hello");
  EXPECT_EQ(root.path(), root_);
}

}  // namespace
}  // namespace kiln::util
