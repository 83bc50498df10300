// End-to-end tests of `kiln build`: the real kiln binary, the loopback
// fixture's docker-registry (base images) and HTTP server (ADD <url>), and
// crun for RUN. Every image is read back from the OCI archive kiln wrote by
// tests/support/oci_image.h (independent of kiln's exporter) and checked
// file by file. Under ctest the tests attach to the shared anonymous fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "build_harness.h"
#include "fixture.h"
#include "kiln_process.h"
#include "oci_image.h"
#include "util/base64.h"
#include "util/digest.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln::testing::BuildTest;
using kiln::testing::Describe;
using kiln::testing::OciImage;
using kiln::testing::ReadAll;
using kiln::testing::ReadOciImage;
using kiln::testing::RunResult;
using kiln::testing::StepState;
using kiln::testing::TempDir;
using kiln::testing::WriteFile;

TEST_F(BuildTest, EveryInstructionTakesEffectInTheImage) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "ENV GREETING=hello\n"
            "WORKDIR /app\n"
            "COPY src/ ./src/\n"
            "COPY --chown=1000:1000 --chmod=640 owned.txt /app/owned.txt\n"
            "ADD archive.tar.gz /app/unpacked/\n"
            "RUN echo \"$GREETING from run\" > /app/run.txt && rm /etc/group\n"
            "USER 1000\n"
            "RUN id -u > /tmp/uid\n"
            "LABEL org.example.k=v\n"
            "EXPOSE 8080\n"
            "CMD [\"cat\", \"/app/run.txt\"]\n");
  WriteInstructionContext();
  if (HasFatalFailure()) return;

  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(r.out, img.manifest_digest + "\n");

  auto& f = img.files;
  ASSERT_TRUE(f.count("bin/busybox")) << "the base image's files are there";
  EXPECT_EQ(f["app/src/a.txt"].data, "a\n");
  EXPECT_EQ(f["app/src/sub/b.txt"].data, "b\n");
  EXPECT_EQ(f["app/src/a.txt"].uid, 0) << "context files belong to root";
  EXPECT_EQ(f["app/owned.txt"].data, "mine\n");
  EXPECT_EQ(f["app/owned.txt"].uid, 1000);
  EXPECT_EQ(f["app/owned.txt"].gid, 1000);
  EXPECT_EQ(f["app/owned.txt"].mode, 0640u);
  EXPECT_EQ(f["app/unpacked/inner.txt"].data, "from the archive\n");
  EXPECT_EQ(f.count("app/unpacked/archive.tar.gz"), 0u) << "ADD unpacks local archives";
  EXPECT_EQ(f["app/run.txt"].data, "hello from run\n");
  EXPECT_EQ(f.count("etc/group"), 0u) << "a file deleted by RUN is whited out";
  EXPECT_EQ(f["tmp/uid"].data, "1000\n") << "USER applies to later RUNs";
  EXPECT_EQ(f["app"].type, 'd');

  const json config = json::parse(img.config_json);
  const json& c = config["config"];
  EXPECT_EQ(c["WorkingDir"], "/app");
  EXPECT_EQ(c["User"], "1000");
  EXPECT_EQ(c["Labels"]["org.example.k"], "v");
  EXPECT_TRUE(c["ExposedPorts"].contains("8080/tcp"));
  EXPECT_EQ(c["Cmd"], json::array({"cat", "/app/run.txt"}));
  bool has_env = false;
  for (const auto& e : c["Env"]) has_env |= e == "GREETING=hello";
  EXPECT_TRUE(has_env) << c.dump();
  size_t with_layer = 0;
  for (const auto& h : config["history"]) with_layer += h.value("empty_layer", false) ? 0 : 1;
  EXPECT_EQ(with_layer, img.layer_digests.size());
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), img.layer_digests.size());
  EXPECT_TRUE(config.contains("moby.buildkit.buildinfo.v1"));
}

TEST_F(BuildTest, UnchangedRebuildRunsNothingAndGivesTheSameDigest) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY one.txt /one.txt\n"
            "RUN echo step-one > /s1\n"
            "COPY two.txt /two.txt\n"
            "RUN cat /two.txt > /s2\n");
  WriteFile(ctx() / "one.txt", "1\n");
  WriteFile(ctx() / "two.txt", "2\n");
  WriteFile(ctx() / "unrelated.txt", "x\n");

  RunResult first = Build();
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(StepState(first.err, "RUN echo step-one"), "DONE") << first.err;

  RunResult second = Build();
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(second.out, first.out) << "same image digest";
  EXPECT_NE(StepState(second.err, "RUN echo step-one"), "DONE") << second.err;
  EXPECT_EQ(StepState(second.err, "RUN cat /two.txt"), "CACHED") << second.err;

  // A file no step uses changes nothing.
  WriteFile(ctx() / "unrelated.txt", "y\n");
  RunResult third = Build();
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_EQ(third.out, first.out);
  EXPECT_NE(StepState(third.err, "COPY two.txt"), "DONE") << third.err;
  EXPECT_EQ(StepState(third.err, "RUN cat /two.txt"), "CACHED") << third.err;

  // Changing two.txt reruns exactly the steps from its COPY on.
  WriteFile(ctx() / "two.txt", "22\n");
  RunResult fourth = Build();
  ASSERT_EQ(fourth.exit_code, 0) << Describe(fourth);
  EXPECT_NE(fourth.out, first.out);
  EXPECT_NE(StepState(fourth.err, "COPY one.txt"), "DONE") << fourth.err;
  EXPECT_EQ(StepState(fourth.err, "RUN echo step-one"), "CACHED") << fourth.err;
  EXPECT_EQ(StepState(fourth.err, "COPY two.txt"), "DONE") << fourth.err;
  EXPECT_EQ(StepState(fourth.err, "RUN cat /two.txt"), "DONE") << fourth.err;
  EXPECT_EQ(Image().files["s2"].data, "22\n");

  // --no-cache runs everything again.
  RunResult fifth = Build({"--no-cache"});
  ASSERT_EQ(fifth.exit_code, 0) << Describe(fifth);
  EXPECT_EQ(StepState(fifth.err, "RUN echo step-one"), "DONE") << fifth.err;
}

TEST_F(BuildTest, DockerignoreHidesFilesFromCopy) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY . /ctx/\n");
  WriteFile(ctx() / ".dockerignore", "*.md\n!KEEP.md\nsecrets/\n**/*.tmp\n");
  WriteFile(ctx() / "app.txt", "app\n");
  WriteFile(ctx() / "README.md", "readme\n");
  WriteFile(ctx() / "KEEP.md", "keep\n");
  WriteFile(ctx() / "secrets" / "key", "k\n");
  WriteFile(ctx() / "deep" / "x.tmp", "t\n");
  WriteFile(ctx() / "deep" / "y.txt", "y\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["ctx/app.txt"].data, "app\n");
  EXPECT_EQ(f["ctx/KEEP.md"].data, "keep\n");
  EXPECT_EQ(f["ctx/deep/y.txt"].data, "y\n");
  EXPECT_EQ(f.count("ctx/README.md"), 0u);
  EXPECT_EQ(f.count("ctx/secrets/key"), 0u);
  EXPECT_EQ(f.count("ctx/secrets"), 0u);
  EXPECT_EQ(f.count("ctx/deep/x.tmp"), 0u);
}

TEST_F(BuildTest, MultiStageCopyFrom) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest AS build\n"
            "RUN mkdir -p /out && echo built > /out/artifact && echo junk > /junk\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "COPY --from=build /out/artifact /usr/local/bin/artifact\n");
  RunResult r = Build();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto f = Image().files;
  EXPECT_EQ(f["usr/local/bin/artifact"].data, "built\n");
  EXPECT_EQ(f.count("junk"), 0u) << "only what COPY --from names comes across";
}

TEST_F(BuildTest, SecretsReachNeitherLayersNorRecord) {
  const std::string secret = "s3cr3t-value-" + std::to_string(::getpid());
  WriteFile(dir_.path() / "token", secret);
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /used\n");
  RunResult r = Build({"--secret", "id=tok,src=" + (dir_.path() / "token").string(),
                       "--metadata-file", (dir_.path() / "meta.json").string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["used"].data, std::string(kiln::util::Sha256Of(secret).hex()) + "\n")
      << "the secret was readable at /run/secrets/tok";
  EXPECT_EQ(img.files.count("run/secrets/tok"), 0u);
  EXPECT_EQ(img.files.count("run/secrets"), 0u) << "no mount stub left behind";
  for (const std::string& tar : img.layer_tars) {
    EXPECT_EQ(tar.find("s3cr3t-value"), std::string::npos);
  }
  for (const auto& [d, blob] : img.blobs) EXPECT_EQ(blob.find("s3cr3t-value"), std::string::npos);
  EXPECT_EQ(ReadAll(dir_.path() / "meta.json").find("s3cr3t"), std::string::npos);
  EXPECT_EQ(r.err.find("s3cr3t"), std::string::npos);
}

TEST_F(BuildTest, FailingRunNamesStepLineAndOutput) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo fine\n"
            "RUN echo about-to-fail && exit 3\n");
  RunResult r = Build();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("[3/3] RUN echo about-to-fail && exit 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit code: 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Dockerfile:4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("> about-to-fail"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(BuildTest, RecordOfImagesAndHttpFilesIsExact) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "ARG REGISTRY\n"
            "ARG HTTP\n"
            "COPY --from=${REGISTRY}/busybox-docker:latest /bin/busybox /bb\n"
            "ADD ${HTTP}/hello.txt /hello.txt\n"
            "ADD ${HTTP}/data.bin /data.bin\n");
  const fs::path meta = dir_.path() / "meta.json";
  RunResult r = Build({"--metadata-file", meta.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  const std::string sources =
      "\"sources\":["
      "{\"type\":\"docker-image\",\"ref\":\"" +
      registry_ + "/busybox-docker:latest\",\"pin\":\"" + fixture_.Get("BUSYBOX_DOCKER_DIGEST") +
      "\"},"
      "{\"type\":\"docker-image\",\"ref\":\"" +
      registry_ + "/busybox:latest\",\"pin\":\"" + fixture_.Get("BUSYBOX_DIGEST") +
      "\"},"
      "{\"type\":\"http\",\"ref\":\"" +
      http_ + "/data.bin\",\"pin\":\"" + fixture_.Get("HTTP_DATA_SHA256") +
      "\"},"
      "{\"type\":\"http\",\"ref\":\"" +
      http_ + "/hello.txt\",\"pin\":\"" + fixture_.Get("HTTP_HELLO_SHA256") + "\"}]";
  // In the config: no attrs (buildinfo-attrs defaults to false, K9/K11).
  const std::string in_config = "{\"frontend\":\"dockerfile.v0\"," + sources + "}";
  // In the response and the metadata file: the full record (R40, K13).
  const std::string full = "{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"build-arg:HTTP\":\"" +
                           http_ + "\",\"build-arg:REGISTRY\":\"" + registry_ +
                           "\",\"filename\":\"Dockerfile\"}," + sources + "}";

  OciImage img = Image();
  const json config = json::parse(img.config_json);
  EXPECT_EQ(config["moby.buildkit.buildinfo.v1"], kiln::util::Base64Encode(in_config));
  const json m = json::parse(ReadAll(meta));
  EXPECT_EQ(m["containerimage.buildinfo"].dump(), json::parse(full).dump());
  EXPECT_EQ(m["containerimage.digest"], img.manifest_digest);
  EXPECT_EQ(img.files["hello.txt"].data.size() > 0, true);
  EXPECT_EQ(kiln::util::Sha256Of(img.files["data.bin"].data).str(),
            fixture_.Get("HTTP_DATA_SHA256"));
}

TEST_F(BuildTest, OciArchiveIsReadBySkopeoAndUmoci) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo made-by-kiln > /made\n");
  RunResult r = Build({"-t", "kiln-test/umoci:v1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  RunResult skopeo =
      kiln::testing::Run("/usr/bin/skopeo", {"inspect", "oci-archive:" + out().string()});
  ASSERT_EQ(skopeo.exit_code, 0) << Describe(skopeo);
  EXPECT_NE(skopeo.out.find("\"Digest\": \"" + r.out.substr(0, r.out.size() - 1)),
            std::string::npos)
      << skopeo.out;

  const fs::path layout = dir_.path() / "layout";
  RunResult dir_build =
      Build({"-t", "kiln-test/umoci:v1", "-o", "type=oci,dest=" + layout.string() + ",tar=false"});
  ASSERT_EQ(dir_build.exit_code, 0) << Describe(dir_build);
  const fs::path bundle = dir_.path() / "bundle";
  RunResult umoci = kiln::testing::Run(
      "/usr/bin/umoci", {"unpack", "--image", layout.string() + ":v1", bundle.string()});
  ASSERT_EQ(umoci.exit_code, 0) << Describe(umoci);
  EXPECT_EQ(ReadAll(bundle / "rootfs" / "made"), "made-by-kiln\n");
}

}  // namespace

namespace {

// K7: ADD --checksum is enforced before the file is used; the pin is the
// sha256 of the bytes received either way.
TEST_F(BuildTest, AddChecksumIsEnforced) {
  const std::string good = fixture_.Get("HTTP_HELLO_SHA256");
  const std::string wrong = "sha256:" + std::string(64, '0');
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "ARG HTTP\n"
            "ARG SUM\n"
            "ADD --checksum=${SUM} ${HTTP}/hello.txt /hello.txt\n");
  RunResult ok = Build({"--build-arg", "SUM=" + good});
  ASSERT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_FALSE(Image().files["hello.txt"].data.empty());

  RunResult bad = Build({"--build-arg", "SUM=" + wrong});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find(wrong), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(good), std::string::npos) << "the error names what arrived: " << bad.err;
  EXPECT_NE(bad.err.find("/hello.txt"), std::string::npos) << bad.err;
}

}  // namespace
