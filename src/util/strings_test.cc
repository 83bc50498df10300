#include "util/strings.h"

#include <gtest/gtest.h>

namespace kiln::util {
namespace {

TEST(AsciiLowerTest, OnlyAsciiLettersChange) {
  EXPECT_EQ(AsciiLower("HTTPS://Registry.Example:5000"), "https://registry.example:5000");
  EXPECT_EQ(AsciiLower("X-Amz-Signature"), "x-amz-signature");
  EXPECT_EQ(AsciiLower("\xc3\x89t\xc3\xa9"), "\xc3\x89t\xc3\xa9");  // UTF-8 kept as is
  EXPECT_EQ(AsciiLower(""), "");
}

}  // namespace
}  // namespace kiln::util
