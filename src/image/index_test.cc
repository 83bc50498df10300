#include "image/index.h"

#include <gtest/gtest.h>

#include "image/media_types.h"
#include "image/test_util.h"

namespace kiln::image {
namespace {

using testing::Sha;

std::string Entry(char c, std::string_view platform_json,
                  std::string_view mt = "application/vnd.oci.image.manifest.v1+json") {
  std::string s =
      R"({"mediaType":")" + std::string(mt) + R"(","digest":")" + Sha(c) + R"(","size":100)";
  if (!platform_json.empty()) s += R"(,"platform":)" + std::string(platform_json);
  return s + "}";
}

const std::string kIndex =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
    Entry('1', R"({"architecture":"amd64","os":"linux"})") + "," +
    Entry('2', R"({"architecture":"arm64","os":"linux","variant":"v8"})") + "," +
    Entry('3', R"({"architecture":"arm","os":"linux","variant":"v6"})") + "," +
    Entry('4', R"({"architecture":"arm","os":"linux","variant":"v7"})") + "," +
    Entry('5', R"({"architecture":"unknown","os":"unknown"})") + "," + Entry('6', "") + "," +
    Entry('7', R"({"architecture":"s390x","os":"linux"})", kMediaTypeOciIndex) +
    R"(],"annotations":{"org.opencontainers.image.created":"2022-01-01T00:00:00Z"}})";

TEST(IndexTest, RoundTrip) {
  auto x = ParseIndex(kIndex);
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  EXPECT_EQ(x->manifests.size(), 7u);
  EXPECT_EQ(x->ToJson(), kIndex);
}

TEST(IndexTest, DockerManifestListWithUnknownMembers) {
  const std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",)"
      R"("manifests":[)" +
      Entry('1',
            R"({"architecture":"amd64","os":"windows","os.version":"10.0.17763.1",)"
            R"("os.features":["win32k"]})",
            kMediaTypeDockerManifest) +
      R"(],"x-extra":{"b":1,"a":2}})";
  auto x = ParseIndex(json);
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  EXPECT_EQ(x->manifests[0].platform->os_version, "10.0.17763.1");
  EXPECT_EQ(x->ToJson(), json);  // unknown object keeps its (unsorted) member order
}

TEST(IndexTest, BuiltIndexIsCanonical) {
  Index x;
  x.media_type = std::string(kMediaTypeOciIndex);
  EXPECT_EQ(x.ToJson(),
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
            R"("manifests":null})");
}

TEST(IndexTest, PickManifest) {
  auto x = ParseIndex(kIndex);
  ASSERT_TRUE(x.ok());
  auto pick = [&](std::string_view spec) -> std::string {
    auto d = PickManifest(*x, *ParsePlatform(spec));
    return d.ok() ? d->digest.str() : d.status().message();
  };
  EXPECT_EQ(pick("linux/amd64"), Sha('1'));
  EXPECT_EQ(pick("linux/arm64"), Sha('2'));  // arm64 == arm64/v8
  EXPECT_EQ(pick("linux/arm64/v8"), Sha('2'));
  EXPECT_EQ(pick("linux/arm"), Sha('4'));  // arm means arm/v7
  EXPECT_EQ(pick("linux/arm/v6"), Sha('3'));
  EXPECT_EQ(pick("linux/arm/v5"),
            "no manifest for linux/arm/v5 in the index (it has linux/amd64, linux/arm64/v8, "
            "linux/arm/v6, linux/arm/v7, unknown/unknown)");
  // Nested indexes are skipped.
  EXPECT_EQ(PickManifest(*x, *ParsePlatform("linux/s390x")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(PickManifest(Index{}, *ParsePlatform("linux/amd64")).status().message(),
            "no manifest for linux/amd64 in the index (it has no platform-specific manifests)");
}

TEST(IndexTest, PickManifestTakesTheFirstMatch) {
  Index x;
  for (char c : {'a', 'b'}) {
    Descriptor d;
    d.media_type = std::string(kMediaTypeDockerManifest);
    d.digest = *util::Digest::Parse(Sha(c));
    d.platform = Platform{"linux", "arm64", c == 'a' ? "" : "v8", "", {}};
    x.manifests.push_back(d);
  }
  auto d = PickManifest(x, *ParsePlatform("linux/arm64/v8"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest.str(), Sha('a'));
}

TEST(IndexTest, Errors) {
  auto error_of = [](const std::string& json) {
    auto x = ParseIndex(json);
    return x.ok() ? std::string("OK") : x.status().message();
  };
  EXPECT_EQ(error_of(R"({"schemaVersion":2,"manifests":[)" + Entry('1', "") +
                     R"(,{"mediaType":"a/b","digest":")" + Sha('2') + R"("}]})"),
            "invalid image index: manifests[1].size: required member is missing");
  EXPECT_EQ(error_of(R"({"schemaVersion":2,"manifests":[)" +
                     Entry('1', R"({"architecture":"amd64","os":7})") + "]}"),
            "invalid image index: manifests[0].platform.os: expected a string, found number");
  EXPECT_EQ(error_of(R"({"schemaVersion":1,"manifests":[]})"),
            "invalid image index: schemaVersion: expected 2, found 1");
  EXPECT_EQ(
      error_of(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})"),
      "invalid image index: mediaType: \"application/vnd.oci.image.manifest.v1+json\" is a "
      "manifest, not an index");
  EXPECT_EQ(error_of(R"({"schemaVersion":2,"manifests":"x"})"),
            "invalid image index: manifests: expected an array, found string");
}

}  // namespace
}  // namespace kiln::image
