// libFuzzer entry point for the Dockerfile parser: Parse, Dump and
// FormatSourceError on arbitrary bytes, plus the parser's word-level helpers.
// Besides crashes and sanitizer findings it checks the parser's promises:
// line ranges are 1-based, ordered and inside the file, a dump ends with a
// newline, parsing is deterministic, and an error's location is in the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "frontend/dockerfile/parser/parser.h"
#include "frontend/dockerfile/parser/parser_internal.h"
#include "util/status.h"

namespace df = kiln::dockerfile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  int lines = 0;
  for (char c : text) lines += c == '\n';
  if (!text.empty() && text.back() != '\n') ++lines;

  df::SourceRange where;
  kiln::Result<df::ParseResult> r = df::Parse(text, &where);
  if (r.ok()) {
    const df::Node& root = r->root;
    KILN_CHECK(!root.children.empty(), "an empty AST was accepted");
    KILN_CHECK(root.start_line == root.children.front().start_line &&
                   root.end_line == root.children.back().end_line,
               "root line range");
    int previous_end = 0;
    for (const df::Node& n : root.children) {
      KILN_CHECK(n.start_line > previous_end && n.start_line <= n.end_line && n.end_line <= lines,
                 "instruction line range");
      previous_end = n.end_line;
    }
    const std::string dump = df::Dump(root);
    KILN_CHECK(!dump.empty() && dump.back() == '\n', "dump must end with a newline");
    kiln::Result<df::ParseResult> again = df::Parse(text);
    KILN_CHECK(again.ok() && df::Dump(again->root) == dump, "parsing is not deterministic");
    for (const df::Node& n : root.children) {
      for (const df::Heredoc& h : n.heredocs) (void)df::ChompHeredocContent(h.content);
    }
  } else {
    KILN_CHECK(r.status().code() == kiln::StatusCode::kInvalidArgument, "error code");
    KILN_CHECK(where.start_line >= 0 && where.start_line <= lines + 1 &&
                   where.end_line >= where.start_line,
               "error location");
    kiln::Status formatted = df::FormatSourceError(r.status(), where, "Dockerfile", text);
    KILN_CHECK(!formatted.ok() && formatted.code() == r.status().code(), "formatted error");
  }

  // The word-level helpers on the first line of the input.
  const std::string_view first = text.substr(0, text.find('\n'));
  (void)df::GoQuote(first);
  (void)df::parser_internal::ParseWords(first, '\\');
  (void)df::parser_internal::ParseWords(first, '`');
  (void)df::parser_internal::ParseNameVal(first, "ENV", '\\');
  (void)df::parser_internal::HeredocsFromLine(first);
  (void)df::parser_internal::ParseHeredocWord(first);
  std::vector<std::string> values;
  (void)df::parser_internal::DecodeJsonArray(first, &values);
  return 0;
}
