#include "buildinfo/exporter.h"

#include <gtest/gtest.h>

#include "util/base64.h"

namespace kiln::buildinfo {
namespace {

const std::string kBusyboxPin =
    "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578";

BuildInfo Record() {
  BuildInfo bi;
  bi.frontend = "dockerfile.v0";
  bi.attrs = {{"build-arg:foo", "bar"}};
  bi.sources = {{"docker-image", "docker.io/library/busybox:latest", "", kBusyboxPin}};
  return bi;
}

// K11.
TEST(ExportOptionsTest, Values) {
  auto d = ParseExportOptions({});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->buildinfo);
  EXPECT_FALSE(d->buildinfo_attrs);
  auto e = ParseExportOptions({{"buildinfo", ""}, {"buildinfo-attrs", ""}});
  EXPECT_TRUE(e->buildinfo);
  EXPECT_FALSE(e->buildinfo_attrs);
  auto v = ParseExportOptions({{"buildinfo", "0"}, {"buildinfo-attrs", "1"}});
  EXPECT_FALSE(v->buildinfo);
  EXPECT_TRUE(v->buildinfo_attrs);
  auto w = ParseExportOptions({{"buildinfo", "false"}, {"buildinfo-attrs", "true"}});
  EXPECT_FALSE(w->buildinfo);
  EXPECT_TRUE(w->buildinfo_attrs);
}

TEST(ExportOptionsTest, BadValues) {
  for (const char* bad : {"t", "TRUE", "True", "F", "yes", "all", " true"}) {
    auto r = ParseExportOptions({{"buildinfo-attrs", bad}});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message(),
              std::string("exporter option \"buildinfo-attrs\": invalid value \"") + bad +
                  "\" (expected true, false, 1 or 0)");
  }
}

TEST(ExportOptionsTest, UnknownOption) {
  const std::set<std::string, std::less<>> known = {"name", "buildinfo", "buildinfo-attrs"};
  EXPECT_TRUE(ValidateExporterOptions("image", {{"name", "x"}, {"buildinfo", "1"}}, known).ok());
  Status s = ValidateExporterOptions("image", {{"name", "x"}, {"containerimage.buildinfo", "e30="}},
                                     known);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "unknown option \"containerimage.buildinfo\" for exporter \"image\"");
}

// R43.
TEST(ClientMappingTest, InlineBuildInfoAttrs) {
  const std::map<std::string, std::string> args = {{"BUILDKIT_INLINE_BUILDINFO_ATTRS", "1"}};
  EXPECT_EQ(MapClientExportAttrs("image", {{"name", "a"}}, args),
            (ExporterAttrs{{"buildinfo-attrs", "1"}, {"name", "a"}}));
  EXPECT_EQ(MapClientExportAttrs("docker", {}, args), (ExporterAttrs{{"buildinfo-attrs", "1"}}));
  EXPECT_EQ(MapClientExportAttrs("local", {{"dest", "out"}}, args),
            (ExporterAttrs{{"dest", "out"}}));
  EXPECT_EQ(MapClientExportAttrs("oci", {{"buildinfo-attrs", "0"}}, args),
            (ExporterAttrs{{"buildinfo-attrs", "0"}}));
  EXPECT_EQ(MapClientExportAttrs("oci", {}, {}), ExporterAttrs{});
}

// K1, R38, R39.
TEST(ImageConfigTest, EmbedSortedWithInlineCache) {
  const std::string config =
      "{\"os\":\"linux\", \"architecture\":\"amd64\",\"moby.buildkit.buildinfo.v0\":\"e30=\","
      "\"config\":{\"Env\":[\"PATH=/bin\"]}, \"x\":1.50}";
  const BuildInfo r = Record();
  auto out = PatchImageConfig(config, &r, ExportOptions{}, std::string("{\"layers\":[]}"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::string b64 = util::Base64Encode(
      "{\"frontend\":\"dockerfile.v0\",\"sources\":[{\"type\":\"docker-image\",\"ref\":"
      "\"docker.io/library/busybox:latest\",\"pin\":\"" +
      kBusyboxPin + "\"}]}");
  EXPECT_EQ(*out,
            "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/bin\"]},"
            "\"moby.buildkit.buildinfo.v1\":\"" +
                b64 + "\",\"moby.buildkit.cache.v0\":\"" + util::Base64Encode("{\"layers\":[]}") +
                "\",\"os\":\"linux\",\"x\":1.50}");
  auto back = ExtractFromImageConfig(*out);
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->has_value());
  EXPECT_TRUE((*back)->attrs.empty());
  EXPECT_EQ((*back)->sources, r.sources);
}

TEST(ImageConfigTest, AttrsOptInAndOptOut) {
  const BuildInfo r = Record();
  ExportOptions with_attrs;
  with_attrs.buildinfo_attrs = true;
  auto in = PatchImageConfig("{}", &r, with_attrs);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(*in, "{\"moby.buildkit.buildinfo.v1\":\"" + EncodeBase64(r) + "\"}");
  ExportOptions off;
  off.buildinfo = false;
  EXPECT_EQ(*PatchImageConfig(*in, &r, off), "{}");
  EXPECT_EQ(*PatchImageConfig(*in, nullptr, ExportOptions{}), "{}");
  const BuildInfo empty;
  // A result with an empty record still gets the member, as in BuildKit.
  EXPECT_EQ(*PatchImageConfig(*in, &empty, ExportOptions{}),
            "{\"moby.buildkit.buildinfo.v1\":\"e30=\"}");
  EXPECT_EQ(PatchImageConfig("[]", &r, ExportOptions{}).status().message(),
            "image config: expected a JSON object");
}

TEST(ImageConfigTest, ExtractLegacyAndErrors) {
  auto legacy =
      ExtractFromImageConfig("{\"moby.buildkit.buildinfo.v0\":\"" + EncodeBase64(Record()) + "\"}");
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(**legacy, Record());
  auto none = ExtractFromImageConfig("{\"os\":\"linux\"}");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(ExtractFromImageConfig("{\"moby.buildkit.buildinfo.v1\":1}").status().message(),
            "image config: member \"moby.buildkit.buildinfo.v1\" is not a string");
  EXPECT_EQ(ExtractFromImageConfig("{\"moby.buildkit.buildinfo.v1\":\"e30\"}").status().message(),
            "image config member \"moby.buildkit.buildinfo.v1\": build sources: bad base64: " +
                util::Base64Decode("e30").status().message());
}

// R40, R41, K8.
TEST(ResponseTest, KeysAndRedaction) {
  BuildInfo r = Record();
  r.attrs["context"] = "https://u:p@h/r.git";
  auto resp = ExporterResponse({{ResponseKey("linux/amd64"), r},
                                {ResponseKey("linux/arm/v7"), Record()},
                                {"containerimage.config", Record()}});
  ASSERT_TRUE(resp.ok());
  ASSERT_EQ(resp->size(), 2u);
  BuildInfo redacted = r;
  redacted.attrs["context"] = "https://xxxxx:xxxxx@h/r.git";
  EXPECT_EQ(resp->at("containerimage.buildinfo/linux/amd64"), EncodeBase64(redacted));
  EXPECT_EQ(resp->at("containerimage.buildinfo/linux/arm/v7"), EncodeBase64(Record()));
  EXPECT_EQ(ResponseKey(""), "containerimage.buildinfo");
}

// R42.
TEST(MetadataFileTest, InlinesNonEmptyObjects) {
  const std::string content = MetadataFileContent(
      {{"containerimage.buildinfo", util::Base64Encode("{\"frontend\":\"f\",\"sources\":[]}")},
       {"containerimage.digest", "sha256:1"},
       {"empty", "e30="},
       {"array", "WzEsMl0="}});
  EXPECT_EQ(
      content,
      "{\n  \"array\": \"WzEsMl0=\",\n  \"containerimage.buildinfo\": {\n    \"frontend\": \"f\",\n"
      "    \"sources\": []\n  },\n  \"containerimage.digest\": \"sha256:1\",\n  \"empty\": "
      "\"e30=\"\n}");
}

}  // namespace
}  // namespace kiln::buildinfo
