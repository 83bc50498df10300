// The Dockerfile parser: text -> AST, in BuildKit v0.10's dialect (syntax 1.4).
//
// Owns directives (`# syntax=`, `# escape=`), line continuations with the
// active escape character, comments and blank lines inside continuations
// (with the warning BuildKit gives), heredocs, JSON and shell forms, flags,
// case-insensitive keywords, CRLF, a UTF-8 BOM and the 64 KiB line limit.
// Every instruction node keeps its 1-based line range. Dump() prints the AST
// exactly as BuildKit's dumper does (the `result` files of the conformance
// data). The parser neither expands variables nor validates instruction
// arguments beyond what BuildKit's parser does; instructions/ does that.
//
// Called by the converter (frontend/dockerfile/convert.h) and `kiln debug
// parse`. Thread-safety: pure functions over their arguments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kiln::dockerfile {

// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<-'X' /dst`).
struct Heredoc {
  std::string name;         // the delimiter word, quotes removed
  int file_descriptor = 0;  // `3<<EOF` gives 3; 0 when absent
  bool expand = true;       // false when any part of the delimiter was quoted
  bool chomp = false;       // the `<<-` form; `content` is still stored unchomped
  std::string content;      // raw body lines, each with its newline
};

// One AST node. The root's `children` are the instructions. An instruction's
// `value` is its keyword lower-cased and `args` are its arguments in order
// (BuildKit's Next chain). An ONBUILD instruction has one argument whose
// `children` hold the single nested instruction.
struct Node {
  std::string value;
  std::vector<Node> args;
  std::vector<Node> children;
  bool json_form = false;                 // arguments were a JSON array
  std::string original;                   // the logical line, continuations joined
  std::vector<std::string> flags;         // "--from=x" as written, in order
  std::vector<Heredoc> heredocs;          // in order of appearance
  std::vector<std::string> prev_comment;  // comment lines right before it
  int start_line = 0;                     // 1-based, inclusive
  int end_line = 0;
};

struct Warning {
  std::string message;  // e.g. "Empty continuation line found in: RUN ..."
  int line = 0;         // 1-based; 0 when it has no single line
};

struct Directives {
  char escape = '\\';  // '\\' or '`'
  std::string syntax;  // the `# syntax=` value, empty when absent
};

struct ParseResult {
  Node root;  // start_line/end_line span the first..last instruction
  Directives directives;
  std::vector<Warning> warnings;
};

// Where a parse or instruction error points, for FormatSourceError().
struct SourceRange {
  int start_line = 0;  // 1-based; 0 when the error has no location
  int end_line = 0;
};

// Parses a whole Dockerfile. On failure the Status (kInvalidArgument) carries
// BuildKit's error text without location, and `*where` (when non-null)
// receives the lines it points at. An empty file or a file with only
// comments is an error ("file with no instructions"), as in BuildKit.
Result<ParseResult> Parse(std::string_view text, SourceRange* where = nullptr);

// BuildKit's AST dump: one line per instruction, `(keyword ["--flag"] "arg"
// ...)`, strings quoted as Go's strconv.Quote, ending with a newline.
std::string Dump(const Node& root);

// Go's strconv.Quote of `s` (used by Dump; exposed for tests and callers
// that print Dockerfile words the way BuildKit does).
std::string GoQuote(std::string_view s);

// BuildKit's ChompHeredocContent: removes the leading tabs of every line of a
// `<<-` heredoc body (Heredoc::content is stored unchomped).
std::string ChompHeredocContent(std::string_view content);

// A user-facing error for bad Dockerfile input:
//   "<file>:<line>: <message>" followed by the offending lines, numbered,
// and a caret line under the first of them. `text` is the whole Dockerfile.
// Lines outside the file are not shown. The code of `error` is kept.
Status FormatSourceError(const Status& error, const SourceRange& where, std::string_view filename,
                         std::string_view text);

}  // namespace kiln::dockerfile
