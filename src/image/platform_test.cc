#include "image/platform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::image {
namespace {

using ::testing::HasSubstr;

// Parses and formats, or "ERROR: <message>".
std::string Parsed(std::string_view s) {
  auto p = ParsePlatform(s);
  if (!p.ok()) return "ERROR: " + p.status().message();
  return Format(*p);
}

std::string NormalizedFormat(std::string_view s) {
  auto p = ParsePlatform(s);
  if (!p.ok()) return "ERROR: " + p.status().message();
  return Format(Normalize(*p));
}

TEST(PlatformTest, ParseOsArch) {
  EXPECT_EQ(Parsed("linux/amd64"), "linux/amd64");
  EXPECT_EQ(Parsed("linux/arm64"), "linux/arm64");
  EXPECT_EQ(Parsed("linux/arm64/v8"), "linux/arm64/v8");  // explicit variant kept
  EXPECT_EQ(Parsed("linux/arm/v7"), "linux/arm/v7");
  EXPECT_EQ(Parsed("linux/arm/v6"), "linux/arm/v6");
  EXPECT_EQ(Parsed("linux/arm"), "linux/arm");  // containerd clears the implied v7
  EXPECT_EQ(Parsed("linux/ppc64le"), "linux/ppc64le");
  EXPECT_EQ(Parsed("linux/s390x"), "linux/s390x");
  EXPECT_EQ(Parsed("windows/amd64"), "windows/amd64");
  EXPECT_EQ(Parsed("Linux/X86_64"), "linux/amd64");
  EXPECT_EQ(Parsed("linux/aarch64"), "linux/arm64");
  EXPECT_EQ(Parsed("linux/i386"), "linux/386");
  EXPECT_EQ(Parsed("linux/armhf"), "linux/arm");
  EXPECT_EQ(Parsed("linux/armel"), "linux/arm/v6");
  EXPECT_EQ(Parsed("macos/arm64"), "darwin/arm64");
  EXPECT_EQ(Parsed("linux/arm/7"), "linux/arm/v7");
  EXPECT_EQ(Parsed("linux/aarch64/8"), "linux/arm64/v8");
  EXPECT_EQ(Parsed("linux/riscv64"), "linux/riscv64");
  // Two components are not checked against the known lists (containerd).
  EXPECT_EQ(Parsed("plan10/whatever"), "plan10/whatever");
}

TEST(PlatformTest, ParseSingleComponent) {
  EXPECT_EQ(Parsed("amd64"), "linux/amd64");
  EXPECT_EQ(Parsed("arm64"), "linux/arm64");
  EXPECT_EQ(Parsed("aarch64"), "linux/arm64");
  EXPECT_EQ(Parsed("arm"), "linux/arm");
  EXPECT_EQ(Parsed("armel"), "linux/arm/v6");
  EXPECT_EQ(Parsed("s390x"), "linux/s390x");
  const Platform host = DefaultPlatform();
  auto linux = ParsePlatform("linux");
  ASSERT_TRUE(linux.ok());
  EXPECT_EQ(linux->os, "linux");
  EXPECT_EQ(linux->architecture, host.architecture);
  auto windows = ParsePlatform("windows");
  ASSERT_TRUE(windows.ok());
  EXPECT_EQ(windows->os, "windows");
}

TEST(PlatformTest, ParseErrors) {
  EXPECT_EQ(Parsed(""), "ERROR: invalid platform \"\": empty platform specifier");
  EXPECT_EQ(Parsed("junk"),
            "ERROR: invalid platform \"junk\": unknown operating system or "
            "architecture");
  EXPECT_EQ(Parsed("linux/*"), "ERROR: invalid platform \"linux/*\": wildcards are not supported");
  EXPECT_EQ(Parsed("linux/arm/v7/x"),
            "ERROR: invalid platform \"linux/arm/v7/x\": expected \"os/arch[/variant]\"");
  EXPECT_EQ(Parsed("linux/"),
            "ERROR: invalid platform \"linux/\": component \"\" must be letters, digits, '_' or "
            "'-'");
  EXPECT_THAT(Parsed("linux/amd 64"), HasSubstr("component \"amd 64\""));
  EXPECT_THAT(Parsed("linux/amd64.v2"), HasSubstr("component \"amd64.v2\""));
  EXPECT_THAT(Parsed("/amd64"), HasSubstr("component \"\""));
  EXPECT_EQ(ParsePlatform("x").status().code(), StatusCode::kInvalidArgument);
}

TEST(PlatformTest, Normalize) {
  EXPECT_EQ(NormalizedFormat("linux/arm64/v8"), "linux/arm64");
  EXPECT_EQ(NormalizedFormat("linux/arm"), "linux/arm/v7");
  EXPECT_EQ(NormalizedFormat("linux/armhf"), "linux/arm/v7");
  EXPECT_EQ(NormalizedFormat("linux/arm/5"), "linux/arm/v5");
  EXPECT_EQ(NormalizedFormat("linux/arm/8"), "linux/arm/v8");
  EXPECT_EQ(NormalizedFormat("linux/x86-64"), "linux/amd64");
  EXPECT_EQ(Format(Normalize({"Linux", "AARCH64", "V8", "", {}})), "linux/arm64");
  EXPECT_EQ(Format(Normalize({"", "x86_64", "v1", "", {}})), "linux/amd64");
  EXPECT_EQ(Format(Normalize({"linux", "amd64", "v3", "", {}})), "linux/amd64/v3");
  EXPECT_EQ(Format(Normalize({"linux", "arm64", "v9", "", {}})), "linux/arm64/v9");
  // os_version and os_features are kept.
  Platform w = Normalize({"Windows", "amd64", "", "10.0.17763.1", {"win32k"}});
  EXPECT_EQ(w.os, "windows");
  EXPECT_EQ(w.os_version, "10.0.17763.1");
  EXPECT_EQ(w.os_features, std::vector<std::string>{"win32k"});
}

TEST(PlatformTest, Format) {
  EXPECT_EQ(Format({}), "unknown");
  EXPECT_EQ(Format({"linux", "", "", "", {}}), "linux");
  EXPECT_EQ(Format({"linux", "arm", "v7", "", {}}), "linux/arm/v7");
}

TEST(PlatformTest, DefaultPlatformIsNormalizedLinux) {
  const Platform p = DefaultPlatform();
  EXPECT_EQ(p.os, "linux");
  EXPECT_FALSE(p.architecture.empty());
  EXPECT_EQ(Normalize(p), p);
#if defined(__x86_64__)
  EXPECT_EQ(Format(p), "linux/amd64");
#elif defined(__aarch64__)
  EXPECT_EQ(Format(p), "linux/arm64");
#endif
}

TEST(PlatformTest, Matches) {
  auto P = [](std::string_view s) { return *ParsePlatform(s); };
  EXPECT_TRUE(Matches(P("linux/amd64"), P("linux/amd64")));
  EXPECT_TRUE(Matches(P("linux/arm64"), P("linux/arm64/v8")));
  EXPECT_TRUE(Matches(P("linux/arm64/v8"), P("linux/arm64")));
  EXPECT_TRUE(Matches(P("linux/arm"), P("linux/arm/v7")));
  EXPECT_TRUE(Matches(P("linux/arm/v7"), Platform{"linux", "arm", "", "", {}}));
  EXPECT_TRUE(Matches(P("amd64"), Platform{"linux", "x86_64", "", "", {}}));
  EXPECT_FALSE(Matches(P("linux/amd64"), P("linux/arm64")));
  EXPECT_FALSE(Matches(P("linux/amd64"), P("windows/amd64")));
  // No variant fallback: an arm/v7 request does not take a v6 image.
  EXPECT_FALSE(Matches(P("linux/arm/v7"), P("linux/arm/v6")));
  EXPECT_FALSE(Matches(P("linux/arm/v6"), P("linux/arm/v7")));
  EXPECT_FALSE(Matches(P("linux/amd64"), P("linux/386")));
  // os_version only counts when asked for.
  Platform win{"windows", "amd64", "", "10.0.17763.1", {}};
  EXPECT_TRUE(Matches(P("windows/amd64"), win));
  EXPECT_TRUE(Matches(win, win));
  EXPECT_FALSE(Matches(win, P("windows/amd64")));
}

}  // namespace
}  // namespace kiln::image
