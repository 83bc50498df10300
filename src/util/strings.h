// Small string helpers shared by modules that compare protocol tokens (URL
// schemes, header and parameter names, host names) without regard to case.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace kiln::util {

// `s` with A-Z mapped to a-z; other bytes, UTF-8 included, unchanged
// (independent of the C locale).
std::string AsciiLower(std::string_view s);

}  // namespace kiln::util
