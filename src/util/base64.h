// Standard base64 (RFC 4648 §4, alphabet A-Z a-z 0-9 + /, '=' padding), as
// Go's base64.StdEncoding writes it. Decoding is strict: padding is required,
// no whitespace or other characters are allowed, and the unused bits of the
// last quantum must be zero, so every accepted text has exactly one encoding.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::util {

std::string Base64Encode(std::string_view data);
// kInvalidArgument naming the offset of the first bad character, or a bad
// length or padding.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace kiln::util
