#include "frontend/dockerfile/instructions/internal.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>

#include "frontend/dockerfile/parser/parser.h"
#include "util/strings.h"

namespace kiln::dockerfile::internal {

// ---------------------------------------------------------------------------
// FlagSet

void FlagSet::AddBool(std::string name, bool def) {
  KILN_CHECK(Find(name) == nullptr, "flag declared twice: " + name);
  flags_.push_back(Flag{std::move(name), Type::kBool, def ? "true" : "false", {}});
}

void FlagSet::AddString(std::string name, std::string def) {
  KILN_CHECK(Find(name) == nullptr, "flag declared twice: " + name);
  flags_.push_back(Flag{std::move(name), Type::kString, std::move(def), {}});
}

void FlagSet::AddStrings(std::string name) {
  KILN_CHECK(Find(name) == nullptr, "flag declared twice: " + name);
  flags_.push_back(Flag{std::move(name), Type::kStrings, "", {}});
}

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

const FlagSet::Flag& FlagSet::Get(std::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return flag;
  }
  KILN_CHECK(false, "flag not declared: " + std::string(name));
  return flags_.front();  // unreachable
}

const std::string& FlagSet::Value(std::string_view name) const { return Get(name).value; }

const std::vector<std::string>& FlagSet::Values(std::string_view name) const {
  return Get(name).values;
}

bool FlagSet::Used(std::string_view name) const { return Get(name).used; }

Status FlagSet::Parse() {
  for (const std::string& raw : args_) {
    std::string_view arg = raw;
    if (arg.substr(0, 2) != "--") {
      return Status::InvalidArgument("Arg should start with -- : " + raw);
    }
    if (arg == "--") return Status::Ok();  // the end of the flags
    arg.remove_prefix(2);
    std::string_view value;
    const size_t eq = arg.find('=');
    const bool has_value = eq != std::string_view::npos;
    if (has_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    Flag* flag = Find(arg);
    if (flag == nullptr) return Status::InvalidArgument("Unknown flag: " + std::string(arg));
    if (flag->used && flag->type != Type::kStrings) {
      return Status::InvalidArgument("Duplicate flag specified: " + std::string(arg));
    }
    flag->used = true;
    switch (flag->type) {
      case Type::kBool: {
        // `--link` alone means true; `--link=` is missing its value.
        if (has_value && value.empty()) {
          return Status::InvalidArgument("Missing a value on flag: " + std::string(arg));
        }
        const std::string lower = util::AsciiLower(value);
        if (lower.empty()) {
          flag->value = "true";
        } else if (lower == "true" || lower == "false") {
          flag->value = lower;
        } else {
          return Status::InvalidArgument("Expecting boolean value for flag " + std::string(arg) +
                                         ", not: " + std::string(value));
        }
        break;
      }
      case Type::kString:
        if (!has_value) {
          return Status::InvalidArgument("Missing a value on flag: " + std::string(arg));
        }
        flag->value = std::string(value);
        break;
      case Type::kStrings:
        if (!has_value) {
          return Status::InvalidArgument("Missing a value on flag: " + std::string(arg));
        }
        flag->values.emplace_back(value);
        break;
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Heredocs

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<HeredocWord> ParseHeredocWord(std::string_view word) {
  // Shape: [0-9]*<<-?REST where REST is non-empty and holds no '<'.
  size_t i = 0;
  while (i < word.size() && IsDigit(word[i])) ++i;
  const std::string_view digits = word.substr(0, i);
  if (word.substr(i, 2) != "<<") return std::nullopt;
  i += 2;
  HeredocWord heredoc;
  if (i < word.size() && word[i] == '-') {
    heredoc.chomp = true;
    ++i;
  }
  const std::string_view rest = word.substr(i);
  if (rest.empty() || rest.find('<') != std::string_view::npos) return std::nullopt;
  if (!digits.empty()) {
    const std::optional<std::uint64_t> fd = ParseGoUint32(digits, 10);
    heredoc.file_descriptor = fd ? static_cast<int>(*fd) : 0;
  }

  // Remove quotes and escapes the way BuildKit's shell lexer does with a
  // fixed backslash escape; `$` stays literal (unset variables are kept).
  // Quoting anywhere in the word turns expansion of the body off.
  std::string name;
  int words = 0;
  bool in_word = false;
  for (size_t p = 0; p < rest.size(); ++p) {
    const char c = rest[p];
    if (IsSpace(c)) {
      in_word = false;
      continue;
    }
    if (!in_word) {
      in_word = true;
      ++words;
    }
    if (c == '\'') {
      heredoc.expand = false;
      const size_t end = rest.find('\'', p + 1);
      if (end == std::string_view::npos) return std::nullopt;  // unterminated
      name.append(rest.substr(p + 1, end - p - 1));
      p = end;
    } else if (c == '"') {
      heredoc.expand = false;
      size_t q = p + 1;
      for (; q < rest.size() && rest[q] != '"'; ++q) {
        if (rest[q] == '\\' && q + 1 < rest.size() &&
            (rest[q + 1] == '"' || rest[q + 1] == '$' || rest[q + 1] == '\\')) {
          ++q;
        }
        name.push_back(rest[q]);
      }
      if (q >= rest.size()) return std::nullopt;  // unterminated
      p = q;
    } else if (c == '\\') {
      if (p + 1 < rest.size()) name.push_back(rest[++p]);
    } else {
      name.push_back(c);
    }
  }
  if (words != 1) return std::nullopt;
  heredoc.name = std::move(name);
  return heredoc;
}

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

// ---------------------------------------------------------------------------
// Go number, bool and duration parsing

namespace {

// The time package's quoting of a duration in its errors.
std::string TimeQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x80 || c < ' ') {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

constexpr std::uint64_t kMaxDuration = std::uint64_t{1} << 63;

std::uint64_t UnitNanoseconds(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1000;  // us, µs, μs
  if (unit == "ms") return 1000 * 1000;
  if (unit == "s") return 1000 * 1000 * 1000;
  if (unit == "m") return 60ULL * 1000 * 1000 * 1000;
  if (unit == "h") return 3600ULL * 1000 * 1000 * 1000;
  return 0;
}

}  // namespace

Result<std::int64_t> ParseGoDuration(std::string_view text) {
  const std::string orig(text);
  auto invalid = [&] {
    return Status::InvalidArgument("time: invalid duration " + TimeQuote(orig));
  };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::int64_t{0};
  if (s.empty()) return invalid();
  std::uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || IsDigit(s[0]))) return invalid();
    // The integer part.
    std::uint64_t whole = 0;
    size_t i = 0;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
      if (whole > kMaxDuration / 10) return invalid();
      whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
      if (whole > kMaxDuration) return invalid();
    }
    const bool had_whole = i > 0;
    s.remove_prefix(i);
    // The fraction: digits beyond what fits are ignored, as Go does.
    std::uint64_t frac = 0;
    double scale = 1;
    bool had_frac = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflow = false;
      size_t j = 0;
      for (; j < s.size() && IsDigit(s[j]); ++j) {
        if (overflow) continue;
        if (frac > (kMaxDuration - 1) / 10) {
          overflow = true;
          continue;
        }
        const std::uint64_t next = frac * 10 + static_cast<std::uint64_t>(s[j] - '0');
        if (next > kMaxDuration) {
          overflow = true;
          continue;
        }
        frac = next;
        scale *= 10;
      }
      had_frac = j > 0;
      s.remove_prefix(j);
    }
    if (!had_whole && !had_frac) return invalid();
    // The unit runs up to the next number.
    size_t u = 0;
    while (u < s.size() && !(s[u] == '.' || IsDigit(s[u]))) ++u;
    if (u == 0) {
      return Status::InvalidArgument("time: missing unit in duration " + TimeQuote(orig));
    }
    const std::string_view unit_name = s.substr(0, u);
    s.remove_prefix(u);
    const std::uint64_t unit = UnitNanoseconds(unit_name);
    if (unit == 0) {
      return Status::InvalidArgument("time: unknown unit " + TimeQuote(unit_name) +
                                     " in duration " + TimeQuote(orig));
    }
    if (whole > kMaxDuration / unit) return invalid();
    std::uint64_t value = whole * unit;
    if (frac > 0) {
      value += static_cast<std::uint64_t>(static_cast<double>(frac) *
                                          (static_cast<double>(unit) / scale));
      if (value > kMaxDuration) return invalid();
    }
    total += value;
    if (total > kMaxDuration) return invalid();
  }
  if (negative) {
    return total == kMaxDuration ? std::numeric_limits<std::int64_t>::min()
                                 : -static_cast<std::int64_t>(total);
  }
  if (total > kMaxDuration - 1) return invalid();
  return static_cast<std::int64_t>(total);
}

std::optional<std::uint64_t> ParseGoUint32(std::string_view text, int base) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (!IsDigit(c) || c - '0' >= base) return std::nullopt;
    value = value * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(c - '0');
    if (value > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  }
  return value;
}

Result<std::int64_t> ParseGoInt32(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return Status::InvalidArgument("strconv.ParseInt: parsing " + GoQuote(text) + ": " +
                                   std::string(why));
  };
  std::string_view digits = text;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return fail("invalid syntax");
  std::uint64_t value = 0;
  bool overflow = false;
  for (char c : digits) {
    if (!IsDigit(c)) return fail("invalid syntax");
    if (!overflow) {
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
      if (value > (std::uint64_t{1} << 32)) overflow = true;
    }
  }
  const std::uint64_t limit = negative ? (std::uint64_t{1} << 31) : (std::uint64_t{1} << 31) - 1;
  if (overflow || value > limit) return fail("value out of range");
  return negative ? -static_cast<std::int64_t>(value) : static_cast<std::int64_t>(value);
}

std::optional<bool> ParseGoBool(std::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" ||
      text == "False") {
    return false;
  }
  return std::nullopt;
}

Result<std::int64_t> RamInBytes(std::string_view text) {
  auto invalid = [&] {
    return Status::InvalidArgument("invalid size: '" + std::string(text) + "'");
  };
  // ^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$
  size_t i = 0;
  while (i < text.size() && IsDigit(text[i])) ++i;
  if (i == 0) return invalid();
  int dots = 0;
  while (i + 1 < text.size() && text[i] == '.' && IsDigit(text[i + 1])) {
    ++dots;
    ++i;
    while (i < text.size() && IsDigit(text[i])) ++i;
  }
  const std::string number(text.substr(0, i));
  if (i < text.size() && text[i] == ' ') ++i;
  double multiplier = 1;
  if (i < text.size()) {
    switch (text[i]) {
      case 'k':
      case 'K':
        multiplier = 1024.0;
        ++i;
        break;
      case 'm':
      case 'M':
        multiplier = 1024.0 * 1024;
        ++i;
        break;
      case 'g':
      case 'G':
        multiplier = 1024.0 * 1024 * 1024;
        ++i;
        break;
      case 't':
      case 'T':
        multiplier = 1024.0 * 1024 * 1024 * 1024;
        ++i;
        break;
      case 'p':
      case 'P':
        multiplier = 1024.0 * 1024 * 1024 * 1024 * 1024;
        ++i;
        break;
      default:
        break;
    }
  }
  if (i < text.size() && (text[i] == 'i' || text[i] == 'I')) ++i;
  if (i < text.size() && (text[i] == 'b' || text[i] == 'B')) ++i;
  if (i != text.size()) return invalid();
  if (dots > 1) {  // strconv.ParseFloat refuses "1.2.3"
    return Status::InvalidArgument("strconv.ParseFloat: parsing " + GoQuote(number) +
                                   ": invalid syntax");
  }
  const double size = std::strtod(number.c_str(), nullptr) * multiplier;
  if (size >= 9.2233720368547758e18) return std::numeric_limits<std::int64_t>::max();
  return static_cast<std::int64_t>(size);
}

// ---------------------------------------------------------------------------
// encoding/csv, one record

Result<std::vector<std::string>> ReadCsvRecord(std::string_view text) {
  // A trailing newline ends the record; an empty input has no record.
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty()) return Status::InvalidArgument("EOF");
  auto parse_error = [](size_t column, std::string_view what) {
    return Status::InvalidArgument("parse error on line 1, column " + std::to_string(column) +
                                   ": " + std::string(what));
  };
  static constexpr std::string_view kBareQuote = "bare \" in non-quoted-field";
  static constexpr std::string_view kQuote = "extraneous or missing \" in quoted-field";

  std::vector<std::string> fields;
  size_t pos = 0;  // 0-based byte offset; Go reports 1-based columns
  while (true) {
    std::string field;
    if (pos >= text.size() || text[pos] != '"') {
      const size_t comma = text.find(',', pos);
      const size_t end = comma == std::string_view::npos ? text.size() : comma;
      const std::string_view raw = text.substr(pos, end - pos);
      const size_t quote = raw.find('"');
      if (quote != std::string_view::npos) return parse_error(pos + quote + 1, kBareQuote);
      fields.emplace_back(raw);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
      continue;
    }
    // Quoted field: "" is a literal quote; the closing quote must be
    // followed by a comma or the end.
    ++pos;
    bool done = false;
    while (!done) {
      const size_t quote = text.find('"', pos);
      if (quote == std::string_view::npos) return parse_error(text.size() + 1, kQuote);
      field.append(text.substr(pos, quote - pos));
      pos = quote + 1;
      if (pos < text.size() && text[pos] == '"') {
        field.push_back('"');
        ++pos;
      } else if (pos < text.size() && text[pos] == ',') {
        ++pos;
        done = true;
        fields.push_back(std::move(field));
        field.clear();
      } else if (pos >= text.size()) {
        fields.push_back(std::move(field));
        return fields;
      } else {
        return parse_error(pos, kQuote);
      }
    }
  }
  return fields;
}

// ---------------------------------------------------------------------------
// Suggestions and strings

int EditDistance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string TrimSpace(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::string WithSuggestion(std::string message, std::string_view value,
                           const std::vector<std::string_view>& options, bool case_sensitive) {
  const std::string wanted = case_sensitive ? std::string(value) : util::AsciiLower(value);
  std::string match;
  int best = 3;  // only near misses are suggested
  for (std::string_view option : options) {
    const std::string candidate = case_sensitive ? std::string(option) : util::AsciiLower(option);
    if (candidate == wanted)
      return message;  // the value is fine; the error is about something else
    const int distance = EditDistance(wanted, candidate);
    if (distance < best) {
      best = distance;
      match = candidate;
      if (!case_sensitive && value == AsciiUpper(value) && value != util::AsciiLower(value)) {
        match = AsciiUpper(candidate);  // answer in the user's case
      }
    }
  }
  if (match.empty()) return message;
  return message + " (did you mean " + match + "?)";
}

}  // namespace kiln::dockerfile::internal
