#include "source/local.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace kiln::source {
namespace {

namespace fs = std::filesystem;

class LocalContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kiln-local-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    ctx_dir_ = tmp_ / "ctx";
    index_dir_ = tmp_ / "contexts";
    fs::create_directories(ctx_dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  void Write(const std::string& rel, const std::string& content) {
    fs::path p = ctx_dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << content;
    ASSERT_TRUE(f.good()) << p;
  }

  std::shared_ptr<LocalContext> OpenCtx(std::vector<std::string> ignore = {},
                                        bool with_index = true,
                                        std::vector<std::string> includes = {}) {
    LocalOptions o;
    o.dir = ctx_dir_;
    if (with_index) o.index_dir = index_dir_;
    auto m = IgnoreMatcher::FromPatterns(std::move(ignore));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    o.excludes = std::move(*m);
    o.include_patterns = std::move(includes);
    auto ctx = LocalContext::Open(std::move(o));
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    return ctx.ok() ? *ctx : nullptr;
  }

  static std::vector<std::string> Paths(const Result<std::vector<ContextEntry>>& r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> out;
    if (r.ok()) {
      for (const ContextEntry& e : *r) out.push_back(e.path);
    }
    return out;
  }

  static util::Digest Sum(const LocalContext& ctx, const std::vector<std::string>& patterns) {
    auto d = ctx.Checksum(patterns);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : util::Digest();
  }

  using V = std::vector<std::string>;
  fs::path tmp_;
  fs::path ctx_dir_;
  fs::path index_dir_;
};

TEST_F(LocalContextTest, OpenErrors) {
  LocalOptions o;
  o.dir = tmp_ / "missing";
  auto r = LocalContext::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "build context directory " + (tmp_ / "missing").string() + " does not exist");
  Write("file", "x");
  o.dir = ctx_dir_ / "file";
  r = LocalContext::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "build context " + (ctx_dir_ / "file").string() + " is not a directory");
  o.dir = ctx_dir_;
  o.include_patterns = {"["};
  r = LocalContext::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "local.includepattern: invalid exclude pattern \"[\": syntax error in pattern");
}

TEST_F(LocalContextTest, DirAndRoot) {
  Write("a.txt", "a");
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->dir(), fs::canonical(ctx_dir_));
  auto st = ctx->root().Lstat("a.txt");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->st_size, 1);
}

TEST_F(LocalContextTest, MatchLiteralsAndWildcards) {
  Write("a.txt", "a");
  Write("b.txt", "b");
  Write("c.md", "c");
  Write("src/x.go", "x");
  Write("src/y.go", "y");
  Write("src/sub/z.go", "z");
  Write("[lit].txt", "l");
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  EXPECT_EQ(Paths(ctx->Match("a.txt")), V{"a.txt"});
  EXPECT_EQ(Paths(ctx->Match("/a.txt")), V{"a.txt"});
  EXPECT_EQ(Paths(ctx->Match("./src/../a.txt")), V{"a.txt"});
  EXPECT_EQ(Paths(ctx->Match("*.txt")), (V{"[lit].txt", "a.txt", "b.txt"}));
  EXPECT_EQ(Paths(ctx->Match("?.txt")), (V{"a.txt", "b.txt"}));
  EXPECT_EQ(Paths(ctx->Match("[ab].txt")), (V{"a.txt", "b.txt"}));
  EXPECT_EQ(Paths(ctx->Match("\\[lit\\].txt")), V{"[lit].txt"});
  EXPECT_EQ(Paths(ctx->Match("src/*.go")), (V{"src/x.go", "src/y.go"}));
  EXPECT_EQ(Paths(ctx->Match("*/*.go")), (V{"src/x.go", "src/y.go"}));
  EXPECT_EQ(Paths(ctx->Match("s*/s*/*")), V{"src/sub/z.go"});
  EXPECT_EQ(Paths(ctx->Match("src")), V{"src"});
  EXPECT_EQ(Paths(ctx->Match(".")), V{"."});
  EXPECT_EQ(Paths(ctx->Match("/")), V{"."});
  EXPECT_EQ(Paths(ctx->Match("*.none")), V{});
  EXPECT_EQ(Paths(ctx->Match("missing")), V{});
  EXPECT_EQ(Paths(ctx->Match("a.txt/x")), V{});
  EXPECT_EQ(Paths(ctx->Match("missing/*")), V{});
  auto bad = ctx->Match("src/[");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "invalid source pattern \"src/[\": syntax error in pattern");
  auto one = ctx->Match("a.txt");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_TRUE(S_ISREG((*one)[0].st.st_mode));
}

TEST_F(LocalContextTest, MatchAndExcludedHonourDockerignore) {
  Write("a.md", "a");
  Write("README.md", "r");
  Write("dir/keep", "k");
  Write("dir/drop", "d");
  Write("other/x", "x");
  auto ctx = OpenCtx({"*.md", "!README.md", "dir", "!dir/keep", "other"});
  ASSERT_TRUE(ctx);
  EXPECT_TRUE(ctx->Excluded("a.md"));
  EXPECT_FALSE(ctx->Excluded("README.md"));
  EXPECT_TRUE(ctx->Excluded("dir/drop"));
  EXPECT_FALSE(ctx->Excluded("dir/keep"));
  EXPECT_TRUE(ctx->Excluded("/other/x"));
  EXPECT_EQ(Paths(ctx->Match("*.md")), V{"README.md"});
  EXPECT_EQ(Paths(ctx->Match("a.md")), V{});
  // "dir" is excluded but holds a re-included file, so it is part of the context.
  EXPECT_EQ(Paths(ctx->Match("dir")), V{"dir"});
  EXPECT_EQ(Paths(ctx->Match("dir/*")), V{"dir/keep"});
  EXPECT_EQ(Paths(ctx->Match("other")), V{});
  EXPECT_EQ(Paths(ctx->Match("*")), (V{"README.md", "dir"}));
}

TEST_F(LocalContextTest, IncludePatterns) {
  Write("src/a.go", "a");
  Write("src/b.txt", "b");
  Write("docs/x", "x");
  auto ctx = OpenCtx({"src/b.txt"}, true, {"src"});
  ASSERT_TRUE(ctx);
  EXPECT_FALSE(ctx->Excluded("src/a.go"));
  EXPECT_TRUE(ctx->Excluded("src/b.txt"));
  EXPECT_TRUE(ctx->Excluded("docs/x"));
  EXPECT_EQ(Paths(ctx->Match("*")), V{"src"});
  EXPECT_EQ(Paths(ctx->Match("docs")), V{});
}

TEST_F(LocalContextTest, ChecksumCoversOnlyTheSelection) {
  Write("a.txt", "a");
  Write("b.txt", "b");
  Write("src/x.go", "x");
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  util::Digest a = Sum(*ctx, {"a.txt"});
  util::Digest src = Sum(*ctx, {"src"});
  util::Digest all = Sum(*ctx, {});
  EXPECT_NE(a, src);
  EXPECT_NE(a, all);
  EXPECT_EQ(Sum(*ctx, {"a.txt"}), a);
  EXPECT_EQ(Sum(*ctx, {"a.txt", "a.txt"}), a);
  EXPECT_EQ(Sum(*ctx, {"src", "src/x.go"}), src);
  EXPECT_EQ(Sum(*ctx, {"."}), all);
  EXPECT_EQ(Sum(*ctx, {"nothing*"}), Sum(*ctx, {"missing"}));

  Write("b.txt", "changed");  // outside both selections
  EXPECT_EQ(Sum(*ctx, {"a.txt"}), a);
  EXPECT_EQ(Sum(*ctx, {"src"}), src);
  EXPECT_NE(Sum(*ctx, {}), all);

  Write("src/x.go", "X");
  EXPECT_NE(Sum(*ctx, {"src"}), src);
  Write("src/x.go", "x");
  EXPECT_EQ(Sum(*ctx, {"src"}), src);
  Write("src/new.go", "");
  EXPECT_NE(Sum(*ctx, {"src"}), src);
  fs::remove(ctx_dir_ / "src/new.go");
  EXPECT_EQ(Sum(*ctx, {"src"}), src);

  ASSERT_EQ(::chmod((ctx_dir_ / "a.txt").c_str(), 0755), 0);
  EXPECT_NE(Sum(*ctx, {"a.txt"}), a);
}

TEST_F(LocalContextTest, ChecksumDependsOnPathAndWildcardExpansion) {
  Write("one.txt", "same");
  Write("two.txt", "same");
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  EXPECT_NE(Sum(*ctx, {"one.txt"}), Sum(*ctx, {"two.txt"}));
  EXPECT_EQ(Sum(*ctx, {"*.txt"}), Sum(*ctx, {"one.txt", "two.txt"}));
  Write("three.txt", "3");
  EXPECT_EQ(Sum(*ctx, {"*.txt"}), Sum(*ctx, {"one.txt", "three.txt", "two.txt"}));
}

TEST_F(LocalContextTest, ChecksumSkipsExcludedButKeepsReincluded) {
  Write("dir/keep", "k");
  Write("dir/drop", "d");
  Write("dir/sub/drop2", "d2");
  auto ctx = OpenCtx({"dir", "!dir/keep"});
  ASSERT_TRUE(ctx);
  util::Digest d = Sum(*ctx, {"dir"});
  EXPECT_NE(d, Sum(*ctx, {"missing"}));
  Write("dir/drop", "changed");
  Write("dir/sub/drop2", "changed");
  EXPECT_EQ(Sum(*ctx, {"dir"}), d);
  Write("dir/keep", "changed");
  EXPECT_NE(Sum(*ctx, {"dir"}), d);
  // A plain exclude under a selected directory.
  auto ctx2 = OpenCtx({"**/*.log"});
  ASSERT_TRUE(ctx2);
  Write("app/main.c", "m");
  Write("app/deep/x.log", "1");
  util::Digest app = Sum(*ctx2, {"app"});
  Write("app/deep/x.log", "2");
  Write("app/y.log", "3");
  EXPECT_EQ(Sum(*ctx2, {"app"}), app);
}

TEST_F(LocalContextTest, SymlinksAreHashedByTarget) {
  Write("target1", "t1");
  Write("target2", "t2");
  fs::create_symlink("target1", ctx_dir_ / "link");
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  util::Digest d = Sum(*ctx, {"link"});
  auto m = ctx->Match("link");
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->size(), 1u);
  EXPECT_TRUE(S_ISLNK((*m)[0].st.st_mode));
  Write("target1", "changed");  // not followed
  EXPECT_EQ(Sum(*ctx, {"link"}), d);
  fs::remove(ctx_dir_ / "link");
  fs::create_symlink("target2", ctx_dir_ / "link");
  EXPECT_NE(Sum(*ctx, {"link"}), d);
  // A symlink pointing outside the context is recorded, never followed.
  fs::create_symlink("/etc/passwd", ctx_dir_ / "escape");
  EXPECT_TRUE(ctx->Checksum({"escape"}).ok());
}

TEST_F(LocalContextTest, IndexAvoidsRereadingUnchangedFiles) {
  for (int i = 0; i < 50; ++i) Write("d/f" + std::to_string(i), "content " + std::to_string(i));
  util::Digest first;
  {
    auto ctx = OpenCtx();
    ASSERT_TRUE(ctx);
    first = Sum(*ctx, {});
    EXPECT_EQ(ctx->files_read(), 50u);
    EXPECT_EQ(Sum(*ctx, {}), first);
    EXPECT_EQ(ctx->files_read(), 50u);  // memoized in memory
  }
  // The index file is named by the sha256 of the context's absolute path.
  std::string name = std::string(util::Sha256Of(fs::canonical(ctx_dir_).string()).hex()) + ".db";
  EXPECT_TRUE(fs::exists(index_dir_ / name)) << name;
  {
    auto ctx = OpenCtx();  // a fresh process would see the same: read from the file
    ASSERT_TRUE(ctx);
    EXPECT_EQ(Sum(*ctx, {}), first);
    EXPECT_EQ(ctx->files_read(), 0u);
    // Same size: the stamp's mtime and ctime still change.
    Write("d/f7", "content X");
    util::Digest edited = Sum(*ctx, {});
    EXPECT_NE(edited, first);
    EXPECT_EQ(ctx->files_read(), 1u);
    Write("d/f7", "content 7");
    EXPECT_EQ(Sum(*ctx, {}), first);
    EXPECT_EQ(ctx->files_read(), 2u);
  }
  {
    // A file replaced by rename (another inode) is noticed.
    std::ofstream(tmp_ / "f3.new", std::ios::trunc) << "other 3";
    fs::rename(tmp_ / "f3.new", ctx_dir_ / "d/f3");
    auto ctx = OpenCtx();
    ASSERT_TRUE(ctx);
    EXPECT_NE(Sum(*ctx, {}), first);
    EXPECT_EQ(ctx->files_read(), 1u);
  }
}

TEST_F(LocalContextTest, NoIndexDirMeansNoFile) {
  Write("a", "a");
  auto ctx = OpenCtx({}, /*with_index=*/false);
  ASSERT_TRUE(ctx);
  util::Digest d = Sum(*ctx, {});
  EXPECT_FALSE(fs::exists(index_dir_));
  auto indexed = OpenCtx();
  ASSERT_TRUE(indexed);
  EXPECT_EQ(Sum(*indexed, {}), d);
}

TEST_F(LocalContextTest, ParallelHashingMatchesSerialResult) {
  for (int i = 0; i < 600; ++i) {
    Write("p" + std::to_string(i % 7) + "/f" + std::to_string(i),
          std::string(static_cast<size_t>(i) * 13, static_cast<char>('a' + i % 26)));
  }
  auto a = OpenCtx({}, false);
  auto b = OpenCtx({}, true);
  ASSERT_TRUE(a && b);
  util::Digest da = Sum(*a, {});
  EXPECT_EQ(a->files_read(), 600u);
  EXPECT_EQ(Sum(*b, {}), da);
  auto c = OpenCtx({}, true);
  ASSERT_TRUE(c);
  EXPECT_EQ(Sum(*c, {}), da);
  EXPECT_EQ(c->files_read(), 0u);
}

TEST_F(LocalContextTest, ConcurrentChecksums) {
  for (int i = 0; i < 100; ++i) Write("f" + std::to_string(i), std::to_string(i));
  auto ctx = OpenCtx();
  ASSERT_TRUE(ctx);
  util::Digest expected = Sum(*ctx, {"f1*"});
  std::vector<std::thread> threads;
  std::vector<util::Digest> got(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { got[t] = *ctx->Checksum({"f1*"}); });
  }
  for (auto& t : threads) t.join();
  for (const util::Digest& d : got) EXPECT_EQ(d, expected);
}

}  // namespace
}  // namespace kiln::source
