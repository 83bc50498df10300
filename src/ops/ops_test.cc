// Unit tests of the pure parts of ops.h: how a git source op names the
// reference it fetches (GitRefOf), and the roots of a multi-root plan.
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

// A two-platform build: a shared base (a stage built for the build platform)
// under two per-platform file ops; the plan holds the base once and one root
// per platform, in order, and a scratch root stays scratch.
image::Platform Linux(const std::string& arch) {
  image::Platform p;
  p.os = "linux";
  p.architecture = arch;
  return p;
}

TEST(PlanGraphTest, SeveralRootsShareVertices) {
  graph::Constraints c;
  c.platform = Linux("amd64");
  const graph::Output base =
      graph::Source(Op("docker-image://docker.io/library/busybox:latest"), c);
  auto file_for = [&](const std::string& arch) {
    graph::Constraints fc;
    fc.platform = Linux(arch);
    graph::FileOp f;
    f.base_input = 0;
    graph::FileMkdir mkdir;
    mkdir.path = "/" + arch;
    f.actions.push_back(mkdir);
    return graph::Output{graph::MakeVertex(f, {base}, fc), 0};
  };
  const graph::Output amd64 = file_for("amd64");
  const graph::Output arm64 = file_for("arm64");
  const graph::Definition def = graph::MarshalAll({amd64, arm64, graph::Output{}});
  Environment env;
  Result<Plan> plan = PlanGraph(def, &env);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->vertices.size(), 3u);
  ASSERT_EQ(plan->roots.size(), 3u);
  EXPECT_EQ(plan->vertices[plan->roots[0].vertex].digest, amd64.vertex->digest);
  EXPECT_EQ(plan->vertices[plan->roots[1].vertex].digest, arm64.vertex->digest);
  EXPECT_EQ(plan->roots_scratch, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(plan->root.vertex, plan->roots[0].vertex);
  EXPECT_FALSE(plan->root_scratch);
  // Both file ops read the one base vertex.
  EXPECT_EQ(plan->vertices[plan->roots[0].vertex].inputs[0].vertex,
            plan->vertices[plan->roots[1].vertex].inputs[0].vertex);
}

}  // namespace
}  // namespace kiln::ops
