// More end-to-end tests of `kiln build` (see build_test.cc for the setup):
// cancellation and a clean rebuild, hostile base-image layers, RUN mounts and
// network modes, --target / --no-cache-filter, users by name, the copy
// snapshotter, `kiln du` / `kiln prune`, and reproducible output archives.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "build_harness.h"
#include "canary_disk.h"
#include "kiln_process.h"
#include "oci_image.h"
#include "oci_layout_writer.h"
#include "util/digest.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln::testing::BuildTest;
using kiln::testing::Describe;
using kiln::testing::OciImage;
using kiln::testing::ReadAll;
using kiln::testing::RunOptions;
using kiln::testing::RunResult;
using kiln::testing::StepState;
using kiln::testing::TarEntry;
using Layer = std::vector<TarEntry>;
using kiln::testing::WriteFile;

// A name no other test (or earlier run) uses: pid plus random bits.
std::string UniqueName(const std::string& prefix) {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d-%08x", static_cast<int>(::getpid()), rd());
  return prefix + "-" + buf;
}

// Entries of a directory, or an empty list if it does not exist.
std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  return out;
}

// "build snapshots" -> count, from `kiln du`'s table.
std::map<std::string, long> DuCounts(const std::string& table) {
  std::map<std::string, long> out;
  std::istringstream in(table);
  std::string line;
  static const std::regex row("^(.*[a-z]) +([0-9]+)  .*$");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, row)) out[m[1]] = std::stol(m[2]);
  }
  return out;
}

std::string Sha256OfFile(const fs::path& p) {
  auto d = kiln::util::Sha256OfFile(p);
  KILN_CHECK(d.ok(), d.status().ToString());
  return d->str();
}

// A test run once per snapshotter driver ("overlay", "copy").
class PerDriverTest : public BuildTest, public ::testing::WithParamInterface<std::string> {
 protected:
  PerDriverTest() { env_["KILN_SNAPSHOTTER"] = GetParam(); }
  // The snapshotter's directory (docs/snapshots.md).
  fs::path snapshots() const {
    return root() / (GetParam() == "copy" ? "snapshots-copy" : "snapshots");
  }
};

std::string DriverName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// ------------------------------------------------------------ cancellation

using InterruptTest = PerDriverTest;
INSTANTIATE_TEST_SUITE_P(Drivers, InterruptTest, ::testing::Values("overlay", "copy"), DriverName);

TEST_P(InterruptTest, InterruptedRunLeavesNothingAndRebuildReusesEarlierSteps) {
  // The marker is computed by the shell so that the step's name, also
  // printed on stderr, does not contain it.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo first > /first\n"
            "RUN echo long-step-$((40+2)) && sleep 600\n");
  RunOptions ro;
  ro.interrupt_after = "long-step-42";
  RunResult r = Build({}, ro);
  EXPECT_EQ(r.exit_code, 130) << Describe(r);
  EXPECT_NE(r.err.find("cancelled"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out()));

  // No container is left in the runtime's state.
  RunResult list = kiln::testing::Run(
      "/usr/bin/crun", {"--root", (root() / "executor" / "runtime").string(), "list", "-q"});
  EXPECT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_EQ(list.out, "") << "containers left behind";
  EXPECT_TRUE(Entries(root() / "executor" / "bundles").empty())
      << "bundles left behind in " << (root() / "executor" / "bundles");

  // Exactly one build snapshot (RUN echo first) exists; the interrupted
  // step's Active was discarded and nothing is half-made or still mounted.
  RunResult du = Kiln({"du"});
  ASSERT_EQ(du.exit_code, 0) << Describe(du);
  EXPECT_EQ(DuCounts(du.out)["build snapshots"], 1) << du.out;
  EXPECT_TRUE(fs::is_directory(snapshots())) << snapshots();
  EXPECT_TRUE(Entries(snapshots() / ".tmp").empty()) << "leftover in " << (snapshots() / ".tmp");
  EXPECT_TRUE(Entries(snapshots() / ".mounts").empty())
      << "leftover in " << (snapshots() / ".mounts");

  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo first > /first\n"
            "RUN echo quick > /quick\n");
  RunResult again = Build();
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(StepState(again.err, "RUN echo first"), "CACHED") << again.err;
  EXPECT_EQ(StepState(again.err, "RUN echo quick"), "DONE") << again.err;
  OciImage img = Image();
  EXPECT_EQ(img.files["first"].data, "first\n");
  EXPECT_EQ(img.files["quick"].data, "quick\n");
  EXPECT_TRUE(img.files.count("bin/busybox"));
}

// ------------------------------------------------------------ hostile layers

class HostileLayerTest : public PerDriverTest {
 protected:
  // Pushes an image with `layers` (bottom first) to REGISTRY/<repo>:v1 and
  // builds `dockerfile`, which names the image as ${HOSTILE} (by default:
  // the base image). Returns the build's result.
  RunResult BuildFrom(const std::string& repo, const std::vector<std::vector<TarEntry>>& layers,
                      const std::string& dockerfile = "ARG HOSTILE\nFROM ${HOSTILE}\nENV A=b\n") {
    const fs::path layout = dir_.path() / ("layout-" + repo);
    auto written = kiln::testing::WriteOciLayout(layout, "v1", layers);
    KILN_CHECK(written.ok(), written.status().ToString());
    const std::string ref = registry_ + "/" + repo + ":v1";
    RunResult copy = Kiln({"copy", "oci-layout://" + layout.string() + ":v1", ref});
    KILN_CHECK(copy.exit_code == 0, Describe(copy));
    WriteFile(ctx() / "Dockerfile", dockerfile);
    return Build({"--build-arg", "HOSTILE=" + ref});
  }
  // Nothing named `name` appeared anywhere a traversal from the snapshot
  // directories could reach.
  void ExpectNowhere(const std::string& name) {
    for (fs::path p = snapshots() / ".tmp" / "x" / "fs";; p = p.parent_path()) {
      EXPECT_FALSE(fs::exists(fs::symlink_status(p / name))) << p / name;
      if (p == p.root_path()) break;
    }
    EXPECT_FALSE(fs::exists(fs::symlink_status(fs::temp_directory_path() / name)));
  }
};
INSTANTIATE_TEST_SUITE_P(Drivers, HostileLayerTest, ::testing::Values("overlay", "copy"),
                         DriverName);

TEST_P(HostileLayerTest, PathTraversalIsRefusedWithTheEntryName) {
  const std::string name = UniqueName("kiln-escape");
  std::string up;
  for (int i = 0; i < 16; ++i) up += "../";
  const std::string deep = up + "tmp/" + name;
  RunResult r =
      BuildFrom(UniqueName("hostile-traversal"), {Layer{{"ok.txt", 'f', "fine\n"},
                                                        {"../../" + name, 'f', "escaped\n"},
                                                        {deep, 'f', "escaped\n"}}});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("layer entry \"../../" + name + "\": path escapes the layer root"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out()));
  ExpectNowhere(name);
  EXPECT_FALSE(fs::exists("/tmp/" + name));
}

TEST_P(HostileLayerTest, SymlinkOutOfTheRootIsNotFollowed) {
  // A real directory on the host the symlink points at: it must stay empty.
  kiln::testing::TempDir outside("kiln-symlink-target");
  RunResult r = BuildFrom(
      UniqueName("hostile-symlink"),
      {Layer{{"evil", 'l', outside.path().string(), 0777}, {"evil/pwned", 'f', "escaped\n"}}});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("layer entry \"evil/pwned\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("parent directory \"evil\" is a symlink to a directory missing from the "
                       "layer"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(Entries(outside.path()).empty()) << "wrote into " << outside.path();
  EXPECT_FALSE(fs::exists(out()));
}

TEST_P(HostileLayerTest, SymlinkFromALowerLayerIsNotFollowed) {
  // Layer 1 plants `lib -> <host dir>`; layer 2 writes `lib/pwned`. The
  // overlay driver unpacks layer 2 into an empty upper dir, where `lib` is a
  // new real directory hiding the symlink; the copy driver unpacks it over a
  // copy of layer 1 and gives the same verdict (issue 15: it used to refuse
  // the entry): the lower symlink is replaced by a directory of layer 2.
  // Either way the host directory stays empty.
  kiln::testing::TempDir outside("kiln-lower-symlink-target");
  RunResult r = BuildFrom(
      UniqueName("hostile-lower-symlink"),
      {Layer{{"lib", 'l', outside.path().string(), 0777}}, Layer{{"lib/pwned", 'f', "inside\n"}}},
      "ARG REGISTRY\nARG HOSTILE\nFROM ${REGISTRY}/busybox:latest\nARG HOSTILE\n"
      "COPY --from=${HOSTILE} /lib/pwned /got\n");
  EXPECT_TRUE(Entries(outside.path()).empty()) << "wrote into " << outside.path();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["got"].data, "inside\n") << "lib is a real directory in the image";
}

TEST_P(HostileLayerTest, SymlinkClimbingUpStaysInsideTheRoot) {
  // `up -> ../../..` resolves inside the layer root (as if it were /), so
  // `up/inside` is written at the root of the image: nothing escapes.
  const std::string name = UniqueName("kiln-climb");
  // The base image's layer is exported as it is, so look at what Apply
  // made through COPY --from, which reads the unpacked snapshot.
  RunResult r =
      BuildFrom(UniqueName("hostile-climb"),
                {Layer{{"up", 'l', "../../..", 0777}, {"up/" + name, 'f', "contained\n"}}},
                "ARG REGISTRY\nARG HOSTILE\nFROM ${REGISTRY}/busybox:latest\nARG HOSTILE\n"
                "COPY --from=${HOSTILE} /" +
                    name + " /got\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectNowhere(name);
  OciImage img = Image();
  EXPECT_EQ(img.files["got"].data, "contained\n");
}

TEST_P(HostileLayerTest, HardLinksToOutsidePathsAreRefused) {
  kiln::testing::TempDir outside("kiln-hardlink-target");
  const fs::path secret = outside.path() / "secret";
  WriteFile(secret, "host secret\n");
  std::string up;
  for (int i = 0; i < 16; ++i) up += "../";
  const std::string relative = up + secret.relative_path().string();

  RunResult rel = BuildFrom(UniqueName("hostile-hardlink-rel"),
                            {Layer{{"ok.txt", 'f', "fine\n"}, {"stolen", 'h', relative}}});
  EXPECT_EQ(rel.exit_code, 1) << Describe(rel);
  EXPECT_NE(rel.err.find("layer entry \"stolen\": hard link target \"" + relative +
                         "\" escapes the layer root"),
            std::string::npos)
      << rel.err;

  RunResult abs = BuildFrom(UniqueName("hostile-hardlink-abs"),
                            {Layer{{"ok.txt", 'f', "fine\n"}, {"stolen", 'h', secret.string()}}});
  EXPECT_EQ(abs.exit_code, 1) << Describe(abs);
  EXPECT_NE(abs.err.find("layer entry \"stolen\": hard link target \"" + secret.string() +
                         "\" is not in the layer"),
            std::string::npos)
      << abs.err;

  struct stat st {};
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "a link to the host file was made";
  EXPECT_EQ(ReadAll(secret), "host secret\n");
  EXPECT_FALSE(fs::exists(out()));
}

using kiln::testing::CanaryDisk;

// Guards issue 15 failure 5: a base image whose /bin/sh is a trojan, built
// by a Dockerfile that only says `RUN echo hello`, read and wrote the
// host's disks through a block node its layer ships and one it makes with
// mknod. A real loop device with a canary file: nothing is read or written.
TEST_P(HostileLayerTest, TrojanShellCannotOpenHostBlockDevices) {
  CanaryDisk disk(dir_.path() / "canary.img");
  ASSERT_TRUE(disk.ok()) << "losetup failed";
  const std::string mm = disk.numbers();
  const std::string trojan =
      "#!/bin/busybox sh\n"
      "/bin/busybox dd if=/disk of=/stolen-shipped bs=512 count=1\n"
      "/bin/busybox mknod /made b " +
      mm.substr(0, mm.find(':')) + " " + mm.substr(mm.find(':') + 1) +
      "\n"
      "/bin/busybox dd if=/made of=/stolen-made bs=512 count=1\n"
      "echo pwned | /bin/busybox dd of=/disk conv=notrunc\n"
      "echo pwned | /bin/busybox dd of=/made conv=notrunc\n"
      "exec /bin/busybox sh \"$@\"\n";
  const std::pair<long, long> io_before = disk.Io();
  RunResult r = BuildFrom(UniqueName("hostile-disk"),
                          {Layer{{"bin/busybox", 'f', ReadAll("/bin/busybox"), 0755},
                                 {"bin/sh", 'f', trojan, 0755},
                                 {"disk", 'b', mm, 0666}}},
                          "ARG HOSTILE\nFROM ${HOSTILE}\nRUN echo hello\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["stolen-shipped"].data, "") << "read through the layer's node";
  EXPECT_EQ(f["stolen-made"].data, "") << "read through a node made by RUN";
  EXPECT_TRUE(disk.untouched()) << "the canary was written";
  EXPECT_EQ(disk.Io(), io_before) << "the loop device served a request";
}

// ------------------------------------------------------------ RUN mounts

using RunMountTest = BuildTest;

TEST_F(RunMountTest, CacheMountPersistsAcrossBuilds) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=cache,target=/cache "
            "(cat /cache/runs 2>/dev/null || true) > /seen && echo run >> /cache/runs\n");
  RunResult first = Build({"--no-cache"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  OciImage one = Image();
  EXPECT_EQ(one.files["seen"].data, "");
  EXPECT_EQ(one.files.count("cache/runs"), 0u) << "the cache's content is not in the image";

  RunResult second = Build({"--no-cache"});
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(StepState(second.err, "RUN --mount=type=cache"), "DONE") << second.err;
  OciImage two = Image();
  EXPECT_EQ(two.files["seen"].data, "run\n") << "the second build saw the first one's file";
  EXPECT_EQ(two.files.count("cache/runs"), 0u);
}

TEST_F(RunMountTest, TmpfsMountLeavesNothingInTheImage) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=tmpfs,target=/t echo x > /t/f && ls /t > /listed && "
            "grep ' /t tmpfs ' /proc/mounts | cut -d' ' -f3 > /fstype\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["listed"].data, "f\n");
  EXPECT_EQ(f["fstype"].data, "tmpfs\n");
  EXPECT_EQ(f.count("t/f"), 0u);
  EXPECT_EQ(f.count("t"), 0u) << "no mount point stub left behind";
}

TEST_F(RunMountTest, BindMountFromAnotherStage) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS stage\n"
            "RUN mkdir /x && echo from-stage > /x/file && echo other > /other\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=bind,from=stage,source=/x,target=/y cat /y/file > /got && "
            "ls /y > /listing\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["got"].data, "from-stage\n");
  EXPECT_EQ(f["listing"].data, "file\n") << "only the selected directory is mounted";
  EXPECT_EQ(f.count("y"), 0u);
  EXPECT_EQ(f.count("x"), 0u);
  EXPECT_EQ(f.count("other"), 0u);
}

TEST_F(RunMountTest, BindMountOfTheContextIsReadOnly) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=bind,target=/ctx cat /ctx/in.txt > /got && "
            "(touch /ctx/new 2>/dev/null && echo writable || echo read-only) > /mode\n");
  WriteFile(ctx() / "in.txt", "context data\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["got"].data, "context data\n");
  EXPECT_EQ(f["mode"].data, "read-only\n");
  EXPECT_FALSE(fs::exists(ctx() / "new")) << "the RUN wrote into the context";
  EXPECT_EQ(f.count("ctx"), 0u);
  EXPECT_EQ(f.count("ctx/in.txt"), 0u);

  // The context's content is part of the step's cache key.
  RunResult same = Build();
  ASSERT_EQ(same.exit_code, 0) << Describe(same);
  EXPECT_EQ(StepState(same.err, "RUN --mount=type=bind"), "CACHED") << same.err;
  WriteFile(ctx() / "in.txt", "changed\n");
  RunResult changed = Build();
  ASSERT_EQ(changed.exit_code, 0) << Describe(changed);
  EXPECT_EQ(StepState(changed.err, "RUN --mount=type=bind"), "DONE") << changed.err;
  EXPECT_EQ(Image().files["got"].data, "changed\n");
}

TEST_F(RunMountTest, NetworkNoneHasOnlyLoopback) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --network=none cat /proc/net/dev > /netdev\n"
            "RUN cat /proc/net/dev > /defaultdev\n"
            "RUN --network=host cat /proc/net/dev > /hostdev\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  auto interfaces = [](const std::string& dev) {
    std::set<std::string> names;
    std::istringstream in(dev);
    std::string line;
    while (std::getline(in, line)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      names.insert(name);
    }
    return names;
  };
  EXPECT_EQ(interfaces(f["netdev"].data), std::set<std::string>{"lo"}) << f["netdev"].data;
  // Issue 15: the default is a namespace of the step's own (slirp4netns's
  // tap0), the host's network only on request.
  EXPECT_EQ(interfaces(f["defaultdev"].data), (std::set<std::string>{"lo", "tap0"}))
      << f["defaultdev"].data;
  EXPECT_EQ(interfaces(f["hostdev"].data), interfaces(ReadAll("/proc/net/dev")))
      << "--network=host is the host's network: " << f["hostdev"].data;
}

// ------------------------------------------------------------ stage selection

using StageTest = BuildTest;

TEST_F(StageTest, TargetBuildsOnlyThatStage) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS base\n"
            "RUN echo base > /base\n"
            "FROM base AS mid\n"
            "RUN echo mid > /mid\n"
            "CMD [\"mid\"]\n"
            "FROM mid AS final\n"
            "RUN echo final > /final\n"
            "CMD [\"final\"]\n");
  RunResult r = Build({"--target", "mid"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(StepState(r.err, "RUN echo mid"), "DONE") << r.err;
  EXPECT_EQ(StepState(r.err, "RUN echo final"), "") << r.err;
  OciImage img = Image();
  EXPECT_EQ(img.files["base"].data, "base\n");
  EXPECT_EQ(img.files["mid"].data, "mid\n");
  EXPECT_EQ(img.files.count("final"), 0u);
  EXPECT_EQ(json::parse(img.config_json)["config"]["Cmd"], json::array({"mid"}));
}

TEST_F(StageTest, NoCacheFilterOnTheLastStageRerunsOnlyItsSteps) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS a\n"
            "RUN echo a > /a\n"
            "FROM ${REGISTRY}/busybox:latest AS final\n"
            "RUN echo last > /last\n"
            "COPY --from=a /a /a\n"
            "RUN cat /a /last > /both\n");
  RunResult first = Build();
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(StepState(first.err, "RUN echo a"), "DONE") << first.err;

  RunResult second = Build({"--no-cache-filter", "final"});
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(StepState(second.err, "RUN echo last"), "DONE") << second.err;
  EXPECT_EQ(StepState(second.err, "COPY --from=a"), "DONE") << second.err;
  EXPECT_EQ(StepState(second.err, "RUN cat /a /last"), "DONE") << second.err;
  EXPECT_NE(StepState(second.err, "RUN echo a"), "DONE") << second.err;
  EXPECT_EQ(Image().files["both"].data, "a\nlast\n");

  RunResult third = Build();
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_EQ(StepState(third.err, "RUN cat /a /last"), "CACHED") << third.err;
}

// The filtered stage runs even though every later step is in the cache
// (the later steps are then found in the cache again: their keys do not
// depend on the rerun's result).
TEST_F(StageTest, NoCacheFilterOnAnEarlierStageRerunsItsSteps) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS a\n"
            "RUN echo a > /a\n"
            "FROM ${REGISTRY}/busybox:latest AS b\n"
            "RUN echo b > /b\n"
            "RUN echo b2 > /b2\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo last > /last\n"
            "COPY --from=a /a /a\n"
            "COPY --from=b /b /b2 /\n");
  RunResult first = Build();
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(StepState(first.err, "RUN echo b2"), "DONE") << first.err;

  RunResult second = Build({"--no-cache-filter", "b"});
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(StepState(second.err, "RUN echo b >"), "DONE") << second.err;
  EXPECT_EQ(StepState(second.err, "RUN echo b2"), "DONE") << second.err;
  EXPECT_NE(StepState(second.err, "RUN echo a"), "DONE") << second.err;
  EXPECT_NE(StepState(second.err, "RUN echo last"), "DONE") << second.err;
  EXPECT_EQ(StepState(second.err, "COPY --from=b"), "CACHED") << second.err;
  auto f = Image().files;
  EXPECT_EQ(f["a"].data, "a\n");
  EXPECT_EQ(f["b"].data, "b\n");
  EXPECT_EQ(f["b2"].data, "b2\n");
  EXPECT_EQ(f["last"].data, "last\n");
}

// ------------------------------------------------------------ users

using UserTest = BuildTest;

TEST_F(UserTest, UserAndChownByNameAfterEditingPasswd) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo 'app:x:1234:2345:app:/home/app:/bin/sh' >> /etc/passwd && "
            "echo 'appgrp:x:2345:' >> /etc/group && echo 'other:x:3456:' >> /etc/group && "
            "mkdir -p /home/app && chown 1234:2345 /home/app\n"
            "COPY --chown=app:other owned.txt /owned.txt\n"
            "COPY --chown=app owned.txt /owned-default-group.txt\n"
            "USER app\n"
            "RUN id > /home/app/id && touch /home/app/made\n");
  WriteFile(ctx() / "owned.txt", "mine\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  auto& f = img.files;
  EXPECT_EQ(f["home/app/id"].data.rfind("uid=1234(app) gid=2345(appgrp)", 0), 0u)
      << f["home/app/id"].data;
  EXPECT_EQ(f["home/app/made"].uid, 1234);
  EXPECT_EQ(f["home/app/made"].gid, 2345);
  EXPECT_EQ(f["owned.txt"].uid, 1234);
  EXPECT_EQ(f["owned.txt"].gid, 3456);
  EXPECT_EQ(f["owned-default-group.txt"].uid, 1234);
  EXPECT_EQ(f["owned-default-group.txt"].gid, 2345) << "the user's primary group";
  EXPECT_EQ(json::parse(img.config_json)["config"]["User"], "app");
}

TEST_F(UserTest, ChownToAnUnknownNameNamesIt) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY --chown=nosuchuser owned.txt /owned.txt\n");
  WriteFile(ctx() / "owned.txt", "mine\n");
  RunResult r = Build();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("nosuchuser"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out()));
}

// ------------------------------------------------------------ copy snapshotter

using CopySnapshotterTest = BuildTest;

TEST_F(CopySnapshotterTest, EveryInstructionTakesEffectWithTheCopyDriver) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "ENV GREETING=hello\n"
            "WORKDIR /app\n"
            "COPY src/ ./src/\n"
            "COPY --chown=1000:1000 --chmod=640 owned.txt /app/owned.txt\n"
            "ADD archive.tar.gz /app/unpacked/\n"
            "RUN echo \"$GREETING from run\" > /app/run.txt && rm /etc/group && "
            "rm -r /app/src/sub && ln -s run.txt /app/link && ln /app/run.txt /app/hard\n"
            "USER 1000\n"
            "RUN id -u > /tmp/uid\n");
  WriteInstructionContext();
  if (HasFatalFailure()) return;
  RunOptions ro;
  ro.env["KILN_SNAPSHOTTER"] = "copy";
  RunResult r = Build({}, ro);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadAll(root() / "snapshots-copy" / ".driver").substr(0, 4), "copy");
  EXPECT_FALSE(fs::exists(root() / "snapshots")) << "the overlay directory was not used";

  OciImage img = Image();
  auto& f = img.files;
  ASSERT_TRUE(f.count("bin/busybox"));
  EXPECT_EQ(f["app/src/a.txt"].data, "a\n");
  EXPECT_EQ(f.count("app/src/sub/b.txt"), 0u) << "removed by RUN";
  EXPECT_EQ(f.count("app/src/sub"), 0u);
  EXPECT_EQ(f["app/owned.txt"].data, "mine\n");
  EXPECT_EQ(f["app/owned.txt"].uid, 1000);
  EXPECT_EQ(f["app/owned.txt"].gid, 1000);
  EXPECT_EQ(f["app/owned.txt"].mode, 0640u);
  EXPECT_EQ(f["app/unpacked/inner.txt"].data, "from the archive\n");
  EXPECT_EQ(f["app/run.txt"].data, "hello from run\n");
  EXPECT_EQ(f["app/link"].type, 'l');
  EXPECT_EQ(f["app/link"].data, "run.txt");
  EXPECT_EQ(f["app/hard"].data, "hello from run\n");
  EXPECT_EQ(f.count("etc/group"), 0u) << "a file deleted by RUN is whited out";
  EXPECT_EQ(f["tmp/uid"].data, "1000\n");

  // The same build with the overlay driver gives the same layers.
  const std::string copy_digest = r.out;
  const std::vector<std::string> copy_layers = img.layer_digests;
  RunResult overlay = Build();
  ASSERT_EQ(overlay.exit_code, 0) << Describe(overlay);
  OciImage img2 = Image();
  // The RUN layers hold files with fresh mtimes, so compare content only.
  EXPECT_EQ(img2.files["app/run.txt"].data, f["app/run.txt"].data);
  EXPECT_EQ(img2.files.count("etc/group"), 0u);
  EXPECT_EQ(img2.files.count("app/src/sub"), 0u);
  EXPECT_EQ(img2.layer_digests.size(), copy_layers.size());
}

// ------------------------------------------------------------ du and prune

using DuPruneTest = BuildTest;

TEST_F(DuPruneTest, PruneEmptiesTheCacheAndARebuildRunsEverything) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY one.txt /one.txt\n"
            "RUN echo ran > /ran\n");
  WriteFile(ctx() / "one.txt", "1\n");
  RunResult first = Build();
  ASSERT_EQ(first.exit_code, 0) << Describe(first);

  RunResult du = Kiln({"du"});
  ASSERT_EQ(du.exit_code, 0) << Describe(du);
  auto counts = DuCounts(du.out);
  EXPECT_EQ(counts["build snapshots"], 2) << du.out;  // COPY, RUN
  EXPECT_GE(counts["image layers"], 1) << du.out;
  EXPECT_GE(counts["content blobs"], 3) << du.out;  // manifest, config, layer(s)
  EXPECT_GE(counts["cache records"], 2) << du.out;

  RunResult prune = Kiln({"prune"});
  ASSERT_EQ(prune.exit_code, 0) << Describe(prune);
  EXPECT_EQ(prune.out.rfind("removed ", 0), 0u) << prune.out;

  RunResult after = Kiln({"du"});
  ASSERT_EQ(after.exit_code, 0) << Describe(after);
  auto pruned = DuCounts(after.out);
  EXPECT_EQ(pruned["build snapshots"], 0) << after.out;
  EXPECT_EQ(pruned["cache records"], 0) << after.out;
  EXPECT_EQ(pruned.size(), 4u) << after.out;

  RunResult rebuild = Build();
  ASSERT_EQ(rebuild.exit_code, 0) << Describe(rebuild);
  EXPECT_EQ(StepState(rebuild.err, "COPY one.txt"), "DONE") << rebuild.err;
  EXPECT_EQ(StepState(rebuild.err, "RUN echo ran"), "DONE") << rebuild.err;
  auto f = Image().files;
  EXPECT_EQ(f["one.txt"].data, "1\n");
  EXPECT_EQ(f["ran"].data, "ran\n");
  EXPECT_TRUE(f.count("bin/busybox"));
}

// ------------------------------------------------------------ killed builds

using KilledBuildTest = BuildTest;

// Processes whose command line is exactly `sleep SECONDS`.
int CountSleepers(const std::string& seconds) {
  int n = 0;
  const std::string want = std::string("sleep") + '\0' + seconds + '\0';
  for (const auto& e : fs::directory_iterator("/proc")) {
    if (ReadAll(e.path() / "cmdline") == want) ++n;
  }
  return n;
}

// Entries of a directory ("" when it does not exist).
std::set<std::string> DirEntries(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    out.insert(it->path().filename());
  }
  return out;
}

// Guards issue 15 failure 7: a kiln killed by SIGKILL during `RUN sleep`
// left the container running (crun re-parents it), writing into a snapshot
// that `kiln prune` then deleted, and left its temporary files (bundles,
// runtime state, snapshot temp entries) for ever. Now: the container dies
// within 2 s of kiln; a kiln on the same root while the build is alive
// touches nothing of it; the next one reaps what the killed one left and
// says so.
TEST_F(KilledBuildTest, ContainerDiesWithKilnAndTheNextKilnReapsItsLeftovers) {
  const std::string seconds = "1000" + std::to_string(getpid() % 100000);
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo data > /file && sleep " +
                seconds + "\n");
  const fs::path log = dir_.path() / "killed.log";
  std::vector<std::string> args = {kiln::testing::KilnBinary(),
                                   "--root",
                                   root().string(),
                                   "build",
                                   "--progress",
                                   "plain",
                                   "--build-arg",
                                   "REGISTRY=" + registry_,
                                   "-o",
                                   "type=oci,dest=" + out().string(),
                                   ctx().string()};
  pid_t kiln = fork();
  ASSERT_GE(kiln, 0);
  if (kiln == 0) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::unsetenv("KILN_ROOT");
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (CountSleepers(seconds) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(CountSleepers(seconds), 1) << ReadAll(log);

  // A kiln on the same root while the build lives: nothing of it is reaped.
  const std::set<std::string> bundles = DirEntries(root() / "executor/bundles");
  ASSERT_EQ(bundles.size(), 1u);
  RunResult during = Kiln({"du"});
  ASSERT_EQ(during.exit_code, 0) << Describe(during);
  EXPECT_EQ(during.err.find("reaped"), std::string::npos) << during.err;
  EXPECT_EQ(CountSleepers(seconds), 1) << "a live build's container was killed";
  EXPECT_EQ(DirEntries(root() / "executor/bundles"), bundles);

  ASSERT_EQ(::kill(kiln, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(kiln, &status, 0), kiln);
  const auto killed = std::chrono::steady_clock::now();
  while (CountSleepers(seconds) > 0 &&
         std::chrono::steady_clock::now() - killed < std::chrono::seconds(2)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(CountSleepers(seconds), 0) << "the container outlived kiln";
  EXPECT_FALSE(DirEntries(root() / "snapshots/.tmp").empty()) << "nothing left to reap?";
  EXPECT_FALSE(DirEntries(root() / "executor/bundles").empty());

  // The next kiln to take the root lock reaps it all, and says so.
  RunResult next = Kiln({"du"});
  ASSERT_EQ(next.exit_code, 0) << Describe(next);
  EXPECT_TRUE(std::regex_search(next.err,
                                std::regex("reaped [0-9]+ stale items \\([0-9.]+ ?[kMG]?B\\) left "
                                           "by a killed kiln\n")))
      << next.err;
  EXPECT_EQ(DirEntries(root() / "executor/bundles"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "executor/runtime"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "snapshots/.tmp"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "snapshots/.mounts"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "content/ingest"), std::set<std::string>{});
  for (const std::string& id : bundles) {
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/devices/kiln/" + id)) << "cgroup of " << id;
  }
  RunResult again = Kiln({"du"});
  EXPECT_EQ(again.err.find("reaped"), std::string::npos) << again.err;

  // And the root still builds.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo ok > /ok\n");
  RunResult rebuild = Build();
  ASSERT_EQ(rebuild.exit_code, 0) << Describe(rebuild);
  EXPECT_EQ(Image().files["ok"].data, "ok\n");
}

// Guards issue 15 failure 7 (prune): `kiln prune` after a killed build
// collects its leftovers too, and only then removes snapshots.
TEST_F(KilledBuildTest, PruneReapsWhatAKilledKilnLeft) {
  // Leftovers as a killed kiln leaves them: a registered owner that is no
  // longer locked, its temp entries, and an untagged entry of an older kiln.
  const std::string tag = "k0123456789ab";
  fs::create_directories(root() / "owners");
  WriteFile(root() / "owners" / tag, "");
  WriteFile(root() / "snapshots/.tmp" / (tag + "-abc/fs/big"), std::string(1 << 20, 'x'));
  fs::create_directories(root() / "snapshots/.mounts" / (tag + "-abc"));
  const std::string id = tag + "-0011223344556677";
  WriteFile(root() / "executor/bundles" / id / "config.json", "{}");
  WriteFile(root() / "executor/runtime" / id / "status", "{}");
  WriteFile(root() / "content/ingest" / (tag + "-AbCdEf"), std::string(4096, 'y'));
  WriteFile(root() / "snapshots/.tmp/legacy/fs/f", "old");
  // The container still runs (as one left by a kiln without the PID
  // namespace fix would): a process in its cgroup.
  const std::string seconds = "2000" + std::to_string(getpid() % 100000);
  pid_t sleeper = fork();
  ASSERT_GE(sleeper, 0);
  if (sleeper == 0) {
    ::execl("/bin/sleep", "sleep", seconds.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const fs::path cgroup = "/sys/fs/cgroup/devices/kiln/" + id;
  fs::create_directories(cgroup);
  WriteFile(cgroup / "cgroup.procs", std::to_string(sleeper));
  RunResult prune = Kiln({"prune"});
  ASSERT_EQ(prune.exit_code, 0) << Describe(prune);
  int status = 0;
  pid_t waited = 0;
  for (int i = 0; i < 200 && waited == 0; ++i) {
    waited = ::waitpid(sleeper, &status, WNOHANG);
    if (waited == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (waited == 0) {  // not reaped: stop it here so the test ends
    ::kill(sleeper, SIGKILL);
    ::waitpid(sleeper, &status, 0);
    ADD_FAILURE() << "prune left the stale container running";
  } else {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  EXPECT_FALSE(fs::exists(cgroup));
  EXPECT_NE(prune.err.find("reaped 6 stale items ("), std::string::npos) << prune.err;
  EXPECT_EQ(DirEntries(root() / "executor/runtime"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "snapshots/.tmp"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "snapshots/.mounts"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "executor/bundles"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "content/ingest"), std::set<std::string>{});
  EXPECT_EQ(DirEntries(root() / "owners"), std::set<std::string>{});
}

// ------------------------------------------------------------ reproducibility

using ReproducibleTest = BuildTest;

TEST_F(ReproducibleTest, UnchangedRebuildWritesAByteIdenticalArchive) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY one.txt /one.txt\n"
            "RUN echo ran > /ran\n"
            "LABEL a=b\n");
  WriteFile(ctx() / "one.txt", "1\n");
  RunResult first = Build({"-t", "kiln-test/repro:v1"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  const std::string sum1 = Sha256OfFile(out());
  const std::string tar1 = ReadAll(out());
  fs::remove(out());

  RunResult second = Build({"-t", "kiln-test/repro:v1"});
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(second.out, first.out);
  EXPECT_EQ(Sha256OfFile(out()), sum1);
  EXPECT_EQ(ReadAll(out()) == tar1, true) << "the archives differ";
}

// SOURCE_DATE_EPOCH (issue 6): two fresh state roots, the same inputs, the
// same image digest; files of new layers dated no later than the epoch, the
// base image's layers and history left alone.
TEST_F(ReproducibleTest, SourceDateEpochGivesTheSameImageOnFreshRoots) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY one.txt /one.txt\n"
            "RUN mkdir -p /made && echo ran > /made/ran && touch /one-more\n"
            "ENV X=1\n");
  WriteFile(ctx() / "one.txt", "1\n");
  RunOptions with_env;
  with_env.env["SOURCE_DATE_EPOCH"] = "1700000000";
  RunResult first = Build({}, with_env);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  OciImage img = Image();
  fs::remove(out());

  // Another root; the epoch as a build arg this time (buildx passes the
  // environment's value as that build arg, so the records agree too).
  std::vector<std::string> args = {"--root",
                                   (dir_.path() / "root2").string(),
                                   "build",
                                   "--progress",
                                   "plain",
                                   "--build-arg",
                                   "REGISTRY=" + registry_,
                                   "--build-arg",
                                   "HTTP=" + http_,
                                   "--build-arg",
                                   "SOURCE_DATE_EPOCH=1700000000",
                                   "-o",
                                   "type=oci,dest=" + out().string(),
                                   ctx().string()};
  RunResult second = kiln::testing::Run(kiln::testing::KilnBinary(), args);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(StepState(second.err, "RUN mkdir"), "DONE") << "a fresh root runs everything";
  EXPECT_EQ(second.out, first.out) << "same image digest";
  OciImage img2 = Image();
  EXPECT_EQ(img2.config_json, img.config_json);

  nlohmann::json config = nlohmann::json::parse(img.config_json);
  EXPECT_EQ(config["created"], "2023-11-14T22:13:20Z");
  const auto& history = config["history"];
  ASSERT_GE(history.size(), 3u);
  EXPECT_NE(history[0]["created"], "2023-11-14T22:13:20Z") << "the base image's entry is kept";
  EXPECT_EQ(history[history.size() - 1]["created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(img.files["made/ran"].mtime, 1700000000) << "clamped";
  EXPECT_EQ(img.files["one-more"].mtime, 1700000000);
  EXPECT_LE(img.files["one.txt"].mtime, 1700000000);

  // Another epoch: another image.
  fs::remove(out());
  with_env.env["SOURCE_DATE_EPOCH"] = "1700000001";
  RunResult third = Build({}, with_env);
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_NE(third.out, first.out);

  with_env.env["SOURCE_DATE_EPOCH"] = "yesterday";
  RunResult bad = Build({}, with_env);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("SOURCE_DATE_EPOCH=\"yesterday\" is not a number of seconds since 1970"),
            std::string::npos)
      << bad.err;
}

TEST_F(RunMountTest, BindMountOfTheContextHonoursDockerignore) {
  // Regression: the context directory itself was bind-mounted, so files
  // .dockerignore hides from the build were visible to RUN.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=bind,target=/ctx ls -A /ctx > /listing\n");
  WriteFile(ctx() / ".dockerignore", "secret.txt\n");
  WriteFile(ctx() / "secret.txt", "hidden\n");
  WriteFile(ctx() / "app.txt", "app\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["listing"].data, ".dockerignore\nDockerfile\napp.txt\n");
}

TEST_F(RunMountTest, BindMountSourcesResolveInsideTheContext) {
  // Regression: `source=link` with link -> /etc mounted the host's /etc.
  // Inside the context, /etc means CONTEXT/etc.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=bind,source=link,target=/l "
            "--mount=type=bind,source=sub/file.txt,target=/one.txt "
            "ls -A /l > /listing && cat /one.txt > /one\n");
  fs::create_directory_symlink("/etc", ctx() / "link");
  WriteFile(ctx() / "etc" / "inside.txt", "in the context\n");
  WriteFile(ctx() / "sub" / "file.txt", "one file\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["listing"].data, "inside.txt\n");
  EXPECT_EQ(f["one"].data, "one file\n");
  EXPECT_EQ(f.count("l"), 0u);
  EXPECT_EQ(f.count("one.txt"), 0u);

  WriteFile(ctx() / "etc" / "inside.txt", "changed\n");
  RunResult changed = Build();
  ASSERT_EQ(changed.exit_code, 0) << Describe(changed);
  EXPECT_EQ(StepState(changed.err, "RUN --mount"), "DONE") << changed.err;

  fs::remove_all(ctx() / "etc");
  RunResult missing = Build({"--no-cache"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_NE(missing.err.find("bind mount of the build context's \"link\""), std::string::npos)
      << missing.err;
}

TEST_F(RunMountTest, CopyOfASymlinkedSourceKeysOnTheContentBehindIt) {
  // Regression: the cache key covered the symlink, not what COPY copies.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY current/ /data/\n");
  WriteFile(ctx() / "v1" / "file.txt", "one\n");
  fs::create_directory_symlink("v1", ctx() / "current");
  RunResult first = Build();
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Image().files["data/file.txt"].data, "one\n");

  WriteFile(ctx() / "v1" / "file.txt", "two\n");
  RunResult second = Build();
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(StepState(second.err, "COPY current/"), "DONE") << second.err;
  EXPECT_EQ(Image().files["data/file.txt"].data, "two\n");

  RunResult third = Build();
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_NE(StepState(third.err, "COPY current/"), "DONE") << third.err;
}

TEST_F(RunMountTest, BindMountFromAStageResolvesSymlinksInsideIt) {
  // A stage's `/x -> <host dir>` must not bind the host directory, neither
  // read-only nor rw.
  kiln::testing::TempDir outside("kiln-bind-target");
  WriteFile(outside.path() / "host.txt", "host\n");
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS stage\n"
            "RUN ln -s " +
                outside.path().string() + " /x && mkdir -p " + outside.path().string() +
                " && echo staged > " + outside.path().string() +
                "/in-stage.txt\n"
                "FROM ${REGISTRY}/busybox:latest\n"
                "RUN --mount=type=bind,from=stage,source=/x,target=/y ls -A /y > /ro\n"
                "RUN --mount=type=bind,from=stage,source=/x,target=/y,rw "
                "echo pwned > /y/written && ls -A /y > /rw\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["ro"].data, "in-stage.txt\n");
  EXPECT_EQ(f["rw"].data, "in-stage.txt\nwritten\n");
  EXPECT_EQ(Entries(outside.path()), std::vector<std::string>{"host.txt"})
      << "the build wrote into the host directory";
}

// ------------------------------------------------------------ foreign architectures

using ForeignArchTest = BuildTest;

// A RUN of an arm64 stage goes through QEMU's binfmt_misc handler
// (tests/setup-binfmt.sh, run by `make test`, registers it).
TEST_F(ForeignArchTest, RunOfAnArm64StageUsesTheEmulator) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM --platform=linux/arm64 ${REGISTRY}/busybox-multi:latest\n"
            "RUN uname -m > /arch\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["arch"].data, "aarch64\n");
  EXPECT_EQ(nlohmann::json::parse(img.config_json)["architecture"], "arm64");
}

}  // namespace
