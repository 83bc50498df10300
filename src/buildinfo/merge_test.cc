#include "buildinfo/merge.h"

#include <gtest/gtest.h>

#include "buildinfo/identifier.h"
#include "buildinfo/walk.h"

namespace kiln::buildinfo {
namespace {

const std::string kAlpinePin =
    "sha256:e7d88de73db3d3fd9b2d63aa7f447a10fd0220b7cbf39803c803f2af9ba256b3";
const std::string kBusyboxPin =
    "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578";

Source Img(std::string ref, std::string pin, std::string alias = "") {
  return {"docker-image", std::move(ref), std::move(alias), std::move(pin)};
}

TEST(IdentifierTest, Schemes) {
  auto img = ParseIdentifier("docker-image://docker.io/library/alpine:3.15");
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->kind, SourceKind::kDockerImage);
  EXPECT_EQ(img->image_ref, "docker.io/library/alpine:3.15");
  EXPECT_EQ(ParseIdentifier("local://context")->kind, SourceKind::kLocal);
  EXPECT_EQ(ParseIdentifier("http://h/f")->kind, SourceKind::kHttp);
  EXPECT_EQ(ParseIdentifier("https://h/f")->kind, SourceKind::kHttp);
}

TEST(IdentifierTest, Errors) {
  EXPECT_EQ(ParseIdentifier("oci-layout://store/image:tag").status().message(),
            "invalid source identifier \"oci-layout://store/image:tag\": unknown source scheme "
            "\"oci-layout\"");
  EXPECT_EQ(ParseIdentifier("busybox").status().message(),
            "invalid source identifier \"busybox\": expected scheme://…");
  EXPECT_EQ(ParseIdentifier("git://#main").status().message(),
            "invalid source identifier \"git://#main\": empty git remote");
  // Credentials never reach an error message (K8).
  EXPECT_EQ(ParseIdentifier("ftp://u:p@h/f").status().message(),
            "invalid source identifier \"ftp://xxxxx:xxxxx@h/f\": unknown source scheme \"ftp\"");
  EXPECT_EQ(ParseIdentifier("docker-image://").status().message(),
            "invalid source identifier \"docker-image://\": empty image reference");
  EXPECT_EQ(ParseIdentifier("docker-image://a b").status().message(),
            "invalid source identifier \"docker-image://a b\": whitespace in image reference");
  // Image references are read leniently and kept as written (R15, R18).
  EXPECT_EQ(ParseIdentifier("docker-image://docker.io/library/Busybox:latest")->image_ref,
            "docker.io/library/Busybox:latest");
}

// R33 + K6.
TEST(IdentifierTest, GitRefs) {
  auto ref = [](const char* id) { return ReportedRef(*ParseIdentifier(id)); };
  EXPECT_EQ(ref("git://github.com/moby/buildkit.git"), "https://github.com/moby/buildkit.git");
  EXPECT_EQ(ref("git://github.com/moby/buildkit.git#main:/"),
            "https://github.com/moby/buildkit.git#main");
  EXPECT_EQ(ref("git://github.com/moby/buildkit.git#main:./"),
            "https://github.com/moby/buildkit.git#main");
  EXPECT_EQ(ref("git://github.com/moby/buildkit.git#main:docs/"),
            "https://github.com/moby/buildkit.git#main:docs/");
  EXPECT_EQ(ref("git://github.com/x.git#:sub"), "https://github.com/x.git:sub");  // R33 quirk kept
  EXPECT_EQ(ref("git://git@github.com:moby/buildkit.git#v1"),
            "git@github.com:moby/buildkit.git#v1");
  EXPECT_EQ(ref("git://ssh://git@h:2222/r.git"), "ssh://xxxxx@h:2222/r.git");
  EXPECT_EQ(ref("git://git://h/r.git"), "git://h/r.git");
  EXPECT_EQ(ref("git://http://u:p@h/r.git#t"), "http://xxxxx:xxxxx@h/r.git#t");
}

TEST(IdentifierTest, ClientGitIdentifiers) {
  GitSourceSpec s = MakeGitIdentifier("https://user:tok@github.com/o/p.git", "main");
  EXPECT_EQ(s.identifier, "git://user:tok@github.com/o/p.git#main");
  EXPECT_EQ(s.full_url, "https://user:tok@github.com/o/p.git");
  s = MakeGitIdentifier("github.com/moby/buildkit", "");
  EXPECT_EQ(s.identifier, "git://github.com/moby/buildkit");
  EXPECT_EQ(s.full_url, "https://github.com/moby/buildkit");
  s = MakeGitIdentifier("git@github.com:moby/buildkit.git", "v1:docs");
  EXPECT_EQ(s.identifier, "git://git@github.com:moby/buildkit.git#v1:docs");
  s = MakeGitIdentifier("http://h/r.git", "");
  EXPECT_EQ(s.identifier, "git://http://h/r.git");
  // Stripping https:// must not turn a URL into an scp-like remote.
  s = MakeGitIdentifier("https://tok@h:443/r.git", "");
  EXPECT_EQ(s.identifier, "git://https://tok@h:443/r.git");
  EXPECT_EQ(ReportedRef(*ParseIdentifier(s.identifier)), "https://xxxxx@h:443/r.git");
}

TEST(IdentifierTest, ImageNormalization) {
  EXPECT_EQ(*NormalizeImageRef("alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(*NormalizeImageRef("localhost:5000/app"), "localhost:5000/app:latest");
  EXPECT_EQ(*MakeImageIdentifier("alpine:3.15@" + kAlpinePin),
            "docker-image://docker.io/library/alpine:3.15@" + kAlpinePin);
  EXPECT_FALSE(NormalizeImageRef("Alpine:Latest").ok());
}

TEST(CleanPathTest, GoSemantics) {
  EXPECT_EQ(CleanPath(""), ".");
  EXPECT_EQ(CleanPath("/"), "/");
  EXPECT_EQ(CleanPath("./"), ".");
  EXPECT_EQ(CleanPath("a//b/../c/"), "a/c");
  EXPECT_EQ(CleanPath("/../a"), "/a");
  EXPECT_EQ(CleanPath("../a"), "../a");
}

// R15: the frontend's spelling, normalized, with the reported pin.
TEST(MergeTest, FrontendImageMatchedByAlias) {
  auto m =
      MergeSources({{"docker-image://docker.io/library/alpine:3.15@" + kAlpinePin, kAlpinePin}},
                   {Img("alpine:3.15", kAlpinePin, "docker.io/library/alpine:3.15@" + kAlpinePin)});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, std::vector<Source>{Img("docker.io/library/alpine:3.15", kAlpinePin)});
}

// R16, R17, R10.
TEST(MergeTest, RawLeftoverAndLocal) {
  auto m = MergeSources(
      {{"docker-image://docker.io/library/busybox:latest", kBusyboxPin}, {"local://context", ""}},
      {Img("alpine", kAlpinePin, "docker.io/library/alpine@" + kAlpinePin),
       {"http", "https://h/f", "https://h/f", "sha256:1"}});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, (std::vector<Source>{Img("docker.io/library/alpine:latest", kAlpinePin),
                                     Img("docker.io/library/busybox:latest", kBusyboxPin)}));
}

// K3: a git remote and an HTTP URL spelled alike are two entries.
TEST(MergeTest, KeyedByTypeAndIdentifier) {
  auto m = MergeSources({{"git://https://h/x", "c0ffee"}, {"https://h/x", "sha256:1"}}, {});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, (std::vector<Source>{{"git", "https://h/x", "", "c0ffee"},
                                     {"http", "https://h/x", "", "sha256:1"}}));
}

// R21.
TEST(MergeTest, Errors) {
  EXPECT_EQ(MergeSources({{"oci-layout://store/image:tag", "sha256:1"}}, {}).status().message(),
            "invalid source identifier \"oci-layout://store/image:tag\": unknown source scheme "
            "\"oci-layout\"");
  auto bad =
      MergeSources({{"docker-image://docker.io/library/alpine@" + kAlpinePin, kAlpinePin}},
                   {Img("Alpine:Latest", kAlpinePin, "docker.io/library/alpine@" + kAlpinePin)});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "build sources: frontend image source: invalid image reference \"Alpine:Latest\": "
            "repository name must be lowercase");
}

BuildInfo NamedContextCase() {
  BuildInfo bi;
  bi.sources = {Img("alpine:latest", kAlpinePin, "docker.io/library/alpine:latest@" + kAlpinePin)};
  return bi;
}
const SourcePins kNamedContextPins = {
    {"docker-image://docker.io/library/alpine:3.15", kAlpinePin},
    {"docker-image://docker.io/library/alpine:latest@" + kAlpinePin, kAlpinePin}};

// K3/R20: encoding twice gives the same record as encoding once.
TEST(FinalizeTest, Idempotent) {
  auto once = Finalize(NamedContextCase(), kNamedContextPins);
  ASSERT_TRUE(once.ok());
  EXPECT_EQ(once->sources,
            (std::vector<Source>{Img("docker.io/library/alpine:3.15", kAlpinePin),
                                 Img("docker.io/library/alpine:latest", kAlpinePin)}));
  auto first = Finalize(NamedContextCase(), {});  // gateway path: no reported sources yet
  ASSERT_TRUE(first.ok());
  auto twice = Finalize(*first, kNamedContextPins);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(Encode(*twice), Encode(*once));
  auto again = Finalize(*once, kNamedContextPins);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Encode(*again), Encode(*once));
  auto again_no_pins = Finalize(*once, {});
  ASSERT_TRUE(again_no_pins.ok());
  EXPECT_EQ(Encode(*again_no_pins), Encode(*once));
  // Git and HTTP entries survive re-finalizing too.
  auto gh =
      Finalize({}, {{"git://github.com/a/b.git#main", "c0"}, {"https://u:p@h/f", "sha256:1"}});
  ASSERT_TRUE(gh.ok());
  EXPECT_EQ(Encode(*Finalize(*gh, {})), Encode(*gh));
  EXPECT_EQ(Encode(*Finalize(*gh, {{"git://github.com/a/b.git#main", "c0"}})), Encode(*gh));
}

// R19 (v0.10.1+).
TEST(DedupTest, AgainstNestedDeps) {
  BuildInfo base;
  base.sources = {Img("docker.io/library/alpine:latest", kAlpinePin)};
  std::map<std::string, BuildInfo> deps;
  deps["mid"].deps["leaf"] = base;
  auto out = DedupAgainstDeps({Img("docker.io/library/alpine@" + kAlpinePin, kAlpinePin),
                               Img("docker.io/library/busybox:latest", kBusyboxPin),
                               Img("docker.io/library/busybox:latest", kBusyboxPin),
                               Img("docker.io/library/alpine:latest", kAlpinePin),
                               Img("docker.io/library/alpine:3.15", kAlpinePin)},
                              deps);
  EXPECT_EQ(out, (std::vector<Source>{Img("docker.io/library/alpine:3.15", kAlpinePin),
                                      Img("docker.io/library/busybox:latest", kBusyboxPin)}));
}

// R38 (v0.10.1+).
TEST(FormatTest, RemoveAttrsFlattensDeps) {
  BuildInfo bi;
  bi.frontend = "dockerfile.v0";
  bi.attrs = {{"build-arg:a", "b"}};
  bi.sources = {Img("docker.io/library/busybox:latest", kBusyboxPin)};
  bi.deps["mid"].attrs = {{"x", "y"}};
  bi.deps["mid"].sources = {Img("docker.io/library/busybox:latest", kBusyboxPin)};
  bi.deps["mid"].deps["leaf"].sources = {Img("docker.io/library/alpine:latest", kAlpinePin)};
  EXPECT_EQ(Encode(Format(bi, true)),
            "{\"frontend\":\"dockerfile.v0\",\"sources\":[{\"type\":\"docker-image\",\"ref\":"
            "\"docker.io/library/alpine:latest\",\"pin\":\"" +
                kAlpinePin +
                "\"},{\"type\":"
                "\"docker-image\",\"ref\":\"docker.io/library/busybox:latest\",\"pin\":\"" +
                kBusyboxPin + "\"}]}");
  EXPECT_EQ(Format(bi, false), bi);
  EXPECT_EQ(*FormatJson("", true), "");
  EXPECT_FALSE(FormatJson("{", true).ok());
}

// K4: the result vertex is walked too; first report wins; shared inputs once.
TEST(WalkTest, IncludesResultVertex) {
  struct V {
    std::string id;
    std::vector<int> in;
  };
  const std::vector<V> g = {{"https://h/a", {}},      // 0
                            {"local://ctx", {}},      // 1 (reports nothing below)
                            {"", {0, 1}},             // 2
                            {"", {2, 0}},             // 3
                            {"git://h/r.git", {3}}};  // 4: result is itself a source
  int reports = 0;
  auto pins = CollectSources(
      4, [&](int v) { return g[v].in; },
      [&](int v) -> std::optional<std::pair<std::string, std::string>> {
        ++reports;
        if (g[v].id.empty() || g[v].id.rfind("local://", 0) == 0) return std::nullopt;
        return std::make_pair(g[v].id, "pin" + std::to_string(v));
      });
  EXPECT_EQ(pins, (SourcePins{{"git://h/r.git", "pin4"}, {"https://h/a", "pin0"}}));
  EXPECT_EQ(reports, 5);  // each vertex visited once
}

TEST(WalkTest, FirstValueWins) {
  const std::vector<std::vector<int>> in = {{1, 2}, {}, {}};
  auto pins = CollectSources(
      0, [&](int v) { return in[v]; },
      [&](int v) -> std::optional<std::pair<std::string, std::string>> {
        if (v == 0) return std::nullopt;
        return std::make_pair(std::string("https://same"), std::to_string(v));
      });
  EXPECT_EQ(pins, (SourcePins{{"https://same", "1"}}));
}

}  // namespace
}  // namespace kiln::buildinfo
