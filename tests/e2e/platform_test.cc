// Multi-platform builds (issue 8): one `kiln build --platform A,B` against
// the fixture's two-platform base image busybox-multi (amd64 + arm64), the
// arm64 RUN under QEMU (tests/setup-binfmt.sh registers the handler). The
// result is an index with one image per platform, each config carrying its
// own record, and the metadata file one record per platform key.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "build_harness.h"
#include "util/base64.h"
#include "util/digest.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class PlatformTest : public BuildTest {
 protected:
  void SetUp() override {
    WriteFile(ctx() / "Dockerfile",
              "ARG REGISTRY\n"
              "FROM ${REGISTRY}/busybox-multi:latest\n"
              "ARG TARGETARCH\n"
              "RUN uname -m > /arch && echo $TARGETARCH > /targetarch\n");
  }

  // `kiln build --platform PLATFORMS EXTRA... CTX`, without the harness's -o.
  RunResult BuildFor(const std::string& platforms, std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "build",      "--progress", "plain", "--build-arg", "REGISTRY=" + registry_,
        "--platform", platforms};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(ctx().string());
    return Kiln(args);
  }

  fs::path layout() const { return dir_.path() / "layout"; }
  fs::path meta() const { return dir_.path() / "meta.json"; }

  std::string Blob(const fs::path& dir, const std::string& digest) {
    return ReadAll(dir / "blobs" / "sha256" / digest.substr(7));
  }

  // The image of one index entry, read as an OCI layout of its own.
  OciImage ImageOf(const json& descriptor) {
    const fs::path one = dir_.path() / ("one-" + descriptor["digest"].get<std::string>().substr(7));
    fs::create_directories(one);
    fs::copy(layout() / "blobs", one / "blobs", fs::copy_options::recursive);
    WriteFile(one / "oci-layout", ReadAll(layout() / "oci-layout"));
    WriteFile(one / "index.json",
              json{{"schemaVersion", 2}, {"manifests", json::array({descriptor})}}.dump());
    auto img = ReadOciImage(one);
    KILN_CHECK(img.ok(), img.status().ToString());
    return std::move(*img);
  }

  static json RecordOfConfig(const std::string& config_json) {
    const json config = json::parse(config_json);
    auto decoded = util::Base64Decode(config.at("moby.buildkit.buildinfo.v1").get<std::string>());
    KILN_CHECK(decoded.ok(), decoded.status().ToString());
    return json::parse(*decoded);
  }
};

TEST_F(PlatformTest, TwoPlatformsMakeAnOciIndexWithARecordPerPlatform) {
  RunResult r = BuildFor(
      "linux/amd64,linux/arm64",
      {"-o", "type=oci,tar=false,dest=" + layout().string(), "--metadata-file", meta().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const json top = json::parse(ReadAll(layout() / "index.json"));
  ASSERT_EQ(top["manifests"].size(), 1u);
  const std::string index_digest = top["manifests"][0]["digest"];
  EXPECT_EQ(r.out, index_digest + "\n");
  EXPECT_EQ(top["manifests"][0]["mediaType"], "application/vnd.oci.image.index.v1+json");
  const json index = json::parse(Blob(layout(), index_digest));
  ASSERT_EQ(index["manifests"].size(), 2u);
  EXPECT_EQ(index["manifests"][0]["platform"], (json{{"architecture", "amd64"}, {"os", "linux"}}));
  EXPECT_EQ(index["manifests"][1]["platform"], (json{{"architecture", "arm64"}, {"os", "linux"}}));

  const std::string pin = fixture_.Get("BUSYBOX_MULTI_DIGEST");
  const std::vector<std::pair<std::string, std::string>> want = {{"amd64", "x86_64\n"},
                                                                 {"arm64", "aarch64\n"}};
  std::vector<json> config_records;
  for (size_t i = 0; i < 2; ++i) {
    OciImage img = ImageOf(index["manifests"][i]);
    EXPECT_EQ(img.files["arch"].data, want[i].second) << want[i].first;
    EXPECT_EQ(img.files["targetarch"].data, want[i].first + "\n");
    EXPECT_EQ(json::parse(img.config_json)["architecture"], want[i].first);
    config_records.push_back(RecordOfConfig(img.config_json));
  }
  // Both records name busybox-multi pinned by its index digest (K5).
  const json source = {
      {"type", "docker-image"}, {"ref", registry_ + "/busybox-multi:latest"}, {"pin", pin}};
  for (const json& rec : config_records) EXPECT_EQ(rec["sources"], json::array({source}));

  const json m = json::parse(ReadAll(meta()));
  EXPECT_EQ(m["containerimage.digest"], index_digest);
  EXPECT_EQ(m.count("containerimage.buildinfo"), 0u) << "no bare key for several platforms";
  ASSERT_TRUE(m.contains("containerimage.buildinfo/linux/amd64")) << m.dump();
  ASSERT_TRUE(m.contains("containerimage.buildinfo/linux/arm64")) << m.dump();
  const json amd64 = m["containerimage.buildinfo/linux/amd64"];
  const json arm64 = m["containerimage.buildinfo/linux/arm64"];
  EXPECT_EQ(amd64["sources"], json::array({source}));
  EXPECT_EQ(amd64["attrs"]["platform"], "linux/amd64,linux/arm64") << "as the user wrote it (K9)";
  // Same Dockerfile, same base reference and pin: the records are equal.
  EXPECT_EQ(amd64, arm64);

  // Compared with a single-platform build, only the platform attr differs.
  RunResult single =
      BuildFor("linux/amd64", {"-o", "type=oci,dest=" + out().string(), "--metadata-file",
                               (dir_.path() / "one.json").string()});
  ASSERT_EQ(single.exit_code, 0) << Describe(single);
  json one = json::parse(ReadAll(dir_.path() / "one.json"))["containerimage.buildinfo"];
  EXPECT_EQ(one["attrs"]["platform"], "linux/amd64");
  one["attrs"]["platform"] = "linux/amd64,linux/arm64";
  EXPECT_EQ(one, amd64);
  // The single-platform image is the amd64 image of the index (the cache
  // served it, and its record differs by the platform attr only).
  EXPECT_EQ(json::parse(Image().config_json)["architecture"], "amd64");
}

TEST_F(PlatformTest, IndexIsPushedAsADockerManifestListAndReadBack) {
  const std::string ref = registry_ + "/multi-platform:1";
  RunResult r = BuildFor("linux/amd64,linux/arm64", {"-o", "type=image,push=true,name=" + ref});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  RunResult raw = kiln::testing::Run("/usr/bin/skopeo",
                                     {"inspect", "--tls-verify=false", "--raw", "docker://" + ref});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  EXPECT_EQ(util::Sha256Of(raw.out).str() + "\n", r.out) << "the registry serves the same bytes";
  const json list = json::parse(raw.out);
  EXPECT_EQ(list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
  ASSERT_EQ(list["manifests"].size(), 2u);
  EXPECT_EQ(list["manifests"][1]["platform"]["architecture"], "arm64");
  EXPECT_EQ(list["manifests"][1]["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json");
  // Each platform's manifest is there, and its config reads back.
  RunResult arm =
      kiln::testing::Run("/usr/bin/skopeo", {"inspect", "--tls-verify=false", "--override-arch",
                                             "arm64", "--raw", "--config", "docker://" + ref});
  ASSERT_EQ(arm.exit_code, 0) << Describe(arm);
  EXPECT_EQ(json::parse(arm.out)["architecture"], "arm64");
  EXPECT_TRUE(json::parse(arm.out).contains("moby.buildkit.buildinfo.v1"));
}

TEST_F(PlatformTest, OciMediaTypesPushAnOciIndex) {
  const std::string ref = registry_ + "/multi-platform-oci:1";
  RunResult r = BuildFor("linux/amd64,linux/arm64",
                         {"-o", "type=image,push=true,oci-mediatypes=true,name=" + ref});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  RunResult raw = kiln::testing::Run("/usr/bin/skopeo",
                                     {"inspect", "--tls-verify=false", "--raw", "docker://" + ref});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  EXPECT_EQ(util::Sha256Of(raw.out).str() + "\n", r.out);
  EXPECT_EQ(json::parse(raw.out)["mediaType"], "application/vnd.oci.image.index.v1+json");
}

TEST_F(PlatformTest, LocalOutputWritesAFolderPerPlatform) {
  const fs::path dest = dir_.path() / "fs";
  RunResult r = BuildFor("linux/amd64,linux/arm64", {"-o", "type=local,dest=" + dest.string(),
                                                     "--metadata-file", meta().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadAll(dest / "linux_amd64" / "arch"), "x86_64\n");
  EXPECT_EQ(ReadAll(dest / "linux_arm64" / "arch"), "aarch64\n");
  const json m = json::parse(ReadAll(meta()));
  EXPECT_TRUE(m.contains("containerimage.buildinfo/linux/arm64")) << m.dump();
  EXPECT_FALSE(m.contains("containerimage.digest"));
}

TEST_F(PlatformTest, TarOutputHoldsAFolderPerPlatform) {
  const fs::path tar = dir_.path() / "fs.tar";
  RunResult r = BuildFor("linux/amd64,linux/arm64", {"-o", "type=tar,dest=" + tar.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const fs::path unpacked = dir_.path() / "unpacked";
  fs::create_directories(unpacked);
  RunResult x = kiln::testing::Run("/usr/bin/tar", {"-xf", tar.string(), "-C", unpacked.string()});
  ASSERT_EQ(x.exit_code, 0) << Describe(x);
  EXPECT_EQ(ReadAll(unpacked / "linux_amd64" / "arch"), "x86_64\n");
  EXPECT_EQ(ReadAll(unpacked / "linux_arm64" / "arch"), "aarch64\n");
  EXPECT_TRUE(fs::exists(unpacked / "linux_arm64" / "bin" / "busybox"));
}

// The variant is kept (BuildKit v0.10 dropped it from the index): in the
// index, the config, the record's key and the folder name.
TEST_F(PlatformTest, VariantIsKeptEverywhere) {
  WriteFile(ctx() / "Dockerfile", "FROM scratch\nCOPY app.txt /\n");
  WriteFile(ctx() / "app.txt", "app\n");
  RunResult r = BuildFor(
      "linux/amd64,linux/arm/v7",
      {"-o", "type=oci,tar=false,dest=" + layout().string(), "-o",
       "type=local,dest=" + (dir_.path() / "fs").string(), "--metadata-file", meta().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const json top = json::parse(ReadAll(layout() / "index.json"));
  const json index = json::parse(Blob(layout(), top["manifests"][0]["digest"]));
  ASSERT_EQ(index["manifests"].size(), 2u);
  EXPECT_EQ(index["manifests"][1]["platform"],
            (json{{"architecture", "arm"}, {"os", "linux"}, {"variant", "v7"}}));
  OciImage arm = ImageOf(index["manifests"][1]);
  EXPECT_EQ(json::parse(arm.config_json)["variant"], "v7");
  EXPECT_EQ(arm.files["app.txt"].data, "app\n");
  const json m = json::parse(ReadAll(meta()));
  EXPECT_TRUE(m.contains("containerimage.buildinfo/linux/arm/v7")) << m.dump();
  EXPECT_EQ(ReadAll(dir_.path() / "fs" / "linux_arm_v7" / "app.txt"), "app\n");
  EXPECT_EQ(ReadAll(dir_.path() / "fs" / "linux_amd64" / "app.txt"), "app\n");
}

TEST_F(PlatformTest, DockerArchiveOfSeveralPlatformsIsAnError) {
  RunResult r = BuildFor("linux/amd64,linux/arm64",
                         {"-o", "type=docker,dest=" + (dir_.path() / "d.tar").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("-o type=docker: a Docker archive holds one platform, and --platform "
                       "names 2 (linux/amd64,linux/arm64): use type=oci or type=image for "
                       "several platforms, or build one --platform"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_.path() / "d.tar"));
}

TEST_F(PlatformTest, PlatformGivenTwiceIsAnError) {
  RunResult r = BuildFor("linux/amd64,linux/x86_64", {"-o", "type=oci,dest=" + out().string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--platform linux/amd64,linux/x86_64: linux/amd64 is given twice"),
            std::string::npos)
      << r.err;
  r = BuildFor("linux/amd64,", {"-o", "type=oci,dest=" + out().string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--platform linux/amd64,: empty platform"), std::string::npos) << r.err;
}

TEST_F(PlatformTest, PlatformTheBaseImageLacksIsAClearError) {
  RunResult r = BuildFor("linux/amd64,linux/s390x", {"-o", "type=oci,dest=" + out().string()});
  EXPECT_NE(r.exit_code, 0);
  // One line: the Dockerfile line, the image, the platform and what it has.
  EXPECT_NE(r.err.find("kiln: error: Dockerfile:2: resolving " + registry_ +
                       "/busybox-multi:latest: no manifest for linux/s390x in the index (it has "
                       "linux/amd64, linux/arm64/v8)\n"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out()));
}

// A stage built for $BUILDPLATFORM is the same for every target platform:
// its RUN runs once, and each platform's image has its output.
TEST_F(PlatformTest, BuildPlatformStageIsSharedAcrossPlatforms) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM --platform=$BUILDPLATFORM ${REGISTRY}/busybox-multi:latest AS tools\n"
            "RUN echo built-once > /tool\n"
            "FROM ${REGISTRY}/busybox-multi:latest\n"
            "COPY --from=tools /tool /tool\n"
            "RUN uname -m > /arch\n");
  RunResult r = BuildFor("linux/amd64,linux/arm64",
                         {"-o", "type=local,dest=" + (dir_.path() / "fs").string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // The step's header lines ("#N name"; output lines are "#N 0.123 ..."):
  // one vertex, shown under one number.
  std::set<std::string> numbers;
  std::istringstream lines(r.err);
  static const std::regex head("^#([0-9]+) ([^0-9].*RUN echo built-once.*)$");
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, head)) numbers.insert(m[1]);
  }
  EXPECT_EQ(numbers.size(), 1u) << r.err;
  EXPECT_EQ(StepState(r.err, "RUN echo built-once"), "DONE") << r.err;
  EXPECT_EQ(ReadAll(dir_.path() / "fs" / "linux_amd64" / "tool"), "built-once\n");
  EXPECT_EQ(ReadAll(dir_.path() / "fs" / "linux_arm64" / "tool"), "built-once\n");
  EXPECT_EQ(ReadAll(dir_.path() / "fs" / "linux_arm64" / "arch"), "aarch64\n");
}

// K3, K10: a named image context that is itself multi-platform gives each
// platform's record the record of that platform's image as deps, and both
// pin the context's index digest.
TEST_F(PlatformTest, DepsOfANamedImageContextFollowThePlatform) {
  const std::string dep_image = registry_ + "/platform-dep:v1";
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "ARG HTTP\n"
            "FROM ${REGISTRY}/busybox-multi:latest AS base\n"
            "FROM base AS build-amd64\n"
            "ARG HTTP\n"
            "ADD ${HTTP}/hello.txt /f\n"
            "FROM base AS build-arm64\n"
            "ARG HTTP\n"
            "ADD ${HTTP}/data.bin /f\n"
            "FROM build-${TARGETARCH}\n");
  RunResult dep = BuildFor(
      "linux/amd64,linux/arm64",
      {"--build-arg", "HTTP=" + http_, "-o", "type=image,name=" + dep_image + ",push=true"});
  ASSERT_EQ(dep.exit_code, 0) << Describe(dep);
  const std::string dep_index = dep.out.substr(0, dep.out.find('\n'));

  WriteFile(ctx() / "Dockerfile", "FROM dep\nRUN true\n");
  RunResult r =
      BuildFor("linux/amd64,linux/arm64", {"--build-context", "dep=docker-image://" + dep_image,
                                           "-o", "type=oci,tar=false,dest=" + layout().string(),
                                           "--metadata-file", meta().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const json m = json::parse(ReadAll(meta()));
  const std::string hello = http_ + "/hello.txt";
  const std::string data = http_ + "/data.bin";
  for (const auto& [arch, mine, other] :
       std::vector<std::tuple<std::string, std::string, std::string>>{{"amd64", hello, data},
                                                                      {"arm64", data, hello}}) {
    const std::string key = "containerimage.buildinfo/linux/" + arch;
    ASSERT_TRUE(m.contains(key)) << m.dump();
    const json& record = m[key];
    ASSERT_TRUE(record.contains("deps")) << key << ": " << record.dump();
    const std::string deps = record["deps"]["dep"]["sources"].dump();
    EXPECT_NE(deps.find(mine), std::string::npos) << key << ": " << deps;
    EXPECT_EQ(deps.find(other), std::string::npos) << key << ": " << deps;
    ASSERT_EQ(record["sources"].size(), 1u) << record.dump();
    EXPECT_EQ(record["sources"][0]["ref"], dep_image);
    EXPECT_EQ(record["sources"][0]["pin"], dep_index) << "K5: the index digest";
  }
}

}  // namespace
}  // namespace kiln::testing
