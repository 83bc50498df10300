#include "source/dockerignore.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace kiln::source {
namespace {

struct Case {
  std::vector<std::string> patterns;
  std::string path;
  bool excluded;
};

// Expected outcomes follow `docker build` / BuildKit v0.10 (moby's pattern
// matcher with parent-directory matching).
const Case kCases[] = {
    // Plain names and parent-directory matching.
    {{"foo"}, "foo", true},
    {{"foo"}, "foo/bar", true},
    {{"foo"}, "foo/bar/baz.txt", true},
    {{"foo"}, "foobar", false},
    {{"foo"}, "bar/foo", false},
    {{"foo/bar"}, "foo/bar/x", true},
    {{"foo/bar"}, "foo", false},
    {{"foo/bar"}, "foo/baz", false},
    // Trailing slash, "./" and leading "/" are cleaned away.
    {{"dir/"}, "dir", true},
    {{"dir/"}, "dir/file", true},
    {{"./dir"}, "dir/file", true},
    {{"/dir"}, "dir/file", true},
    {{"/dir/../other"}, "other", true},
    {{"a//b"}, "a/b", true},
    {{"a/./b"}, "a/b/c", true},
    // `*` stays within one path component.
    {{"*"}, "anything", true},
    {{"*"}, "dir/file", true},  // through its parent "dir"
    {{"*.md"}, "README.md", true},
    {{"*.md"}, "docs/guide.md", false},
    {{"*/*.md"}, "docs/guide.md", true},
    {{"*/*.md"}, "a/b/guide.md", false},
    {{"docs/*"}, "docs/a/b", true},
    {{"*.go"}, "main.go", true},
    {{"te*t"}, "test", true},
    {{"te*t"}, "te/t", false},
    // `?` is one character, never "/".
    {{"?.txt"}, "a.txt", true},
    {{"?.txt"}, "ab.txt", false},
    {{"a?b"}, "a/b", false},
    {{"?"}, "\xc3\xa9", true},  // one code point, two bytes
    // `**`.
    {{"**/*.go"}, "main.go", true},
    {{"**/*.go"}, "a/b/c/main.go", true},
    {{"**/*.go"}, "a/main.go.txt", false},
    {{"**"}, "any/thing/at/all", true},
    {{"dir/**"}, "dir/a/b", true},
    {{"dir/**"}, "dir", false},
    {{"dir/**"}, "dirx/a", false},
    {{"a/**/b"}, "a/b", true},
    {{"a/**/b"}, "a/x/y/b", true},
    {{"a/**/b"}, "a/x/y/c", false},
    {{"a/**/b"}, "a/x/b/c", true},  // through the parent "a/x/b"
    {{"**/node_modules"}, "web/app/node_modules/lib/x.js", true},
    {{"**/.git"}, ".git/config", true},
    {{"**foo"}, "a/foo", true},
    {{"**foo"}, "barfoo", false},
    {{"a**"}, "abc/d", true},
    // Character classes.
    {{"[abc].txt"}, "b.txt", true},
    {{"[abc].txt"}, "d.txt", false},
    {{"[a-c]*"}, "cat", true},
    {{"[^a-c]*"}, "cat", false},
    {{"[^a-c]*"}, "dog", true},
    {{"[!a]"}, "!", true},  // '!' is not negation
    {{"[\\]]"}, "]", true},
    {{"file[0-9]"}, "file7", true},
    {{"file[0-9]"}, "filex", false},
    // Escapes.
    {{"\\*"}, "*", true},
    {{"\\*"}, "a", false},
    {{"a\\?b"}, "a?b", true},
    {{"a\\?b"}, "axb", false},
    // Regexp characters are literal.
    {{"a.b"}, "a.b", true},
    {{"a.b"}, "axb", false},
    {{"a+b(c)|{d}$"}, "a+b(c)|{d}$", true},
    {{"^a"}, "^a", true},
    // Exceptions: the last matching pattern wins.
    {{"*.md", "!README.md"}, "README.md", false},
    {{"*.md", "!README.md"}, "CHANGES.md", true},
    {{"!README.md", "*.md"}, "README.md", true},
    {{"dir", "!dir/keep"}, "dir/keep", false},
    {{"dir", "!dir/keep"}, "dir/keep/inner", false},
    {{"dir", "!dir/keep"}, "dir/other", true},
    {{"dir", "!dir/keep"}, "dir", true},
    {{"dir", "!dir/keep", "dir/keep/secret"}, "dir/keep/secret", true},
    {{"dir", "!dir/keep", "dir/keep/secret"}, "dir/keep/public", false},
    {{"*", "!*.go"}, "main.go", false},
    {{"*", "!*.go"}, "pkg/x.go", true},
    {{"**", "!**/*.go"}, "pkg/x.go", false},
    {{"**", "!**/*.go"}, "pkg/x.txt", true},
    {{"a", "!a", "a/b"}, "a/b/c", true},
    {{"a", "!a", "a/b"}, "a/c", false},
    {{"!foo"}, "foo", false},
    {{"  spaced  "}, "spaced", true},
    {{}, "anything", false},
    // "." (the root) is ignored as a pattern, and the root is never excluded.
    {{"."}, "anything", false},
    {{"./"}, "a/b", false},
    {{"*"}, ".", false},
};

TEST(IgnoreMatcherTest, Table) {
  int n = 0;
  for (const Case& c : kCases) {
    auto m = IgnoreMatcher::FromPatterns(c.patterns);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    std::string what;
    for (const std::string& p : c.patterns) what += "[" + p + "] ";
    EXPECT_EQ(m->Excluded(c.path), c.excluded) << what << "path " << c.path;
    ++n;
  }
  EXPECT_GE(n, 60);
}

TEST(IgnoreMatcherTest, ParseSkipsCommentsBlankLinesAndTrims) {
  auto m = IgnoreMatcher::Parse(
      "\xEF\xBB\xBF# comment\n"
      "\n"
      "   \n"
      "  *.md  \r\n"
      "!README.md\n"
      "  # not a comment once indented\n"
      "/abs/path/\n"
      "! spaced\n"
      "./dot/./x");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->patterns().size(), 6u);
  EXPECT_EQ(m->patterns()[0].text, "*.md");
  EXPECT_TRUE(m->patterns()[0].exclusion);
  EXPECT_EQ(m->patterns()[1].text, "README.md");
  EXPECT_FALSE(m->patterns()[1].exclusion);
  EXPECT_EQ(m->patterns()[2].text, "# not a comment once indented");
  EXPECT_EQ(m->patterns()[3].text, "abs/path");
  EXPECT_EQ(m->patterns()[3].dirs, (std::vector<std::string>{"abs", "path"}));
  EXPECT_EQ(m->patterns()[4].text, "spaced");
  EXPECT_FALSE(m->patterns()[4].exclusion);
  EXPECT_EQ(m->patterns()[5].text, "dot/x");
  EXPECT_TRUE(m->Excluded("abs/path/file"));
  EXPECT_FALSE(m->Excluded("README.md"));
  EXPECT_TRUE(m->Excluded("NOTES.md"));
  EXPECT_TRUE(m->Excluded("# not a comment once indented"));
}

TEST(IgnoreMatcherTest, BomOnlyOnFirstLineAndCommentAfterBom) {
  auto m = IgnoreMatcher::Parse("\xEF\xBB\xBF#x\n\xEF\xBB\xBFy\n");
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->patterns().size(), 1u);
  EXPECT_EQ(m->patterns()[0].text, "\xEF\xBB\xBFy");
}

TEST(IgnoreMatcherTest, EmptyAndCommentOnly) {
  auto m = IgnoreMatcher::Parse("# only a comment\n\n");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->empty());
  EXPECT_FALSE(m->Excluded("x"));
  IgnoreMatcher none;
  EXPECT_FALSE(none.Excluded("x"));
  EXPECT_FALSE(none.MayIncludeBelow("x"));
}

TEST(IgnoreMatcherTest, ErrorsNameLineAndPattern) {
  auto m = IgnoreMatcher::Parse("ok\n# c\n[\n");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            ".dockerignore:3: invalid exclude pattern \"[\": syntax error in pattern");

  m = IgnoreMatcher::Parse("a\n!\n");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            ".dockerignore:2: invalid exclude pattern \"!\": \"!\" must be followed by the "
            "pattern it re-includes");

  m = IgnoreMatcher::Parse("a\\");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            ".dockerignore:1: invalid exclude pattern \"a\\\": syntax error in pattern");

  for (const char* bad : {"[]", "[^]", "[a-]", "[-a]", "a[b", "x/[", "[\\"}) {
    auto r = IgnoreMatcher::FromPatterns({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message(),
              std::string("invalid exclude pattern \"") + bad + "\": syntax error in pattern");
  }
  auto r = IgnoreMatcher::FromPatterns({"[z-a]"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "invalid exclude pattern \"[z-a]\": invalid character class range");
}

TEST(IgnoreMatcherTest, MayIncludeBelow) {
  auto m = IgnoreMatcher::FromPatterns({"dir", "!dir/keep", "other", "!*/x/y"});
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->MayIncludeBelow("dir"));
  EXPECT_FALSE(m->MayIncludeBelow("dir/keep"));  // "!dir/keep" matches it, nothing deeper
  EXPECT_TRUE(m->MayIncludeBelow("other"));      // "*/x/y" may match other/x/y
  EXPECT_TRUE(m->MayIncludeBelow("other/x"));
  EXPECT_FALSE(m->MayIncludeBelow("other/z"));
  EXPECT_FALSE(m->MayIncludeBelow("a/b/c"));

  auto deep = IgnoreMatcher::FromPatterns({"vendor", "!**/*.go"});
  ASSERT_TRUE(deep.ok());
  EXPECT_TRUE(deep->MayIncludeBelow("vendor"));
  EXPECT_TRUE(deep->MayIncludeBelow("vendor/a/b"));

  auto none = IgnoreMatcher::FromPatterns({"dir", "*.md"});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->MayIncludeBelow("dir"));
}

TEST(PathMatchTest, ShellSemantics) {
  struct M {
    const char* pattern;
    const char* name;
    bool match;
  };
  const M cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "a/b", false},
      {"a*/b", "abc/b", true},
      {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^b-d]", "abc", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a[^a]b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a???b",
       "a\xe2\x98\xba"
       "b",
       false},
      {"[\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"*x", "xxx", true},
      {"**", "a", true},
      {".*", ".hidden", true},
      {"*", ".hidden", true},
      {"?", "", false},
      {"", "", true},
      {"", "a", false},
  };
  for (const M& c : cases) {
    auto r = PathMatch(c.pattern, c.name);
    ASSERT_TRUE(r.ok()) << c.pattern << ": " << r.status().ToString();
    EXPECT_EQ(*r, c.match) << c.pattern << " vs " << c.name;
  }
  for (const char* bad : {"[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "a\\", "[a-b-c]"}) {
    auto r = PathMatch(bad, "a");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message(), "syntax error in pattern");
  }
  // Go checks the pattern even when the name already failed to match.
  auto r = PathMatch("x[", "abc");
  EXPECT_FALSE(r.ok());
}

// Regression: matching backtracked at every `*` and `**`, so a pattern with
// many stars took exponential time on a long name (a hostile .dockerignore
// in a remote context hung the build). Each case below took minutes; as an
// NFA run it is linear in pattern x name.
TEST(IgnoreMatcherTest, ManyStarsMatchInPolynomialTime) {
  const auto start = std::chrono::steady_clock::now();
  std::string stars;
  for (int i = 0; i < 16; ++i) stars += "*a";
  const std::string name(200, 'a');
  auto r = PathMatch(stars + "b", name);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_TRUE(*PathMatch(stars, name));

  auto m = IgnoreMatcher::Parse(stars + "b\n" + "!" + stars + "c\n");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE(m->Excluded(name + "/" + name));

  std::string dirs;
  for (int i = 0; i < 16; ++i) dirs += "**/a/";
  auto d = IgnoreMatcher::Parse(dirs + "b");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::string path;
  for (int i = 0; i < 100; ++i) path += "a/";
  EXPECT_FALSE(d->Excluded(path + "c"));
  EXPECT_TRUE(d->Excluded(path + "b"));

  // fuzz_dockerignore's slow unit: the same shapes against every ancestor
  // of a deep path took 10 s with a memo (cubic per match).
  auto deep = IgnoreMatcher::Parse(stars + "b\n" + dirs + "b\n");
  ASSERT_TRUE(deep.ok());
  std::string long_path;
  for (int i = 0; i < 150; ++i) long_path += "aa/";
  EXPECT_FALSE(deep->Excluded(long_path + name));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// `**` matches the empty string or a string ending in '/': the next token
// starts at the beginning of a component, never inside one.
TEST(IgnoreMatcherTest, DoubleStarStartsAtAComponent) {
  const struct {
    const char* pattern;
    const char* path;
    bool excluded;
  } cases[] = {
      {"**/b", "b", true},      {"**/b", "x/b", true},      {"**/b", "ab", false},
      {"**/b", "x/ab", false},  {"a/**b", "a/b", true},     {"a/**b", "a/x/b", true},
      {"a/**b", "a/xb", false}, {"**/a/**/b", "a/b", true}, {"**/a/**/b", "xa/b", false},
      {"x**/b", "x/b", true},   {"x**/b", "xy/b", true},    {"x**/b", "x/y/b", true},
  };
  for (const auto& c : cases) {
    auto m = IgnoreMatcher::Parse(c.pattern);
    ASSERT_TRUE(m.ok()) << c.pattern;
    EXPECT_EQ(m->Excluded(c.path), c.excluded) << c.pattern << " vs " << c.path;
  }
}

TEST(CleanPathTest, GoClean) {
  EXPECT_EQ(CleanPath(""), ".");
  EXPECT_EQ(CleanPath("."), ".");
  EXPECT_EQ(CleanPath("./"), ".");
  EXPECT_EQ(CleanPath("a/"), "a");
  EXPECT_EQ(CleanPath("/"), "/");
  EXPECT_EQ(CleanPath("//a//b/"), "/a/b");
  EXPECT_EQ(CleanPath("a/../.."), "..");
  EXPECT_EQ(CleanPath("../a/./b/../c"), "../a/c");
  EXPECT_EQ(CleanPath("/../a"), "/a");
}

}  // namespace
}  // namespace kiln::source
