// Heredoc detection: which words of an instruction line introduce a heredoc,
// and the delimiter each one names.
//
// BuildKit runs its shell lexer over the line and over each candidate word.
// The lexer here is a private, minimal one with exactly those semantics: no
// variables are ever set, unset ones are kept as written ("$X", "${X:-w}"),
// the escape character is always `\`, and input is read rune by rune as Go's
// text/scanner does (a leading BOM is skipped, invalid bytes read as U+FFFD).
// It is deliberately not shell/lex.h: that lexer expands variables for
// instructions and accepts forms BuildKit v0.10.6 rejects here.
#include <climits>
#include <string>

#include "frontend/dockerfile/parser/go_text.h"
#include "frontend/dockerfile/parser/parser.h"
#include "frontend/dockerfile/parser/parser_internal.h"

namespace kiln::dockerfile {
namespace parser_internal {
namespace {

constexpr char32_t kEof = static_cast<char32_t>(-1);

// Builds words the way BuildKit's lexer does: unquoted, unescaped whitespace
// ends a word; quoted text and escaped characters never do.
class WordsBuilder {
 public:
  void AddChar(char32_t ch) {
    if (IsSpace(ch)) {
      if (in_word_ && !word_.empty()) {
        words_.push_back(std::move(word_));
        word_.clear();
        in_word_ = false;
      }
    } else {
      AddRawChar(ch);
    }
  }
  void AddRawChar(char32_t ch) {
    AppendRune(word_, ch);
    in_word_ = true;
  }
  void AddString(std::string_view s) {
    while (!s.empty()) {
      DecodedRune r = DecodeRune(s);
      AddChar(r.rune);
      s.remove_prefix(r.width);
    }
  }
  void AddRawString(std::string_view s) {
    word_ += s;
    in_word_ = true;
  }
  std::vector<std::string> Finish() {
    if (!word_.empty()) words_.push_back(std::move(word_));
    return std::move(words_);
  }

 private:
  std::string word_;
  std::vector<std::string> words_;
  bool in_word_ = false;
};

class HeredocLexer {
 public:
  HeredocLexer(std::string_view src, bool raw_quotes, bool raw_escapes)
      : src_(src), raw_quotes_(raw_quotes), raw_escapes_(raw_escapes) {
    if (src_.substr(0, 3) == "\xEF\xBB\xBF") src_.remove_prefix(3);  // text/scanner skips a BOM
  }

  // Reads up to `stop` (consumed) or the end of input when stop is kEof.
  // The error text is the bare reason; the caller prefixes the source.
  Status ProcessStopOn(char32_t stop, std::string* result, std::vector<std::string>* words) {
    WordsBuilder builder;
    while (Peek() != kEof) {
      char32_t ch = Peek();
      if (stop != kEof && ch == stop) {
        Next();
        if (words) *words = builder.Finish();
        return Status::Ok();
      }
      if (ch == '$' || ch == '\'' || ch == '"') {
        std::string tmp;
        Status st = ch == '$' ? ProcessDollar(&tmp)
                              : (ch == '\'' ? ProcessSingleQuote(&tmp) : ProcessDoubleQuote(&tmp));
        if (!st.ok()) return st;
        *result += tmp;
        if (ch == '$') {
          builder.AddString(tmp);
        } else {
          builder.AddRawString(tmp);
        }
        continue;
      }
      ch = Next();
      if (ch == '\\') {
        if (raw_escapes_) {
          builder.AddRawChar(ch);
          AppendRune(*result, ch);
        }
        ch = Next();  // the escaped character; a trailing escape is dropped
        if (ch == kEof) break;
        builder.AddRawChar(ch);
      } else {
        builder.AddChar(ch);
      }
      AppendRune(*result, ch);
    }
    if (stop != kEof) {
      std::string msg = "unexpected end of statement while looking for matching ";
      AppendRune(msg, stop);
      return Status::InvalidArgument(std::move(msg));
    }
    if (words) *words = builder.Finish();
    return Status::Ok();
  }

 private:
  char32_t Peek() {
    if (pos_ >= src_.size()) return kEof;
    return DecodeRune(src_.substr(pos_)).rune;
  }
  char32_t Next() {
    if (pos_ >= src_.size()) return kEof;
    DecodedRune r = DecodeRune(src_.substr(pos_));
    pos_ += r.width;
    return r.rune;
  }

  Status ProcessSingleQuote(std::string* out) {
    char32_t ch = Next();  // the opening quote
    if (raw_quotes_) AppendRune(*out, ch);
    for (;;) {
      ch = Next();
      if (ch == kEof) {
        return Status::InvalidArgument(
            "unexpected end of statement while looking for matching single-quote");
      }
      if (ch == '\'') {
        if (raw_quotes_) AppendRune(*out, ch);
        return Status::Ok();
      }
      AppendRune(*out, ch);
    }
  }

  Status ProcessDoubleQuote(std::string* out) {
    char32_t ch = Next();  // the opening quote
    if (raw_quotes_) AppendRune(*out, ch);
    for (;;) {
      const char32_t peek = Peek();
      if (peek == kEof) {
        return Status::InvalidArgument(
            "unexpected end of statement while looking for matching double-quote");
      }
      if (peek == '"') {
        ch = Next();
        if (raw_quotes_) AppendRune(*out, ch);
        return Status::Ok();
      }
      if (peek == '$') {
        std::string value;
        KILN_RETURN_IF_ERROR(ProcessDollar(&value));
        *out += value;
        continue;
      }
      ch = Next();
      if (ch == '\\') {
        if (raw_escapes_) AppendRune(*out, ch);
        const char32_t next = Peek();
        if (next == kEof) continue;  // reported as an unterminated quote above
        // Only these can be escaped inside double quotes; before anything
        // else the escape stays (and is written once more: BuildKit's lexer
        // does exactly this in raw-escape mode).
        if (next == '"' || next == '$' || next == '\\') ch = Next();
      }
      AppendRune(*out, ch);
    }
  }

  // `$` forms. No variable is ever set and unset ones are kept as written.
  Status ProcessDollar(std::string* out) {
    Next();  // '$'
    if (Peek() != '{') {
      std::string name = ProcessName();
      *out = "$" + name;
      return Status::Ok();
    }
    Next();  // '{'
    const char32_t first = Peek();
    if (first == kEof) return Status::InvalidArgument("syntax error: missing '}'");
    if (first == '{' || first == '}' || first == ':') {
      return Status::InvalidArgument("syntax error: bad substitution");
    }
    std::string name = ProcessName();
    const char32_t ch = Next();
    if (ch == '}') {
      *out = "${" + name + "}";
      return Status::Ok();
    }
    if (ch == '?' || ch == ':') {
      char32_t modifier = 0;
      if (ch == ':') modifier = Next();
      std::string word;
      Status st = ProcessStopOn('}', &word, nullptr);
      if (!st.ok()) {
        if (Peek() == kEof) return Status::InvalidArgument("syntax error: missing '}'");
        return st;
      }
      if (ch == '?') {
        *out = "${" + name + "?" + word + "}";
        return Status::Ok();
      }
      if (modifier != '+' && modifier != '-' && modifier != '?') {
        std::string msg = "unsupported modifier (";
        AppendRune(msg, modifier);
        return Status::InvalidArgument(msg + ") in substitution");
      }
      *out = "${" + name + ":";
      AppendRune(*out, modifier);
      *out += word + "}";
      return Status::Ok();
    }
    return Status::InvalidArgument("missing ':' in substitution");
  }

  // A variable name: letters, digits and `_`; a run of digits or one special
  // parameter character when it starts with one.
  std::string ProcessName() {
    std::string name;
    while (Peek() != kEof) {
      char32_t ch = Peek();
      if (name.empty() && IsDigit(ch)) {
        while (Peek() != kEof && IsDigit(Peek())) AppendRune(name, Next());
        return name;
      }
      if (name.empty() && (ch == '@' || ch == '*' || ch == '#' || ch == '?' || ch == '-' ||
                           ch == '$' || ch == '!' || ch == '0')) {
        AppendRune(name, Next());
        return name;
      }
      if (!IsLetter(ch) && !IsDigit(ch) && ch != '_') break;
      AppendRune(name, Next());
    }
    return name;
  }

  std::string_view src_;
  size_t pos_ = 0;
  bool raw_quotes_;
  bool raw_escapes_;
};

size_t CountQuotes(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (c == '\'' || c == '"');
  return n;
}

}  // namespace

Result<std::vector<std::string>> HeredocLexWords(std::string_view src, bool raw_quotes,
                                                 bool raw_escapes) {
  HeredocLexer lexer(src, raw_quotes, raw_escapes);
  std::string result;
  std::vector<std::string> words;
  Status st = lexer.ProcessStopOn(kEof, &result, &words);
  if (!st.ok()) return st.Annotate("failed to process " + Quote(src));
  return words;
}

Result<std::optional<Heredoc>> ParseHeredocWord(std::string_view word) {
  // ^(\d*)<<(-?)([^<]*)$
  size_t pos = 0;
  while (pos < word.size() && word[pos] >= '0' && word[pos] <= '9') ++pos;
  const std::string_view digits = word.substr(0, pos);
  if (word.substr(pos, 2) != "<<") return std::optional<Heredoc>();
  pos += 2;
  const bool chomp = pos < word.size() && word[pos] == '-';
  if (chomp) ++pos;
  const std::string_view rest = word.substr(pos);
  if (rest.find('<') != std::string_view::npos || rest.empty()) return std::optional<Heredoc>();

  // Lex the delimiter with and without quote removal: if the counts of quote
  // characters differ, part of it was quoted and the body is not expanded.
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> words, HeredocLexWords(rest, false, false));
  if (words.size() != 1) return std::optional<Heredoc>();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> raw, HeredocLexWords(rest, true, false));
  if (raw.size() != words.size()) {
    return Status::InvalidArgument("internal lexing of heredoc produced inconsistent results: " +
                                   std::string(rest));
  }

  Heredoc doc;
  doc.name = words[0];
  doc.chomp = chomp;
  doc.expand = CountQuotes(words[0]) == CountQuotes(raw[0]);
  // Go's strconv.ParseUint: empty gives 0; an overflowing number saturates
  // (BuildKit ignores the error). Ours saturates at INT_MAX.
  long long fd = 0;
  for (char c : digits) {
    fd = fd * 10 + (c - '0');
    if (fd > INT_MAX) {
      fd = INT_MAX;
      break;
    }
  }
  doc.file_descriptor = static_cast<int>(fd);
  return std::optional<Heredoc>(std::move(doc));
}

Result<std::vector<Heredoc>> HeredocsFromLine(std::string_view line) {
  std::vector<Heredoc> docs;
  // A line that cannot be split (an unterminated quote) has no heredocs.
  Result<std::vector<std::string>> words = HeredocLexWords(line, true, true);
  if (!words.ok()) return docs;
  for (const std::string& word : *words) {
    KILN_ASSIGN_OR_RETURN(std::optional<Heredoc> doc, ParseHeredocWord(word));
    if (doc) docs.push_back(std::move(*doc));
  }
  return docs;
}

}  // namespace parser_internal

std::string ChompHeredocContent(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '\t') continue;
    line_start = c == '\n';
    out.push_back(c);
  }
  return out;
}

}  // namespace kiln::dockerfile
