#include "frontend/dockerfile/parser/parser.h"

#include <gtest/gtest.h>

#include <string>

#include "frontend/dockerfile/parser/parser_internal.h"

namespace kiln::dockerfile {
namespace {

ParseResult MustParse(std::string_view text) {
  SourceRange where;
  Result<ParseResult> r = Parse(text, &where);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << " at line " << where.start_line;
  if (!r.ok()) return {};
  return std::move(r).value();
}

std::string DumpOf(std::string_view text) { return Dump(MustParse(text).root); }

// The error text of a Dockerfile that must fail, with its location.
std::string ErrorOf(std::string_view text, SourceRange* where = nullptr) {
  SourceRange ignored;
  Result<ParseResult> r = Parse(text, where ? where : &ignored);
  EXPECT_FALSE(r.ok()) << "parsed: " << (r.ok() ? Dump(r->root) : "");
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::vector<std::string> ArgValues(const Node& n) {
  std::vector<std::string> out;
  for (const Node& a : n.args) out.push_back(a.value);
  return out;
}

// ---- directives ----

TEST(ParserDirectivesTest, EscapeBacktickChangesContinuation) {
  ParseResult r = MustParse("# escape=`\nFROM windows\nRUN dir `\n  c:\\\\\n");
  EXPECT_EQ(r.directives.escape, '`');
  EXPECT_EQ(Dump(r.root), "(from \"windows\")\n(run \"dir   c:\\\\\\\\\")\n");
}

TEST(ParserDirectivesTest, SyntaxIsRecordedAndKeptAsComment) {
  ParseResult r = MustParse("# syntax=docker/dockerfile:1.4\nFROM alpine\n");
  EXPECT_EQ(r.directives.syntax, "docker/dockerfile:1.4");
  EXPECT_EQ(r.directives.escape, '\\');
  ASSERT_EQ(r.root.children.size(), 1u);
  // BuildKit v0.10 keeps directive lines among the comments.
  EXPECT_EQ(r.root.children[0].prev_comment,
            std::vector<std::string>{"syntax=docker/dockerfile:1.4"});
}

TEST(ParserDirectivesTest, SpacingAndCaseAreFree) {
  ParseResult r = MustParse("#  ESCAPE =  `  \n#syntax=x\nFROM a\n");
  EXPECT_EQ(r.directives.escape, '`');
  EXPECT_EQ(r.directives.syntax, "x");
}

TEST(ParserDirectivesTest, OnlyBeforeAnythingElse) {
  // A plain comment, a blank line or an unknown directive ends the header.
  EXPECT_EQ(MustParse("# hello\n# escape=`\nFROM a\n").directives.escape, '\\');
  EXPECT_EQ(MustParse("\n# escape=`\nFROM a\n").directives.escape, '\\');
  EXPECT_EQ(MustParse("# foo=bar\n# escape=`\nFROM a\n").directives.escape, '\\');
  EXPECT_EQ(MustParse("FROM a\n# escape=`\n").directives.escape, '\\');
}

TEST(ParserDirectivesTest, ErrorsPointAtTheDirective) {
  SourceRange where;
  EXPECT_EQ(ErrorOf("# escape=`\n# escape=\\\nFROM a\n", &where),
            "only one escape parser directive can be used");
  EXPECT_EQ(where.start_line, 2);
  EXPECT_EQ(ErrorOf("# escape=x\nFROM a\n", &where),
            "invalid escape token 'x' does not match ` or \\");
  EXPECT_EQ(where.start_line, 1);
  EXPECT_EQ(where.end_line, 1);
  // The value of `# escape=  ` is one blank (the lazy regex group).
  EXPECT_EQ(ErrorOf("# escape=  \nFROM a\n"), "invalid escape token ' ' does not match ` or \\");
}

// ---- continuations ----

TEST(ParserContinuationTest, JoinsLinesKeepingIndentation) {
  ParseResult r = MustParse("FROM a\nRUN echo \\\n    hi \\\n\tthere\n");
  ASSERT_EQ(r.root.children.size(), 2u);
  const Node& run = r.root.children[1];
  EXPECT_EQ(run.original, "RUN echo     hi \tthere");
  EXPECT_EQ(ArgValues(run), std::vector<std::string>{"echo     hi \tthere"});
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 4);
}

TEST(ParserContinuationTest, CommentsInsideAreSkippedWithoutWarning) {
  ParseResult r = MustParse("FROM a\nRUN a \\\n# note\n  # indented\n  b\n");
  EXPECT_EQ(r.root.children[1].original, "RUN a   b");
  EXPECT_TRUE(r.warnings.empty());
}

TEST(ParserContinuationTest, EscapedEscapeIsNotAContinuation) {
  EXPECT_EQ(DumpOf("FROM a\nENV C=x\\\\\nENV D=y\n"),
            "(from \"a\")\n(env \"C\" \"x\\\\\\\\\")\n(env \"D\" \"y\")\n");
}

TEST(ParserContinuationTest, TrailingBlanksAfterTheEscape) {
  EXPECT_EQ(DumpOf("FROM a\nRUN x \\ \t\n y\n"), "(from \"a\")\n(run \"x  y\")\n");
}

TEST(ParserContinuationTest, ContinuationAtEndOfFile) {
  ParseResult r = MustParse("FROM a\nRUN x \\");
  EXPECT_EQ(Dump(r.root), "(from \"a\")\n(run \"x\")\n");
  EXPECT_EQ(r.root.children[1].end_line, 2);
}

TEST(ParserContinuationTest, LoneEscapeLineStartsAnInstruction) {
  EXPECT_EQ(DumpOf("\\\nFROM a\n"), "(from \"a\")\n");
}

TEST(ParserContinuationTest, EmptyContinuationLineWarns) {
  ParseResult r = MustParse("FROM a\nRUN something \\\n\n    following \\\n   \n    more\n");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].message,
            "Empty continuation line found in: RUN something     following     more");
  EXPECT_EQ(r.warnings[0].line, 6);
  EXPECT_EQ(r.root.children[1].start_line, 2);
  EXPECT_EQ(r.root.children[1].end_line, 6);
}

// ---- heredocs ----

TEST(ParserHeredocTest, BodyAndLineRange) {
  ParseResult r = MustParse("FROM a\nRUN <<EOF\necho hi\n  # not a comment\nEOF\nUSER me\n");
  ASSERT_EQ(r.root.children.size(), 3u);
  const Node& run = r.root.children[1];
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].name, "EOF");
  EXPECT_EQ(run.heredocs[0].content, "echo hi\n  # not a comment\n");
  EXPECT_TRUE(run.heredocs[0].expand);
  EXPECT_FALSE(run.heredocs[0].chomp);
  EXPECT_EQ(run.heredocs[0].file_descriptor, 0);
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 5);
  EXPECT_EQ(r.root.children[2].start_line, 6);
  EXPECT_EQ(Dump(r.root), "(from \"a\")\n(run \"<<EOF\")\n(user \"me\")\n");
}

TEST(ParserHeredocTest, SeveralOnOneLineAreReadInOrder) {
  ParseResult r = MustParse("FROM a\nCOPY <<A 3<<-B /dst\none\nA\n\ttwo\n\tB\n");
  const Node& copy = r.root.children[1];
  ASSERT_EQ(copy.heredocs.size(), 2u);
  EXPECT_EQ(copy.heredocs[0].name, "A");
  EXPECT_EQ(copy.heredocs[0].content, "one\n");
  EXPECT_EQ(copy.heredocs[1].name, "B");
  EXPECT_EQ(copy.heredocs[1].file_descriptor, 3);
  EXPECT_TRUE(copy.heredocs[1].chomp);
  EXPECT_EQ(copy.heredocs[1].content, "\ttwo\n");  // stored unchomped
  EXPECT_EQ(ChompHeredocContent(copy.heredocs[1].content), "two\n");
  EXPECT_EQ(ArgValues(copy), (std::vector<std::string>{"<<A", "3<<-B", "/dst"}));
}

TEST(ParserHeredocTest, QuotedDelimiterDisablesExpansion) {
  ParseResult r =
      MustParse("FROM a\nRUN <<'EOF'\n$x\nEOF\nRUN <<E\"O\"F\n$y\nEOF\nRUN <<eo\\'f\nz\neo'f\n");
  ASSERT_EQ(r.root.children.size(), 4u);
  EXPECT_FALSE(r.root.children[1].heredocs[0].expand);
  EXPECT_EQ(r.root.children[1].heredocs[0].name, "EOF");
  EXPECT_FALSE(r.root.children[2].heredocs[0].expand);
  EXPECT_EQ(r.root.children[2].heredocs[0].name, "EOF");
  // An escaped quote is not quoting.
  EXPECT_TRUE(r.root.children[3].heredocs[0].expand);
  EXPECT_EQ(r.root.children[3].heredocs[0].name, "eo'f");
}

TEST(ParserHeredocTest, OnlyShellFormRunCopyAddAndOnbuild) {
  ParseResult r =
      MustParse("FROM a\nUSER <<X\nRUN [\"<<EOF\"]\nONBUILD RUN <<EOF\nbody\nEOF\nRUN '<<Q'\n");
  ASSERT_EQ(r.root.children.size(), 5u);
  EXPECT_TRUE(r.root.children[1].heredocs.empty());
  EXPECT_TRUE(r.root.children[2].heredocs.empty());
  EXPECT_TRUE(r.root.children[2].json_form);
  const Node& onbuild = r.root.children[3];
  ASSERT_EQ(onbuild.heredocs.size(), 1u);
  EXPECT_EQ(onbuild.heredocs[0].content, "body\n");
  EXPECT_TRUE(r.root.children[4].heredocs.empty());
}

TEST(ParserHeredocTest, CrlfBodyKeepsItsLineEndings) {
  ParseResult r = MustParse("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\nUSER u\r\n");
  ASSERT_EQ(r.root.children.size(), 3u);
  EXPECT_EQ(r.root.children[1].heredocs[0].content, "x\r\n");
}

TEST(ParserHeredocTest, Unterminated) {
  SourceRange where;
  EXPECT_EQ(ErrorOf("FROM a\nRUN <<EOF\nline\n", &where), "unterminated heredoc");
  EXPECT_EQ(where.start_line, 2);
  EXPECT_EQ(where.end_line, 3);
}

TEST(ParserHeredocTest, UnsplittableLineHasNoHeredoc) {
  // The shell lexer cannot split the line, so no heredoc is seen at all.
  EXPECT_EQ(DumpOf("FROM a\nRUN <<'EOF\n"), "(from \"a\")\n(run \"<<'EOF\")\n");
  // A delimiter word with an unterminated quote is an error.
  EXPECT_EQ(parser_internal::ParseHeredocWord("<<'EOF").status().message(),
            "failed to process \"'EOF\": unexpected end of statement while looking for "
            "matching single-quote");
}

TEST(ParserHeredocTest, WordHelpers) {
  using parser_internal::HeredocsFromLine;
  using parser_internal::ParseHeredocWord;
  auto doc = ParseHeredocWord("12<<-\"E F\"");
  ASSERT_TRUE(doc.ok());
  ASSERT_TRUE(doc->has_value());
  EXPECT_EQ((*doc)->name, "E F");
  EXPECT_EQ((*doc)->file_descriptor, 12);
  EXPECT_TRUE((*doc)->chomp);
  EXPECT_FALSE((*doc)->expand);
  for (std::string_view no : {"", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "a<<EOF"}) {
    auto r = ParseHeredocWord(no);
    ASSERT_TRUE(r.ok()) << no;
    EXPECT_FALSE(r->has_value()) << no;
  }
  auto docs = HeredocsFromLine("RUN <<A cat <<\"B\" '<<C'");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0].name, "A");
  EXPECT_EQ((*docs)[1].name, "B");
  // Variables are never expanded in delimiters; bad substitutions are errors.
  auto dollar = ParseHeredocWord("<<$EOF");
  ASSERT_TRUE(dollar.ok() && dollar->has_value());
  EXPECT_EQ((*dollar)->name, "$EOF");
  EXPECT_EQ(ParseHeredocWord("<<${X-y}").status().message(),
            "failed to process \"${X-y}\": missing ':' in substitution");
  EXPECT_EQ(ParseHeredocWord("<<${").status().message(),
            "failed to process \"${\": syntax error: missing '}'");
}

TEST(ParserHeredocTest, Chomp) {
  EXPECT_EQ(ChompHeredocContent("\t\thello\n\tworld\n  \tkeep\n"), "hello\nworld\n  \tkeep\n");
  EXPECT_EQ(ChompHeredocContent(""), "");
}

// ---- JSON and shell forms ----

TEST(ParserFormsTest, JsonArrayIsExecForm) {
  ParseResult r = MustParse("FROM a\nCMD [\"echo\", \"a b\"]\nCMD echo [\"x\"]\nCMD []\n");
  EXPECT_TRUE(r.root.children[1].json_form);
  EXPECT_EQ(ArgValues(r.root.children[1]), (std::vector<std::string>{"echo", "a b"}));
  EXPECT_FALSE(r.root.children[2].json_form);
  EXPECT_EQ(ArgValues(r.root.children[2]), std::vector<std::string>{"echo [\"x\"]"});
  EXPECT_TRUE(r.root.children[3].json_form);
  EXPECT_TRUE(r.root.children[3].args.empty());
  EXPECT_EQ(Dump(r.root),
            "(from \"a\")\n(cmd \"echo\" \"a b\")\n(cmd \"echo [\\\"x\\\"]\")\n(cmd)\n");
}

TEST(ParserFormsTest, InvalidJsonFallsBackToShellForm) {
  EXPECT_EQ(DumpOf("FROM a\nRUN [\"a\", \nCOPY [a] /b\nENTRYPOINT ['x']\n"),
            "(from \"a\")\n(run \"[\\\"a\\\",\")\n(copy \"[a]\" \"/b\")\n(entrypoint \"['x']\")\n");
  // A number too large for a float64 fails Go's decoder: shell form too.
  EXPECT_EQ(DumpOf("FROM a\nCMD [\"a\", 1e400]\n"), "(from \"a\")\n(cmd \"[\\\"a\\\", 1e400]\")\n");
}

TEST(ParserFormsTest, TextAfterTheArrayIsIgnored) {
  ParseResult r = MustParse("FROM a\nCMD [\"a\"] trailing\n");
  EXPECT_TRUE(r.root.children[1].json_form);
  EXPECT_EQ(ArgValues(r.root.children[1]), std::vector<std::string>{"a"});
}

TEST(ParserFormsTest, NonStringElementsAreAnError) {
  SourceRange where;
  EXPECT_EQ(ErrorOf("FROM a\nCMD [\"a\", [\"b\"]]\n", &where),
            "when using JSON array syntax, arrays must be comprised of strings only");
  EXPECT_EQ(where.start_line, 2);
  EXPECT_EQ(ErrorOf("FROM a\nHEALTHCHECK CMD [1]\n"),
            "when using JSON array syntax, arrays must be comprised of strings only");
}

TEST(ParserFormsTest, JsonStringEscapes) {
  ParseResult r =
      MustParse("FROM a\nCMD [\"\\u00e9\\ud83d\\ude00\", \"\\ud800x\", \"\\\"\\/\\t\"]\n");
  EXPECT_EQ(ArgValues(r.root.children[1]),
            (std::vector<std::string>{"\xC3\xA9\xF0\x9F\x98\x80", "\xEF\xBF\xBDx", "\"/\t"}));
}

TEST(ParserFormsTest, ArgumentParsersByKeyword) {
  EXPECT_EQ(DumpOf("FROM  a   AS  b\n"), "(from \"a\" \"AS\" \"b\")\n");
  EXPECT_EQ(DumpOf("FROM a\nEXPOSE 80 443/udp\nVOLUME /a /b\nVOLUME [\"/c\"]\n"),
            "(from \"a\")\n(expose \"80\" \"443/udp\")\n(volume \"/a\" \"/b\")\n(volume \"/c\")\n");
  EXPECT_EQ(DumpOf("FROM a\nENV a b  c\nENV x=1 y=\"2 3\"\nLABEL k=v\n"),
            "(from \"a\")\n(env \"a\" \"b  c\")\n(env \"x\" \"1\" \"y\" \"\\\"2 3\\\"\")\n"
            "(label \"k\" \"v\")\n");
  EXPECT_EQ(
      DumpOf("FROM a\nARG x y=1 'z w'\nUSER  me  now \nWORKDIR /x y\n"),
      "(from \"a\")\n(arg \"x\" \"y=1\" \"'z w'\")\n(user \"me  now\")\n(workdir \"/x y\")\n");
  EXPECT_EQ(DumpOf("FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD [\"true\"]\n"),
            "(from \"a\")\n(healthcheck \"NONE\")\n"
            "(healthcheck [\"--interval=5s\"] \"CMD\" \"true\")\n");
  EXPECT_EQ(DumpOf("FROM a\nONBUILD RUN --mount=x echo\nSTOPSIGNAL 9\nMAINTAINER me\n"),
            "(from \"a\")\n(onbuild (run [\"--mount=x\"] \"echo\"))\n(stopsignal \"9\")\n"
            "(maintainer \"me\")\n");
}

TEST(ParserFormsTest, NameValueErrors) {
  SourceRange where;
  EXPECT_EQ(ErrorOf("FROM a\nENV PATH\n", &where), "ENV must have two arguments");
  EXPECT_EQ(where.start_line, 2);
  EXPECT_EQ(ErrorOf("FROM a\nLABEL a=1 \\\n  b\n", &where),
            "Syntax error - can't find = in \"b\". Must be of the form: name=value");
  EXPECT_EQ(where.start_line, 2);
  EXPECT_EQ(where.end_line, 3);
}

TEST(ParserFormsTest, WordSplitter) {
  using parser_internal::ParseWords;
  EXPECT_EQ(ParseWords("a \"b c\" d\\ e 'f\\' g", '\\'),
            (std::vector<std::string>{"a", "\"b c\"", "d\\ e", "'f\\'", "g"}));
  EXPECT_EQ(ParseWords("a` b", '`'), std::vector<std::string>{"a` b"});
  EXPECT_EQ(ParseWords("x=\"\" ''", '\\'), (std::vector<std::string>{"x=\"\"", "''"}));
}

// ---- flags and keywords ----

TEST(ParserFlagsTest, LeadingDoubleDashWords) {
  ParseResult r = MustParse(
      "FROM --platform=$X a\nCOPY --from=b --chown=\"me:you\" -- --x /y\nRUN --a='' b\n"
      "COPY --x\\ y z /\n");
  EXPECT_EQ(r.root.children[0].flags, std::vector<std::string>{"--platform=$X"});
  EXPECT_EQ(r.root.children[1].flags, (std::vector<std::string>{"--from=b", "--chown=me:you"}));
  EXPECT_EQ(ArgValues(r.root.children[1]), (std::vector<std::string>{"--x", "/y"}));
  EXPECT_EQ(r.root.children[2].flags, std::vector<std::string>{"--a="});
  EXPECT_EQ(r.root.children[3].flags, std::vector<std::string>{"--x y"});
  EXPECT_EQ(Dump(r.root),
            "(from [\"--platform=$X\"] \"a\")\n"
            "(copy [\"--from=b\" \"--chown=me:you\"] \"--x\" \"/y\")\n"
            "(run [\"--a=\"] \"b\")\n(copy [\"--x y\"] \"z\" \"/\")\n");
}

TEST(ParserFlagsTest, FlagBytesAreReadAsLatin1) {
  // BuildKit converts each byte of a flag to a rune: é (C3 A9) becomes Ã©.
  ParseResult r = MustParse("FROM a\nRUN --x=\xC3\xA9 y\n");
  EXPECT_EQ(r.root.children[1].flags, std::vector<std::string>{"--x=\xC3\x83\xC2\xA9"});
}

TEST(ParserKeywordTest, CaseInsensitiveAndLowerCased) {
  ParseResult r = MustParse("from a\nRuN x\ncOpY a b\n");
  EXPECT_EQ(r.root.children[0].value, "from");
  EXPECT_EQ(r.root.children[1].value, "run");
  EXPECT_EQ(r.root.children[1].original, "RuN x");
  EXPECT_EQ(Dump(r.root), "(from \"a\")\n(run \"x\")\n(copy \"a\" \"b\")\n");
}

TEST(ParserKeywordTest, UnknownKeywordsKeepNoArguments) {
  EXPECT_EQ(DumpOf("FROM a\n{{ .Template }}\nBOGUS x y\n"),
            "(from \"a\")\n({{ \"\")\n(bogus \"\")\n");
}

// ---- line handling ----

TEST(ParserLinesTest, CrlfAndCr) {
  ParseResult r = MustParse("FROM a\r\nRUN x \\\r\n  y\r\n\r\nUSER u\r\n");
  EXPECT_EQ(Dump(r.root), "(from \"a\")\n(run \"x   y\")\n(user \"u\")\n");
  EXPECT_EQ(r.root.children[2].start_line, 5);
}

TEST(ParserLinesTest, ByteOrderMarkOnlyOnTheFirstLine) {
  ParseResult r = MustParse("\xEF\xBB\xBF# escape=`\nFROM a\n");
  EXPECT_EQ(r.directives.escape, '`');
  EXPECT_EQ(DumpOf("\xEF\xBB\xBF"
                   "FROM a\n"),
            "(from \"a\")\n");
  EXPECT_EQ(DumpOf("FROM a\n\xEF\xBB\xBFRUN x\n"), "(from \"a\")\n(\xEF\xBB\xBFrun \"\")\n");
}

TEST(ParserLinesTest, LineRanges) {
  ParseResult r = MustParse("\n# c\nFROM a\n\nRUN a \\\n b\n\nUSER x\n\n");
  EXPECT_EQ(r.root.start_line, 3);
  EXPECT_EQ(r.root.end_line, 8);
  ASSERT_EQ(r.root.children.size(), 3u);
  EXPECT_EQ(r.root.children[0].start_line, 3);
  EXPECT_EQ(r.root.children[0].end_line, 3);
  EXPECT_EQ(r.root.children[0].prev_comment, std::vector<std::string>{"c"});
  EXPECT_EQ(r.root.children[1].start_line, 5);
  EXPECT_EQ(r.root.children[1].end_line, 6);
  EXPECT_EQ(r.root.children[2].start_line, 8);
}

TEST(ParserLinesTest, PrevCommentRules) {
  ParseResult r = MustParse("# a\n\n  # b\n#\n# c\nFROM x\nRUN y\n");
  // Blank lines keep collecting; a bare `#` resets; an indented comment keeps
  // its `#` (BuildKit drops the first byte, not the `#`).
  EXPECT_EQ(r.root.children[0].prev_comment, std::vector<std::string>{"c"});
  EXPECT_TRUE(r.root.children[1].prev_comment.empty());
  r = MustParse("# a\n\n  # b\nFROM x\n");
  EXPECT_EQ(r.root.children[0].prev_comment, (std::vector<std::string>{"a", "# b"}));
}

TEST(ParserLinesTest, LineLimit) {
  const std::string ok = "FROM a\nLABEL x=" + std::string(65535 - 8, 'a') + "\n";
  EXPECT_TRUE(Parse(ok).ok());
  const std::string long_line = "FROM a\nRUN b\nLABEL x=" + std::string(65536 - 8, 'a') + "\n";
  SourceRange where;
  EXPECT_EQ(ErrorOf(long_line, &where), "dockerfile line greater than max allowed size of 65535");
  // BuildKit locates it at the last line it could read.
  EXPECT_EQ(where.start_line, 2);
  // Without a final newline the limit is the same.
  EXPECT_TRUE(Parse("FROM a\nLABEL x=" + std::string(65535 - 8, 'a')).ok());
  EXPECT_FALSE(Parse("FROM a\nLABEL x=" + std::string(65536 - 8, 'a')).ok());
}

TEST(ParserLinesTest, NoInstructions) {
  SourceRange where;
  EXPECT_EQ(ErrorOf("", &where), "file with no instructions");
  EXPECT_EQ(where.start_line, 0);
  EXPECT_EQ(ErrorOf("# just\n\n# comments\n", &where), "file with no instructions");
  EXPECT_EQ(where.start_line, 3);
  // A long first line: nothing was parsed, which BuildKit reports first.
  EXPECT_EQ(ErrorOf(std::string(70000, 'x')), "file with no instructions");
}

TEST(ParserLinesTest, OnbuildNestingIsBounded) {
  std::string deep = "FROM a\n";
  for (int i = 0; i < 300; ++i) deep += "ONBUILD ";
  deep += "RUN x\n";
  EXPECT_EQ(ErrorOf(deep), "ONBUILD nested more than 256 levels deep");
  EXPECT_EQ(DumpOf("FROM a\nONBUILD ONBUILD RUN x\n"),
            "(from \"a\")\n(onbuild (onbuild (run \"x\")))\n");
}

// ---- dump and quoting ----

TEST(ParserDumpTest, GoQuote) {
  EXPECT_EQ(GoQuote("plain"), "\"plain\"");
  EXPECT_EQ(GoQuote("a\"b\\c\n\t\x01\x7f"), "\"a\\\"b\\\\c\\n\\t\\x01\\x7f\"");
  EXPECT_EQ(GoQuote("\xff\xC3\xA9\xC2\xA0\xE2\x99\xA5"), "\"\\xff\xC3\xA9\\u00a0\xE2\x99\xA5\"");
  EXPECT_EQ(GoQuote("\xF0\x9F\x98\x80\xF3\xA0\x80\x81"), "\"\xF0\x9F\x98\x80\\U000e0001\"");
}

TEST(ParserDumpTest, HandBuiltTree) {
  Node root;
  Node run;
  run.value = "RUN";  // lower-cased when dumped, as BuildKit does
  run.flags = {"--a=1", "--b"};
  Node arg;
  arg.value = "x y";
  run.args.push_back(arg);
  root.children.push_back(run);
  EXPECT_EQ(Dump(root), "(run [\"--a=1\" \"--b\"] \"x y\")\n");
}

// ---- FormatSourceError ----

TEST(FormatSourceErrorTest, OneLine) {
  const std::string text = "FROM a\n    RUN <<EOF\n";
  Status st = FormatSourceError(Status::InvalidArgument("unterminated heredoc"), {2, 2},
                                "Dockerfile", text);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "Dockerfile:2: unterminated heredoc\n"
            " 2 |     RUN <<EOF\n"
            "   |     ^");
}

TEST(FormatSourceErrorTest, SeveralLinesAlignNumbers) {
  std::string text;
  for (int i = 1; i <= 12; ++i) text += i == 9 ? "\tRUN a \\\n" : "x" + std::to_string(i) + "\n";
  Status st = FormatSourceError(Status::InvalidArgument("bad"), {9, 11}, "df", text);
  EXPECT_EQ(st.message(),
            "df:9: bad\n"
            "  9 | \tRUN a \\\n"
            "    | \t^\n"
            " 10 | x10\n"
            " 11 | x11");
}

TEST(FormatSourceErrorTest, LongRangesAreCut) {
  std::string text;
  for (int i = 1; i <= 30; ++i) text += "l\r\n";
  Status st = FormatSourceError(Status::InvalidArgument("m"), {2, 25}, "f", text);
  EXPECT_EQ(st.message(),
            "f:2: m\n"
            "  2 | l\n"
            "    | ^\n"
            "  3 | l\n  4 | l\n  5 | l\n  6 | l\n  7 | l\n  8 | l\n  9 | l\n 10 | l\n 11 | l\n"
            "    | ... (14 more lines)");
}

TEST(FormatSourceErrorTest, NoLocationOrOutsideTheFile) {
  const Status err = Status::InvalidArgument("file with no instructions");
  EXPECT_EQ(FormatSourceError(err, {0, 0}, "Dockerfile", "").message(),
            "Dockerfile: file with no instructions");
  EXPECT_EQ(FormatSourceError(err, {7, 7}, "Dockerfile", "FROM a\n").message(),
            "Dockerfile:7: file with no instructions");
  EXPECT_TRUE(FormatSourceError(Status::Ok(), {1, 1}, "Dockerfile", "FROM a\n").ok());
  // An empty line shows no trailing blank; a BOM is not shown.
  EXPECT_EQ(FormatSourceError(err, {1, 2}, "D", "\xEF\xBB\xBFRUN\n\n").message(),
            "D:1: file with no instructions\n 1 | RUN\n   | ^\n 2 |");
}

TEST(FormatSourceErrorTest, WithParse) {
  const std::string text = "FROM a\nENV x\n";
  SourceRange where;
  Result<ParseResult> r = Parse(text, &where);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(FormatSourceError(r.status(), where, "Dockerfile", text).message(),
            "Dockerfile:2: ENV must have two arguments\n"
            " 2 | ENV x\n"
            "   | ^");
}

}  // namespace
}  // namespace kiln::dockerfile
