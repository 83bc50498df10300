#include "buildinfo/redact.h"

#include <gtest/gtest.h>

namespace kiln::buildinfo {
namespace {

struct RedactCase {
  const char* in;
  const char* want;
};

// R35 where K8 agrees with it.
TEST(RedactUrlTest, UserinfoAsBuildKit) {
  const RedactCase cases[] = {
      {"https://user:password@host.tld/this:that", "https://xxxxx:xxxxx@host.tld/this:that"},
      {"https://user@host.tld/this:that", "https://xxxxx@host.tld/this:that"},
      {"https://:password@host.tld/this:that", "https://:xxxxx@host.tld/this:that"},
      {"https://host.tld/this:that", "https://host.tld/this:that"},
      {"1https://foo.com", "1https://foo.com"},
      {"ssh://git@github.com/moby/buildkit.git", "ssh://xxxxx@github.com/moby/buildkit.git"},
      {"https://:@host.tld/", "https://:xxxxx@host.tld/"},
      {"https://@host.tld/", "https://@host.tld/"},
      {"https://user%40corp:pw@host.tld/", "https://xxxxx:xxxxx@host.tld/"},
      {"", ""},
      {"input:base::linux/amd64", "input:base::linux/amd64"},
      {"https://host/p?x=a@b#frag@x", "https://host/p?x=a@b#frag@x"},
  };
  for (const auto& c : cases) EXPECT_EQ(RedactUrl(c.in), c.want) << c.in;
}

// K8: spelling kept exactly (W2).
TEST(RedactUrlTest, SpellingKept) {
  EXPECT_EQ(RedactUrl("HTTPS://user:pw@Example.COM/Path?x=1#frag"),
            "HTTPS://xxxxx:xxxxx@Example.COM/Path?x=1#frag");
  EXPECT_EQ(RedactUrl("https://host.tld/a b"), "https://host.tld/a b");
  EXPECT_EQ(RedactUrl("https://host.tld/%7e?q=%41"), "https://host.tld/%7e?q=%41");
}

// K8: scp-like remotes.
TEST(RedactUrlTest, ScpLike) {
  EXPECT_EQ(RedactUrl("git@github.com:moby/buildkit.git"), "git@github.com:moby/buildkit.git");
  EXPECT_EQ(RedactUrl("ghp_SECRET123@github.com:org/private.git#main"),
            "xxxxx@github.com:org/private.git#main");
  // An image digest is not an scp-like remote.
  EXPECT_EQ(RedactUrl("alpine@sha256:abc"), "alpine@sha256:abc");
}

// K8: credential-like query parameters, case-insensitive, percent-decoded.
TEST(RedactUrlTest, QueryParameters) {
  EXPECT_EQ(RedactUrl("https://e.com/a?X-Amz-Signature=S&X-Amz-Date=D&token=t&x=1"),
            "https://e.com/a?X-Amz-Signature=xxxxx&X-Amz-Date=xxxxx&token=xxxxx&x=1");
  EXPECT_EQ(RedactUrl("https://e.com/a?Access_Token=1&SIG=2&signature=3&password=4&secret=5&key=6"),
            "https://e.com/a?Access_Token=xxxxx&SIG=xxxxx&signature=xxxxx&password=xxxxx&"
            "secret=xxxxx&key=xxxxx");
  EXPECT_EQ(RedactUrl("https://e.com/a?x-goog-signature=1&%74oken=2&keys=3&token&token="),
            "https://e.com/a?x-goog-signature=xxxxx&%74oken=xxxxx&keys=3&token&token=");
  // '?' inside the fragment is not a query.
  EXPECT_EQ(RedactUrl("https://e.com/a#x?token=1"), "https://e.com/a#x?token=1");
}

TEST(RedactUrlTest, Idempotent) {
  for (const char* s : {"https://u:p@h/?token=1", "tok@h:p", "ssh://u@h:22/p", "https://:@h/"}) {
    const std::string once = RedactUrl(s);
    EXPECT_EQ(RedactUrl(once), once) << s;
  }
}

TEST(RedactTextTest, UrlsInsideText) {
  EXPECT_EQ(RedactText("http://user:pass@proxy.corp:3128"), "http://xxxxx:xxxxx@proxy.corp:3128");
  EXPECT_EQ(RedactText("--index-url=https://u:p@pypi/simple --x 'git://t@h/r'"),
            "--index-url=https://xxxxx:xxxxx@pypi/simple --x 'git://xxxxx@h/r'");
  EXPECT_EQ(RedactText("repo=tok@github.com:o/r.git and git@github.com:o/r"),
            "repo=xxxxx@github.com:o/r.git and git@github.com:o/r");
  EXPECT_EQ(RedactText("docker-image://alpine@sha256:abc"), "docker-image://alpine@sha256:abc");
  EXPECT_EQ(RedactText("http://a:b@h1,https://c:d@h2/x;ftp://e@h3"),
            "http://xxxxx:xxxxx@h1,https://xxxxx:xxxxx@h2/x;ftp://xxxxx@h3");
  EXPECT_EQ(RedactText("s3cr3t"), "s3cr3t");
  EXPECT_EQ(RedactText("Jane <jane@example.com>"), "Jane <jane@example.com>");
}

// K8: every URL-like value, at any depth; image refs untouched.
TEST(RedactRecordTest, Deep) {
  BuildInfo bi;
  bi.attrs = {{"context", "https://u:p@github.com/o/r.git#main"}, {"n", std::nullopt}};
  bi.sources = {{"git", "https://u:p@h/r.git", "", "c"}, {"docker-image", "a@sha256:1", "", "d"}};
  BuildInfo leaf;
  leaf.sources = {{"http", "https://h/f?sig=s", "", "p"}};
  leaf.attrs = {{"build-arg:P", "http://a:b@p:1"}};
  bi.deps["mid"].deps["leaf"] = leaf;
  RedactRecord(&bi);
  EXPECT_EQ(
      Encode(bi),
      "{\"attrs\":{\"context\":\"https://xxxxx:xxxxx@github.com/o/r.git#main\",\"n\":null},"
      "\"sources\":[{\"type\":\"git\",\"ref\":\"https://xxxxx:xxxxx@h/r.git\",\"pin\":\"c\"},"
      "{\"type\":\"docker-image\",\"ref\":\"a@sha256:1\",\"pin\":\"d\"}],\"deps\":{\"mid\":{"
      "\"deps\":{\"leaf\":{\"attrs\":{\"build-arg:P\":\"http://xxxxx:xxxxx@p:1\"},"
      "\"sources\":[{\"type\":\"http\",\"ref\":\"https://h/f?sig=xxxxx\",\"pin\":\"p\"}]}}}}}");
}

}  // namespace
}  // namespace kiln::buildinfo
