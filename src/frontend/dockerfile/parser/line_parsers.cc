// Argument parsers for single instructions: word splitting for ARG/ENV/LABEL,
// name=value pairs, and the JSON-array (exec) form.
#include <cmath>
#include <cstdlib>
#include <string>

#include "frontend/dockerfile/parser/go_text.h"
#include "frontend/dockerfile/parser/parser_internal.h"

namespace kiln::dockerfile::parser_internal {
namespace {

bool IsReWhitespace(char c) { return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' '; }

// A validating reader of one JSON value with the grammar of Go's
// encoding/json scanner, iterative so that deep nesting cannot exhaust the
// stack (Go stops at 10000 levels, and so do we).
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  JsonArray ReadArray(std::vector<std::string>* out) {
    SkipSpace();
    if (!Eat('[')) return JsonArray::kInvalid;
    stack_.push_back('[');
    SkipSpace();
    if (Eat(']')) return JsonArray::kStrings;  // []
    bool not_strings = false;
    for (;;) {
      // A value starts here; at depth 1 it is an element of the top array.
      SkipSpace();
      if (p_ >= s_.size()) return JsonArray::kInvalid;
      const char c = s_[p_];
      const bool top = stack_.size() == 1;
      if (c == '"') {
        std::string decoded;
        if (!ReadString(top ? &decoded : nullptr)) return JsonArray::kInvalid;
        if (top) out->push_back(std::move(decoded));
      } else {
        if (top) not_strings = true;
        if (c == '[' || c == '{') {
          if (stack_.size() >= kMaxDepth) return JsonArray::kInvalid;
          ++p_;
          stack_.push_back(c);
          SkipSpace();
          if (Eat(c == '[' ? ']' : '}')) {
            stack_.pop_back();
          } else if (c == '{') {
            if (!ReadKey()) return JsonArray::kInvalid;
            continue;
          } else {
            continue;
          }
        } else if (c == '-' || (c >= '0' && c <= '9')) {
          if (!ReadNumber()) return JsonArray::kInvalid;
        } else if (!ReadLiteral()) {
          return JsonArray::kInvalid;
        }
      }
      // A value ended: close containers until one continues with a comma.
      for (;;) {
        SkipSpace();
        if (p_ >= s_.size()) return JsonArray::kInvalid;
        const char open = stack_.back();
        if (Eat(',')) {
          if (open == '{' && !ReadKey()) return JsonArray::kInvalid;
          break;
        }
        if (!Eat(open == '[' ? ']' : '}')) return JsonArray::kInvalid;
        stack_.pop_back();
        if (stack_.empty()) {
          // The first value is complete; Go's Decoder ignores what follows.
          // A number too large for a float64 fails the decode as a whole.
          if (overflow_) return JsonArray::kInvalid;
          return not_strings ? JsonArray::kNotStrings : JsonArray::kStrings;
        }
      }
    }
  }

 private:
  static constexpr size_t kMaxDepth = 10000;

  void SkipSpace() {
    while (p_ < s_.size() &&
           (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) {
      ++p_;
    }
  }
  bool Eat(char c) {
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // `"key"` `:` inside an object.
  bool ReadKey() {
    SkipSpace();
    if (p_ >= s_.size() || s_[p_] != '"' || !ReadString(nullptr)) return false;
    SkipSpace();
    return Eat(':');
  }
  bool ReadLiteral() {
    for (std::string_view lit : {"true", "false", "null"}) {
      if (s_.substr(p_, lit.size()) == lit) {
        p_ += lit.size();
        return true;
      }
    }
    return false;
  }
  static bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }
  bool ReadNumber() {
    const size_t start = p_;
    Eat('-');
    if (Eat('0')) {
    } else if (p_ < s_.size() && s_[p_] >= '1' && s_[p_] <= '9') {
      while (p_ < s_.size() && IsDigitChar(s_[p_])) ++p_;
    } else {
      return false;
    }
    if (Eat('.')) {
      if (p_ >= s_.size() || !IsDigitChar(s_[p_])) return false;
      while (p_ < s_.size() && IsDigitChar(s_[p_])) ++p_;
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (!Eat('+')) Eat('-');
      if (p_ >= s_.size() || !IsDigitChar(s_[p_])) return false;
      while (p_ < s_.size() && IsDigitChar(s_[p_])) ++p_;
    }
    // Go decodes numbers into float64; one that overflows is an error.
    const std::string text(s_.substr(start, p_ - start));
    if (std::isinf(std::strtod(text.c_str(), nullptr))) overflow_ = true;
    return true;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // \uXXXX at s_[at]; -1 when malformed.
  long ReadU4(size_t at) const {
    if (at + 6 > s_.size() || s_[at] != '\\' || s_[at + 1] != 'u') return -1;
    long v = 0;
    for (size_t i = at + 2; i < at + 6; ++i) {
      const int h = Hex(s_[i]);
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    return v;
  }
  // A string literal at s_[p_] == '"'. When `out` is set it receives the
  // decoded value: Go replaces invalid UTF-8 and unpaired surrogates by
  // U+FFFD.
  bool ReadString(std::string* out) {
    ++p_;
    while (p_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (p_ + 1 >= s_.size()) return false;
        const char e = s_[p_ + 1];
        char plain = 0;
        switch (e) {
          case '"':
            plain = '"';
            break;
          case '\\':
            plain = '\\';
            break;
          case '/':
            plain = '/';
            break;
          case 'b':
            plain = '\b';
            break;
          case 'f':
            plain = '\f';
            break;
          case 'n':
            plain = '\n';
            break;
          case 'r':
            plain = '\r';
            break;
          case 't':
            plain = '\t';
            break;
          case 'u': {
            long r = ReadU4(p_);
            if (r < 0) return false;
            p_ += 6;
            if (r >= 0xD800 && r < 0xE000) {
              const long r2 = ReadU4(p_);
              if (r < 0xDC00 && r2 >= 0xDC00 && r2 < 0xE000) {
                p_ += 6;
                r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
              } else {
                r = kRuneError;
              }
            }
            if (out) AppendRune(*out, static_cast<char32_t>(r));
            continue;
          }
          default:
            return false;
        }
        if (out) out->push_back(plain);
        p_ += 2;
        continue;
      }
      if (c < 0x80) {
        if (out) out->push_back(static_cast<char>(c));
        ++p_;
        continue;
      }
      DecodedRune r = DecodeRune(s_.substr(p_));
      if (out) AppendRune(*out, r.rune);
      p_ += r.width;
    }
    return false;
  }

  std::string_view s_;
  size_t p_ = 0;
  std::vector<char> stack_;
  bool overflow_ = false;
};

}  // namespace

std::vector<std::string_view> SplitWhitespace(std::string_view s, int max_parts) {
  std::vector<std::string_view> parts;
  if (max_parts == 0) return parts;
  if (s.empty()) return {s};
  size_t beg = 0, end = 0, pos = 0;
  int matches = 0;
  while (pos < s.size()) {
    size_t i = pos;
    while (i < s.size() && !IsReWhitespace(s[i])) ++i;
    if (i == s.size()) break;
    size_t j = i;
    while (j < s.size() && IsReWhitespace(s[j])) ++j;
    if (max_parts > 0 &&
        (matches == max_parts || static_cast<int>(parts.size()) == max_parts - 1)) {
      break;
    }
    ++matches;
    end = i;
    if (j != 0) parts.push_back(s.substr(beg, end - beg));
    beg = j;
    pos = j;
  }
  if (end != s.size()) parts.push_back(s.substr(beg));
  return parts;
}

std::vector<std::string> ParseWords(std::string_view rest, char escape_char) {
  enum { kInSpaces, kInWord, kInQuote } phase = kInSpaces;
  const auto escape = static_cast<char32_t>(static_cast<unsigned char>(escape_char));
  std::vector<std::string> words;
  std::string word;
  char32_t quote = 0;
  bool blank_ok = false;
  char32_t ch = 0;
  size_t width = 0;
  for (size_t pos = 0; pos <= rest.size(); pos += width) {
    if (pos != rest.size()) {
      DecodedRune r = DecodeRune(rest.substr(pos));
      ch = r.rune;
      width = r.width;
    }
    if (phase == kInSpaces) {
      if (pos == rest.size()) break;
      if (IsSpace(ch)) continue;
      phase = kInWord;
    }
    if (pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (IsSpace(ch)) {
        phase = kInSpaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
      }
      if (ch == escape) {
        if (pos + width == rest.size()) continue;  // a trailing escape is dropped
        // Outside quotes the escape and the character after it are kept,
        // even when that character is a quote.
        AppendRune(word, ch);
        pos += width;
        DecodedRune r = DecodeRune(rest.substr(pos));
        ch = r.rune;
        width = r.width;
      }
      AppendRune(word, ch);
      continue;
    }
    // kInQuote
    if (ch == quote) phase = kInWord;
    // The escape is special except in single quotes.
    if (ch == escape && quote != '\'') {
      if (pos + width == rest.size()) {
        phase = kInWord;
        continue;
      }
      pos += width;
      AppendRune(word, ch);
      DecodedRune r = DecodeRune(rest.substr(pos));
      ch = r.rune;
      width = r.width;
    }
    AppendRune(word, ch);
  }
  return words;
}

Result<std::vector<std::string>> ParseNameVal(std::string_view rest, std::string_view key,
                                              char escape) {
  std::vector<std::string> words = ParseWords(rest, escape);
  std::vector<std::string> out;
  if (words.empty()) return out;
  // `KEY name value...` when the first word has no `=`.
  if (words[0].find('=') == std::string::npos) {
    std::vector<std::string_view> parts = SplitWhitespace(rest, 2);
    if (parts.size() < 2) {
      return Status::InvalidArgument(std::string(key) + " must have two arguments");
    }
    out.emplace_back(parts[0]);
    out.emplace_back(parts[1]);
    return out;
  }
  for (const std::string& word : words) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("Syntax error - can't find = in " + Quote(word) +
                                     ". Must be of the form: name=value");
    }
    out.push_back(word.substr(0, eq));
    out.push_back(word.substr(eq + 1));
  }
  return out;
}

JsonArray DecodeJsonArray(std::string_view text, std::vector<std::string>* out) {
  out->clear();
  text = TrimLeftSpace(text);
  if (text.empty() || text[0] != '[') return JsonArray::kInvalid;
  JsonArray result = JsonReader(text).ReadArray(out);
  if (result != JsonArray::kStrings) out->clear();
  return result;
}

}  // namespace kiln::dockerfile::parser_internal
