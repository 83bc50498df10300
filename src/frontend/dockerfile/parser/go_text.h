// Text primitives with the exact semantics of the Go standard library calls
// BuildKit's parser makes (unicode/utf8 decoding, unicode.IsSpace and friends,
// strings.TrimSpace, strings.ToLower, strconv.Quote), so that kiln splits,
// trims, lower-cases and prints Dockerfile text byte for byte as BuildKit
// v0.10.6 does, invalid UTF-8 included. Unicode tables are those of Go 1.19
// (Unicode 13.0.0), generated into unicode_tables.inc.
//
// Internal to the parser (and its tests and conformance driver). Thread-
// safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace kiln::dockerfile::parser_internal {

inline constexpr char32_t kRuneError = 0xFFFD;

struct DecodedRune {
  char32_t rune = kRuneError;
  int width = 0;  // bytes consumed; 1 for an invalid byte, 0 only for empty input
};

// utf8.DecodeRuneInString: the first rune of `s`; (kRuneError, 1) when `s`
// does not start with a valid, shortest-form UTF-8 encoding.
DecodedRune DecodeRune(std::string_view s);
// utf8.DecodeLastRuneInString: the last rune of `s`, same conventions.
DecodedRune DecodeLastRune(std::string_view s);
// utf8.AppendRune: appends the UTF-8 encoding of `r`, or of U+FFFD when `r`
// is not a valid code point (a surrogate or beyond U+10FFFF).
void AppendRune(std::string& out, char32_t r);

bool IsSpace(char32_t r);      // unicode.IsSpace
bool IsLetter(char32_t r);     // unicode.IsLetter
bool IsDigit(char32_t r);      // unicode.IsDigit
bool IsPrint(char32_t r);      // strconv.IsPrint
char32_t ToLower(char32_t r);  // unicode.ToLower

// unicode.IsSpace applied to a single byte read as a rune (Latin-1), as
// BuildKit does where it indexes a string byte by byte.
inline bool IsSpaceByte(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0;
}

// strings.TrimLeftFunc / TrimRightFunc / TrimSpace with unicode.IsSpace. The
// results are views into `s`.
std::string_view TrimLeftSpace(std::string_view s);
std::string_view TrimRightSpace(std::string_view s);
std::string_view TrimSpace(std::string_view s);

// strings.ToLower: full Unicode simple lower-casing; invalid UTF-8 bytes
// become U+FFFD unless the string needs no change at all.
std::string LowerString(std::string_view s);

// strconv.Quote: a double-quoted Go string literal; non-printable runes are
// escaped (\n, \x00, \u00a0, ...), invalid bytes as \xNN.
std::string Quote(std::string_view s);

}  // namespace kiln::dockerfile::parser_internal
