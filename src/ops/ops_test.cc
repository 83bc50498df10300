// Unit tests of the pure parts of ops.h: how a git source op names the
// reference it fetches (GitRefOf).
#include "ops/ops.h"

#include <gtest/gtest.h>

namespace kiln::ops {
namespace {

graph::SourceOp Op(std::string identifier, std::map<std::string, std::string> attrs = {}) {
  return graph::SourceOp{std::move(identifier), std::move(attrs)};
}

TEST(GitRefOfTest, FullUrlAttributeWithTheIdentifiersFragment) {
  Result<source::GitRef> r = GitRefOf(Op("git://h.example/org/repo.git#v1.0:docs",
                                         {{"git.fullurl", "https://h.example/org/repo.git"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->remote, "https://h.example/org/repo.git");
  EXPECT_EQ(r->ref, "v1.0");
  EXPECT_EQ(r->subdir, "docs");
  EXPECT_EQ(r->transport, source::GitTransport::kHttps);
}

TEST(GitRefOfTest, WithoutFullUrlTheIdentifiersRemote) {
  Result<source::GitRef> r = GitRefOf(Op("git://git://127.0.0.1:9418/repo.git#main"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, source::GitTransport::kGit);
  EXPECT_EQ(r->ref, "main");
  // No fragment: the remote's HEAD.
  r = GitRefOf(
      Op("git://git@h.example:org/repo.git", {{"git.fullurl", "git@h.example:org/repo.git"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, source::GitTransport::kScp);
  EXPECT_EQ(r->ref, "");
}

TEST(GitRefOfTest, CredentialsAreSplitOffAndErrorsAreRedacted) {
  Result<source::GitRef> r = GitRefOf(
      Op("git://u:pw@h.example/r.git#main", {{"git.fullurl", "https://u:pw@h.example/r.git"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->remote.find("pw"), std::string::npos);
  EXPECT_EQ(r->password, "pw");
  EXPECT_EQ(r->Redacted(), "https://xxxxx:xxxxx@h.example/r.git#main");

  r = GitRefOf(Op("git://u:pw@h.example:port/r.git",
                  {{"git.fullurl", "https://u:pw@h.example:port/r.git"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("pw"), std::string::npos) << r.status().message();
  EXPECT_FALSE(GitRefOf(Op("docker-image://busybox")).ok());
}

}  // namespace
}  // namespace kiln::ops
