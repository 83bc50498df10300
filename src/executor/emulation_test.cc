// Unit tests of emulator lookup against binfmt_misc directories written the
// way the kernel prints its entries.
#include "executor/emulation.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;

class EmulationTest : public ::testing::Test {
 protected:
  EmulationTest() {
    char tmpl[] = "/tmp/kiln-binfmt-test-XXXXXX";
    KILN_CHECK(::mkdtemp(tmpl) != nullptr, "mkdtemp");
    dir_ = tmpl;
  }
  ~EmulationTest() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  void Mounted() {
    Write("register", "");
    Write("status", "enabled\n");
  }

  fs::path dir_;
};

// As Debian's qemu-user-static registers aarch64.
constexpr const char* kAarch64 =
    "enabled\n"
    "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
    "flags: PF\n"
    "offset 0\n"
    "magic 7f454c460201010000000000000000000200b700\n"
    "mask ffffffffffffff00fffffffffffffffffeffffff\n";

TEST_F(EmulationTest, FindsTheMatchingHandler) {
  ASSERT_EQ(HostArchitecture(), "amd64") << "these cases assume an amd64 host";
  Mounted();
  Write("qemu-aarch64", kAarch64);
  Write("python3.11",
        "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n");
  Write("qemu-arm",
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: P\noffset 0\n"
        "magic 7f454c4601010100000000000000000002002800\n"
        "mask ffffffffffffff00fffffffffffffffffeffffff\n");
  auto arm64 = FindEmulator("arm64", dir_);
  ASSERT_TRUE(arm64.ok()) << arm64.status().ToString();
  ASSERT_TRUE(arm64->has_value());
  EXPECT_EQ((*arm64)->name, "qemu-aarch64");
  EXPECT_EQ((*arm64)->interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
  EXPECT_TRUE((*arm64)->fix_binary);
  auto arm = FindEmulator("arm", dir_);
  ASSERT_TRUE(arm.ok() && arm->has_value());
  EXPECT_EQ((*arm)->name, "qemu-arm");
  EXPECT_FALSE((*arm)->fix_binary) << "no F flag: the interpreter must be mounted";
  // Native: nothing needed.
  auto native = FindEmulator("amd64", dir_);
  ASSERT_TRUE(native.ok());
  EXPECT_FALSE(native->has_value());
  auto i386 = FindEmulator("386", dir_);
  ASSERT_TRUE(i386.ok());
  EXPECT_FALSE(i386->has_value());
}

TEST_F(EmulationTest, DisabledOrMismatchedHandlersDoNotCount) {
  Mounted();
  std::string disabled = kAarch64;
  disabled.replace(0, 7, "disabled");
  Write("qemu-aarch64", disabled);
  // An s390x program is big-endian: the little-endian aarch64 magic never matches it.
  auto s = FindEmulator("arm64", dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.status().message(),
            "running linux/arm64 programs on this amd64 machine needs an emulator, and no "
            "binfmt_misc handler for aarch64 is registered; install QEMU's with `apt-get install "
            "qemu-user-static binfmt-support`, then check with `update-binfmts --display "
            "qemu-aarch64`");
  Write("qemu-aarch64", kAarch64);
  auto be = FindEmulator("s390x", dir_);
  EXPECT_EQ(be.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(EmulationTest, NotMountedAndUnknownArchitectures) {
  auto s = FindEmulator("riscv64", dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("is not mounted: `mount -t binfmt_misc binfmt_misc " +
                                      dir_.string() + "`"),
            std::string::npos)
      << s.status().message();
  auto bad = FindEmulator("vax", dir_);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "unknown architecture \"vax\" (kiln knows amd64, 386, arm64, arm, ppc64le, s390x, "
            "riscv64, mips64le)");
}

}  // namespace
}  // namespace kiln::executor
