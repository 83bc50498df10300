#include "buildinfo/attrs.h"

#include <gtest/gtest.h>

#include "util/base64.h"

namespace kiln::buildinfo {
namespace {

const std::string kAlpinePin =
    "sha256:e7d88de73db3d3fd9b2d63aa7f447a10fd0220b7cbf39803c803f2af9ba256b3";

std::string InputMetadata(const BuildInfo& bi) {
  return "{\"containerimage.buildinfo\":\"" + EncodeBase64(bi) + "\"}";
}

BuildInfo Dep(std::string pin) {
  BuildInfo bi;
  bi.frontend = "dockerfile.v0";
  bi.sources = {{"docker-image", "docker.io/library/alpine:latest", "", std::move(pin)}};
  return bi;
}

TEST(ControlArgTest, PrefixAndCase) {
  EXPECT_TRUE(IsControlArg("build-arg:BUILDKIT_SYNTAX"));
  EXPECT_TRUE(IsControlArg("build-arg:BUILDKIT_SYNTAX_EXTRA"));
  EXPECT_TRUE(IsControlArg("build-arg:BUILDKIT_INLINE_BUILDINFO_ATTRS"));
  EXPECT_FALSE(IsControlArg("build-arg:buildkit_syntax"));
  EXPECT_FALSE(IsControlArg("BUILDKIT_SYNTAX"));
  EXPECT_FALSE(IsControlArg("build-arg:BUILDKIT_BUILDINFO"));
}

TEST(PlatformOfKeyTest, Keys) {
  EXPECT_EQ(PlatformOfKey("containerimage.buildinfo"), "");
  EXPECT_EQ(PlatformOfKey("containerimage.buildinfo/linux/arm/v7"), "linux/arm/v7");
}

// R28 + K9 (platform kept) + K8 (values redacted).
TEST(FilterAttrsTest, KeptAndDropped) {
  const Attrs in = {{"build-arg:foo", "bar"},
                    {"build-arg:BUILDKIT_INLINE_CACHE", "1"},
                    {"build-arg:nil", std::nullopt},
                    {"label:", "x"},
                    {"platform", "linux/amd64,linux/arm64"},
                    {"context", "https://u:p@github.com/o/r.git#main"},
                    {"filename", "Dockerfile"},
                    {"cmdline", "docker/dockerfile:1"},
                    {"no-cache", ""},
                    {"input-metadata:base", "{}"}};
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo", in),
            (Attrs{{"build-arg:foo", "bar"},
                   {"context", "https://xxxxx:xxxxx@github.com/o/r.git#main"},
                   {"filename", "Dockerfile"},
                   {"label:", "x"},
                   {"platform", "linux/amd64,linux/arm64"}}));
}

// R30 with K3.
TEST(FilterAttrsTest, ContextPlatformSuffixes) {
  const Attrs in = {{"context:base::linux/amd64", "input:base::linux/amd64"},
                    {"context:base::linux/arm64", "input:base::linux/arm64"},
                    {"context:other", "docker-image://alpine"}};
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo/linux/arm64", in),
            (Attrs{{"context:base", "input:base"}, {"context:other", "docker-image://alpine"}}));
  // Under the bare key, colliding variants keep their own keys (recommended output).
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo", in), in);
  // A single variant collapses onto the name.
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo",
                        {{"context:base::linux/amd64", "input:base::linux/amd64"}}),
            (Attrs{{"context:base", "input:base"}}));
  // Exact platform variant wins over the plain name under its platform key.
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo/linux/amd64",
                        {{"context:base", "docker-image://a"},
                         {"context:base::linux/amd64", "docker-image://b"}}),
            (Attrs{{"context:base", "docker-image://b"}}));
  EXPECT_EQ(FilterAttrs("containerimage.buildinfo/linux/amd64",
                        {{"context:base", "input:base::linux/amd64"}}),
            (Attrs{{"context:base", "input:base"}}));
}

TEST(OverlayAttrsTest, NullDoesNotOverride) {
  EXPECT_EQ(OverlayAttrs({{"foo", "bar"}, {"baz", "fuu"}}, {{"abc", "fgh"}, {"baz", std::nullopt}}),
            (RequestAttrs{{"abc", "fgh"}, {"baz", "fuu"}, {"foo", "bar"}}));
}

// R31 + K3 (exact platform) + K8 (deps redacted).
TEST(DecodeDepsTest, ExactPlatformAndRedaction) {
  BuildInfo amd = Dep(kAlpinePin);
  amd.attrs = {{"context", "https://u:p@h/r.git"}};
  const Attrs in = {{"input-metadata:base::linux/amd64", InputMetadata(amd)},
                    {"input-metadata:base::linux/arm64", InputMetadata(Dep("sha256:aa"))},
                    {"input-metadata:plain", InputMetadata(Dep("sha256:bb"))},
                    {"input-metadata:nometa", "{\"containerimage.config\":\"e30=\"}"}};
  auto deps = DecodeDeps("containerimage.buildinfo/linux/amd64", in);
  ASSERT_TRUE(deps.ok()) << deps.status().ToString();
  ASSERT_EQ(deps->size(), 1u);
  EXPECT_EQ(deps->at("base").sources[0].pin, kAlpinePin);
  EXPECT_EQ(deps->at("base").attrs.at("context"),
            std::optional<std::string>("https://xxxxx:xxxxx@h/r.git"));
  auto bare = DecodeDeps("containerimage.buildinfo", in);
  ASSERT_TRUE(bare.ok());
  ASSERT_EQ(bare->size(), 1u);
  EXPECT_EQ(bare->at("plain").sources[0].pin, "sha256:bb");
}

TEST(DecodeDepsTest, Errors) {
  auto bad_json = DecodeDeps("containerimage.buildinfo", {{"input-metadata:base", "not-json"}});
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(bad_json.status().message().rfind(
                "invalid JSON in build sources: attribute \"input-metadata:base\" at byte ", 0),
            0u)
      << bad_json.status().message();
  EXPECT_EQ(
      DecodeDeps("containerimage.buildinfo", {{"input-metadata:base", "[]"}}).status().message(),
      "build sources: attribute \"input-metadata:base\": expected a JSON object of strings");
  EXPECT_EQ(DecodeDeps("containerimage.buildinfo", {{"input-metadata:base", "{\"a\":1}"}})
                .status()
                .message(),
            "build sources: attribute \"input-metadata:base\": member \"a\" is not a string");
  // A null member reads as "" (as Go does), which is not a record.
  EXPECT_FALSE(DecodeDeps("containerimage.buildinfo",
                          {{"input-metadata:base", "{\"containerimage.buildinfo\":null}"}})
                   .ok());
  auto null_other =
      DecodeDeps("containerimage.buildinfo", {{"input-metadata:base", "{\"x\":null}"}});
  ASSERT_TRUE(null_other.ok());
  EXPECT_TRUE(null_other->empty());
  EXPECT_EQ(DecodeDeps("containerimage.buildinfo",
                       {{"input-metadata:base", "{\"containerimage.buildinfo\":\"e30\"}"}})
                .status()
                .message(),
            "build sources: attribute \"input-metadata:base\": bad base64: " +
                util::Base64Decode("e30").status().message());
}

// R27 without BuildKit's side effect on the request.
TEST(BridgeMergeTest, MetadataAndRequest) {
  BuildInfo meta;
  meta.frontend = "gateway.v0";
  meta.attrs = {{"source", "docker/dockerfile:1.4"}, {"cmdline", "docker/dockerfile:1.4"}};
  meta.deps["base"] = Dep("sha256:aa");
  meta.sources = {{"docker-image", "busybox", "docker.io/library/busybox@sha256:1", "sha256:1"}};
  const RequestAttrs req = {{"filename", "Dockerfile"},
                            {"platform", "linux/amd64"},
                            {"input-metadata:base", InputMetadata(Dep(kAlpinePin))},
                            {"input-metadata:other", InputMetadata(Dep(kAlpinePin))}};
  const RequestAttrs req_copy = req;
  auto bi = BridgeMerge("containerimage.buildinfo", "dockerfile.v0", req, meta);
  ASSERT_TRUE(bi.ok()) << bi.status().ToString();
  EXPECT_EQ(req, req_copy);
  EXPECT_EQ(bi->frontend, "dockerfile.v0");
  EXPECT_EQ(bi->attrs, (Attrs{{"filename", "Dockerfile"},
                              {"platform", "linux/amd64"},
                              {"source", "docker/dockerfile:1.4"}}));
  EXPECT_EQ(bi->deps.at("base").sources[0].pin, "sha256:aa");  // the frontend's deps win
  EXPECT_EQ(bi->deps.at("other").sources[0].pin, kAlpinePin);
  EXPECT_EQ(bi->sources, meta.sources);  // untouched, aliases included

  // K10: with a frontend that records exactly the deps it used.
  auto own = BridgeMerge("containerimage.buildinfo", "dockerfile.v0", req, meta, false);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->deps.size(), 1u);
  EXPECT_EQ(own->deps.at("base").sources[0].pin, "sha256:aa");

  auto plain = BridgeMerge("containerimage.buildinfo", "", {}, std::nullopt);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Encode(*plain), "{}");
}

}  // namespace
}  // namespace kiln::buildinfo
