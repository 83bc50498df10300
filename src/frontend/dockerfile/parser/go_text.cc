#include "frontend/dockerfile/parser/go_text.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace kiln::dockerfile::parser_internal {
namespace {

struct CodeRange {
  char32_t lo, hi;
};
struct CaseRange {
  char32_t lo, hi;
  int stride, delta;
};

#include "frontend/dockerfile/parser/unicode_tables.inc"

template <size_t N>
bool InRanges(const CodeRange (&table)[N], char32_t r) {
  // The last range whose lo <= r.
  auto it = std::upper_bound(std::begin(table), std::end(table), r,
                             [](char32_t v, const CodeRange& c) { return v < c.lo; });
  if (it == std::begin(table)) return false;
  --it;
  return r <= it->hi;
}

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

DecodedRune DecodeRune(std::string_view s) {
  if (s.empty()) return {kRuneError, 0};
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return {b0, 1};
  int size;
  unsigned char lo = 0x80, hi = 0xBF;  // accepted range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    size = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    size = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    size = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing beyond U+10FFFF
  } else {
    return {kRuneError, 1};
  }
  if (s.size() < static_cast<size_t>(size)) return {kRuneError, 1};
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) return {kRuneError, 1};
  if (size == 2) return {static_cast<char32_t>((b0 & 0x1F) << 6 | (b1 & 0x3F)), 2};
  const auto b2 = static_cast<unsigned char>(s[2]);
  if (!IsContinuation(b2)) return {kRuneError, 1};
  if (size == 3) {
    return {static_cast<char32_t>((b0 & 0x0F) << 12 | (b1 & 0x3F) << 6 | (b2 & 0x3F)), 3};
  }
  const auto b3 = static_cast<unsigned char>(s[3]);
  if (!IsContinuation(b3)) return {kRuneError, 1};
  return {
      static_cast<char32_t>((b0 & 0x07) << 18 | (b1 & 0x3F) << 12 | (b2 & 0x3F) << 6 | (b3 & 0x3F)),
      4};
}

DecodedRune DecodeLastRune(std::string_view s) {
  if (s.empty()) return {kRuneError, 0};
  const size_t end = s.size();
  const auto last = static_cast<unsigned char>(s[end - 1]);
  if (last < 0x80) return {last, 1};
  // Back up to the start byte of the last rune, at most 4 bytes from the end.
  const size_t lim = end >= 4 ? end - 4 : 0;
  size_t start = end - 1;
  while (start > lim && IsContinuation(static_cast<unsigned char>(s[start]))) --start;
  DecodedRune r = DecodeRune(s.substr(start));
  if (start + static_cast<size_t>(r.width) != end) return {kRuneError, 1};
  return r;
}

void AppendRune(std::string& out, char32_t r) {
  if (r < 0x80) {
    out.push_back(static_cast<char>(r));
    return;
  }
  if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
  if (r < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (r >> 6)));
  } else if (r < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (r >> 12)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (r >> 18)));
    out.push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
  }
  out.push_back(static_cast<char>(0x80 | (r & 0x3F)));
}

bool IsSpace(char32_t r) {
  if (r <= 0xFF) return IsSpaceByte(static_cast<unsigned char>(r));
  return r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 || r == 0x202F ||
         r == 0x205F || r == 0x3000;
}

bool IsLetter(char32_t r) {
  if (r < 0x80) return (r | 0x20) >= 'a' && (r | 0x20) <= 'z';
  return InRanges(kLetterRanges, r);
}

bool IsDigit(char32_t r) {
  if (r < 0x80) return r >= '0' && r <= '9';
  return InRanges(kDigitRanges, r);
}

bool IsPrint(char32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  return InRanges(kPrintRanges, r);
}

char32_t ToLower(char32_t r) {
  if (r < 0x80) return r >= 'A' && r <= 'Z' ? r + 32 : r;
  auto it = std::upper_bound(std::begin(kLowerRanges), std::end(kLowerRanges), r,
                             [](char32_t v, const CaseRange& c) { return v < c.lo; });
  if (it == std::begin(kLowerRanges)) return r;
  --it;
  if (r > it->hi || (r - it->lo) % static_cast<char32_t>(it->stride) != 0) return r;
  return static_cast<char32_t>(static_cast<int64_t>(r) + it->delta);
}

std::string_view TrimLeftSpace(std::string_view s) {
  while (!s.empty()) {
    DecodedRune r = DecodeRune(s);
    if (r.width == 1 && r.rune == kRuneError) break;
    if (!IsSpace(r.rune)) break;
    s.remove_prefix(r.width);
  }
  return s;
}

std::string_view TrimRightSpace(std::string_view s) {
  while (!s.empty()) {
    DecodedRune r = DecodeLastRune(s);
    if (r.width == 1 && r.rune == kRuneError) break;
    if (!IsSpace(r.rune)) break;
    s.remove_suffix(r.width);
  }
  return s;
}

std::string_view TrimSpace(std::string_view s) { return TrimRightSpace(TrimLeftSpace(s)); }

std::string LowerString(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool ascii = true;
  for (char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) {
    for (char c : s) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    return out;
  }
  // Go's strings.Map returns its input untouched when no rune changes; once
  // one does, every rune is re-encoded, so invalid bytes become U+FFFD.
  bool changed = false;
  for (std::string_view rest = s; !rest.empty();) {
    DecodedRune r = DecodeRune(rest);
    if ((r.width == 1 && r.rune == kRuneError) || ToLower(r.rune) != r.rune) {
      changed = true;
      break;
    }
    rest.remove_prefix(r.width);
  }
  if (!changed) return std::string(s);
  for (std::string_view rest = s; !rest.empty();) {
    DecodedRune r = DecodeRune(rest);
    AppendRune(out, ToLower(r.rune));
    rest.remove_prefix(r.width);
  }
  return out;
}

std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  while (!s.empty()) {
    DecodedRune d = DecodeRune(s);
    const char32_t r = d.rune;
    if (d.width == 1 && r == kRuneError) {
      const auto b = static_cast<unsigned char>(s[0]);
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    } else if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
    } else if (IsPrint(r)) {
      out.append(s.substr(0, d.width));
    } else {
      switch (r) {
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
        default:
          if (r < ' ' || r == 0x7F) {
            out += "\\x";
            out.push_back(kHex[r >> 4]);
            out.push_back(kHex[r & 0xF]);
          } else if (r < 0x10000) {
            out += "\\u";
            for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(r >> shift) & 0xF]);
          } else {
            out += "\\U";
            for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(r >> shift) & 0xF]);
          }
      }
    }
    s.remove_prefix(d.width);
  }
  out.push_back('"');
  return out;
}

}  // namespace kiln::dockerfile::parser_internal
