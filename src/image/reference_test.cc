#include "image/reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "util/json.h"

namespace kiln::image {
namespace {

using ::testing::HasSubstr;

const std::string kHex64 = "e7d88de73db3d3fd9b2d63aa7f447a10fd0220b7cbf39803c803f2af9ba256b3";

// Parses, applies TagNameOnly and returns String(), or "ERROR: <message>".
std::string Normalized(std::string_view s) {
  auto r = ParseNormalizedNamed(s);
  if (!r.ok()) return "ERROR: " + r.status().message();
  return TagNameOnly(*r).String();
}

std::string ErrorOf(std::string_view s) {
  auto r = ParseNormalizedNamed(s);
  if (r.ok()) return "OK: " + r->String();
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(ReferenceTest, OfficialImage) {
  auto r = ParseNormalizedNamed("alpine");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->domain, "docker.io");
  EXPECT_EQ(r->path, "library/alpine");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->digest, "");
  EXPECT_EQ(r->Name(), "docker.io/library/alpine");
  EXPECT_EQ(r->String(), "docker.io/library/alpine");
  EXPECT_EQ(r->FamiliarString(), "alpine");
  EXPECT_EQ(TagNameOnly(*r).String(), "docker.io/library/alpine:latest");
  EXPECT_EQ(TagNameOnly(*r).FamiliarString(), "alpine:latest");
}

TEST(ReferenceTest, Tagged) {
  auto r = ParseNormalizedNamed("alpine:3.13");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tag, "3.13");
  EXPECT_EQ(TagNameOnly(*r).String(), "docker.io/library/alpine:3.13");
  EXPECT_EQ(r->FamiliarString(), "alpine:3.13");
}

TEST(ReferenceTest, TagAndDigestBothKept) {
  auto r = ParseNormalizedNamed("alpine:3.15@sha256:" + kHex64);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tag, "3.15");
  EXPECT_EQ(r->digest, "sha256:" + kHex64);
  EXPECT_EQ(TagNameOnly(*r).String(), "docker.io/library/alpine:3.15@sha256:" + kHex64);
  EXPECT_EQ(r->FamiliarString(), "alpine:3.15@sha256:" + kHex64);
}

TEST(ReferenceTest, DigestOnlyGetsNoTag) {
  EXPECT_EQ(Normalized("alpine@sha256:" + kHex64), "docker.io/library/alpine@sha256:" + kHex64);
  EXPECT_EQ(Normalized("ubuntu@sha512:" + std::string(128, 'a')),
            "docker.io/library/ubuntu@sha512:" + std::string(128, 'a'));
}

TEST(ReferenceTest, Domains) {
  EXPECT_EQ(Normalized("localhost:5000/foo"), "localhost:5000/foo:latest");
  EXPECT_EQ(Normalized("localhost/foo"), "localhost/foo:latest");
  EXPECT_EQ(Normalized("localhost:5000/foo/bar:v1"), "localhost:5000/foo/bar:v1");
  EXPECT_EQ(Normalized("ghcr.io/org/app:1.0"), "ghcr.io/org/app:1.0");
  EXPECT_EQ(Normalized("ghcr.io/app"), "ghcr.io/app:latest");
  EXPECT_EQ(Normalized("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
  EXPECT_EQ(Normalized("registry:5000/app"), "registry:5000/app:latest");
  EXPECT_EQ(Normalized("my-registry.example.com/a/b/c"), "my-registry.example.com/a/b/c:latest");
  // Host names may be upper case; only the repository must be lower case.
  EXPECT_EQ(Normalized("Example.COM/app"), "Example.COM/app:latest");
  // A first component without '.' or ':' that is not "localhost" is a user.
  EXPECT_EQ(Normalized("user/app"), "docker.io/user/app:latest");
  EXPECT_EQ(Normalized("registry/app"), "docker.io/registry/app:latest");
  EXPECT_EQ(Normalized("localhostx/app"), "docker.io/localhostx/app:latest");
  EXPECT_EQ(Normalized("a/b/c"), "docker.io/a/b/c:latest");
}

TEST(ReferenceTest, DockerHubAliases) {
  EXPECT_EQ(Normalized("docker.io/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Normalized("docker.io/library/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Normalized("index.docker.io/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Normalized("index.docker.io/user/app:1"), "docker.io/user/app:1");
  EXPECT_EQ(Normalized("library/alpine"), "docker.io/library/alpine:latest");
  // registry-1.docker.io is not an alias: kept as written, as Docker does.
  EXPECT_EQ(Normalized("registry-1.docker.io/alpine"), "registry-1.docker.io/alpine:latest");
}

TEST(ReferenceTest, FamiliarString) {
  auto familiar = [](std::string_view s) {
    auto r = ParseNormalizedNamed(s);
    return r.ok() ? r->FamiliarString() : "ERROR: " + r.status().message();
  };
  EXPECT_EQ(familiar("docker.io/library/alpine:3.15"), "alpine:3.15");
  EXPECT_EQ(familiar("docker.io/user/app"), "user/app");
  EXPECT_EQ(familiar("library/a/b"), "library/a/b");
  EXPECT_EQ(familiar("ghcr.io/x/y:1"), "ghcr.io/x/y:1");
  EXPECT_EQ(familiar("ghcr.io/library/y"), "ghcr.io/library/y");
  EXPECT_EQ(familiar("localhost:5000/foo"), "localhost:5000/foo");
}

TEST(ReferenceTest, PathComponentSeparators) {
  EXPECT_EQ(Normalized("a.b"), "docker.io/library/a.b:latest");
  EXPECT_EQ(Normalized("a_b"), "docker.io/library/a_b:latest");
  EXPECT_EQ(Normalized("a__b"), "docker.io/library/a__b:latest");
  EXPECT_EQ(Normalized("a-b"), "docker.io/library/a-b:latest");
  EXPECT_EQ(Normalized("a---b"), "docker.io/library/a---b:latest");
  EXPECT_EQ(Normalized("ab-c_d__e.f/g"), "ab-c_d__e.f/g:latest");  // see DockerQuirk below
  EXPECT_EQ(Normalized("ab-c_d__e/f.g"), "docker.io/ab-c_d__e/f.g:latest");
  EXPECT_EQ(Normalized("0/1"), "docker.io/0/1:latest");
  for (const char* bad : {"a..b", "a___b", "a._b", "a-.b", "a.-b", "-a", "a-", "_a", "a_", ".a",
                          "a.", "a/-b", "a/b_", "a$b", "a b", "a/b/", "a//b", "/a"}) {
    EXPECT_THAT(Normalized(bad), HasSubstr("ERROR: invalid image reference")) << bad;
  }
}

TEST(ReferenceTest, Tags) {
  EXPECT_EQ(Normalized("a:latest"), "docker.io/library/a:latest");
  EXPECT_EQ(Normalized("a:UPPER_case.1-2"), "docker.io/library/a:UPPER_case.1-2");
  EXPECT_EQ(Normalized("a:_x"), "docker.io/library/a:_x");
  EXPECT_EQ(Normalized("a:" + std::string(128, 't')),
            "docker.io/library/a:" + std::string(128, 't'));
  EXPECT_EQ(Normalized("localhost:5000"), "docker.io/library/localhost:5000");
  EXPECT_THAT(Normalized("a:" + std::string(129, 't')), HasSubstr("invalid tag"));
  EXPECT_THAT(Normalized("a:.x"), HasSubstr("invalid tag \".x\""));
  EXPECT_THAT(Normalized("a:-x"), HasSubstr("invalid tag \"-x\""));
  EXPECT_THAT(Normalized("a:x+y"), HasSubstr("invalid tag \"x+y\""));
  EXPECT_THAT(Normalized("a:"), HasSubstr("invalid tag \"\""));
  EXPECT_THAT(Normalized("a:b:c"), HasSubstr("ERROR"));
  EXPECT_THAT(Normalized("a/b:c/d"), HasSubstr("ERROR"));
}

TEST(ReferenceTest, Digests) {
  EXPECT_EQ(ErrorOf("a@"),
            "invalid image reference \"a@\": invalid digest \"\": expected \"algorithm:hex\", "
            "e.g. sha256:<64 hex digits>");
  EXPECT_EQ(ErrorOf("a@sha256:abc"),
            "invalid image reference \"a@sha256:abc\": invalid digest \"sha256:abc\": expected "
            "\"algorithm:hex\", e.g. sha256:<64 hex digits>");
  EXPECT_EQ(ErrorOf("a@md5:" + std::string(32, 'a')),
            "invalid image reference \"a@md5:" + std::string(32, 'a') +
                "\": unsupported digest algorithm \"md5\" (kiln supports sha256 and sha512)");
  EXPECT_EQ(ErrorOf("a@sha256:" + std::string(63, 'a')),
            "invalid image reference \"a@sha256:" + std::string(63, 'a') +
                "\": invalid digest \"sha256:" + std::string(63, 'a') +
                "\": sha256 needs 64 hex digits, found 63");
  EXPECT_THAT(ErrorOf("a@sha256:" + std::string(64, 'A')),
              HasSubstr("is not a lowercase hex digit"));
  EXPECT_THAT(ErrorOf("a@sha256:" + kHex64 + "@sha256:" + kHex64), HasSubstr("invalid digest"));
  EXPECT_THAT(ErrorOf("a@1sha:" + std::string(64, 'a')), HasSubstr("invalid digest"));
}

TEST(ReferenceTest, Lowercase) {
  EXPECT_EQ(ErrorOf("Foo"), "invalid image reference \"Foo\": repository name must be lowercase");
  EXPECT_EQ(ErrorOf("user/Foo:tag"),
            "invalid image reference \"user/Foo:tag\": repository name must be lowercase");
  EXPECT_EQ(ErrorOf("ghcr.io/Org/app"),
            "invalid image reference \"ghcr.io/Org/app\": repository name must be lowercase");
  EXPECT_EQ(ErrorOf("Foo/bar"),
            "invalid image reference \"Foo/bar\": repository name must be lowercase");
}

TEST(ReferenceTest, OtherErrors) {
  EXPECT_EQ(ErrorOf(""), "invalid image reference \"\": reference is empty");
  EXPECT_EQ(ErrorOf(kHex64), "invalid image reference \"" + kHex64 +
                                 "\": a name cannot be 64 hexadecimal digits (that looks like an "
                                 "image ID)");
  // 64 hex digits with a user part, or 63, are ordinary names.
  EXPECT_EQ(Normalized("user/" + kHex64), "docker.io/user/" + kHex64 + ":latest");
  EXPECT_EQ(Normalized(kHex64.substr(1)), "docker.io/library/" + kHex64.substr(1) + ":latest");
  EXPECT_EQ(ErrorOf("a b"),
            "invalid image reference \"a b\": invalid repository name component \"a b\": use "
            "lowercase letters and digits, separated by '.', '_', '__' or dashes, starting and "
            "ending with a letter or digit");
  EXPECT_EQ(ErrorOf("foo:abc/bar"),
            "invalid image reference \"foo:abc/bar\": invalid registry "
            "host \"foo:abc\"");
  EXPECT_EQ(ErrorOf("-x.io/bar"),
            "invalid image reference \"-x.io/bar\": invalid registry host \"-x.io\"");
  EXPECT_EQ(ErrorOf("a//b"),
            "invalid image reference \"a//b\": repository name has an empty path component");
  EXPECT_THAT(ErrorOf("a\n"), HasSubstr("\"a\\n\""));  // quoted safely
  EXPECT_THAT(ErrorOf("x.io:/a"), HasSubstr("invalid registry host \"x.io:\""));
  EXPECT_THAT(ErrorOf("[::1]:5000/a"), HasSubstr("invalid registry host"));
}

TEST(ReferenceTest, MoreGrammarCases) {
  EXPECT_EQ(Normalized("foo_bar.com:8080"), "docker.io/library/foo_bar.com:8080");
  EXPECT_EQ(Normalized("foo/foo_bar.com:8080"), "docker.io/foo/foo_bar.com:8080");
  EXPECT_EQ(Normalized("192.168.1.1:5000/repo"), "192.168.1.1:5000/repo:latest");
  EXPECT_EQ(Normalized("xn--n3h.com/myimage:xn--n3h.com"), "xn--n3h.com/myimage:xn--n3h.com");
  EXPECT_EQ(Normalized("a-b.c-d.e:1/x"), "a-b.c-d.e:1/x:latest");
  EXPECT_EQ(Normalized("sha256:" + kHex64), "docker.io/library/sha256:" + kHex64);
  EXPECT_EQ(Normalized("localhost:5000/a/b@sha256:" + kHex64),
            "localhost:5000/a/b@sha256:" + kHex64);
  EXPECT_EQ(ErrorOf("Uppercase:tag"),
            "invalid image reference \"Uppercase:tag\": repository name must be lowercase");
  EXPECT_THAT(ErrorOf("aa/asdf$$^/aa"), HasSubstr("invalid repository name component \"asdf$$^\""));
  EXPECT_THAT(ErrorOf("a/b\xc3\xa9"), HasSubstr("invalid repository name component"));
  EXPECT_THAT(ErrorOf("docker.io/library/a:b@"), HasSubstr("invalid digest \"\""));
  EXPECT_THAT(ErrorOf("a@sha384:" + std::string(96, 'a')),
              HasSubstr("unsupported digest algorithm \"sha384\""));
}

TEST(ReferenceTest, NameLength) {
  // docker.io/library/ is 18 characters and counts towards the 255 limit.
  const std::string ok_name(255 - 18, 'a');
  EXPECT_EQ(Normalized(ok_name), "docker.io/library/" + ok_name + ":latest");
  EXPECT_EQ(ErrorOf(ok_name + "a"),
            "invalid image reference \"" + ok_name +
                "a\": repository name must not be more than 255 characters (found 256)");
  // The tag does not count.
  EXPECT_TRUE(ParseNormalizedNamed(ok_name + ":" + std::string(128, 'x')).ok());
}

TEST(ReferenceTest, DockerQuirkPathLikeDomain) {
  // "a_b.c" holds '.', so Docker splits it off as the registry, but it is not
  // a valid host; the whole name is still a valid path, so Docker accepts it
  // with no domain at all. Kept for exactness.
  auto r = ParseNormalizedNamed("a_b.c/x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->domain, "");
  EXPECT_EQ(r->path, "a_b.c/x");
  EXPECT_EQ(r->Name(), "a_b.c/x");
  EXPECT_EQ(TagNameOnly(*r).String(), "a_b.c/x:latest");
}

TEST(ReferenceTest, TagNameOnlyKeepsExisting) {
  Reference r{"docker.io", "library/a", "1", ""};
  EXPECT_EQ(TagNameOnly(r).tag, "1");
  Reference d{"docker.io", "library/a", "", "sha256:" + kHex64};
  EXPECT_EQ(TagNameOnly(d).tag, "");
}

// Cases of kind "image-ref" from the conformance data (the in-repo copy).
TEST(ReferenceTest, Conformance) {
  const std::string path = std::string(KILN_CONFORMANCE_DIR) + "/buildinfo/cases.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "conformance data not found at " << path
                  << " (the in-repo copy under tests/conformance/data)";
  std::stringstream buf;
  buf << in.rdbuf();
  auto cases = util::ParseJson(buf.str(), path);
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  int n = 0;
  for (const auto& c : *cases) {
    if (c.value("kind", "") != "image-ref") continue;
    const std::string ref = c["input"]["ref"].get<std::string>();
    const auto& want = c["expected"];
    if (want.contains("tag_name_only")) {
      EXPECT_EQ(Normalized(ref), want["tag_name_only"].get<std::string>()) << c["id"];
      ++n;
    }
    if (want.contains("llb_identifier")) {
      EXPECT_EQ("docker-image://" + Normalized(ref), want["llb_identifier"].get<std::string>())
          << c["id"];
    }
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace kiln::image
