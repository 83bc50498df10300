// Shared by the `kiln build` end-to-end tests: the loopback fixture shared by
// every test of a process, a test base class running the real kiln binary
// with a private root and context, and a reader of plain progress output.
// Thread-safety: used from the gtest main thread only.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.h"
#include "kiln_process.h"
#include "oci_image.h"

namespace kiln::testing {

// The kiln binary under test: KILN_BINARY (set by CMake), or the program
// $KILN_TEST_BINARY names (to try a patched build without rebuilding tests).
inline std::string KilnBinary() {
  const char* e = std::getenv("KILN_TEST_BINARY");
  return e != nullptr && *e != '\0' ? e : KILN_BINARY;
}

inline kiln::fixture::Fixture& SharedFixture() {
  static kiln::fixture::Fixture* f = [] {
    auto started = kiln::fixture::Fixture::Start({});
    KILN_CHECK(started.ok(), started.status().ToString());
    return new kiln::fixture::Fixture(std::move(*started));
  }();
  return *f;
}

// What the progress output says about the step whose name contains `step`:
// "CACHED", "DONE", "ERROR" or "" when the step is not shown.
inline std::string StepState(const std::string& progress, const std::string& step) {
  std::istringstream in(progress);
  std::string line;
  std::string number;
  while (std::getline(in, line)) {
    if (number.empty()) {
      static const std::regex head("^#([0-9]+) (.*)$");
      std::smatch m;
      if (std::regex_match(line, m, head) && m[2].str().find(step) != std::string::npos) {
        number = m[1];
      }
      continue;
    }
    if (line == "#" + number + " CACHED") return "CACHED";
    if (line.rfind("#" + number + " DONE", 0) == 0) return "DONE";
    if (line.rfind("#" + number + " ERROR", 0) == 0) return "ERROR";
  }
  return "";
}

class BuildTest : public ::testing::Test {
 protected:
  BuildTest() : fixture_(SharedFixture()) {
    registry_ = fixture_.Get("REGISTRY");
    http_ = fixture_.Get("HTTP");
  }

  std::filesystem::path root() const { return dir_.path() / "root"; }
  std::filesystem::path ctx() const { return dir_.path() / "ctx"; }
  std::filesystem::path out() const { return dir_.path() / "image.tar"; }

  // The context files of the every-instruction builds: src/a.txt,
  // src/sub/b.txt, owned.txt and archive.tar.gz (holding inner.txt).
  void WriteInstructionContext() {
    WriteFile(ctx() / "src" / "a.txt", "a\n");
    WriteFile(ctx() / "src" / "sub" / "b.txt", "b\n");
    WriteFile(ctx() / "owned.txt", "mine\n");
    WriteFile(dir_.path() / "arc" / "inner.txt", "from the archive\n");
    ASSERT_EQ(std::system(("tar -C " + (dir_.path() / "arc").string() + " -czf " +
                           (ctx() / "archive.tar.gz").string() + " inner.txt")
                              .c_str()),
              0);
  }

  RunResult Build(std::vector<std::string> extra = {}, RunOptions ro = {}) {
    std::vector<std::string> args = {"--root",
                                     root().string(),
                                     "build",
                                     "--progress",
                                     "plain",
                                     "--build-arg",
                                     "REGISTRY=" + registry_,
                                     "--build-arg",
                                     "HTTP=" + http_,
                                     "-o",
                                     "type=oci,dest=" + out().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(ctx().string());
    ro.env.insert(env_.begin(), env_.end());
    return kiln::testing::Run(KilnBinary(), args, ro);
  }

  // `kiln --root ROOT ARGS...`
  RunResult Kiln(std::vector<std::string> args, RunOptions ro = {}) {
    args.insert(args.begin(), {"--root", root().string()});
    ro.env.insert(env_.begin(), env_.end());
    return kiln::testing::Run(KilnBinary(), args, ro);
  }

  OciImage Image() {
    auto img = ReadOciImage(out());
    KILN_CHECK(img.ok(), img.status().ToString());
    return std::move(*img);
  }

  kiln::fixture::Fixture& fixture_;
  // Environment for every kiln run of the test (e.g. KILN_SNAPSHOTTER).
  std::map<std::string, std::string> env_;
  std::string registry_;
  std::string http_;
  TempDir dir_{"kiln-build-test"};
};

}  // namespace kiln::testing
