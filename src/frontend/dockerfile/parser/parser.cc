#include "frontend/dockerfile/parser/parser.h"

#include <algorithm>
#include <string>
#include <utility>

#include "frontend/dockerfile/parser/go_text.h"
#include "frontend/dockerfile/parser/parser_internal.h"

namespace kiln::dockerfile {
namespace {

using namespace parser_internal;

// BuildKit reads lines with Go's bufio.Scanner, whose tokens (a line and its
// newline) may hold 64 KiB: a longer line stops the scan.
constexpr size_t kMaxLineBytes = 65535;
// ONBUILD nests by recursion; BuildKit has no limit but its instruction
// layer rejects any nesting, so a bound costs nothing and keeps the stack
// (and Node's recursive destructor) safe on hostile input.
constexpr int kMaxOnbuildDepth = 256;
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
constexpr std::string_view kNotStringArray =
    "when using JSON array syntax, arrays must be comprised of strings only";

// Yields the lines of a Dockerfile with their line endings, as BuildKit's
// scanner does; stops (too_long() true) at the first line over the limit.
class LineScanner {
 public:
  explicit LineScanner(std::string_view text) : text_(text) {}

  bool Scan() {
    if (too_long_ || pos_ >= text_.size()) return false;
    const size_t nl = text_.find('\n', pos_);
    const size_t content_end = nl == std::string_view::npos ? text_.size() : nl;
    if (content_end - pos_ > kMaxLineBytes) {
      too_long_ = true;
      return false;
    }
    const size_t end = nl == std::string_view::npos ? text_.size() : nl + 1;
    token_ = text_.substr(pos_, end - pos_);
    pos_ = end;
    return true;
  }
  std::string_view token() const { return token_; }
  bool too_long() const { return too_long_; }

 private:
  std::string_view text_;
  std::string_view token_;
  size_t pos_ = 0;
  bool too_long_ = false;
};

std::string_view TrimNewline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool IsComment(std::string_view line) {
  line = TrimLeftSpace(line);
  return !line.empty() && line[0] == '#';
}

// Parser directives (`# escape=`` ` ``, `# syntax=...`), accepted only before
// the first line that is not one.
struct DirectiveState {
  char escape = '\\';
  std::string syntax;
  bool done = false;
  bool seen_escape = false;
  bool seen_syntax = false;

  static bool IsReSpace(char c) {  // RE2's \s
    return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ';
  }
  static bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

  // ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
  static bool Match(std::string_view line, std::string_view* name, std::string_view* value) {
    if (line.empty() || line[0] != '#') return false;
    size_t p = 1;
    while (p < line.size() && IsReSpace(line[p])) ++p;
    if (p >= line.size() || !IsAlpha(line[p])) return false;
    const size_t name_start = p;
    while (p < line.size() && (IsAlpha(line[p]) || (line[p] >= '0' && line[p] <= '9'))) ++p;
    *name = line.substr(name_start, p - name_start);
    while (p < line.size() && IsReSpace(line[p])) ++p;
    if (p >= line.size() || line[p] != '=') return false;
    std::string_view rest = line.substr(p + 1);
    size_t lead = 0;
    while (lead < rest.size() && IsReSpace(rest[lead])) ++lead;
    if (rest.empty()) return false;
    if (lead == rest.size()) {
      // Only blanks: the lazy group still needs one character, the last.
      *value = rest.substr(lead - 1, 1);
      return true;
    }
    size_t end = rest.size();
    while (end > lead && IsReSpace(rest[end - 1])) --end;
    *value = rest.substr(lead, end - lead);
    return true;
  }

  Status Possible(std::string_view line) {
    if (done) return Status::Ok();
    std::string_view name, value;
    if (!Match(line, &name, &value)) {
      done = true;
      return Status::Ok();
    }
    std::string key(name);
    for (char& c : key) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    if (key != "escape" && key != "syntax") {
      done = true;
      return Status::Ok();
    }
    bool& seen = key == "escape" ? seen_escape : seen_syntax;
    if (seen) return Status::InvalidArgument("only one " + key + " parser directive can be used");
    seen = true;
    if (key == "syntax") {
      syntax = std::string(value);
      return Status::Ok();
    }
    if (value != "`" && value != "\\") {
      return Status::InvalidArgument("invalid escape token '" + std::string(value) +
                                     "' does not match ` or \\");
    }
    escape = value[0];
    return Status::Ok();
  }
};

// Removes a line-continuation escape: the escape token followed only by
// blanks at the end of the line, unless it is itself escaped (`\\` at the
// end is a literal backslash). `*end_of_line` is false when it was there.
std::string_view TrimContinuation(std::string_view line, char escape, bool* end_of_line) {
  size_t end = line.size();
  while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t')) --end;
  if (end > 0 && line[end - 1] == escape && (end == 1 || line[end - 2] != escape)) {
    *end_of_line = false;
    return line.substr(0, end - 1);
  }
  *end_of_line = true;
  return line;
}

// Leading `--flag` words of an instruction's arguments. BuildKit reads these
// byte by byte: `\` escapes, quotes group, a lone `--` ends the flags, and
// each byte >= 0x80 is taken as the Latin-1 rune of that value.
std::string_view ExtractBuilderFlags(std::string_view line, std::vector<std::string>* flags) {
  enum { kInSpaces, kInWord, kInQuote } phase = kInSpaces;
  std::string word;
  unsigned char quote = 0;
  bool blank_ok = false;
  unsigned char ch = 0;
  for (size_t pos = 0; pos <= line.size(); ++pos) {
    if (pos != line.size()) ch = static_cast<unsigned char>(line[pos]);
    if (phase == kInSpaces) {
      if (pos == line.size()) break;
      if (IsSpaceByte(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') return line.substr(pos);
      phase = kInWord;
    }
    if (pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) flags->push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (IsSpaceByte(ch)) {
        phase = kInSpaces;
        if (word == "--") return line.substr(pos);
        if (blank_ok || !word.empty()) flags->push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
        continue;
      }
      if (ch == '\\') {
        if (pos + 1 == line.size()) continue;  // a trailing `\` is dropped
        ch = static_cast<unsigned char>(line[++pos]);
      }
      AppendRune(word, ch);
      continue;
    }
    // kInQuote
    if (ch == quote) {
      phase = kInWord;
      continue;
    }
    if (ch == '\\') {
      if (pos + 1 == line.size()) {
        phase = kInWord;
        continue;
      }
      ch = static_cast<unsigned char>(line[++pos]);
    }
    AppendRune(word, ch);
  }
  return {};
}

Node Leaf(std::string_view value) {
  Node n;
  n.value = std::string(value);
  return n;
}

void Leaves(const std::vector<std::string>& values, std::vector<Node>* out) {
  out->reserve(values.size());
  for (const std::string& v : values) out->push_back(Leaf(v));
}

// The argument parsers BuildKit dispatches to by keyword. Each fills
// `node->args` (and `json_form`) from the text after the keyword and flags.

void ParseStringsWhitespaceDelimited(std::string_view rest, Node* node) {
  if (rest.empty()) return;
  for (std::string_view part : SplitWhitespace(rest, -1)) node->args.push_back(Leaf(part));
}

Status ParseMaybeJson(std::string_view rest, Node* node, bool to_list) {
  if (rest.empty() && !to_list) return Status::Ok();
  std::vector<std::string> values;
  switch (DecodeJsonArray(rest, &values)) {
    case JsonArray::kStrings:
      Leaves(values, &node->args);
      node->json_form = true;
      return Status::Ok();
    case JsonArray::kNotStrings:
      return Status::InvalidArgument(std::string(kNotStringArray));
    case JsonArray::kInvalid:
      break;
  }
  if (to_list) {
    ParseStringsWhitespaceDelimited(rest, node);
  } else {
    node->args.push_back(Leaf(rest));
  }
  return Status::Ok();
}

Status ParseHealthConfig(std::string_view rest, Node* node) {
  size_t sep = 0;
  while (sep < rest.size() && !IsSpaceByte(static_cast<unsigned char>(rest[sep]))) ++sep;
  size_t next = sep;
  while (next < rest.size() && IsSpaceByte(static_cast<unsigned char>(rest[next]))) ++next;
  if (sep == 0) return Status::Ok();
  node->args.push_back(Leaf(rest.substr(0, sep)));
  return ParseMaybeJson(rest.substr(next), node, /*to_list=*/false);
}

Result<Node> NewNodeFromLine(std::string_view line, const DirectiveState& d,
                             const std::vector<std::string>& comments, int depth);

Status ParseArgs(std::string_view keyword, std::string_view rest, const DirectiveState& d,
                 int depth, Node* node) {
  if (keyword == "add" || keyword == "copy" || keyword == "volume") {
    return ParseMaybeJson(rest, node, /*to_list=*/true);
  }
  if (keyword == "cmd" || keyword == "entrypoint" || keyword == "run" || keyword == "shell") {
    return ParseMaybeJson(rest, node, /*to_list=*/false);
  }
  if (keyword == "from" || keyword == "expose") {
    ParseStringsWhitespaceDelimited(rest, node);
    return Status::Ok();
  }
  if (keyword == "arg") {
    Leaves(ParseWords(rest, d.escape), &node->args);
    return Status::Ok();
  }
  if (keyword == "env" || keyword == "label") {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> values,
                          ParseNameVal(rest, keyword == "env" ? "ENV" : "LABEL", d.escape));
    Leaves(values, &node->args);
    return Status::Ok();
  }
  if (keyword == "maintainer" || keyword == "stopsignal" || keyword == "user" ||
      keyword == "workdir") {
    if (!rest.empty()) node->args.push_back(Leaf(rest));
    return Status::Ok();
  }
  if (keyword == "healthcheck") return ParseHealthConfig(rest, node);
  if (keyword == "onbuild") {
    if (rest.empty()) return Status::Ok();
    if (depth >= kMaxOnbuildDepth) {
      return Status::InvalidArgument("ONBUILD nested more than " +
                                     std::to_string(kMaxOnbuildDepth) + " levels deep");
    }
    KILN_ASSIGN_OR_RETURN(Node child, NewNodeFromLine(rest, d, {}, depth + 1));
    Node holder;
    holder.children.push_back(std::move(child));
    node->args.push_back(std::move(holder));
    return Status::Ok();
  }
  // An unknown instruction keeps its keyword and drops its arguments.
  node->args.push_back(Leaf(""));
  return Status::Ok();
}

Result<Node> NewNodeFromLine(std::string_view line, const DirectiveState& d,
                             const std::vector<std::string>& comments, int depth) {
  std::vector<std::string_view> cmdline = SplitWhitespace(TrimSpace(line), 2);
  Node node;
  std::string_view rest;
  if (cmdline.size() == 2) rest = ExtractBuilderFlags(cmdline[1], &node.flags);
  rest = TrimSpace(rest);
  node.value = LowerString(cmdline[0]);
  node.original = std::string(line);
  node.prev_comment = comments;
  KILN_RETURN_IF_ERROR(ParseArgs(node.value, rest, d, depth, &node));
  return node;
}

// RUN, COPY and ADD in shell form read heredocs, also under ONBUILD.
bool CanContainHeredoc(const Node& node) {
  const Node* n = &node;
  if (n->value == "onbuild" && !n->args.empty() && !n->args[0].children.empty()) {
    n = &n->args[0].children[0];
  }
  if (n->value != "run" && n->value != "copy" && n->value != "add") return false;
  return !n->json_form;
}

std::string DumpNode(const Node& node) {
  std::string s = LowerString(node.value);
  if (!node.flags.empty()) {
    s += " [";
    for (size_t i = 0; i < node.flags.size(); ++i) {
      if (i > 0) s += ' ';
      s += Quote(node.flags[i]);
    }
    s += ']';
  }
  for (const Node& child : node.children) {
    s += '(';
    s += DumpNode(child);
    s += ")\n";
  }
  for (const Node& arg : node.args) {
    s += ' ';
    s += arg.children.empty() ? Quote(arg.value) : DumpNode(arg);
  }
  std::string_view trimmed = TrimSpace(s);
  if (trimmed.size() == s.size()) return s;
  return std::string(trimmed);
}

}  // namespace

Result<ParseResult> Parse(std::string_view text, SourceRange* where) {
  if (where) *where = SourceRange{};
  auto fail = [where](Status st, int start, int end) {
    if (where) *where = SourceRange{start, std::max(start, end)};
    return st;
  };

  ParseResult result;
  Node& root = result.root;
  DirectiveState d;
  LineScanner scanner(text);
  int current_line = 0;
  bool have_child = false;
  std::vector<std::string> comments;
  std::string line;

  while (scanner.Scan()) {
    std::string_view bytes = scanner.token();
    if (current_line == 0 && bytes.substr(0, 3) == kUtf8Bom) bytes.remove_prefix(3);
    if (IsComment(bytes)) {
      // BuildKit drops the first byte (the `#` unless the line is indented).
      std::string_view comment = TrimSpace(bytes.substr(1));
      if (comment.empty()) {
        comments.clear();
      } else {
        comments.emplace_back(comment);
      }
    }
    const std::string_view token = TrimLeftSpace(TrimNewline(bytes));
    // BuildKit locates a directive error one line early (at 0 for line 1);
    // kiln points at the directive itself.
    if (Status st = d.Possible(token); !st.ok()) return fail(st, current_line + 1, 0);
    ++current_line;

    const int start_line = current_line;
    bool end_of_line = true;
    line.assign(
        TrimContinuation(IsComment(token) ? std::string_view() : token, d.escape, &end_of_line));
    if (end_of_line && line.empty()) continue;

    // Continuation lines keep their indentation; comments and blank lines
    // among them are skipped (blank ones with a warning).
    bool empty_continuation = false;
    while (!end_of_line && scanner.Scan()) {
      const std::string_view raw = scanner.token();
      ++current_line;
      if (IsComment(raw)) continue;
      const std::string_view tok = TrimNewline(raw);
      if (TrimLeftSpace(tok).empty()) {
        empty_continuation = true;
        continue;
      }
      line += TrimContinuation(tok, d.escape, &end_of_line);
    }
    if (empty_continuation) {
      result.warnings.push_back({"Empty continuation line found in: " + line, current_line});
    }

    Result<Node> parsed = NewNodeFromLine(line, d, comments, 0);
    if (!parsed.ok()) return fail(parsed.status(), start_line, current_line);
    Node child = std::move(parsed).value();

    if (CanContainHeredoc(child) && line.find("<<") != std::string::npos) {
      Result<std::vector<Heredoc>> docs = HeredocsFromLine(line);
      if (!docs.ok()) return fail(docs.status(), start_line, current_line);
      for (Heredoc& doc : *docs) {
        bool terminated = false;
        while (scanner.Scan()) {
          const std::string_view raw = scanner.token();
          ++current_line;
          std::string_view candidate = TrimNewline(raw);
          if (doc.chomp) {
            while (!candidate.empty() && candidate[0] == '\t') candidate.remove_prefix(1);
          }
          if (candidate == doc.name) {
            terminated = true;
            break;
          }
          doc.content += raw;
        }
        if (!terminated) {
          return fail(Status::InvalidArgument("unterminated heredoc"), start_line, current_line);
        }
        child.heredocs.push_back(std::move(doc));
      }
    }

    child.start_line = start_line;
    child.end_line = current_line;
    if (!have_child) root.start_line = start_line;
    have_child = true;
    root.end_line = current_line;
    root.children.push_back(std::move(child));
    comments.clear();
  }

  if (!have_child) {
    return fail(Status::InvalidArgument("file with no instructions"), current_line, 0);
  }
  if (scanner.too_long()) {
    // As in BuildKit, located at the last line read, the one before the long one.
    return fail(Status::InvalidArgument("dockerfile line greater than max allowed size of " +
                                        std::to_string(kMaxLineBytes)),
                current_line, 0);
  }
  result.directives.escape = d.escape;
  result.directives.syntax = d.syntax;
  return result;
}

std::string Dump(const Node& root) { return DumpNode(root) + "\n"; }

std::string GoQuote(std::string_view s) { return Quote(s); }

Status FormatSourceError(const Status& error, const SourceRange& where, std::string_view filename,
                         std::string_view text) {
  if (error.ok()) return error;
  std::string out(filename);
  if (where.start_line <= 0) {
    out += ": " + error.message();
    return Status(error.code(), std::move(out), error.exit_code());
  }
  out += ":" + std::to_string(where.start_line) + ": " + error.message();

  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? text.size() : nl;
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  const int first = where.start_line;
  const int last = std::min(std::max(where.end_line, first), static_cast<int>(lines.size()));
  if (first > last) return Status(error.code(), std::move(out), error.exit_code());

  constexpr int kMaxShownLines = 10;
  const int shown_last = std::min(last, first + kMaxShownLines - 1);
  const size_t width = std::to_string(shown_last).size();
  const std::string gutter = " " + std::string(width, ' ') + " |";
  for (int n = first; n <= shown_last; ++n) {
    std::string_view text_line = lines[n - 1];
    if (n == 1 && text_line.substr(0, 3) == kUtf8Bom) text_line.remove_prefix(3);
    while (!text_line.empty() && text_line.back() == '\r') text_line.remove_suffix(1);
    const std::string number = std::to_string(n);
    out += "\n " + std::string(width - number.size(), ' ') + number + " |";
    if (!text_line.empty()) out += " " + std::string(text_line);
    if (n == first) {
      // The caret sits under the first non-blank character, reusing the
      // line's own blanks so that tabs line up.
      size_t indent = 0;
      while (indent < text_line.size() && (text_line[indent] == ' ' || text_line[indent] == '\t')) {
        ++indent;
      }
      out += "\n" + gutter + " " + std::string(text_line.substr(0, indent)) + "^";
    }
  }
  if (shown_last < last) {
    out += "\n" + gutter + " ... (" + std::to_string(last - shown_last) + " more lines)";
  }
  return Status(error.code(), std::move(out), error.exit_code());
}

}  // namespace kiln::dockerfile
