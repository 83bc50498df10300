#include "image/manifest.h"

#include <gtest/gtest.h>

#include "image/media_types.h"
#include "image/test_util.h"

namespace kiln::image {
namespace {

using testing::Sha;

std::string Layer(char c, int size) {
  return R"({"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" + Sha(c) +
         R"(","size":)" + std::to_string(size) + "}";
}

std::string ErrorOf(const std::string& json) {
  auto m = ParseManifest(json);
  if (m.ok()) return "OK";
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  return m.status().message();
}

TEST(ManifestTest, DockerSchema2RoundTrip) {
  const std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
      R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
      Sha('1') + R"(","size":1469},"layers":[)" + Layer('2', 100) + "," + Layer('3', 200) + "]}";
  auto m = ParseManifest(json);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->schema_version, 2);
  EXPECT_EQ(m->media_type, kMediaTypeDockerManifest);
  EXPECT_EQ(m->config.media_type, kMediaTypeDockerConfig);
  EXPECT_EQ(m->config.size, 1469);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[1].digest.str(), Sha('3'));
  EXPECT_EQ(m->ToJson(), json);
}

TEST(ManifestTest, OciWithSubjectAnnotationsAndUnknownMembers) {
  // mediaType written first (as BuildKit v0.10's wrapper struct does), an
  // unknown member in the middle and one at the end: all kept in place.
  const std::string json =
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,)"
      R"("artifactType":"application/x.sbom","config":{"mediaType":"application/vnd.oci.empty.v1+json",)"
      R"("digest":")" +
      Sha('4') +
      R"(","size":2,"data":"e30="},"x-middle":[true,null],"layers":[{"mediaType":)"
      R"("application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
      Sha('5') +
      R"(","size":9,"annotations":{"org.opencontainers.image.title":"a.txt"}}],"subject":{"mediaType":)"
      R"("application/vnd.oci.image.manifest.v1+json","digest":")" +
      Sha('6') + R"(","size":10},"annotations":{"a":"b"},"x-end":"\u003c"})";
  auto m = ParseManifest(json);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->artifact_type, "application/x.sbom");
  ASSERT_TRUE(m->subject.has_value());
  EXPECT_EQ(m->subject->digest.str(), Sha('6'));
  EXPECT_EQ(m->layout.GetUnknown("x-middle"), "[true,null]");
  EXPECT_EQ(m->ToJson(), json);
}

TEST(ManifestTest, BuiltManifestIsCanonical) {
  Manifest m;
  m.media_type = std::string(kMediaTypeOciManifest);
  m.config.media_type = std::string(kMediaTypeOciConfig);
  m.config.digest = *util::Digest::Parse(Sha('7'));
  m.config.size = 5;
  // No layers: Go writes a nil slice as null, as BuildKit does for a scratch image.
  EXPECT_EQ(m.ToJson(),
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
            R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                Sha('7') + R"(","size":5},"layers":null})");
  Descriptor layer;
  layer.media_type = std::string(kMediaTypeOciLayerGzip);
  layer.digest = *util::Digest::Parse(Sha('8'));
  layer.size = 1;
  m.layers.push_back(layer);
  m.annotations["k"] = "v";
  EXPECT_EQ(
      m.ToJson(),
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
          Sha('7') +
          R"(","size":5},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",)"
          R"("digest":")" +
          Sha('8') + R"(","size":1}],"annotations":{"k":"v"}})");
}

TEST(ManifestTest, EmptyLayersKeepTheirSpelling) {
  const std::string cfg = R"("config":{"mediaType":"a/b","digest":")" + Sha('9') + R"(","size":1})";
  for (const std::string layers : {"[]", "null"}) {
    const std::string json = R"({"schemaVersion":2,)" + cfg + R"(,"layers":)" + layers + "}";
    auto m = ParseManifest(json);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->ToJson(), json);
  }
}

TEST(ManifestTest, Errors) {
  const std::string cfg = R"("config":{"mediaType":"a/b","digest":")" + Sha('9') + R"(","size":1})";
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[)" + Layer('1', 1) + "," +
                    Layer('2', 2) + R"(,{"mediaType":"a/b","digest":"sha256:abc","size":3}]})"),
            "invalid image manifest: layers[2].digest: invalid digest \"sha256:abc\": sha256 "
            "needs 64 hex digits, found 3");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":")" +
                    Sha('1') + R"("}]})"),
            "invalid image manifest: layers[0].size: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":1,)" + cfg + "}"),
            "invalid image manifest: schemaVersion: expected 2, found 1");
  EXPECT_EQ(ErrorOf("{" + cfg + "}"),
            "invalid image manifest: schemaVersion: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,"layers":[]})"),
            "invalid image manifest: config: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,"config":null})"),
            "invalid image manifest: config: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,"config":{"mediaType":"a/b","size":1}})"),
            "invalid image manifest: config.digest: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)" +
                    cfg + "}"),
            "invalid image manifest: mediaType: \"application/vnd.oci.image.index.v1+json\" is "
            "an index, not a manifest");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,"mediaType":"text/plain",)" + cfg + "}"),
            "invalid image manifest: mediaType: \"text/plain\" is not a manifest type");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":2,)" + cfg + R"(,"layers":{}})"),
            "invalid image manifest: layers: expected an array, found object");
  EXPECT_EQ(ErrorOf(R"({"schemaVersion":"2"})"),
            "invalid image manifest: schemaVersion: expected an integer, found string");
}

}  // namespace
}  // namespace kiln::image
