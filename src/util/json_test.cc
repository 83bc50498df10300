#include "util/json.h"

#include <gtest/gtest.h>

namespace kiln::util {
namespace {

TEST(GoStringTest, EscapesLikeEncodingJson) {
  EXPECT_EQ(GoString("plain"), "\"plain\"");
  EXPECT_EQ(GoString("a&b<c>"), "\"a\\u0026b\\u003cc\\u003e\"");
  EXPECT_EQ(GoString("q\"b\\n\nr\rt\t"), "\"q\\\"b\\\\n\\nr\\rt\\t\"");
  EXPECT_EQ(GoString(std::string("\x00\x08\x0c\x1f\x7f", 5)),
            "\"\\u0000\\u0008\\u000c\\u001f\x7f\"");
  EXPECT_EQ(GoString("\xe2\x80\xa8\xe2\x80\xa9"), "\"\\u2028\\u2029\"");
  EXPECT_EQ(GoString("h\xc3\xa9 \xf0\x9f\x90\xb3"), "\"h\xc3\xa9 \xf0\x9f\x90\xb3\"");
}

TEST(GoStringTest, InvalidUtf8BecomesReplacementPerByte) {
  EXPECT_EQ(GoString("a\xff"), "\"a\\ufffd\"");
  EXPECT_EQ(GoString("\xc3"), "\"\\ufffd\"");                                   // truncated
  EXPECT_EQ(GoString("\xc0\xaf"), "\"\\ufffd\\ufffd\"");                        // overlong
  EXPECT_EQ(GoString("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");             // surrogate
  EXPECT_EQ(GoString("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // > U+10FFFF
  EXPECT_EQ(GoString("\xef\xbf\xbd"), "\"\xef\xbf\xbd\"");  // a real U+FFFD is kept
}

TEST(Utf8Test, ReplaceInvalidLikeGo) {
  std::string storage;
  EXPECT_EQ(ReplaceInvalidUtf8("ok \xc3\xa9", &storage), "ok \xc3\xa9");
  EXPECT_TRUE(storage.empty());  // valid text is returned as is
  EXPECT_EQ(ReplaceInvalidUtf8("a\xff"
                               "b\xc0\xaf",
                               &storage),
            "a\xef\xbf\xbd"
            "b\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(Utf8SequenceLength("\xf0\x9f\x90\xb3", 0), 4u);
  EXPECT_EQ(Utf8SequenceLength("\xed\xa0\x80", 0), 0u);
}

TEST(JsonWriterTest, PlacesSeparators) {
  JsonWriter w;
  w.BeginObject();
  w.Key("frontend");
  w.String("dockerfile.v0");
  w.Key("sources");
  w.BeginArray();
  w.BeginObject();
  w.Key("type");
  w.String("docker-image");
  w.EndObject();
  w.BeginObject();
  w.EndObject();
  w.EndArray();
  w.Key("n");
  w.Int(-3);
  w.Key("b");
  w.Bool(true);
  w.Key("z");
  w.Null();
  w.Key("r");
  w.Raw("{\"a\":1}");
  w.EndObject();
  EXPECT_EQ(w.str(),
            "{\"frontend\":\"dockerfile.v0\",\"sources\":[{\"type\":\"docker-image\"},{}],"
            "\"n\":-3,\"b\":true,\"z\":null,\"r\":{\"a\":1}}");
}

TEST(GoMarshalTest, SortsKeysAndFormatsNumbers) {
  auto v = nlohmann::json::parse(
      R"({"b":[1,2.5,1e21,0.0000001,-0.0,100000000000000000000],"a":{"y":null,"x":"<"},"c":true})");
  EXPECT_EQ(
      GoMarshal(v),
      "{\"a\":{\"x\":\"\\u003c\",\"y\":null},\"b\":[1,2.5,1e+21,1e-7,-0,100000000000000000000],"
      "\"c\":true}");
}

TEST(GoMarshalTest, Indent) {
  auto v = nlohmann::json::parse(R"({"b":[1,{}],"a":{},"c":[]})");
  EXPECT_EQ(GoMarshalIndent(v),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}");
}

TEST(GoIndentTest, KeepsOrderAndSpelling) {
  auto v = GoIndent(R"({"z":1.50,"a":[],"m":{},"s":["x,y:{"],"o":{"b":null,"a":true}})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v,
            "{\n  \"z\": 1.50,\n  \"a\": [],\n  \"m\": {},\n  \"s\": [\n    \"x,y:{\"\n  ],\n"
            "  \"o\": {\n    \"b\": null,\n    \"a\": true\n  }\n}");
  EXPECT_FALSE(GoIndent("{\"a\"").ok());
}

TEST(GoCompactTest, KeepsSpellingRemovesSpace) {
  auto c = GoCompact(" { \"a\" : [ 1.50 , 2e3 ] , \"s\" : \"x y<\\u0041\" } ");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "{\"a\":[1.50,2e3],\"s\":\"x y\\u003c\\u0041\"}");
  EXPECT_FALSE(GoCompact("{").ok());
}

TEST(SplitObjectTest, RawMembersInOrder) {
  auto m = SplitObject(R"({"os":"linux", "rootfs": {"type": "layers", "diff_ids": []},
                           "x-unknown": 1.0, "os": "windows"})",
                       "config");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].key, "os");
  EXPECT_EQ((*m)[0].value, "\"windows\"");
  EXPECT_EQ((*m)[1].value, "{\"type\":\"layers\",\"diff_ids\":[]}");
  EXPECT_EQ((*m)[2].key, "x-unknown");
  EXPECT_EQ((*m)[2].value, "1.0");
}

TEST(SplitObjectTest, RejectsNonObjects) {
  EXPECT_EQ(SplitObject("[1]", "config").status().message(), "config: expected a JSON object");
  auto bad = SplitObject("{\"a\":", "manifest.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invalid JSON in manifest.json at byte"),
            std::string::npos);
}

// Issue 15, failure 10: the library's exception tag
// ("[json.exception.parse_error.101]") reached users' error messages.
TEST(ParseJsonTest, ErrorsSayWhereAndWhatWithoutTheLibraryTag) {
  Result<nlohmann::json> bad = ParseJson("{\"a\": tru}", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("invalid JSON in config.json at byte ", 0), 0u)
      << bad.status().message();
  EXPECT_EQ(bad.status().message().find("json.exception"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("syntax error"), std::string::npos)
      << bad.status().message();
  // Invalid UTF-8 inside a string is a parse error, not a crash.
  bad = ParseJson("{\"a\": \"caf\xe9\"}", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("json.exception"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace kiln::util
