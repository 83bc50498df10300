#include "util/digest.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace kiln::util {
namespace {

constexpr char kEmpty[] = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(DigestTest, ParsesValid) {
  auto d = Digest::Parse(kEmpty);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->algorithm(), "sha256");
  EXPECT_EQ(d->hex().size(), 64u);
  EXPECT_EQ(d->str(), kEmpty);
  EXPECT_TRUE(Digest::Parse("sha512:" + std::string(128, 'a')).ok());
}

TEST(DigestTest, RejectsMalformed) {
  EXPECT_EQ(Digest::Parse("").status().message(), "invalid digest: empty string");
  EXPECT_EQ(Digest::Parse("e3b0c442").status().message(),
            "invalid digest \"e3b0c442\": expected \"algorithm:hex\", e.g. sha256:<64 hex digits>");
  EXPECT_EQ(Digest::Parse("md5:abcd").status().message(),
            "invalid digest \"md5:abcd\": unsupported algorithm \"md5\" (kiln verifies sha256 and "
            "sha512)");
  EXPECT_EQ(Digest::Parse("sha256:abc").status().message(),
            "invalid digest \"sha256:abc\": sha256 needs 64 hex digits, found 3");
  std::string upper = kEmpty;
  upper[7] = 'E';
  EXPECT_EQ(Digest::Parse(upper).status().message(),
            "invalid digest \"" + upper + "\": character 7 is not a lowercase hex digit");
  EXPECT_EQ(Digest::Parse(upper).status().code(), StatusCode::kInvalidArgument);
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Of("").str(), kEmpty);
  EXPECT_EQ(Sha256Of("abc").str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, StreamingEqualsOneShot) {
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + 7);
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 4097) h.Update(std::string_view(data).substr(i, 4097));
  EXPECT_EQ(h.size(), data.size());
  EXPECT_EQ(h.Finish(), Sha256Of(data));
}

TEST(Sha256Test, File) {
  std::string path = ::testing::TempDir() + "/digest_test_file";
  {
    std::ofstream f(path, std::ios::binary);
    f << "abc";
  }
  auto d = Sha256OfFile(path);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Sha256Of("abc"));
  std::remove(path.c_str());
  EXPECT_EQ(Sha256OfFile(path).status().code(), StatusCode::kIOError);
}

}  // namespace
}  // namespace kiln::util
