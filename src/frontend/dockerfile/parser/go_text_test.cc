#include "frontend/dockerfile/parser/go_text.h"

#include <gtest/gtest.h>

#include "frontend/dockerfile/parser/parser_internal.h"

namespace kiln::dockerfile::parser_internal {
namespace {

TEST(GoTextTest, DecodeRune) {
  EXPECT_EQ(DecodeRune("").width, 0);
  EXPECT_EQ(DecodeRune("a").rune, U'a');
  EXPECT_EQ(DecodeRune("\xC3\xA9").rune, U'\u00e9');
  EXPECT_EQ(DecodeRune("\xC3\xA9").width, 2);
  EXPECT_EQ(DecodeRune("\xF0\x9F\x98\x80").rune, U'\U0001F600');
  // Invalid: a stray continuation, an overlong form, a surrogate, a
  // truncated sequence, beyond U+10FFFF.
  for (std::string_view bad :
       {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xE2\x82", "\xF4\x90\x80\x80"}) {
    DecodedRune r = DecodeRune(bad);
    EXPECT_EQ(r.rune, kRuneError) << bad;
    EXPECT_EQ(r.width, 1) << bad;
  }
  EXPECT_EQ(DecodeLastRune("a\xC3\xA9").rune, U'\u00e9');
  EXPECT_EQ(DecodeLastRune("a\xA9").width, 1);
  EXPECT_EQ(DecodeLastRune("a\xA9").rune, kRuneError);
}

TEST(GoTextTest, AppendRune) {
  std::string s;
  AppendRune(s, U'\u00e9');
  AppendRune(s, 0xD800);  // a surrogate is not encodable
  AppendRune(s, U'\U0010FFFF');
  EXPECT_EQ(s, "\xC3\xA9\xEF\xBF\xBD\xF4\x8F\xBF\xBF");
}

TEST(GoTextTest, Classes) {
  EXPECT_TRUE(IsSpace(U'\u0085'));
  EXPECT_TRUE(IsSpace(U'\u00a0'));
  EXPECT_TRUE(IsSpace(U'\u3000'));
  EXPECT_FALSE(IsSpace(U'\u200b'));  // zero width space is a format character
  EXPECT_TRUE(IsLetter(U'\u00e9'));
  EXPECT_TRUE(IsLetter(U'\u4e2d'));
  EXPECT_FALSE(IsLetter(U'_'));
  EXPECT_TRUE(IsDigit(U'\u0663'));   // ARABIC-INDIC DIGIT THREE
  EXPECT_FALSE(IsDigit(U'\u00b2'));  // superscript two is No, not Nd
  EXPECT_TRUE(IsPrint(U' '));
  EXPECT_FALSE(IsPrint(U'\u00a0'));
  EXPECT_FALSE(IsPrint(U'\u00ad'));
  EXPECT_TRUE(IsPrint(U'\u00e9'));
  EXPECT_TRUE(IsPrint(U'\ufffd'));
  EXPECT_FALSE(IsPrint(U'\ue000'));  // private use
  EXPECT_FALSE(IsPrint(0x0378));     // unassigned
  EXPECT_TRUE(IsPrint(U'\U0001F600'));
  EXPECT_FALSE(IsPrint(0x1FAE0));  // assigned in Unicode 14, after Go 1.19's tables
}

TEST(GoTextTest, Trim) {
  EXPECT_EQ(TrimSpace(" \t a b \r\n"), "a b");
  EXPECT_EQ(TrimSpace("\xC2\xA0x\xC2\x85"), "x");
  EXPECT_EQ(TrimSpace("\xA0x\xA0"), "\xA0x\xA0");  // invalid bytes are not spaces
  EXPECT_EQ(TrimLeftSpace("  x "), "x ");
  EXPECT_EQ(TrimRightSpace("  x "), "  x");
  EXPECT_EQ(TrimSpace("   "), "");
}

TEST(GoTextTest, LowerString) {
  EXPECT_EQ(LowerString("RuN"), "run");
  EXPECT_EQ(LowerString("\xC3\x89T\xC3\x89"), "\xC3\xA9t\xC3\xA9");  // ÉTÉ
  EXPECT_EQ(LowerString("\xC4\xB0"), "i");                           // İ
  EXPECT_EQ(LowerString("\xCE\xA3"), "\xCF\x83");                    // Σ
  // Unchanged text keeps its bytes; changed text re-encodes invalid ones.
  EXPECT_EQ(LowerString("a\xFF"), "a\xEF\xBF\xBD");
  EXPECT_EQ(LowerString("\xC3\xA9"), "\xC3\xA9");
}

TEST(GoTextTest, Quote) {
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(Quote("\a\b\f\n\r\t\v"), "\"\\a\\b\\f\\n\\r\\t\\v\"");
  EXPECT_EQ(Quote(std::string_view("\0\x1f", 2)), "\"\\x00\\x1f\"");
  EXPECT_EQ(Quote("\xC2\x85"), "\"\\u0085\"");
  EXPECT_EQ(Quote("\xEF\xBB\xBF"), "\"\\ufeff\"");
  EXPECT_EQ(Quote("\xEF\xBF\xBD"), "\"\xEF\xBF\xBD\"");
  EXPECT_EQ(Quote("\xED\xA0\x80"), "\"\\xed\\xa0\\x80\"");
}

TEST(GoTextTest, SplitWhitespace) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(SplitWhitespace("", 2), V{""});
  EXPECT_EQ(SplitWhitespace("a", 2), V{"a"});
  EXPECT_EQ(SplitWhitespace("a \t b c", 2), (V{"a", "b c"}));
  EXPECT_EQ(SplitWhitespace("a b  c", -1), (V{"a", "b", "c"}));
  EXPECT_EQ(SplitWhitespace(" a ", -1), (V{"", "a", ""}));
  EXPECT_EQ(SplitWhitespace("a\xC2\xA0"
                            "b",
                            -1),
            V{"a\xC2\xA0"
              "b"});
}

TEST(GoTextTest, DecodeJsonArray) {
  std::vector<std::string> v;
  EXPECT_EQ(DecodeJsonArray(" [\"a\" , \"b\"] x", &v), JsonArray::kStrings);
  EXPECT_EQ(v, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(DecodeJsonArray("[]", &v), JsonArray::kStrings);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(DecodeJsonArray("[\"a\", {\"k\": [1, -2.5e3, true, null]}]", &v),
            JsonArray::kNotStrings);
  EXPECT_TRUE(v.empty());
  for (std::string_view bad :
       {"", "x", "[", "[\"a\",]", "[01]", "[1.]", "[-]", "[tru]", "[\"\\x\"]", "[\"\x01\"]",
        "[\"a\" \"b\"]", "[{\"a\"}]", "[{1: 2}]", "[\"\\u12\"]", "[1e999]"}) {
    EXPECT_EQ(DecodeJsonArray(bad, &v), JsonArray::kInvalid) << bad;
  }
  EXPECT_EQ(DecodeJsonArray("[\"\xFF\"]", &v), JsonArray::kStrings);
  EXPECT_EQ(v, std::vector<std::string>{"\xEF\xBF\xBD"});
  // Go stops at 10000 levels of nesting.
  EXPECT_EQ(DecodeJsonArray(std::string(10000, '[') + std::string(10000, ']'), &v),
            JsonArray::kNotStrings);
  EXPECT_EQ(DecodeJsonArray(std::string(10001, '[') + std::string(10001, ']'), &v),
            JsonArray::kInvalid);
}

TEST(GoTextTest, HeredocLexWords) {
  auto w = HeredocLexWords("a 'b c'\"d\" $X ${Y:-z w} \\ e", false, false);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<std::string>{"a", "b cd", "$X", "${Y:-z", "w}", " e"}));
  w = HeredocLexWords("'a'\\b \"c\\d\"", true, true);
  ASSERT_TRUE(w.ok());
  // Raw escapes keep `\`; before a character it cannot escape inside double
  // quotes, BuildKit's lexer writes it twice.
  EXPECT_EQ(*w, (std::vector<std::string>{"'a'\\b", "\"c\\\\d\""}));
  EXPECT_EQ(HeredocLexWords("\"x", false, false).status().message(),
            "failed to process \"\\\"x\": unexpected end of statement while looking for "
            "matching double-quote");
  EXPECT_EQ(HeredocLexWords("${a:x}", false, false).status().message(),
            "failed to process \"${a:x}\": unsupported modifier (x) in substitution");
  EXPECT_EQ(HeredocLexWords("${}", false, false).status().message(),
            "failed to process \"${}\": syntax error: bad substitution");
  EXPECT_EQ(HeredocLexWords("${a:-b", false, false).status().message(),
            "failed to process \"${a:-b\": syntax error: missing '}'");
  w = HeredocLexWords("\xEF\xBB\xBFx\xFF", false, false);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, std::vector<std::string>{"x\xEF\xBF\xBD"});
}

}  // namespace
}  // namespace kiln::dockerfile::parser_internal
