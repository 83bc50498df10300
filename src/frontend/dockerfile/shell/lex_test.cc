#include "frontend/dockerfile/shell/lex.h"

#include <gtest/gtest.h>

#include <chrono>

namespace kiln::dockerfile {
namespace {

using Words = std::vector<std::string>;

const EnvList kEnv = {{"PWD", "/home"}, {"SHELL", "bash"}, {"NULL", ""}, {"space", "a  b"}};

std::string Expand(std::string_view word, LexOptions options = {}, const EnvList& env = kEnv) {
  Result<std::string> r = Lexer(options).ProcessWord(word, env);
  EXPECT_TRUE(r.ok()) << word << ": " << r.status().ToString();
  return r.ok() ? *r : "<error>";
}

// The error message for `word`, or "<ok>".
std::string Error(std::string_view word, LexOptions options = {}, const EnvList& env = kEnv) {
  Result<std::string> r = Lexer(options).ProcessWord(word, env);
  if (r.ok()) return "<ok>";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

Words Split(std::string_view word, LexOptions options = {}, const EnvList& env = kEnv) {
  Result<Words> r = Lexer(options).ProcessWords(word, env);
  EXPECT_TRUE(r.ok()) << word << ": " << r.status().ToString();
  return r.ok() ? *r : Words{"<error>"};
}

LexOptions Backtick() {
  LexOptions o;
  o.escape = '`';
  return o;
}

LexOptions Windows() {
  LexOptions o;
  o.windows = true;
  return o;
}

TEST(LookupEnv, LastEntryWins) {
  const EnvList env = {{"A", "1"}, {"B", "2"}, {"A", "3"}};
  EXPECT_EQ(LookupEnv(env, "A"), "3");
  EXPECT_EQ(LookupEnv(env, "B"), "2");
  EXPECT_EQ(LookupEnv(env, "C"), std::nullopt);
  EXPECT_EQ(LookupEnv({{"E", ""}}, "E"), "");
}

TEST(LookupEnv, CaseInsensitiveOnlyOnWindows) {
  const EnvList env = {{"Path", "x"}, {"ÄRGER", "y"}};
  EXPECT_EQ(LookupEnv(env, "PATH"), std::nullopt);
  EXPECT_EQ(LookupEnv(env, "PATH", true), "x");
  EXPECT_EQ(LookupEnv(env, "path", true), "x");
  EXPECT_EQ(LookupEnv(env, "ärger", true), "y");  // Unicode simple case mapping
  EXPECT_EQ(LookupEnv(env, "Pat", true), std::nullopt);
  EXPECT_EQ(LookupEnv(env, "Paths", true), std::nullopt);
}

TEST(Lexer, PlainWordsAndVariables) {
  EXPECT_EQ(Expand("hello"), "hello");
  EXPECT_EQ(Expand(""), "");
  EXPECT_EQ(Expand("$PWD"), "/home");
  EXPECT_EQ(Expand("a$PWD/b"), "a/home/b");
  EXPECT_EQ(Expand("${PWD}x"), "/homex");
  EXPECT_EQ(Expand("$PWDx"), "");  // the name is PWDx
  EXPECT_EQ(Expand("$UNSET-$NULL-"), "--");
  EXPECT_EQ(Expand("$space"), "a  b");  // ProcessWord keeps inner spaces
}

TEST(Lexer, DollarWithoutNameIsLiteral) {
  EXPECT_EQ(Expand("$"), "$");
  EXPECT_EQ(Expand("a$"), "a$");
  EXPECT_EQ(Expand("$."), "$.");
  EXPECT_EQ(Expand("$/x"), "$/x");
  EXPECT_EQ(Expand("$ x"), "$ x");
  EXPECT_EQ(Expand("$'a'"), "$a");
}

TEST(Lexer, CommandSubstitutionIsText) {
  EXPECT_EQ(Expand("$(ls)"), "$(ls)");
  EXPECT_EQ(Expand("a`b`c"), "a`b`c");
}

TEST(Lexer, PositionalAndSpecialParameters) {
  EXPECT_EQ(Expand("$1x"), "x");
  EXPECT_EQ(Expand("$123x"), "x");  // all digits form the name
  EXPECT_EQ(Expand("$@@"), "@");    // one special character is the name
  EXPECT_EQ(Expand("${#}${?:-q}"), "q");
  EXPECT_EQ(Expand("$$"), "");
  EXPECT_EQ(Expand("$0a"), "a");
  EXPECT_EQ(Expand("$1", {}, {{"1", "one"}}), "one");  // looked up like any name
}

TEST(Lexer, UnicodeNames) {
  const EnvList env = {{"안녕", "hi"}, {"PWD", "/home"}};
  EXPECT_EQ(Expand("$안녕!", {}, env), "hi!");
  // Letters of any script continue a name, as with Go's unicode.IsLetter.
  EXPECT_EQ(Expand("$PWD안녕", {}, env), "");
  EXPECT_EQ(Expand("$PWD·", {}, env), "/home·");  // U+00B7 is not a letter
  // Unicode decimal digits: U+0661 U+0662 form a positional name.
  EXPECT_EQ(Expand("$\u0661\u0662x", {}, env), "x");
}

TEST(Lexer, Operators) {
  // ${VAR:-w}: w when unset or empty.
  EXPECT_EQ(Expand("${X:-w}"), "w");
  EXPECT_EQ(Expand("${NULL:-w}"), "w");
  EXPECT_EQ(Expand("${PWD:-w}"), "/home");
  // ${VAR-w}: w only when unset.
  EXPECT_EQ(Expand("${X-w}"), "w");
  EXPECT_EQ(Expand("${NULL-w}"), "");
  EXPECT_EQ(Expand("${PWD-w}"), "/home");
  // ${VAR:+w}: w when set and not empty.
  EXPECT_EQ(Expand("${X:+w}"), "");
  EXPECT_EQ(Expand("${NULL:+w}"), "");
  EXPECT_EQ(Expand("${PWD:+w}"), "w");
  // ${VAR+w}: w when set.
  EXPECT_EQ(Expand("${X+w}"), "");
  EXPECT_EQ(Expand("${NULL+w}"), "w");
  EXPECT_EQ(Expand("${PWD+w}"), "w");
  // ${VAR?msg} and ${VAR:?msg}: the value, when allowed.
  EXPECT_EQ(Expand("${PWD?m}"), "/home");
  EXPECT_EQ(Expand("${NULL?m}"), "");
  EXPECT_EQ(Expand("${PWD:?m}"), "/home");
}

TEST(Lexer, OperatorWordsNestAndExpand) {
  EXPECT_EQ(Expand("${X:-${Y:-$PWD}}z"), "/homez");
  EXPECT_EQ(Expand("${X:-a b}"), "a b");
  EXPECT_EQ(Expand("${X:-'a}'}"), "a}");  // quotes hide the `}`
  EXPECT_EQ(Expand("${X:-\"$PWD}\"}"), "/home}");
  EXPECT_EQ(Expand("${X:-a\\}b}"), "a}b");  // so does the escape
  EXPECT_EQ(Expand("${X:-{a}}"), "{a}");    // the first `}` ends it
  EXPECT_EQ(Expand("${X:-}"), "");
}

TEST(Lexer, SingleQuotes) {
  EXPECT_EQ(Expand("'$PWD'"), "$PWD");
  EXPECT_EQ(Expand("'a\\'"), "a\\");  // no escapes inside
  EXPECT_EQ(Expand("'\"x\"'"), "\"x\"");
  EXPECT_EQ(Expand("a'b c'd"), "ab cd");
  EXPECT_EQ(Expand("''"), "");
}

TEST(Lexer, DoubleQuotes) {
  EXPECT_EQ(Expand("\"$PWD\""), "/home");
  EXPECT_EQ(Expand("\"'$PWD'\""), "'/home'");
  EXPECT_EQ(Expand("\"a\\\"b\""), "a\"b");    // \" escapes
  EXPECT_EQ(Expand("\"\\$PWD\""), "$PWD");    // \$ escapes
  EXPECT_EQ(Expand("\"a\\\\b\""), "a\\b");    // \\ escapes
  EXPECT_EQ(Expand("\"a\\tb\""), "a\\tb");    // anything else keeps the backslash
  EXPECT_EQ(Expand("\"a\\`b\""), "a\\`b");    // ` included, unlike sh
  EXPECT_EQ(Expand("\"a\\\nb\""), "a\\\nb");  // and a newline too
  EXPECT_EQ(Expand("\"${X:-\"a\"}\""), "a");
}

TEST(Lexer, BackslashEscape) {
  EXPECT_EQ(Expand("a\\tb"), "atb");
  EXPECT_EQ(Expand("\\$PWD"), "$PWD");
  EXPECT_EQ(Expand("\\\\$PWD"), "\\/home");
  EXPECT_EQ(Expand("\\'a"), "'a");
  EXPECT_EQ(Expand("a\\"), "a");  // a trailing escape vanishes
  EXPECT_EQ(Expand("\\${}"), "${}");
  EXPECT_EQ(Expand("a`b"), "a`b");
}

TEST(Lexer, BacktickEscape) {
  const LexOptions o = Backtick();
  EXPECT_EQ(Expand("a`$PWD", o), "a$PWD");
  EXPECT_EQ(Expand("a\\$PWD", o), "a\\/home");  // backslash is plain text
  EXPECT_EQ(Expand("C:\\dir\\x", o), "C:\\dir\\x");
  EXPECT_EQ(Expand("``", o), "`");
  EXPECT_EQ(Expand("a`", o), "a");
  EXPECT_EQ(Expand("\"a`\"b\"", o), "a\"b");
  EXPECT_EQ(Expand("\"a``b\"", o), "a`b");
  EXPECT_EQ(Expand("\"a`tb\"", o), "a`tb");
  EXPECT_EQ(Expand("\"a\\\"", o), "a\\");
  EXPECT_EQ(Expand("${X:-a`}b}", o), "a}b");
}

TEST(Lexer, RawQuotesAndEscapes) {
  LexOptions quotes;
  quotes.raw_quotes = true;
  EXPECT_EQ(Expand("'a'\"$PWD\"b", quotes), "'a'\"/home\"b");

  LexOptions escapes;
  escapes.raw_escapes = true;
  EXPECT_EQ(Expand("a\\$PWD\\", escapes), "a\\$PWD\\");
  EXPECT_EQ(Expand("\"\\\"\\$\"", escapes), "\\\"\\$");
  // BuildKit writes an escape that escapes nothing twice under raw escapes.
  EXPECT_EQ(Expand("\"\\a\"", escapes), "\\\\a");
}

TEST(Lexer, SkipUnset) {
  LexOptions o;
  o.skip_unset = true;
  EXPECT_EQ(Expand("$X-${X}-$PWD", o), "$X-${X}-/home");
  EXPECT_EQ(Expand("${X:-w}|${X:+w}|${X:?w}|${X?w}|${X-w}|${X+w}", o),
            "${X:-w}|${X:+w}|${X:?w}|${X?w}|${X-w}|${X+w}");
  EXPECT_EQ(Expand("${X:-$PWD}", o), "${X:-/home}");  // the word as expanded
  EXPECT_EQ(Expand("${NULL:-w}${PWD:+w}", o), "ww");
  EXPECT_EQ(Error("${NULL:?}", o),
            "failed to process \"${NULL:?}\": NULL: is not allowed to be empty");
}

TEST(Lexer, ErrorMessages) {
  EXPECT_EQ(Error("he'llo"),
            "failed to process \"he'llo\": unexpected end of statement while looking for "
            "matching single-quote");
  EXPECT_EQ(Error("\"hello\\\""),
            "failed to process \"\\\"hello\\\\\\\"\": unexpected end of statement while looking "
            "for matching double-quote");
  EXPECT_EQ(Error("${}"), "failed to process \"${}\": syntax error: bad substitution");
  EXPECT_EQ(Error("${:-a}"), "failed to process \"${:-a}\": syntax error: bad substitution");
  EXPECT_EQ(Error("${{a}"), "failed to process \"${{a}\": syntax error: bad substitution");
  EXPECT_EQ(Error("${"), "failed to process \"${\": syntax error: missing '}'");
  EXPECT_EQ(Error("${a:-b"), "failed to process \"${a:-b\": syntax error: missing '}'");
  EXPECT_EQ(Error("${a:-b ${c}"), "failed to process \"${a:-b ${c}\": syntax error: missing '}'");
  EXPECT_EQ(Error("${PWD"), "failed to process \"${PWD\": missing ':' in substitution");
  EXPECT_EQ(Error("${.}"), "failed to process \"${.}\": missing ':' in substitution");
  EXPECT_EQ(Error("${X:=w}"),
            "failed to process \"${X:=w}\": unsupported modifier (=) in substitution");
  EXPECT_EQ(Error("${X:안}"),
            "failed to process \"${X:안}\": unsupported modifier (안) in substitution");
  EXPECT_EQ(Error("${X?}"), "failed to process \"${X?}\": X: is not allowed to be unset");
  EXPECT_EQ(Error("${X:?}"), "failed to process \"${X:?}\": X: is not allowed to be unset");
  EXPECT_EQ(Error("${NULL:?}"),
            "failed to process \"${NULL:?}\": NULL: is not allowed to be empty");
  EXPECT_EQ(Error("${X?set X to a tag}"),
            "failed to process \"${X?set X to a tag}\": X: set X to a tag");
  EXPECT_EQ(Error("${NULL:?in $PWD}"), "failed to process \"${NULL:?in $PWD}\": NULL: in /home");
  // The word is Go-quoted (%q).
  EXPECT_EQ(Error("\"a\tb\x01\xff"),
            "failed to process \"\\\"a\\tb\\x01\\xff\": unexpected end of statement while "
            "looking for matching double-quote");
  EXPECT_EQ(Error("'안\u00a0"),
            "failed to process \"'안\\u00a0\": unexpected end of statement while looking for "
            "matching single-quote");
}

TEST(Lexer, OperatorWordIsExpandedEvenWhenUnused) {
  EXPECT_EQ(Error("${PWD:-${X?}}"),
            "failed to process \"${PWD:-${X?}}\": X: is not allowed to be unset");
  // An error that leaves the input exhausted is reported as a missing `}`.
  EXPECT_EQ(Error("${PWD:-${X?}"), "failed to process \"${PWD:-${X?}\": syntax error: missing '}'");
}

TEST(Lexer, UsedNamesAreThoseFound) {
  std::set<std::string> used;
  ASSERT_TRUE(Lexer().ProcessWord("$PWD ${X} ${SHELL:-a} ${Y:-$NULL} $1", kEnv, &used).ok());
  EXPECT_EQ(used, (std::set<std::string>{"PWD", "SHELL", "NULL"}));

  std::set<std::string> words_used;
  ASSERT_TRUE(Lexer().ProcessWords("'$PWD' \"$SHELL\" \\$NULL", kEnv, &words_used).ok());
  EXPECT_EQ(words_used, (std::set<std::string>{"SHELL"}));

  // Spelled as in the word, not as in the environment.
  std::set<std::string> win_used;
  ASSERT_TRUE(Lexer(Windows()).ProcessWord("$pwd", kEnv, &win_used).ok());
  EXPECT_EQ(win_used, (std::set<std::string>{"pwd"}));

  EXPECT_TRUE(Lexer().ProcessWord("$PWD", kEnv, nullptr).ok());
}

TEST(Lexer, WindowsMode) {
  EXPECT_EQ(Expand("$pwd"), "");
  EXPECT_EQ(Expand("$pwd", Windows()), "/home");
  EXPECT_EQ(Expand("${Shell:+x}${null:-d}", Windows()), "xd");
  EXPECT_EQ(Error("${null:?}", Windows()),
            "failed to process \"${null:?}\": null: is not allowed to be empty");
  const EnvList env = {{"a", "1"}, {"A", "2"}};
  EXPECT_EQ(Expand("$a", Windows(), env), "2");  // the last match wins
  EXPECT_EQ(Expand("$a", {}, env), "1");
}

TEST(Lexer, Utf8Handling) {
  EXPECT_EQ(Expand("안'녕'하세요"), "안녕하세요");
  EXPECT_EQ(Expand("\xEF\xBB\xBF"
                   "abc"),
            "abc");  // a leading byte order mark is dropped
  EXPECT_EQ(Expand("a\xEF\xBB\xBF"), "a\xEF\xBB\xBF");
  EXPECT_EQ(Expand("a\xFF"
                   "b"),
            "a\uFFFDb");  // invalid bytes read as U+FFFD
  EXPECT_EQ(Expand(std::string_view("a\0b", 3)), std::string("a\0b", 3));
  // Values are copied as they are into ProcessWord's result.
  EXPECT_EQ(Expand("$V", {}, {{"V", "\xFF"}}), "\xFF");
}

TEST(ProcessWords, SplitsOnUnquotedWhitespace) {
  EXPECT_EQ(Split("a b\tc\nd"), (Words{"a", "b", "c", "d"}));
  EXPECT_EQ(Split("  a   b  "), (Words{"a", "b"}));
  EXPECT_EQ(Split(""), Words{});
  EXPECT_EQ(Split("   "), Words{});
  EXPECT_EQ(Split("a\xC2\xA0"
                  "b"),
            (Words{"a", "b"}));  // U+00A0 is white space
}

TEST(ProcessWords, QuotesAndEscapesKeepSpaces) {
  EXPECT_EQ(Split("\"a b\" c"), (Words{"a b", "c"}));
  EXPECT_EQ(Split("'a b'c d"), (Words{"a bc", "d"}));
  EXPECT_EQ(Split("a\\ b"), (Words{"a b"}));
  EXPECT_EQ(Split("a` b", Backtick()), (Words{"a b"}));
  EXPECT_EQ(Split("\" a \""), (Words{" a "}));
}

TEST(ProcessWords, EmptyQuotesYieldNoWord) {
  EXPECT_EQ(Split("\"\""), Words{});
  EXPECT_EQ(Split("a \"\" b"), (Words{"a", "b"}));
  EXPECT_EQ(Split("a''"), (Words{"a"}));
  EXPECT_EQ(Split("\"$NULL\""), Words{});
}

TEST(ProcessWords, VariableValuesSplit) {
  EXPECT_EQ(Split("x${space}y"), (Words{"xa", "by"}));
  EXPECT_EQ(Split("x\"${space}\"y"), (Words{"xa  by"}));
  EXPECT_EQ(Split("${X:-p q}"), (Words{"p", "q"}));    // an operator's result splits too
  EXPECT_EQ(Split("${X:-'p q'}"), (Words{"p", "q"}));  // even if it was quoted inside
  EXPECT_EQ(Split("$NULL"), Words{});
  EXPECT_EQ(Split("a$NULL b"), (Words{"a", "b"}));
  EXPECT_EQ(Split("$V", {}, {{"V", "\xFF x"}}), (Words{"\uFFFD", "x"}));
}

TEST(ProcessWords, Errors) {
  Result<Words> r = Lexer().ProcessWords("a \"b", kEnv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "failed to process \"a \\\"b\": unexpected end of statement while looking for "
            "matching double-quote");
}

// Expansion is one pass over the word: a word of 1 MiB, with a variable in
// every 8 bytes, takes well under a second even in a debug build.
TEST(Lexer, LongWordIsLinear) {
  std::string word;
  while (word.size() < (1 << 20)) word += "a${PWD}b";
  const auto start = std::chrono::steady_clock::now();
  Result<std::string> r = Lexer().ProcessWord(word, kEnv);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), word.size() / 8 * 7);
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

}  // namespace
}  // namespace kiln::dockerfile
