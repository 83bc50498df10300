#include "frontend/dockerfile/shell/lex.h"

#include <locale.h>
#include <wctype.h>

#include "frontend/dockerfile/shell/unicode_tables.h"
#include "util/json.h"

namespace kiln::dockerfile {
namespace {

// Peek() and Next() return this at the end of the word; outside Unicode.
constexpr char32_t kEof = 0xFFFFFFFF;
// What an invalid UTF-8 byte decodes to, as in Go.
constexpr char32_t kRuneError = 0xFFFD;

// Decodes the rune at s[i]; *width receives the bytes it spans (1 for an
// invalid byte, which decodes to U+FFFD as Go's decoders do).
char32_t DecodeRune(std::string_view s, size_t i, size_t* width) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *width = 1;
    return b0;
  }
  const size_t n = util::Utf8SequenceLength(s, i);
  if (n == 0) {
    *width = 1;
    return kRuneError;
  }
  *width = n;
  char32_t c = b0 & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return c;
}

void AppendRune(std::string* out, char32_t c) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// `s` quoted as Go's %q verb (strconv.Quote) quotes it, for error messages.
std::string GoQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    size_t width = 0;
    const char32_t c = DecodeRune(s, i, &width);
    if (c == kRuneError && width == 1) {
      const auto b = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (unicode::IsPrint(c)) {
      out.append(s.substr(i, width));
    } else {
      switch (c) {
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default: {
          int digits = 0;
          if (c < ' ' || c == 0x7F) {
            out += "\\x";
            digits = 2;
          } else if (c < 0x10000) {
            out += "\\u";
            digits = 4;
          } else {
            out += "\\U";
            digits = 8;
          }
          for (int d = digits - 1; d >= 0; --d) out.push_back(kHex[(c >> (4 * d)) & 0xF]);
        }
      }
    }
    i += width;
  }
  out.push_back('"');
  return out;
}

// Upper-cases a rune with Unicode's simple case mapping (Go's
// unicode.ToUpper), using glibc's built-in C.UTF-8 tables; ASCII only if that
// locale is unavailable.
char32_t ToUpper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 0x20 : c;
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  if (utf8 == static_cast<locale_t>(0)) return c;
  return static_cast<char32_t>(towupper_l(static_cast<wint_t>(c), utf8));
}

// Go's strings.ToUpper(a) == strings.ToUpper(b).
bool EqualFold(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    size_t wa = 0, wb = 0;
    const char32_t ca = DecodeRune(a, i, &wa);
    const char32_t cb = DecodeRune(b, j, &wb);
    if (ca != cb && ToUpper(ca) != ToUpper(cb)) return false;
    i += wa;
    j += wb;
  }
  return i == a.size() && j == b.size();
}

// The value of the last entry named `name`, or null.
const std::string* FindEnv(const EnvList& env, std::string_view name, bool windows) {
  for (auto it = env.rbegin(); it != env.rend(); ++it) {
    if (windows ? EqualFold(it->first, name) : it->first == name) return &it->second;
  }
  return nullptr;
}

// POSIX special parameters (`$@`, `$*`, ...): a name of one character.
bool IsSpecialParam(char32_t c) {
  switch (c) {
    case '@':
    case '*':
    case '#':
    case '?':
    case '-':
    case '$':
    case '!':
    case '0':
      return true;
    default:
      return false;
  }
}

// Collects the words of ProcessWords. Unquoted whitespace ends a word; text
// from quotes and escapes is added raw, so it never splits. A word that is
// still empty when whitespace or the end arrives is dropped, even if it came
// from quotes ("" yields no word), as in BuildKit.
class WordSplitter {
 public:
  void AddChar(char32_t c) {
    if (unicode::IsSpace(c)) {
      if (in_word_ && !word_.empty()) {
        words_.push_back(std::move(word_));
        word_.clear();
        in_word_ = false;
      }
    } else {
      AddRawChar(c);
    }
  }
  void AddRawChar(char32_t c) {
    AppendRune(&word_, c);
    in_word_ = true;
  }
  // Splits `s` (a variable's value) on whitespace.
  void AddString(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
      size_t width = 0;
      AddChar(DecodeRune(s, i, &width));
      i += width;
    }
  }
  // Adds quoted text as it is.
  void AddRawString(std::string_view s) {
    word_.append(s);
    in_word_ = true;
  }
  std::vector<std::string> Finish() {
    if (!word_.empty()) words_.push_back(std::move(word_));
    return std::move(words_);
  }

 private:
  std::vector<std::string> words_;
  std::string word_;
  // True once something was added to word_ since the last split; with an
  // empty word_ it means only empty quotes were seen.
  bool in_word_ = false;
};

// One expansion of one word: a cursor over its runes and the recursive
// descent of BuildKit's lexer (processStopOn, processDollar, ...).
class Expander {
 public:
  Expander(const LexOptions& options, std::string_view src, const EnvList& env,
           std::set<std::string>* used)
      : options_(options), src_(src), env_(env), used_(used) {
    // Go's text/scanner skips a byte order mark at the start of its input.
    if (src_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
    Load();
  }

  // Appends the expansion of the input up to `stop` (consumed) or, when
  // `stop` is kEof, the end, to *out; and its words to *words when non-null.
  Status ProcessStopOn(char32_t stop, std::string* out, WordSplitter* words) {
    const char32_t escape = static_cast<unsigned char>(options_.escape);
    while (Peek() != kEof) {
      char32_t c = Peek();
      if (stop != kEof && c == stop) {
        Next();
        return Status::Ok();
      }
      if (c == '\'' || c == '"' || c == '$') {
        const size_t start = out->size();
        Status st = c == '$'   ? ProcessDollar(out)
                    : c == '"' ? ProcessDoubleQuote(out)
                               : ProcessSingleQuote(out);
        if (!st.ok()) return st;
        if (words != nullptr) {
          std::string_view added = std::string_view(*out).substr(start);
          if (c == '$') {
            words->AddString(added);
          } else {
            words->AddRawString(added);
          }
        }
        continue;
      }
      c = Next();
      if (c == escape) {
        if (options_.raw_escapes) {
          if (words != nullptr) words->AddRawChar(c);
          AppendRune(out, c);
        }
        // The escape character escapes anything; at the end it vanishes.
        c = Next();
        if (c == kEof) break;
        if (words != nullptr) words->AddRawChar(c);
      } else if (words != nullptr) {
        words->AddChar(c);
      }
      AppendRune(out, c);
    }
    if (stop != kEof) {
      std::string msg = "unexpected end of statement while looking for matching ";
      AppendRune(&msg, stop);
      return Status::InvalidArgument(std::move(msg));
    }
    return Status::Ok();
  }

 private:
  char32_t Peek() const { return cur_; }

  char32_t Next() {
    const char32_t c = cur_;
    pos_ += width_;
    Load();
    return c;
  }

  void Load() {
    if (pos_ >= src_.size()) {
      cur_ = kEof;
      width_ = 0;
    } else {
      cur_ = DecodeRune(src_, pos_, &width_);
    }
  }

  // Everything between single quotes is literal; there is no escape.
  Status ProcessSingleQuote(std::string* out) {
    const char32_t open = Next();
    if (options_.raw_quotes) AppendRune(out, open);
    for (;;) {
      const char32_t c = Next();
      if (c == kEof) {
        return Status::InvalidArgument(
            "unexpected end of statement while looking for matching single-quote");
      }
      if (c == '\'') {
        if (options_.raw_quotes) AppendRune(out, c);
        return Status::Ok();
      }
      AppendRune(out, c);
    }
  }

  // Variables expand between double quotes; the escape character escapes
  // only `"`, `$` and itself and is kept before anything else.
  Status ProcessDoubleQuote(std::string* out) {
    const char32_t escape = static_cast<unsigned char>(options_.escape);
    const char32_t open = Next();
    if (options_.raw_quotes) AppendRune(out, open);
    for (;;) {
      const char32_t peek = Peek();
      if (peek == kEof) {
        return Status::InvalidArgument(
            "unexpected end of statement while looking for matching double-quote");
      }
      if (peek == '"') {
        Next();
        if (options_.raw_quotes) AppendRune(out, peek);
        return Status::Ok();
      }
      if (peek == '$') {
        KILN_RETURN_IF_ERROR(ProcessDollar(out));
        continue;
      }
      char32_t c = Next();
      if (c == escape) {
        // BuildKit writes the escape here under raw_escapes and, when it
        // escapes nothing, once more below: "\a" becomes "\\a". Kept as is.
        if (options_.raw_escapes) AppendRune(out, c);
        const char32_t after = Peek();
        if (after == kEof) continue;  // reported as an unterminated quote
        if (after == '"' || after == '$' || after == escape) c = Next();
      }
      AppendRune(out, c);
    }
  }

  // Reads a name after `$` or `${`: a run of digits (positional), one special
  // parameter character, or letters, digits and `_`. Empty when none follows.
  std::string_view ProcessName() {
    const size_t start = pos_;
    if (Peek() != kEof && unicode::IsDigit(Peek())) {
      while (Peek() != kEof && unicode::IsDigit(Peek())) Next();
      return src_.substr(start, pos_ - start);
    }
    if (Peek() != kEof && IsSpecialParam(Peek())) {
      Next();
      return src_.substr(start, pos_ - start);
    }
    while (Peek() != kEof) {
      const char32_t c = Peek();
      if (!unicode::IsLetter(c) && !unicode::IsDigit(c) && c != '_') break;
      Next();
    }
    return src_.substr(start, pos_ - start);
  }

  const std::string* Lookup(std::string_view name) {
    const std::string* value = FindEnv(env_, name, options_.windows);
    if (value != nullptr && used_ != nullptr) used_->emplace(name);
    return value;
  }

  // The word of `${name<op>word}` up to its `}`. An error that leaves the
  // input exhausted reads as a missing `}`, whatever it was (BuildKit).
  Status ProcessModifierWord(std::string* word) {
    Status st = ProcessStopOn('}', word, nullptr);
    if (!st.ok() && Peek() == kEof) return Status::InvalidArgument("syntax error: missing '}'");
    return st;
  }

  static std::string Braced(std::string_view name, std::string_view op, std::string_view word) {
    std::string s = "${";
    s.append(name).append(op).append(word).push_back('}');
    return s;
  }

  static Status NotAllowed(std::string_view name, std::string_view word,
                           std::string_view otherwise) {
    std::string msg(name);
    msg.append(": ").append(word.empty() ? otherwise : word);
    return Status::InvalidArgument(std::move(msg));
  }

  // `$name`, `${name}` and `${name<op>word}`; appends the result to *out.
  Status ProcessDollar(std::string* out) {
    Next();  // the `$`
    if (Peek() != '{') {
      const std::string_view name = ProcessName();
      if (name.empty()) {
        out->push_back('$');
        return Status::Ok();
      }
      const std::string* value = Lookup(name);
      if (value != nullptr) {
        out->append(*value);
      } else if (options_.skip_unset) {
        out->append("$").append(name);
      }
      return Status::Ok();
    }

    Next();  // the `{`
    const char32_t first = Peek();
    if (first == kEof) return Status::InvalidArgument("syntax error: missing '}'");
    if (first == '{' || first == '}' || first == ':') {
      return Status::InvalidArgument("syntax error: bad substitution");
    }
    const std::string_view name = ProcessName();
    const char32_t op = Next();
    switch (op) {
      case '}': {
        const std::string* value = Lookup(name);
        if (value != nullptr) {
          out->append(*value);
        } else if (options_.skip_unset) {
          out->append(Braced(name, "", ""));
        }
        return Status::Ok();
      }
      case '?':
      case '-':
      case '+': {
        // The word is expanded (and its errors raised) whether or not it is
        // used, as BuildKit does.
        std::string word;
        KILN_RETURN_IF_ERROR(ProcessModifierWord(&word));
        const std::string* value = Lookup(name);
        if (value == nullptr && options_.skip_unset) {
          out->append(Braced(name, std::string(1, static_cast<char>(op)), word));
          return Status::Ok();
        }
        if (op == '?') {
          if (value == nullptr) return NotAllowed(name, word, "is not allowed to be unset");
          out->append(*value);
        } else if (op == '-') {
          out->append(value != nullptr ? *value : word);
        } else if (value != nullptr) {
          out->append(word);
        }
        return Status::Ok();
      }
      case ':': {
        const char32_t modifier = Next();
        std::string word;
        KILN_RETURN_IF_ERROR(ProcessModifierWord(&word));
        const std::string* value = Lookup(name);
        const bool empty = value == nullptr || value->empty();
        switch (modifier) {
          case '+':
          case '-':
          case '?': {
            if (value == nullptr && options_.skip_unset) {
              std::string op_text = ":";
              op_text.push_back(static_cast<char>(modifier));
              out->append(Braced(name, op_text, word));
              return Status::Ok();
            }
            if (modifier == '+') {
              if (!empty) out->append(word);
            } else if (modifier == '-') {
              out->append(empty ? word : *value);
            } else {
              if (value == nullptr) return NotAllowed(name, word, "is not allowed to be unset");
              if (value->empty()) return NotAllowed(name, word, "is not allowed to be empty");
              out->append(*value);
            }
            return Status::Ok();
          }
          default: {
            std::string msg = "unsupported modifier (";
            AppendRune(&msg, modifier);
            msg += ") in substitution";
            return Status::InvalidArgument(std::move(msg));
          }
        }
      }
      default:
        return Status::InvalidArgument("missing ':' in substitution");
    }
  }

  const LexOptions& options_;
  std::string_view src_;
  const EnvList& env_;
  std::set<std::string>* used_;
  size_t pos_ = 0;       // byte offset of cur_ in src_
  char32_t cur_ = kEof;  // the rune at pos_ (U+FFFD for an invalid byte), kEof at the end
  size_t width_ = 0;     // bytes of cur_ in src_
};

Status Annotate(const Status& st, std::string_view word) {
  return Status::InvalidArgument("failed to process " + GoQuote(word) + ": " + st.message());
}

}  // namespace

std::optional<std::string> LookupEnv(const EnvList& env, std::string_view name, bool windows) {
  const std::string* value = FindEnv(env, name, windows);
  if (value == nullptr) return std::nullopt;
  return *value;
}

Result<std::string> Lexer::ProcessWord(std::string_view word, const EnvList& env,
                                       std::set<std::string>* used) const {
  std::string out;
  out.reserve(word.size());
  Expander expander(options_, word, env, used);
  Status st = expander.ProcessStopOn(kEof, &out, nullptr);
  if (!st.ok()) return Annotate(st, word);
  return out;
}

Result<std::vector<std::string>> Lexer::ProcessWords(std::string_view word, const EnvList& env,
                                                     std::set<std::string>* used) const {
  std::string out;
  out.reserve(word.size());
  WordSplitter words;
  Expander expander(options_, word, env, used);
  Status st = expander.ProcessStopOn(kEof, &out, &words);
  if (!st.ok()) return Annotate(st, word);
  return words.Finish();
}

}  // namespace kiln::dockerfile
