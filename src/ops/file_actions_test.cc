#include "ops/file_actions.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

namespace kiln::ops {
namespace {

namespace fs = std::filesystem;
using Tree = std::map<std::string, std::string>;

constexpr char kPasswd[] = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
constexpr char kGroup[] = "root:x:0:\napp:x:1001:\nstaff:x:50:app\n";

std::string Octal(unsigned m) {
  std::ostringstream ss;
  ss << std::oct << m;
  return ss.str();
}

class FileActionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    base_ = fs::temp_directory_path() / ("kiln-fileops-" + std::to_string(rd()));
    src_ = base_ / "src";
    dest_ = base_ / "dest";
    fs::create_directories(src_);
    fs::create_directories(dest_);
    fs::create_directories(base_ / "outside");
    Write(base_ / "outside" / "sentinel", "keep");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  static void Write(const fs::path& p, const std::string& data, unsigned mode = 0644) {
    fs::create_directories(p.parent_path());
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << data;
    }
    ::chmod(p.c_str(), mode);
  }
  static std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void SetMtime(const fs::path& p, time_t sec, long nsec) {
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  }

  // Every entry under `root`: "f <mode> <uid>:<gid> <content>", "d <mode>
  // <uid>:<gid>" or "l <target>".
  static Tree Dump(const fs::path& root) {
    Tree t;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
      std::string rel = it->path().lexically_relative(root).string();
      struct stat st;
      EXPECT_EQ(::lstat(it->path().c_str(), &st), 0);
      std::string owner = std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
      if (S_ISLNK(st.st_mode)) {
        t[rel] = "l " + fs::read_symlink(it->path()).string();
      } else if (S_ISDIR(st.st_mode)) {
        t[rel] = "d " + Octal(st.st_mode & 07777) + " " + owner;
      } else {
        t[rel] = "f " + Octal(st.st_mode & 07777) + " " + owner + " " + Read(it->path());
      }
    }
    return t;
  }

  // Applies `actions` with the source tree src_ (or scratch).
  Status Apply(const std::vector<graph::FileAction>& actions, CopySource source = {},
               FileActionContext ctx = {}, bool scratch = false) {
    auto dest = util::RootDir::Open(dest_);
    EXPECT_TRUE(dest.ok());
    auto src = util::RootDir::Open(src_);
    EXPECT_TRUE(src.ok());
    source.root = scratch ? nullptr : &*src;
    return ApplyFileActions(*dest, actions, {source}, ctx);
  }

  static graph::FileCopy Copy(std::string src, std::string dest) {
    graph::FileCopy c;
    c.source_input = 0;
    c.src = std::move(src);
    c.dest = std::move(dest);
    return c;
  }

  fs::path base_, src_, dest_;
};

// ---- COPY: a table of cases checked against the whole destination tree ----

struct CopyCase {
  std::string name;
  graph::FileCopy copy;
  Tree expected;
};

TEST_F(FileActionsTest, CopyTable) {
  auto copy = [](std::string s, std::string d) { return Copy(std::move(s), std::move(d)); };
  std::vector<CopyCase> cases;
  cases.push_back({"file to file", copy("a.txt", "/b.txt"), {{"b.txt", "f 644 0:0 A"}}});
  cases.push_back({"file to dir/",
                   copy("/a.txt", "/out/"),
                   {{"out", "d 755 0:0"}, {"out/a.txt", "f 644 0:0 A"}}});
  cases.push_back({"file to new path with parents",
                   copy("a.txt", "x/y/z"),
                   {{"x", "d 755 0:0"}, {"x/y", "d 755 0:0"}, {"x/y/z", "f 644 0:0 A"}}});
  cases.push_back({"dir contents",
                   copy("dir", "/app"),
                   {{"app", "d 750 0:0"},
                    {"app/one.txt", "f 600 0:0 1"},
                    {"app/sub", "d 700 0:0"},
                    {"app/sub/two.md", "f 644 0:0 2"},
                    {"app/sub/link", "l ../one.txt"}}});
  {
    graph::FileCopy c = copy("dir", "/app/");
    c.dir_copy_contents = false;
    cases.push_back({"dir itself",
                     c,
                     {{"app", "d 755 0:0"},
                      {"app/dir", "d 750 0:0"},
                      {"app/dir/one.txt", "f 600 0:0 1"},
                      {"app/dir/sub", "d 700 0:0"},
                      {"app/dir/sub/two.md", "f 644 0:0 2"},
                      {"app/dir/sub/link", "l ../one.txt"}}});
  }
  cases.push_back(
      {"wildcard into dir/",
       copy("*.txt", "/out/"),
       {{"out", "d 755 0:0"}, {"out/a.txt", "f 644 0:0 A"}, {"out/c.txt", "f 755 0:0 C"}}});
  cases.push_back(
      {"several matches make the destination a directory",
       copy("/?.txt", "/out"),
       {{"out", "d 755 0:0"}, {"out/a.txt", "f 644 0:0 A"}, {"out/c.txt", "f 755 0:0 C"}}});
  cases.push_back({"wildcard in a parent component",
                   copy("d*/*.txt", "/w/"),
                   {{"w", "d 755 0:0"}, {"w/one.txt", "f 600 0:0 1"}}});
  cases.push_back({"character class", copy("[ab].txt", "/k"), {{"k", "f 644 0:0 A"}}});
  cases.push_back({"negated class", copy("[^a-b].txt", "/neg"), {{"neg", "f 755 0:0 C"}}});
  cases.push_back({"escaped wildcard", copy("\\*.m?", "/e"), {{"e", "f 644 0:0 star"}}});
  {
    graph::FileCopy c = copy("dir", "/m");
    c.mode = 0640;
    cases.push_back({"--chmod applies to files and dirs",
                     c,
                     {{"m", "d 640 0:0"},
                      {"m/one.txt", "f 640 0:0 1"},
                      {"m/sub", "d 640 0:0"},
                      {"m/sub/two.md", "f 640 0:0 2"},
                      {"m/sub/link", "l ../one.txt"}}});
  }
  {
    graph::FileCopy c = copy("a.txt", "/o/");
    c.owner = graph::Owner{"app", ""};
    cases.push_back({"--chown by name (created parents too)",
                     c,
                     {{"o", "d 755 1000:1001"}, {"o/a.txt", "f 644 1000:1001 A"}}});
  }
  {
    graph::FileCopy c = copy("a.txt", "/n");
    c.owner = graph::Owner{"1234", "staff"};
    cases.push_back({"--chown number:group name", c, {{"n", "f 644 1234:50 A"}}});
  }
  {
    graph::FileCopy c = copy("owned", "/kept");
    cases.push_back({"source owner kept", c, {{"kept", "f 644 42:43 owned"}}});
  }
  cases.push_back({"top-level symlink followed in the source root",
                   copy("toplink", "/t"),
                   {{"t", "f 644 0:0 A"}}});
  {
    graph::FileCopy c = copy("toplink", "/t");
    c.follow_symlinks = false;
    cases.push_back({"top-level symlink kept without follow", c, {{"t", "l /a.txt"}}});
  }
  cases.push_back({"symlinked source dir followed",
                   copy("dirlink", "/s"),
                   {{"s", "d 750 0:0"},
                    {"s/one.txt", "f 600 0:0 1"},
                    {"s/sub", "d 700 0:0"},
                    {"s/sub/two.md", "f 644 0:0 2"},
                    {"s/sub/link", "l ../one.txt"}}});
  cases.push_back({"absolute host symlink resolves in the source root",
                   copy("shadowlink", "/sh"),
                   {{"sh", "f 600 0:0 in-root shadow"}}});
  cases.push_back({"relative escaping symlink resolves in the source root",
                   copy("uplink/a.txt", "/u"),
                   {{"u", "f 644 0:0 A"}}});

  for (CopyCase& tc : cases) {
    SCOPED_TRACE(tc.name);
    fs::remove_all(src_);
    fs::remove_all(dest_);
    fs::create_directories(dest_ / "etc");
    Write(dest_ / "etc" / "passwd", kPasswd);
    Write(dest_ / "etc" / "group", kGroup);
    Write(src_ / "a.txt", "A");
    Write(src_ / "c.txt", "C", 0755);
    Write(src_ / "b.md", "B");
    Write(src_ / "*.md", "star");
    Write(src_ / "dir" / "one.txt", "1", 0600);
    Write(src_ / "dir" / "sub" / "two.md", "2");
    fs::create_symlink("../one.txt", src_ / "dir" / "sub" / "link");
    ::chmod((src_ / "dir").c_str(), 0750);
    ::chmod((src_ / "dir" / "sub").c_str(), 0700);
    Write(src_ / "owned", "owned");
    ASSERT_EQ(::chown((src_ / "owned").c_str(), 42, 43), 0);
    fs::create_symlink("/a.txt", src_ / "toplink");
    fs::create_symlink("/dir", src_ / "dirlink");
    Write(src_ / "etc" / "shadow", "in-root shadow", 0600);
    fs::create_symlink("/etc/shadow", src_ / "shadowlink");
    fs::create_symlink("../../../..", src_ / "uplink");

    Status st = Apply({tc.copy});
    ASSERT_TRUE(st.ok()) << st.ToString();
    Tree got = Dump(dest_);
    got.erase("etc");
    got.erase("etc/passwd");
    got.erase("etc/group");
    EXPECT_EQ(got, tc.expected);
  }
  EXPECT_EQ(Read(base_ / "outside" / "sentinel"), "keep");
}

// Ctrl-C during a COPY of many files (issue 15): the copy stops at the next
// file with kCancelled instead of copying the rest.
TEST_F(FileActionsTest, CancelledCopyStopsAtTheNextFile) {
  for (int i = 0; i < 50; ++i) Write(src_ / "many" / ("f" + std::to_string(i)), "x");
  util::Canceller cancel;
  CopySource source;
  // Asked about each entry before it is copied: cancel at the tenth.
  int seen = 0;
  source.excluded = [&](std::string_view) {
    if (++seen == 10) cancel.Cancel("build cancelled (interrupted)");
    return false;
  };
  FileActionContext ctx;
  ctx.cancel = &cancel;
  Status st = Apply({Copy("/many", "/many")}, source, ctx);
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  EXPECT_NE(st.message().find("build cancelled (interrupted)"), std::string::npos) << st.ToString();
  size_t copied = 0;
  for (const auto& e : fs::directory_iterator(dest_ / "many")) copied += e.is_regular_file();
  EXPECT_LT(copied, 10u);
}

TEST_F(FileActionsTest, CancelledBeforeTheActionsStartsNone) {
  Write(src_ / "a", "a");
  util::Canceller cancel;
  cancel.Cancel("build cancelled (interrupted)");
  FileActionContext ctx;
  ctx.cancel = &cancel;
  Status st = Apply({Copy("/a", "/a")}, {}, ctx);
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  EXPECT_FALSE(fs::exists(dest_ / "a"));
}

TEST_F(FileActionsTest, CopyPreservesMtimesAndXattrs) {
  Write(src_ / "d" / "f", "x");
  fs::create_symlink("f", src_ / "d" / "l");
  ASSERT_EQ(::setxattr((src_ / "d" / "f").c_str(), "user.kiln", "v1", 2, 0), 0);
  SetMtime(src_ / "d" / "f", 1000000000, 123456789);
  SetMtime(src_ / "d" / "l", 1100000000, 5);
  SetMtime(src_ / "d", 1200000000, 0);
  graph::FileCopy c = Copy("d", "/out/d");
  ASSERT_TRUE(Apply({c}).ok());
  struct stat st;
  ASSERT_EQ(::lstat((dest_ / "out" / "d" / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  ASSERT_EQ(::lstat((dest_ / "out" / "d" / "l").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1100000000);
  ASSERT_EQ(::lstat((dest_ / "out" / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  char buf[16] = {};
  ASSERT_EQ(::getxattr((dest_ / "out" / "d" / "f").c_str(), "user.kiln", buf, sizeof(buf)), 2);
  EXPECT_EQ(std::string(buf, 2), "v1");
}

TEST_F(FileActionsTest, CopyFromContextBecomesRootOwned) {
  Write(src_ / "f", "x");
  ASSERT_EQ(::chown((src_ / "f").c_str(), 7, 8), 0);
  CopySource s;
  s.keep_owner = false;
  ASSERT_TRUE(Apply({Copy("f", "/f")}, s).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"f", "f 644 0:0 x"}}));
}

// Guards issue 15 (the copy snapshotter and COPY turned sparse files into
// full ones; copy_file_range on ext4 writes the holes out as zeros): a
// 256 MiB file with two bytes of data is copied with its holes.
TEST_F(FileActionsTest, CopyKeepsHoles) {
  const fs::path sparse = src_ / "sparse";
  {
    int fd = ::open(sparse.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "a", 1, 0), 1);
    ASSERT_EQ(::pwrite(fd, "z", 1, 100 << 20), 1);
    ASSERT_EQ(::ftruncate(fd, 256 << 20), 0);
    ::close(fd);
  }
  ASSERT_TRUE(Apply({Copy("sparse", "/sparse")}).ok());
  struct stat st;
  ASSERT_EQ(::stat((dest_ / "sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 256 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the copy's holes were filled";
  std::string head(1, '\0'), mid(1, '\0');
  int fd = ::open((dest_ / "sparse").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, head.data(), 1, 0), 1);
  ASSERT_EQ(::pread(fd, mid.data(), 1, 100 << 20), 1);
  ::close(fd);
  EXPECT_EQ(head, "a");
  EXPECT_EQ(mid, "z");
}

TEST_F(FileActionsTest, CopyIntoExistingDirMergesAndKeepsItsMetadata) {
  fs::create_directories(dest_ / "app");
  ::chmod((dest_ / "app").c_str(), 0711);
  Write(dest_ / "app" / "old", "old");
  Write(dest_ / "app" / "one.txt", "stale");
  Write(src_ / "dir" / "one.txt", "1");
  Write(src_ / "file", "F");
  ASSERT_TRUE(Apply({Copy("dir", "/app"), Copy("file", "/app")}).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"app", "d 711 0:0"},
                               {"app/old", "f 644 0:0 old"},
                               {"app/one.txt", "f 644 0:0 1"},
                               {"app/file", "f 644 0:0 F"}}));
}

TEST_F(FileActionsTest, RelativeDestinationUsesCwd) {
  Write(src_ / "f", "x");
  fs::create_directories(dest_ / "work");
  FileActionContext ctx;
  ctx.cwd = "/work";
  ASSERT_TRUE(Apply({Copy("f", "sub/"), Copy("f", "g")}, {}, ctx).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"work", "d 755 0:0"},
                               {"work/sub", "d 755 0:0"},
                               {"work/sub/f", "f 644 0:0 x"},
                               {"work/g", "f 644 0:0 x"}}));
}

TEST_F(FileActionsTest, ExcludedPathsAreHidden) {
  Write(src_ / "keep.txt", "k");
  Write(src_ / "secret.txt", "s");
  Write(src_ / "dir" / "skip" / "x", "x");
  Write(src_ / "dir" / "ok", "ok");
  CopySource s;
  // Parent-aware, as .dockerignore matching is.
  s.excluded = [](std::string_view p) {
    return p == "secret.txt" || p == "dir/skip" || p.substr(0, 9) == "dir/skip/";
  };
  ASSERT_TRUE(Apply({Copy(".", "/app")}, s).ok());
  ASSERT_TRUE(Apply({Copy("*.txt", "/w/")}, s).ok());
  Tree got = Dump(dest_);
  EXPECT_EQ(got, (Tree{{"app", "d 755 0:0"},
                       {"app/keep.txt", "f 644 0:0 k"},
                       {"app/dir", "d 755 0:0"},
                       {"app/dir/ok", "f 644 0:0 ok"},
                       {"w", "d 755 0:0"},
                       {"w/keep.txt", "f 644 0:0 k"}}));
  Status st = Apply({Copy("secret.txt", "/s")}, s);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "copy secret.txt: lstat /secret.txt: no such file or directory");
  st = Apply({Copy("dir/skip/x", "/s")}, s);
  EXPECT_EQ(st.message(), "copy dir/skip/x: lstat /dir/skip/x: no such file or directory");
}

TEST_F(FileActionsTest, ReincludedPathsBelowExcludedDirectories) {
  Write(src_ / "app.js", "js");
  Write(src_ / "node_modules" / "a" / "x", "x");
  Write(src_ / "node_modules" / "keep" / "y", "y");
  Write(src_ / "node_modules" / "none" / "deep" / "z", "z");
  ::chmod((src_ / "node_modules").c_str(), 0700);
  auto under = [](std::string_view p, std::string_view dir) {
    return p == dir ||
           (p.size() > dir.size() && p.substr(0, dir.size()) == dir && p[dir.size()] == '/');
  };
  CopySource s;
  // .dockerignore: node_modules, !node_modules/keep
  s.excluded = [under](std::string_view p) {
    return under(p, "node_modules") && !under(p, "node_modules/keep");
  };
  const Tree expected = {{"app", "d 755 0:0"},
                         {"app/app.js", "f 644 0:0 js"},
                         {"app/node_modules", "d 700 0:0"},
                         {"app/node_modules/keep", "d 755 0:0"},
                         {"app/node_modules/keep/y", "f 644 0:0 y"}};
  // Without may_include_below every excluded directory is searched.
  ASSERT_TRUE(Apply({Copy(".", "/app")}, s).ok());
  EXPECT_EQ(Dump(dest_), expected);

  fs::remove_all(dest_);
  fs::create_directories(dest_);
  std::vector<std::string> asked;
  s.may_include_below = [&asked](std::string_view dir) {
    asked.emplace_back(dir);
    return dir == "node_modules";
  };
  ASSERT_TRUE(Apply({Copy(".", "/app")}, s).ok());
  EXPECT_EQ(Dump(dest_), expected);
  // node_modules/none and node_modules/a were pruned without reading them.
  EXPECT_EQ(std::set<std::string>(asked.begin(), asked.end()),
            (std::set<std::string>{"node_modules", "node_modules/a", "node_modules/none"}));

  ASSERT_TRUE(Apply({Copy("node_modules/keep/y", "/y")}, s).ok());
  EXPECT_EQ(Read(dest_ / "y"), "y");
  Status st = Apply({Copy("node_modules/a/x", "/x")}, s);
  EXPECT_EQ(st.message(),
            "copy node_modules/a/x: lstat /node_modules/a/x: no such file or directory");
}

TEST_F(FileActionsTest, CopyErrors) {
  Write(src_ / "f", "x");
  Write(src_ / "d" / "g", "g");
  Write(dest_ / "file", "x");
  Status st = Apply({Copy("missing", "/x")});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "copy missing: lstat /missing: no such file or directory");

  st = Apply({Copy("*.none", "/x/")});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "copy *.none: no source files were specified: no files match /*.none");
  graph::FileCopy empty = Copy("*.none", "/x/");
  empty.allow_empty_wildcard = true;
  EXPECT_TRUE(Apply({empty}).ok());

  graph::FileCopy literal = Copy("*", "/x");
  literal.allow_wildcard = false;
  st = Apply({literal});
  EXPECT_EQ(st.message(), "copy *: lstat /*: no such file or directory");

  graph::FileCopy nocreate = Copy("f", "/no/such/dir/f");
  nocreate.create_dest_path = false;
  st = Apply({nocreate});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "copy f: destination directory /no/such/dir does not exist");

  st = Apply({Copy("d", "/file")});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "copy d: cannot copy to non-directory: /file");

  graph::FileCopy bad = Copy("f", "/y");
  bad.owner = graph::Owner{"nobody-here", ""};
  st = Apply({bad});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("copy f: unable to find user nobody-here"), std::string::npos)
      << st.message();

  graph::FileCopy range = Copy("f", "/y");
  range.source_input = 3;
  st = Apply({range});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "copy f: source input 3 out of range (1 inputs)");

  st = Apply({Copy("[", "/y")});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "copy [: syntax error in pattern /[");
}

TEST_F(FileActionsTest, HostileSourceSymlinksNeverReadTheHost) {
  // Links to host files: inside the source root those paths do not exist.
  fs::create_symlink("/etc/shadow", src_ / "shadow");
  fs::create_symlink(base_ / "outside" / "sentinel", src_ / "abs");
  fs::create_symlink("../outside/sentinel", src_ / "rel");
  for (const char* name : {"shadow", "abs", "rel"}) {
    SCOPED_TRACE(name);
    Status st = Apply({Copy(name, "/x")});
    EXPECT_EQ(st.code(), StatusCode::kNotFound);
    EXPECT_EQ(st.message(),
              std::string("copy ") + name + ": lstat /" + name + ": no such file or directory");
  }
  // Inside a copied directory they are copied as links, never followed.
  Write(src_ / "d" / "f", "f");
  fs::create_symlink("/etc/shadow", src_ / "d" / "shadow");
  ASSERT_TRUE(Apply({Copy("d", "/d")}).ok());
  EXPECT_EQ(Dump(dest_),
            (Tree{{"d", "d 755 0:0"}, {"d/f", "f 644 0:0 f"}, {"d/shadow", "l /etc/shadow"}}));
}

TEST_F(FileActionsTest, HostileDestinationSymlinksStayInsideDest) {
  Write(src_ / "a.txt", "A");
  Write(src_ / "d" / "x", "X");
  fs::create_directories(dest_ / "usr");
  fs::create_symlink("/", dest_ / "usr" / "local");
  fs::create_symlink("../../../..", dest_ / "up");
  fs::create_symlink(base_ / "outside" / "sentinel", dest_ / "hostfile");
  fs::create_symlink(base_ / "outside", dest_ / "hostdir");
  ASSERT_TRUE(
      Apply({Copy("a.txt", "/usr/local/bin/"), Copy("d", "/up/share"), Copy("a.txt", "/hostfile")})
          .ok());
  EXPECT_EQ(Read(dest_ / "bin" / "a.txt"), "A");
  EXPECT_EQ(Read(dest_ / "share" / "x"), "X");
  // The final link is replaced, not written through.
  EXPECT_FALSE(fs::is_symlink(dest_ / "hostfile"));
  EXPECT_EQ(Read(dest_ / "hostfile"), "A");
  // A link to a host directory is dangling inside the root.
  Status st = Apply({Copy("a.txt", "/hostdir/")});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "copy a.txt: mkdir /hostdir in " + dest_.string() +
                              ": a dangling symlink is in the way");
  EXPECT_EQ(Read(base_ / "outside" / "sentinel"), "keep");
  EXPECT_FALSE(fs::exists(base_ / "outside" / "a.txt"));
  EXPECT_FALSE(fs::exists(base_ / "bin"));
  EXPECT_FALSE(fs::exists(base_ / "share"));
}

TEST_F(FileActionsTest, CopyFromScratch) {
  ASSERT_TRUE(Apply({Copy("/", "/empty")}, {}, {}, /*scratch=*/true).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"empty", "d 755 0:0"}}));
  Status st = Apply({Copy("x", "/y")}, {}, {}, /*scratch=*/true);
  EXPECT_EQ(st.message(), "copy x: lstat /x: no such file or directory");
}

// ---- ADD: archives ----

struct TarEntry {
  std::string path;
  mode_t type;
  std::string data;  // contents or link target
  bool hardlink = false;
  unsigned mode = 0644;
};

void MakeArchive(const fs::path& out, int filter, const std::vector<TarEntry>& entries) {
  struct archive* a = archive_write_new();
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  if (filter != ARCHIVE_FILTER_NONE) {
    ASSERT_EQ(archive_write_add_filter(a, filter), ARCHIVE_OK);
  }
  ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
  for (const TarEntry& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.path.c_str());
    archive_entry_set_perm(ae, e.mode);
    archive_entry_set_uid(ae, 11);
    archive_entry_set_gid(ae, 22);
    archive_entry_set_mtime(ae, 1500000000, 0);
    if (e.hardlink) {
      archive_entry_set_hardlink(ae, e.data.c_str());
      archive_entry_set_filetype(ae, AE_IFREG);
    } else {
      archive_entry_set_filetype(ae, e.type);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(ae, e.data.c_str());
      if (e.type == AE_IFREG) archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
    }
    ASSERT_EQ(archive_write_header(a, ae), ARCHIVE_OK);
    if (e.type == AE_IFREG && !e.hardlink) {
      ASSERT_EQ(archive_write_data(a, e.data.data(), e.data.size()),
                static_cast<la_ssize_t>(e.data.size()));
    }
    archive_entry_free(ae);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

TEST_F(FileActionsTest, AddUnpacksLocalArchivesInsideTheDestination) {
  std::vector<TarEntry> entries = {
      {"top", AE_IFDIR, "", false, 0750},
      {"top/f", AE_IFREG, "hello", false, 0640},
      {"top/hl", AE_IFREG, "top/f", true},
      {"top/sl", AE_IFLNK, "f"},
      {"../../escape", AE_IFREG, "E"},
      {"/abs", AE_IFREG, "B"},
      {"root", AE_IFLNK, "/"},
      {"root/through", AE_IFREG, "T"},
      {"hostdir", AE_IFLNK, (base_ / "outside").string()},
  };
  struct Kind {
    const char* file;
    int filter;
  };
  for (Kind k : {Kind{"a.tar", ARCHIVE_FILTER_NONE}, Kind{"a.tar.gz", ARCHIVE_FILTER_GZIP},
                 Kind{"a.tar.bz2", ARCHIVE_FILTER_BZIP2}, Kind{"a.tar.xz", ARCHIVE_FILTER_XZ}}) {
    SCOPED_TRACE(k.file);
    fs::remove_all(dest_);
    fs::create_directories(dest_);
    MakeArchive(src_ / k.file, k.filter, entries);
    graph::FileCopy c = Copy(k.file, "/opt/");
    c.attempt_unpack = true;
    Status st = Apply({c});
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Dump(dest_), (Tree{{"opt", "d 755 0:0"},
                                 {"opt/top", "d 750 11:22"},
                                 {"opt/top/f", "f 640 11:22 hello"},
                                 {"opt/top/hl", "f 640 11:22 hello"},
                                 {"opt/top/sl", "l f"},
                                 {"opt/escape", "f 644 11:22 E"},
                                 {"opt/abs", "f 644 11:22 B"},
                                 {"opt/root", "l /"},
                                 {"opt/through", "f 644 11:22 T"},
                                 {"opt/hostdir", "l " + (base_ / "outside").string()}}));
    struct stat a, b;
    ASSERT_EQ(::stat((dest_ / "opt" / "top" / "f").c_str(), &a), 0);
    ASSERT_EQ(::stat((dest_ / "opt" / "top" / "hl").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_mtim.tv_sec, 1500000000);
    ASSERT_EQ(::stat((dest_ / "opt" / "top").c_str(), &a), 0);
    EXPECT_EQ(a.st_mtim.tv_sec, 1500000000);
  }
  EXPECT_FALSE(fs::exists(base_ / "escape"));
  EXPECT_FALSE(fs::exists(base_ / "through"));
  EXPECT_EQ(Read(base_ / "outside" / "sentinel"), "keep");
}

TEST_F(FileActionsTest, AddWithChownOwnsUnpackedFiles) {
  MakeArchive(src_ / "a.tgz", ARCHIVE_FILTER_GZIP, {{"f", AE_IFREG, "x"}});
  graph::FileCopy c = Copy("a.tgz", "/x");
  c.attempt_unpack = true;
  c.owner = graph::Owner{"5", "6"};
  ASSERT_TRUE(Apply({c}).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"x", "d 755 5:6"}, {"x/f", "f 644 5:6 x"}}));
}

TEST_F(FileActionsTest, AddNonArchiveIsCopied) {
  Write(src_ / "notes.gz", "just text, not gzip");
  Write(src_ / "empty", "");
  graph::FileCopy c = Copy("notes.gz", "/d/");
  c.attempt_unpack = true;
  graph::FileCopy e = Copy("empty", "/d/");
  e.attempt_unpack = true;
  // Without attempt_unpack an archive is copied as is.
  MakeArchive(src_ / "a.tar", ARCHIVE_FILTER_NONE, {{"f", AE_IFREG, "x"}});
  graph::FileCopy plain = Copy("a.tar", "/t.tar");
  ASSERT_TRUE(Apply({c, e, plain}).ok());
  Tree got = Dump(dest_);
  EXPECT_EQ(got["d/notes.gz"], "f 644 0:0 just text, not gzip");
  EXPECT_EQ(got["d/empty"], "f 644 0:0 ");
  EXPECT_EQ(Read(dest_ / "t.tar"), Read(src_ / "a.tar"));
  EXPECT_EQ(got.size(), 4u);
}

TEST_F(FileActionsTest, AddCompressedNonTarIsCopiedAsIs) {
  // A gzip stream of plain text is not a tar archive: copied unchanged.
  struct archive* a = archive_write_new();
  ASSERT_EQ(archive_write_set_format_raw(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a, (src_ / "notes.txt.gz").c_str()), ARCHIVE_OK);
  struct archive_entry* ae = archive_entry_new();
  archive_entry_set_filetype(ae, AE_IFREG);
  archive_entry_set_pathname(ae, "notes.txt");
  ASSERT_EQ(archive_write_header(a, ae), ARCHIVE_OK);
  ASSERT_EQ(archive_write_data(a, "plain text\n", 11), 11);
  archive_entry_free(ae);
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  graph::FileCopy c = Copy("notes.txt.gz", "/n.gz");
  c.attempt_unpack = true;
  ASSERT_TRUE(Apply({c}).ok());
  EXPECT_EQ(Read(dest_ / "n.gz"), Read(src_ / "notes.txt.gz"));
}

TEST_F(FileActionsTest, AddTruncatedArchiveIsAnError) {
  MakeArchive(src_ / "t.tar", ARCHIVE_FILTER_NONE, {{"big", AE_IFREG, std::string(100000, 'x')}});
  fs::resize_file(src_ / "t.tar", 2048);
  graph::FileCopy c = Copy("t.tar", "/out/");
  c.attempt_unpack = true;
  Status st = Apply({c});
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  EXPECT_EQ(st.message().rfind("copy t.tar: unpack /t.tar into /out: read /big: ", 0), 0u)
      << st.message();
}

// ---- mkdir, mkfile, rm ----

TEST_F(FileActionsTest, Mkdir) {
  Write(dest_ / "etc" / "passwd", kPasswd);
  Write(dest_ / "etc" / "group", kGroup);
  Write(dest_ / "file", "x");
  graph::FileMkdir m;
  m.path = "/a/b/c";
  m.mode = 0700;
  m.owner = graph::Owner{"app", ""};
  ASSERT_TRUE(Apply({m}).ok());
  Tree got = Dump(dest_);
  EXPECT_EQ(got["a"], "d 700 1000:1001");
  EXPECT_EQ(got["a/b/c"], "d 700 1000:1001");
  ASSERT_TRUE(Apply({m}).ok());  // existing is fine

  graph::FileMkdir flat;
  flat.path = "rel";
  flat.make_parents = false;
  FileActionContext ctx;
  ctx.cwd = "/a";
  ASSERT_TRUE(Apply({flat}, {}, ctx).ok());
  EXPECT_EQ(Dump(dest_)["a/rel"], "d 755 0:0");
  ASSERT_TRUE(Apply({flat}, {}, ctx).ok());

  flat.path = "/missing/x";
  Status st = Apply({flat});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "mkdir /missing/x: parent directory /missing does not exist");
  flat.path = "/file";
  st = Apply({flat});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "mkdir /file: a non-directory is in the way");
  m.path = "/file/sub";
  st = Apply({m});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "mkdir /file/sub: mkdir /file in " + dest_.string() +
                              ": a non-directory is in the way");
}

TEST_F(FileActionsTest, Mkfile) {
  Write(dest_ / "etc" / "passwd", kPasswd);
  Write(dest_ / "etc" / "group", kGroup);
  fs::create_symlink(base_ / "outside" / "sentinel", dest_ / "link");
  graph::FileMkfile f;
  f.path = "/etc/motd";
  f.data = "hi\n";
  f.mode = 0600;
  f.owner = graph::Owner{"app", "staff"};
  graph::FileMkfile over;
  over.path = "link";
  over.data = "replaced";
  ASSERT_TRUE(Apply({f, over}).ok());
  Tree got = Dump(dest_);
  EXPECT_EQ(got["etc/motd"], "f 600 1000:50 hi\n");
  EXPECT_EQ(got["link"], "f 644 0:0 replaced");
  EXPECT_EQ(Read(base_ / "outside" / "sentinel"), "keep");

  f.path = "/nodir/x";
  Status st = Apply({f});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "mkfile /nodir/x: parent directory /nodir does not exist");
  f.path = "/etc";
  st = Apply({f});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "mkfile /etc: a directory is in the way");
}

TEST_F(FileActionsTest, Rm) {
  Write(dest_ / "a.log", "1");
  Write(dest_ / "b.log", "2");
  Write(dest_ / "keep", "k");
  Write(dest_ / "d" / "sub" / "f", "f");
  fs::create_symlink(base_ / "outside", dest_ / "d" / "out");
  fs::create_symlink(base_ / "outside", dest_ / "hostlink");
  graph::FileRm logs;
  logs.path = "/*.log";
  graph::FileRm dir;
  dir.path = "d";
  graph::FileRm link;
  link.path = "hostlink";
  ASSERT_TRUE(Apply({logs, dir, link}).ok());
  EXPECT_EQ(Dump(dest_), (Tree{{"keep", "f 644 0:0 k"}}));
  EXPECT_EQ(Read(base_ / "outside" / "sentinel"), "keep");

  graph::FileRm missing;
  missing.path = "/nope";
  EXPECT_TRUE(Apply({missing}).ok());
  missing.allow_not_found = false;
  Status st = Apply({missing});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "rm /nope: no such file or directory");
  missing.path = "/*.none";
  st = Apply({missing});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "rm /*.none: no files match /*.none");
  graph::FileRm root;
  root.path = "/";
  st = Apply({root});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "rm /: cannot remove the root");
}

}  // namespace
}  // namespace kiln::ops
