#include "buildinfo/buildinfo.h"

#include <gtest/gtest.h>

#include "util/base64.h"
#include "util/json.h"

namespace kiln::buildinfo {
namespace {

BuildInfo Sample() {
  BuildInfo bi;
  bi.frontend = "dockerfile.v0";
  bi.attrs = {{"build-arg:foo", "bar"}, {"build-arg:nil", std::nullopt}, {"label:x", "a&b<c>"}};
  bi.sources = {{"docker-image", "docker.io/library/busybox:latest", "",
                 "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578"}};
  BuildInfo dep;
  dep.sources = {{"http", "https://example.com/f", "https://example.com/f", "sha256:99"}};
  bi.deps["base"] = dep;
  return bi;
}

// K2/R1-R3: member order, omitempty, sorted maps, Go escaping, null kept.
TEST(EncodeTest, CanonicalBytes) {
  EXPECT_EQ(
      Encode(Sample()),
      "{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"build-arg:foo\":\"bar\",\"build-arg:nil\":null,"
      "\"label:x\":\"a\\u0026b\\u003cc\\u003e\"},\"sources\":[{\"type\":\"docker-image\","
      "\"ref\":\"docker.io/library/busybox:latest\",\"pin\":\"sha256:"
      "b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578\"}],"
      "\"deps\":{\"base\":{\"sources\":[{\"type\":\"http\",\"ref\":\"https://example.com/f\","
      "\"alias\":\"https://example.com/f\",\"pin\":\"sha256:99\"}]}}}");
}

TEST(EncodeTest, EmptyRecordIsEmptyObject) {
  EXPECT_EQ(Encode(BuildInfo{}), "{}");
  BuildInfo only_empty_strings;
  only_empty_strings.sources = {Source{}};
  EXPECT_EQ(Encode(only_empty_strings), "{\"sources\":[{}]}");
}

TEST(EncodeTest, LineSeparatorsAndInvalidUtf8) {
  BuildInfo bi;
  bi.frontend = "a\u2028b\xff";
  EXPECT_EQ(Encode(bi), "{\"frontend\":\"a\\u2028b\\ufffd\"}");
}

TEST(DecodeTest, RoundTrip) {
  auto bi = Decode(Encode(Sample()));
  ASSERT_TRUE(bi.ok()) << bi.status().ToString();
  EXPECT_EQ(*bi, Sample());
}

// R4: null is not "".
TEST(DecodeTest, NullAttributeKept) {
  auto bi = Decode(R"({"attrs":{"a":null,"b":""}})");
  ASSERT_TRUE(bi.ok());
  EXPECT_EQ(bi->attrs.at("a"), std::nullopt);
  EXPECT_EQ(bi->attrs.at("b"), std::optional<std::string>(""));
  EXPECT_EQ(Encode(*bi), R"({"attrs":{"a":null,"b":""}})");
}

// Go semantics: unknown members ignored, names matched case-insensitively,
// null leaves a member empty.
TEST(DecodeTest, GoSemantics) {
  auto bi = Decode(
      R"({"Frontend":"x","unknown":[1,2],"sources":[{"TYPE":"git","Pin":"p","extra":1},null],"deps":null})");
  ASSERT_TRUE(bi.ok()) << bi.status().ToString();
  EXPECT_EQ(bi->frontend, "x");
  ASSERT_EQ(bi->sources.size(), 2u);
  EXPECT_EQ(bi->sources[0], (Source{"git", "", "", "p"}));
  EXPECT_EQ(bi->sources[1], Source{});
  EXPECT_TRUE(bi->deps.empty());
}

// Go replaces each byte of invalid UTF-8 by U+FFFD when decoding.
TEST(DecodeTest, InvalidUtf8Replaced) {
  auto bi = Decode(
      "{\"frontend\":\"a\xff\xc3"
      "b\"}");
  ASSERT_TRUE(bi.ok()) << bi.status().ToString();
  EXPECT_EQ(bi->frontend,
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
}

TEST(DecodeTest, WrongTypeErrors) {
  EXPECT_EQ(Decode(R"({"sources":"x"})").status().message(),
            "build sources: member \"sources\": expected an array, found string");
  EXPECT_EQ(Decode(R"({"attrs":{"a":1}})").status().message(),
            "build sources: member \"attrs.a\": expected a string or null, found number");
  EXPECT_EQ(Decode(R"({"deps":{"d":{"sources":[{"pin":true}]}}})").status().message(),
            "build sources: member \"deps.d.sources[0].pin\": expected a string, found boolean");
  EXPECT_EQ(Decode("[]").status().message(),
            "build sources: top level: expected an object, found array");
}

// Regression (fuzz_buildinfo with a deep input): every walk of a record
// recursed once per deps level without a bound, so a record nested a few
// thousand levels deep (in a hostile image config, for `kiln buildinfo
// inspect`) overflowed the stack.
TEST(DecodeTest, DepsDepthIsBounded) {
  auto nested = [](int levels) {
    std::string s;
    for (int i = 0; i < levels; ++i) s += R"({"deps":{"d":)";
    s += "{}";
    for (int i = 0; i < levels; ++i) s += "}}";
    return s;
  };
  auto ok = Decode(nested(kMaxDepsDepth));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(Encode(*ok), nested(kMaxDepsDepth));
  EXPECT_EQ(Decode(nested(kMaxDepsDepth + 1)).status().message(),
            "build sources: deps nested deeper than 100 levels");
  auto deep = Decode(nested(200000));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
}

TEST(DecodeTest, BadJson) {
  auto bi = Decode("{\"frontend\":");
  ASSERT_FALSE(bi.ok());
  EXPECT_EQ(bi.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bi.status().message(),
            util::ParseJson("{\"frontend\":", "build sources").status().message());
  EXPECT_EQ(bi.status().message().rfind("invalid JSON in build sources at byte 13: ", 0), 0u)
      << bi.status().message();
}

TEST(Base64Test, RoundTripAndErrors) {
  EXPECT_EQ(EncodeBase64(BuildInfo{}), "e30=");
  auto bi = DecodeBase64(EncodeBase64(Sample()));
  ASSERT_TRUE(bi.ok());
  EXPECT_EQ(*bi, Sample());
  auto bad = DecodeBase64("e30");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "build sources: bad base64: " + util::Base64Decode("e30").status().message());
  auto bad_json = DecodeBase64(util::Base64Encode("{"));
  EXPECT_FALSE(bad_json.ok());
}

TEST(SortTest, RefThenTypeThenPin) {
  std::vector<Source> s = {{"http", "b", "", "2"},
                           {"http", "b", "", "1"},
                           {"git", "b", "", "9"},
                           {"docker-image", "a", "", "z"}};
  SortSources(&s);
  EXPECT_EQ(s, (std::vector<Source>{{"docker-image", "a", "", "z"},
                                    {"git", "b", "", "9"},
                                    {"http", "b", "", "1"},
                                    {"http", "b", "", "2"}}));
}

// K12.
TEST(SizeTest, OversizeRecordNamesLargestContributors) {
  BuildInfo bi;
  bi.attrs["build-arg:BIG"] = std::string(60, 'x');
  bi.sources = {{"http", "https://h/f", "", "sha256:1"}};
  BuildInfo dep;
  dep.frontend = "f";
  bi.deps["base"] = dep;
  EXPECT_TRUE(CheckSize(bi).ok());
  Status s = CheckSize(bi, 100);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(
      s.message(),
      "build sources record is 188 bytes after encoding, over the limit of 100 bytes; "
      "by part: attrs (1 entry) 78 bytes, sources (1 entry) 52 bytes, deps (1 entry) 16 "
      "bytes; largest parts: attrs[\"build-arg:BIG\"] 78 bytes, sources[0] (http \"https://h/f\") "
      "52 bytes, deps[\"base\"] 16 bytes");
}

TEST(SizeTest, OneMebibyteLimit) {
  BuildInfo bi;
  bi.attrs["build-arg:HUGE"] = std::string(kMaxRecordSize, 'a');
  auto r = EncodeChecked(bi);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message(),
      "build sources record is 1048607 bytes after encoding, over the limit of 1048576 bytes; "
      "by part: attrs (1 entry) 1048595 bytes; largest parts: attrs[\"build-arg:HUGE\"] 1048595 "
      "bytes");
  bi.attrs["build-arg:HUGE"] = std::string(1000, 'a');
  EXPECT_TRUE(EncodeChecked(bi).ok());
}

}  // namespace
}  // namespace kiln::buildinfo
