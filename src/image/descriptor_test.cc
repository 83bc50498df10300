#include "image/descriptor.h"

#include <gtest/gtest.h>

#include "image/media_types.h"
#include "image/test_util.h"

namespace kiln::image {
namespace {

using testing::Sha;

std::string RoundTrip(const std::string& json) {
  auto d = ParseDescriptor(json);
  if (!d.ok()) return "ERROR: " + d.status().message();
  return d->ToJson();
}

std::string ErrorOf(const std::string& json) {
  auto d = ParseDescriptor(json);
  if (d.ok()) return "OK";
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  return d.status().message();
}

TEST(DescriptorTest, ParsesFields) {
  const std::string json =
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + Sha('a') +
      R"(","size":528,"urls":["https://x/y"],"annotations":{"a":"1","b":"2"},)"
      R"("platform":{"architecture":"arm","os":"linux","variant":"v7"},"artifactType":"t/x"})";
  auto d = ParseDescriptor(json);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->media_type, kMediaTypeOciManifest);
  EXPECT_EQ(d->digest.str(), Sha('a'));
  EXPECT_EQ(d->size, 528);
  EXPECT_EQ(d->urls, std::vector<std::string>{"https://x/y"});
  EXPECT_EQ(d->annotations.at("b"), "2");
  ASSERT_TRUE(d->platform.has_value());
  EXPECT_EQ(Format(*d->platform), "linux/arm/v7");
  EXPECT_EQ(d->artifact_type, "t/x");
  EXPECT_EQ(d->ToJson(), json);
}

TEST(DescriptorTest, CanonicalOrderWhenBuilt) {
  Descriptor d;
  d.artifact_type = "t/x";
  d.platform = Platform{"linux", "arm64", "", "", {}};
  d.annotations["org.opencontainers.image.ref.name"] = "v1";
  d.size = 7;
  d.digest = *util::Digest::Parse(Sha('b'));
  d.media_type = std::string(kMediaTypeOciLayerGzip);
  EXPECT_EQ(d.ToJson(),
            R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + Sha('b') +
                R"(","size":7,"annotations":{"org.opencontainers.image.ref.name":"v1"},)"
                R"("platform":{"architecture":"arm64","os":"linux"},"artifactType":"t/x"})");
  // An empty descriptor still has digest and size, as Go writes them.
  EXPECT_EQ(Descriptor{}.ToJson(), R"({"digest":"","size":0})");
}

TEST(DescriptorTest, RoundTripsUnknownMembersInPlace) {
  // "data" sits between annotations and platform in image-spec v1.1; the
  // platform has a "features" member kiln does not model; numbers keep their
  // spelling.
  const std::string json =
      R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + Sha('c') +
      R"(","size":2,"annotations":{"k":"v"},"data":"e30=","platform":{"architecture":"amd64",)"
      R"("os":"linux","features":["sse4"],"os.version":"1"},"x-future":{"n":[1,2.50,1e3]}})";
  EXPECT_EQ(RoundTrip(json), json);
  auto d = ParseDescriptor(json);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->layout.GetUnknown("data"), "\"e30=\"");
  EXPECT_EQ(d->platform_layout.GetUnknown("features"), "[\"sse4\"]");
}

TEST(DescriptorTest, PrettyInputIsCompactedGoStyle) {
  const std::string json = "{\n  \"mediaType\": \"a/b\",\n  \"digest\": \"" + Sha('d') +
                           "\",\n  \"size\": 3,\n  \"annotations\": {\"z\": \"<&>\", \"a\": \"x\"},"
                           "\n  \"x\": { \"s\" : \"<\" }\n}\n";
  EXPECT_EQ(RoundTrip(json), R"({"mediaType":"a/b","digest":")" + Sha('d') +
                                 R"(","size":3,"annotations":{"a":"x","z":"\u003c\u0026\u003e"},)"
                                 R"("x":{"s":"\u003c"}})");
}

TEST(DescriptorTest, Errors) {
  const std::string mt = R"("mediaType":"a/b")";
  const std::string dg = R"("digest":")" + Sha('e') + "\"";
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + "}"),
            "invalid descriptor: size: required member is missing");
  EXPECT_EQ(ErrorOf("{" + mt + R"(,"size":1})"),
            "invalid descriptor: digest: required member is missing");
  EXPECT_EQ(ErrorOf("{" + dg + R"(,"size":1})"),
            "invalid descriptor: mediaType: required member is missing");
  EXPECT_EQ(ErrorOf(R"({"mediaType":"","size":1,)" + dg + "}"),
            "invalid descriptor: mediaType: must not be empty");
  EXPECT_EQ(ErrorOf("{" + mt + R"(,"digest":"sha256:abc","size":1})"),
            "invalid descriptor: digest: invalid digest \"sha256:abc\": sha256 needs 64 hex "
            "digits, found 3");
  EXPECT_EQ(ErrorOf("{" + mt + R"(,"digest":"","size":1})"),
            "invalid descriptor: digest: digest is empty");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":-1})"),
            "invalid descriptor: size: must not be negative, found -1");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":1.5})"),
            "invalid descriptor: size: expected an integer, found 1.5");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":"1"})"),
            "invalid descriptor: size: expected an integer, found string");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":1,"urls":[1]})"),
            "invalid descriptor: urls[0]: expected a string, found number");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":1,"annotations":{"a":true}})"),
            "invalid descriptor: annotations.a: expected a string, found boolean");
  EXPECT_EQ(ErrorOf("{" + mt + "," + dg + R"(,"size":1,"platform":{"os":"linux"}})"),
            "invalid descriptor: platform.architecture: required member is missing");
  EXPECT_EQ(ErrorOf("[]"), "invalid descriptor: document: expected a JSON object");
  EXPECT_EQ(ErrorOf("{").substr(0, 55), "invalid descriptor: invalid JSON in document at byte 2:");
}

}  // namespace
}  // namespace kiln::image
