// The parser's building blocks, exposed for its unit tests and for the
// conformance driver (tests/conformance/dockerfile_conformance.cc), which
// checks them against BuildKit's own helper-level cases (heredoc-cases.json:
// ParseHeredoc, heredocsFromLine, parseWords, parseNameVal,
// ChompHeredocContent). Nothing outside the parser's folder, its tests and
// that driver should include this header; use parser.h.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/dockerfile/parser/parser.h"
#include "util/status.h"

namespace kiln::dockerfile::parser_internal {

// BuildKit's parseWords: splits ARG/ENV/LABEL arguments into words on
// (Unicode) whitespace, keeping quotes and escapes as written; `escape` is the
// Dockerfile's escape token. Invalid UTF-8 bytes become U+FFFD.
std::vector<std::string> ParseWords(std::string_view rest, char escape);

// BuildKit's parseNameVal for ENV and LABEL (`key` names the instruction in
// errors): the flattened name, value, name, value... list. Both the old form
// (`ENV name value words`) and the new one (`ENV a=1 b="2 3"`) are handled.
// Errors (kInvalidArgument): "ENV must have two arguments", "Syntax error -
// can't find = in \"word\". Must be of the form: name=value".
Result<std::vector<std::string>> ParseNameVal(std::string_view rest, std::string_view key,
                                              char escape);

// BuildKit's ParseHeredoc: whether one word (`<<EOF`, `3<<-'X'`) introduces a
// heredoc. nullopt when it does not; an error when the delimiter has an
// unterminated quote ("failed to process \"'EOF\": unexpected end of
// statement while looking for matching single-quote").
Result<std::optional<Heredoc>> ParseHeredocWord(std::string_view word);

// BuildKit's heredocsFromLine: the heredocs a logical instruction line
// introduces, in order (content empty). A line whose words cannot be split
// (an unterminated quote) has none.
Result<std::vector<Heredoc>> HeredocsFromLine(std::string_view line);

// The word splitter BuildKit's heredoc helpers use: its shell lexer with no
// variables, unset variables left as written and the default escape `\`.
// `raw_quotes`/`raw_escapes` keep quote/escape characters in the words.
// Errors carry BuildKit's text: "failed to process \"<src>\": <reason>".
Result<std::vector<std::string>> HeredocLexWords(std::string_view src, bool raw_quotes,
                                                 bool raw_escapes);

// The outcome of reading an instruction's JSON-array form.
enum class JsonArray {
  kStrings,     // a JSON array of strings: the exec form
  kNotStrings,  // valid JSON, but an element is not a string: an error
  kInvalid,     // not JSON (or not an array): the shell form
};
// Decodes the first JSON value of `text` as Go's json.Decoder does into a
// []interface{} (trailing text after the array is ignored), after skipping
// leading Unicode whitespace. `*out` receives the strings for kStrings.
JsonArray DecodeJsonArray(std::string_view text, std::vector<std::string>* out);

// Splits `s` on runs of [\t\v\f\r ] (BuildKit's reWhitespace); at most
// `max_parts` parts when max_parts > 0, as Go's Regexp.Split(s, n).
std::vector<std::string_view> SplitWhitespace(std::string_view s, int max_parts);

}  // namespace kiln::dockerfile::parser_internal
