#include "util/base64.h"

#include <gtest/gtest.h>

namespace kiln::util {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {"{}", "e30="},
  };
  for (auto [plain, enc] : vectors) {
    EXPECT_EQ(Base64Encode(plain), enc);
    auto d = Base64Decode(enc);
    ASSERT_TRUE(d.ok()) << enc;
    EXPECT_EQ(*d, plain);
  }
}

TEST(Base64Test, BinaryRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(*Base64Decode(Base64Encode(all)), all);
}

TEST(Base64Test, StrictDecoding) {
  EXPECT_EQ(Base64Decode("Zg").status().message(),
            "invalid base64: length 2 is not a multiple of 4 (padding with '=' is required)");
  EXPECT_EQ(Base64Decode("Zm9v\nYg==").status().message(),
            "invalid base64: length 9 is not a multiple of 4 (padding with '=' is required)");
  EXPECT_EQ(Base64Decode("Zm9-").status().message(),
            "invalid base64: unexpected character at offset 3");
  EXPECT_EQ(Base64Decode("Zg=a").status().message(),
            "invalid base64: unexpected character at offset 2");
  EXPECT_EQ(Base64Decode("Z===").status().message(),
            "invalid base64: unexpected character at offset 1");
  EXPECT_EQ(Base64Decode("Zh==").status().message(),
            "invalid base64: non-zero padding bits at offset 0");
  EXPECT_EQ(Base64Decode("Zg==Zg==").status().message(),
            "invalid base64: unexpected character at offset 2");
}

}  // namespace
}  // namespace kiln::util
