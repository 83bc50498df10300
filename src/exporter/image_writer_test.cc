// Unit tests of the image writer: config assembly (history normalization,
// dates, unknown members), record embedding per the exporter options (K1,
// K9, K11), media types and the exporter response.
#include "exporter/image_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "image/config.h"
#include "kiln_process.h"
#include "snapshot/labels.h"
#include "util/base64.h"

namespace kiln::exporter {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln::testing::TempDir;

image::ImageConfig Template(const std::string& json_text) {
  auto c = image::ParseImageConfig(json_text);
  KILN_CHECK(c.ok(), c.status().ToString());
  return *c;
}

Layer FakeLayer(const std::string& bytes, const std::string& created) {
  Layer l;
  l.blob.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  l.blob.digest = util::Sha256Of(bytes);
  l.blob.size = static_cast<int64_t>(bytes.size());
  l.diff_id = util::Sha256Of("diff:" + bytes);
  l.created = created;
  return l;
}

class ImageWriterTest : public ::testing::Test {
 protected:
  ImageWriterTest() : store_(*content::Store::Open(dir_.path() / "content")) {}
  TempDir dir_;
  content::Store store_;
};

TEST_F(ImageWriterTest, HistoryGetsLayerDatesAndConfigTheLast) {
  ImageRequest req;
  req.config = Template(
      R"({"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},)"
      R"("history":[{"created":"2020-01-01T00:00:00Z","created_by":"base"},)"
      R"({"created_by":"ENV A=1","empty_layer":true},{"created_by":"RUN x # buildkit"},)"
      R"({"created_by":"CMD y","empty_layer":true}],"x-unknown":{"kept":true}})");
  req.layers = {FakeLayer("base", ""), FakeLayer("run", "2026-11-23T10:00:00.5Z")};
  auto img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const json c = json::parse(img->config_bytes);
  ASSERT_EQ(c["history"].size(), 4u);
  EXPECT_EQ(c["history"][0]["created"], "2020-01-01T00:00:00Z");
  EXPECT_EQ(c["history"][1]["created"], "2020-01-01T00:00:00Z")
      << "an empty entry takes the date before it";
  EXPECT_EQ(c["history"][2]["created"], "2026-11-23T10:00:00.5Z")
      << "a layer's entry its commit time";
  EXPECT_EQ(c["history"][3]["created"], "2026-11-23T10:00:00.5Z");
  EXPECT_EQ(c["created"], "2026-11-23T10:00:00.5Z");
  EXPECT_EQ(c["rootfs"]["diff_ids"][1], req.layers[1].diff_id.str());
  EXPECT_EQ(c["x-unknown"], json::parse(R"({"kept":true})")) << "unknown members are preserved";
  // Same request, same bytes: a rebuild from the cache gives the same digest.
  auto again = WriteImage(store_, req);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->manifest.digest, img->manifest.digest);
  EXPECT_TRUE(store_.Has(img->manifest.digest));
  EXPECT_TRUE(store_.Has(img->config.digest));
}

TEST_F(ImageWriterTest, SourceDateEpochDatesWhatTheBuildMade) {
  ImageRequest req;
  req.config =
      Template(R"({"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z",)"
               R"("history":[{"created":"2020-01-01T00:00:00Z","created_by":"base"},)"
               R"({"created_by":"RUN x # buildkit"},{"created_by":"CMD y","empty_layer":true}]})");
  req.layers = {FakeLayer("base", ""), FakeLayer("run", "2026-11-23T10:00:00.5Z")};
  req.source_date_epoch = 1700000000;
  auto img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const json c = json::parse(img->config_bytes);
  EXPECT_EQ(c["created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(c["history"][0]["created"], "2020-01-01T00:00:00Z") << "the base's entry is kept";
  EXPECT_EQ(c["history"][1]["created"], "2023-11-14T22:13:20Z") << "not the layer's commit time";
  EXPECT_EQ(c["history"][2]["created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(EpochTime(0), "1970-01-01T00:00:00Z");
}

TEST_F(ImageWriterTest, DockerMediaTypes) {
  ImageRequest req;
  req.config = Template(R"({"architecture":"amd64","os":"linux"})");
  req.layers = {FakeLayer("a", "")};
  req.oci_mediatypes = false;
  auto img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->manifest.media_type, "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(img->config.media_type, "application/vnd.docker.container.image.v1+json");
  const json m = json::parse(img->manifest_bytes);
  EXPECT_EQ(m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(m["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
  EXPECT_EQ(m["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
  EXPECT_EQ(img->layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
  EXPECT_EQ(m["layers"][0]["digest"], req.layers[0].blob.digest.str()) << "same blob";
}

TEST_F(ImageWriterTest, IndexOverPlatformsKeepsVariants) {
  auto one = [&](const std::string& arch, const std::string& variant, bool oci) {
    ImageRequest req;
    req.config = Template(R"({"architecture":")" + arch + R"(","os":"linux"})");
    req.layers = {FakeLayer(arch + variant, "")};
    req.oci_mediatypes = oci;
    auto img = WriteImage(store_, req);
    KILN_CHECK(img.ok(), img.status().ToString());
    image::Platform p;
    p.os = "linux";
    p.architecture = arch;
    p.variant = variant;
    return PlatformImage{p, *img};
  };
  auto index = WriteIndex(store_, {one("amd64", "", true), one("arm", "v7", true)}, true);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->descriptor.media_type, "application/vnd.oci.image.index.v1+json");
  EXPECT_TRUE(store_.Has(index->descriptor.digest));
  const json j = json::parse(index->bytes);
  ASSERT_EQ(j["manifests"].size(), 2u);
  EXPECT_EQ(j["manifests"][0]["platform"], json::parse(R"({"architecture":"amd64","os":"linux"})"));
  EXPECT_EQ(j["manifests"][1]["platform"],
            json::parse(R"({"architecture":"arm","os":"linux","variant":"v7"})"));
  EXPECT_EQ(j["manifests"][1]["digest"], index->images[1].image.manifest.digest.str());

  auto list = WriteIndex(store_, {one("amd64", "", false), one("arm64", "", false)}, false);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(json::parse(list->bytes)["mediaType"],
            "application/vnd.docker.distribution.manifest.list.v2+json");

  auto twice = WriteIndex(store_, {one("amd64", "", true), one("amd64", "", true)}, true);
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(twice.status().message(), "two images for platform linux/amd64");
  auto mixed = WriteIndex(store_, {one("amd64", "", false)}, true);
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ImageWriterTest, HistoryIsPaddedOrTrimmedToTheLayers) {
  ImageRequest req;
  req.config =
      Template(R"({"architecture":"amd64","os":"linux","history":[{"created_by":"RUN a"}]})");
  req.layers = {FakeLayer("1", "2026-01-01T00:00:00Z"), FakeLayer("2", "2026-01-02T00:00:00Z")};
  auto img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  json c = json::parse(img->config_bytes);
  ASSERT_EQ(c["history"].size(), 2u) << "one entry per layer";
  EXPECT_EQ(c["history"][1]["created_by"], "RUN a");

  req.config = Template(
      R"({"architecture":"amd64","os":"linux","history":[{"created_by":"RUN a"},{"created_by":"RUN b"},{"created_by":"RUN c"}]})");
  img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok());
  c = json::parse(img->config_bytes);
  EXPECT_FALSE(c["history"][0].value("empty_layer", false));
  EXPECT_FALSE(c["history"][1].value("empty_layer", false));
  EXPECT_TRUE(c["history"][2].value("empty_layer", false)) << "the extra entry has no layer";
}

TEST_F(ImageWriterTest, RecordFollowsTheExporterOptions) {
  buildinfo::BuildInfo record;
  record.frontend = "dockerfile.v0";
  record.attrs["build-arg:A"] = "1";
  buildinfo::Source src;
  src.type = "docker-image";
  src.ref = "docker.io/library/busybox:latest";
  src.pin = "sha256:" + std::string(64, 'a');
  record.sources.push_back(src);
  ImageRequest req;
  req.config = Template(R"({"architecture":"amd64","os":"linux"})");
  req.record = &record;

  auto img = WriteImage(store_, req);  // defaults: buildinfo=true, buildinfo-attrs=false (K11)
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  json c = json::parse(img->config_bytes);
  const std::string encoded = c["moby.buildkit.buildinfo.v1"];
  EXPECT_EQ(
      *util::Base64Decode(encoded),
      R"({"frontend":"dockerfile.v0","sources":[{"type":"docker-image","ref":"docker.io/library/busybox:latest","pin":"sha256:)" +
          std::string(64, 'a') + "\"}]}");

  req.record_options.buildinfo_attrs = true;
  img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok());
  c = json::parse(img->config_bytes);
  EXPECT_NE(
      util::Base64Decode(c["moby.buildkit.buildinfo.v1"].get<std::string>())->find("build-arg:A"),
      std::string::npos);

  req.record_options.buildinfo = false;
  img = WriteImage(store_, req);
  ASSERT_TRUE(img.ok());
  c = json::parse(img->config_bytes);
  EXPECT_FALSE(c.contains("moby.buildkit.buildinfo.v1"));

  // The response always carries the full record (R40).
  auto resp = Response(*img, &record, {"app:1"});
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ((*resp)["containerimage.digest"], img->manifest.digest.str());
  EXPECT_EQ((*resp)["containerimage.config.digest"], img->config.digest.str());
  EXPECT_EQ((*resp)["image.name"], "app:1");
  EXPECT_NE(util::Base64Decode((*resp)["containerimage.buildinfo"])->find("build-arg:A"),
            std::string::npos);
  const json desc = json::parse(*util::Base64Decode((*resp)["containerimage.descriptor"]));
  EXPECT_EQ(desc["digest"], img->manifest.digest.str());
}

}  // namespace
}  // namespace kiln::exporter
