// Helpers shared by the kiln::image unit tests.
#pragma once

#include <string>

namespace kiln::image::testing {

// "sha256:" followed by 64 copies of `c` (a lowercase hex digit).
inline std::string Sha(char c) { return "sha256:" + std::string(64, c); }

}  // namespace kiln::image::testing
