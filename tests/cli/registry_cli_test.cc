// End-to-end tests of `kiln pull`, `kiln inspect` and `kiln copy`: the real
// kiln binary against the loopback fixture's docker-registry (anonymous and
// basic auth). Under ctest each suite attaches to the shared fixture of its
// auth mode (tests/fixture/CMakeLists.txt), so every test pushes to its own
// repository names, made unique per process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.h"
#include "kiln_process.h"
#include "util/base64.h"
#include "util/digest.h"
#include "util/json.h"

namespace {

namespace fs = std::filesystem;
using kiln::fixture::Fixture;
using kiln::util::Base64Encode;
using kiln::util::Sha256Of;

using kiln::testing::Describe;
using kiln::testing::ReadAll;
using kiln::testing::RunResult;
using kiln::testing::TempDir;
using kiln::testing::WriteFile;

// Runs the kiln binary with `args`, with DOCKER_CONFIG set to `docker_config`
// and KILN_ROOT unset; stdout and stderr are captured separately.
RunResult RunKiln(const std::vector<std::string>& args, const fs::path& docker_config) {
  kiln::testing::RunOptions options;
  options.env["DOCKER_CONFIG"] = docker_config.string();
  return kiln::testing::Run(KILN_BINARY, args, options);
}

// One error line as main.cc prints it.
void ExpectOneErrorLine(const RunResult& r) {
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.out, "") << Describe(r);
  EXPECT_TRUE(r.err.starts_with("kiln: error: ")) << Describe(r);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << Describe(r);
}

// One fixture per auth mode, started on first use; under ctest an attachment
// to the shared fixture.
Fixture& FixtureFor(const std::string& auth) {
  static auto* slots = new std::map<std::string, std::unique_ptr<Fixture>>;
  auto& slot = (*slots)[auth];
  if (!slot) {
    kiln::fixture::FixtureOptions options;
    options.auth = auth;
    auto f = Fixture::Start(options);
    KILN_CHECK(f.ok(), f.status().ToString());
    slot = std::make_unique<Fixture>(std::move(*f));
  }
  return *slot;
}

// A repository name no other test process uses.
std::string UniqueRepo(const std::string& name) {
  return "cli-test/" + name + "-" + std::to_string(::getpid());
}

class CliTest : public ::testing::Test {
 protected:
  explicit CliTest(std::string auth) : fixture_(FixtureFor(auth)) {
    registry_ = fixture_.Get("REGISTRY");
    fs::create_directories(docker_config());
  }

  fs::path root() const { return dir_.path() / "root"; }
  fs::path docker_config() const { return dir_.path() / "docker"; }

  RunResult Kiln(std::vector<std::string> args) {
    args.insert(args.begin(), {"--root", root().string()});
    return RunKiln(args, docker_config());
  }

  Fixture& fixture_;
  std::string registry_;
  TempDir dir_;
};

class CliAnonymousTest : public CliTest {
 protected:
  CliAnonymousTest() : CliTest("none") {}
};

class CliBasicAuthTest : public CliTest {
 protected:
  CliBasicAuthTest() : CliTest("basic") {}

  void WriteCredentials(const std::string& password) {
    WriteFile(docker_config() / "config.json",
              "{\"auths\":{\"" + registry_ + "\":{\"auth\":\"" +
                  Base64Encode(fixture_.Get("USER") + ":" + password) + "\"}}}");
  }
};

// ---------------------------------------------------------------------------
// Images built here, with a build-sources record, as BuildKit v0.10 writes them.

const char kBusyboxPin[] =
    "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578";
const char kHttpPin[] = "sha256:419455202b0ef97e480d7f8199b26a721a417818bc0e2d106975f74323f25e6c";

std::string Record(const std::string& pin) {
  return "{\"frontend\":\"dockerfile.v0\",\"sources\":["
         "{\"type\":\"docker-image\",\"ref\":\"docker.io/library/busybox:latest\",\"pin\":\"" +
         pin + "\"},{\"type\":\"http\",\"ref\":\"https://example.com/README.md\",\"pin\":\"" +
         kHttpPin + "\"}]}";
}

// An OCI layout directory written file by file (not with kiln's writer).
struct LayoutBuilder {
  std::map<std::string, std::string> blobs;  // digest -> bytes

  std::string Descriptor(const std::string& media_type, const std::string& data,
                         const std::string& extra = "") {
    const std::string d = Sha256Of(data).str();
    blobs[d] = data;
    return "{\"mediaType\":\"" + media_type + "\",\"digest\":\"" + d +
           "\",\"size\":" + std::to_string(data.size()) + extra + "}";
  }
  // A manifest for `arch` whose config carries `member` = base64(record)
  // (no member when `record` is empty), with one small layer.
  std::string Manifest(const std::string& arch, const std::string& member,
                       const std::string& record) {
    std::string config = "{\"architecture\":\"" + arch + "\",\"config\":{\"Cmd\":[\"sh\"]}";
    if (!record.empty()) config += ",\"" + member + "\":\"" + Base64Encode(record) + "\"";
    config += ",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" +
              Sha256Of("layer-" + arch).str() + "\"]}}";
    return "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
           "\"config\":" +
           Descriptor("application/vnd.oci.image.config.v1+json", config) + ",\"layers\":[" +
           Descriptor("application/vnd.oci.image.layer.v1.tar", "layer-" + arch) + "]}";
  }
  void Write(const fs::path& dir, const std::string& top_descriptor) {
    for (const auto& [d, data] : blobs) WriteFile(dir / "blobs" / "sha256" / d.substr(7), data);
    WriteFile(dir / "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    WriteFile(dir / "index.json", "{\"schemaVersion\":2,\"manifests\":[" + top_descriptor + "]}");
  }
};

const char kTagV1[] = ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}";

// ---------------------------------------------------------------------------
// pull

TEST_F(CliAnonymousTest, PullByTagThenAgainFetchesNothing) {
  const std::string digest = fixture_.Get("BUSYBOX_DIGEST");
  RunResult first = Kiln({"pull", registry_ + "/busybox"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  const std::string head =
      "pulled " + registry_ + "/busybox:latest " + digest + " (linux/amd64 " + digest + "): ";
  EXPECT_TRUE(first.out.starts_with(head + "3 blobs fetched, 0 present, ")) << first.out;
  EXPECT_TRUE(first.out.ends_with(" MB\n") || first.out.ends_with(" kB\n")) << first.out;
  EXPECT_EQ(first.err, "");

  RunResult again = Kiln({"pull", "docker://" + registry_ + "/busybox:latest"});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(again.out, head + "0 blobs fetched, 3 present, 0 B\n");

  // The reference is recorded with the digest it resolved to.
  auto refs = kiln::util::ParseJson(ReadAll(root() / "refs.json"), "refs.json");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  EXPECT_EQ((*refs)[registry_ + "/busybox:latest"], digest);
  // Every blob is in the store.
  EXPECT_TRUE(fs::exists(root() / "content" / "blobs" / "sha256" / digest.substr(7)));
}

TEST_F(CliAnonymousTest, PullByDigest) {
  const std::string digest = fixture_.Get("BUSYBOX_DIGEST");
  RunResult r = Kiln({"pull", registry_ + "/busybox@" + digest});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out.starts_with("pulled " + registry_ + "/busybox@" + digest + " " + digest +
                                " (linux/amd64 " + digest + "): 3 blobs fetched, 0 present, "))
      << r.out;
}

TEST_F(CliAnonymousTest, PullPlatformFromIndex) {
  const std::string multi = fixture_.Get("BUSYBOX_MULTI_DIGEST");
  const std::string arm64 = fixture_.Get("BUSYBOX_ARM64_DIGEST");
  RunResult r = Kiln({"pull", "--platform", "linux/arm64", registry_ + "/busybox-multi"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out.starts_with("pulled " + registry_ + "/busybox-multi:latest " + multi +
                                " (linux/arm64/v8 " + arm64 + "): 4 blobs fetched, 0 present, "))
      << r.out;
  EXPECT_NE(arm64, fixture_.Get("BUSYBOX_DIGEST"));  // amd64's manifest in the same index

  RunResult amd = Kiln({"pull", "--platform", "linux/amd64", registry_ + "/busybox-multi"});
  ASSERT_EQ(amd.exit_code, 0) << Describe(amd);
  EXPECT_NE(amd.out.find("(linux/amd64 " + fixture_.Get("BUSYBOX_DIGEST") + ")"), std::string::npos)
      << amd.out;

  RunResult none = Kiln({"pull", "--platform", "linux/s390x", registry_ + "/busybox-multi"});
  ExpectOneErrorLine(none);
  EXPECT_NE(none.err.find("linux/s390x"), std::string::npos) << none.err;
}

// ---------------------------------------------------------------------------
// inspect

TEST_F(CliAnonymousTest, InspectIndexShowsBothPlatforms) {
  const std::string multi = fixture_.Get("BUSYBOX_MULTI_DIGEST");
  const std::string name = registry_ + "/busybox-multi";
  RunResult r = Kiln({"inspect", name});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "Name:      " + name +
                       ":latest\n"
                       "MediaType: application/vnd.oci.image.index.v1+json\n"
                       "Digest:    " +
                       multi +
                       "\n"
                       "\n"
                       "Manifests:\n"
                       "  Name:      " +
                       name + "@" + fixture_.Get("BUSYBOX_DIGEST") +
                       "\n"
                       "  MediaType: application/vnd.oci.image.manifest.v1+json\n"
                       "  Platform:  linux/amd64\n"
                       "\n"
                       "  Name:      " +
                       name + "@" + fixture_.Get("BUSYBOX_ARM64_DIGEST") +
                       "\n"
                       "  MediaType: application/vnd.oci.image.manifest.v1+json\n"
                       "  Platform:  linux/arm64/v8\n"
                       "\n"
                       "Build sources:\n"
                       "  containerimage.buildinfo/linux/amd64\n"
                       "    (no build sources recorded)\n"
                       "\n"
                       "  containerimage.buildinfo/linux/arm64\n"
                       "    (no build sources recorded)\n");
}

TEST_F(CliAnonymousTest, InspectRawIsTheServedBytes) {
  for (const auto& [repo, var] :
       {std::pair{"busybox-multi", "BUSYBOX_MULTI_DIGEST"}, std::pair{"busybox", "BUSYBOX_DIGEST"},
        std::pair{"busybox-docker", "BUSYBOX_DOCKER_DIGEST"}}) {
    RunResult r = Kiln({"inspect", "--raw", "docker://" + registry_ + "/" + repo});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Sha256Of(r.out).str(), fixture_.Get(var)) << repo;
  }
}

TEST_F(CliAnonymousTest, InspectJson) {
  RunResult r = Kiln({"inspect", "--format", "json", registry_ + "/busybox-multi"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto doc = kiln::util::ParseJson(r.out, "inspect output");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString() << r.out;
  EXPECT_EQ((*doc)["name"], registry_ + "/busybox-multi:latest");
  EXPECT_EQ((*doc)["manifest"]["mediaType"], "application/vnd.oci.image.index.v1+json");
  EXPECT_EQ((*doc)["manifest"]["manifests"].size(), 2u);
  EXPECT_EQ((*doc)["buildinfo"],
            nlohmann::json::parse(R"({"containerimage.buildinfo/linux/amd64":null,
                                      "containerimage.buildinfo/linux/arm64":null})"));
}

// The issue's "done means": an image pushed with a moby.buildkit.buildinfo.v1
// member shows its build sources.
TEST_F(CliAnonymousTest, InspectShowsBuildSourcesOfPushedImage) {
  LayoutBuilder l;
  const std::string manifest =
      l.Manifest("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin));
  const std::string manifest_digest = Sha256Of(manifest).str();
  l.Write(dir_.path() / "layout",
          l.Descriptor("application/vnd.oci.image.manifest.v1+json", manifest, kTagV1));
  const std::string dest = registry_ + "/" + UniqueRepo("buildinfo") + ":v1";

  RunResult copy = Kiln(
      {"copy", "oci-layout://" + (dir_.path() / "layout").string() + ":v1", "docker://" + dest});
  ASSERT_EQ(copy.exit_code, 0) << Describe(copy);
  EXPECT_TRUE(copy.out.starts_with("copied oci-layout://" + (dir_.path() / "layout").string() +
                                   ":v1 -> docker://" + dest + " " + manifest_digest +
                                   ": 3 blobs, "))
      << copy.out;
  EXPECT_TRUE(copy.out.ends_with(" (2 uploaded, 0 mounted, 0 present)\n")) << copy.out;

  RunResult pretty = Kiln({"inspect", dest});
  ASSERT_EQ(pretty.exit_code, 0) << Describe(pretty);
  EXPECT_EQ(pretty.out, "Name:      " + dest +
                            "\n"
                            "MediaType: application/vnd.oci.image.manifest.v1+json\n"
                            "Digest:    " +
                            manifest_digest +
                            "\n"
                            "\n"
                            "Build sources:\n"
                            "  containerimage.buildinfo\n"
                            "    frontend  dockerfile.v0\n"
                            "    sources\n"
                            "      docker-image  docker.io/library/busybox:latest\n"
                            "                    pin " +
                            kBusyboxPin +
                            "\n"
                            "      http          https://example.com/README.md\n"
                            "                    pin " +
                            kHttpPin + "\n");

  RunResult json = Kiln({"inspect", "--format", "json", "docker://" + dest});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  auto doc = kiln::util::ParseJson(json.out, "inspect output");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString() << json.out;
  EXPECT_EQ((*doc)["manifest"], nlohmann::json::parse(manifest));
  EXPECT_EQ((*doc)["buildinfo"]["containerimage.buildinfo"],
            nlohmann::json::parse(Record(kBusyboxPin)));
  // Records keep their canonical member order (frontend, sources; type, ref, pin).
  EXPECT_NE(json.out.find("\"containerimage.buildinfo\": {\n      \"frontend\": "
                          "\"dockerfile.v0\",\n      \"sources\": [\n        {\n          "
                          "\"type\": \"docker-image\",\n"),
            std::string::npos)
      << json.out;
}

TEST_F(CliAnonymousTest, InspectShowsBuildSourcesPerPlatformOfPushedIndex) {
  LayoutBuilder l;
  const std::string arm_pin =
      "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  const std::string amd = l.Manifest("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin));
  const std::string arm = l.Manifest("arm64", "moby.buildkit.buildinfo.v0", Record(arm_pin));
  const std::string bare = l.Manifest("ppc64le", "", "");
  const std::string index =
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":[" +
      l.Descriptor("application/vnd.oci.image.manifest.v1+json", amd,
                   ",\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}") +
      "," +
      l.Descriptor("application/vnd.oci.image.manifest.v1+json", arm,
                   ",\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}") +
      "," +
      l.Descriptor("application/vnd.oci.image.manifest.v1+json", bare,
                   ",\"platform\":{\"architecture\":\"ppc64le\",\"os\":\"linux\"}") +
      "]}";
  l.Write(dir_.path() / "layout",
          l.Descriptor("application/vnd.oci.image.index.v1+json", index, kTagV1));
  const std::string dest = registry_ + "/" + UniqueRepo("buildinfo-index") + ":v1";
  RunResult copy = Kiln({"copy", "oci-layout://" + (dir_.path() / "layout").string(), dest});
  ASSERT_EQ(copy.exit_code, 0) << Describe(copy);

  RunResult json = Kiln({"inspect", "--format", "json", dest});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  auto doc = kiln::util::ParseJson(json.out, "inspect output");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString() << json.out;
  const auto& bi = (*doc)["buildinfo"];
  EXPECT_EQ(bi.size(), 3u) << json.out;
  EXPECT_EQ(bi["containerimage.buildinfo/linux/amd64"], nlohmann::json::parse(Record(kBusyboxPin)));
  EXPECT_EQ(bi["containerimage.buildinfo/linux/arm64"], nlohmann::json::parse(Record(arm_pin)));
  EXPECT_TRUE(bi["containerimage.buildinfo/linux/ppc64le"].is_null()) << json.out;

  RunResult pretty = Kiln({"inspect", dest});
  ASSERT_EQ(pretty.exit_code, 0) << Describe(pretty);
  EXPECT_NE(
      pretty.out.find("  containerimage.buildinfo/linux/arm64\n    frontend  dockerfile.v0\n"),
      std::string::npos)
      << pretty.out;
  EXPECT_NE(pretty.out.find("                    pin " + arm_pin + "\n"), std::string::npos)
      << pretty.out;
  EXPECT_NE(pretty.out.find("  containerimage.buildinfo/linux/ppc64le\n    (no build sources "
                            "recorded)\n"),
            std::string::npos)
      << pretty.out;

  // The same from the layout itself.
  RunResult local = Kiln(
      {"inspect", "--format", "json", "oci-layout://" + (dir_.path() / "layout").string() + ":v1"});
  ASSERT_EQ(local.exit_code, 0) << Describe(local);
  auto local_doc = kiln::util::ParseJson(local.out, "inspect output");
  ASSERT_TRUE(local_doc.ok()) << local.out;
  EXPECT_EQ((*local_doc)["buildinfo"], bi);
}

// ---------------------------------------------------------------------------
// copy

TEST_F(CliAnonymousTest, CopyRegistryToArchiveToRegistryKeepsBytes) {
  const std::string multi = fixture_.Get("BUSYBOX_MULTI_DIGEST");
  const fs::path tar = dir_.path() / "multi.tar";
  const std::string src = registry_ + "/busybox-multi";
  RunResult out = Kiln({"copy", src, "oci-archive://" + tar.string() + ":v1"});
  ASSERT_EQ(out.exit_code, 0) << Describe(out);
  EXPECT_TRUE(out.out.starts_with("copied docker://" + src + ":latest -> oci-archive://" +
                                  tar.string() + ":v1 " + multi + ": 7 blobs, "))
      << out.out;
  EXPECT_EQ(out.out.find('\n'), out.out.size() - 1);

  const std::string dest = registry_ + "/" + UniqueRepo("roundtrip") + ":v2";
  RunResult in = Kiln({"copy", "oci-archive://" + tar.string() + ":v1", "docker://" + dest});
  ASSERT_EQ(in.exit_code, 0) << Describe(in);
  EXPECT_TRUE(in.out.starts_with("copied oci-archive://" + tar.string() + ":v1 -> docker://" +
                                 dest + " " + multi + ": 7 blobs, "))
      << in.out;

  RunResult original = Kiln({"inspect", "--raw", src});
  RunResult copied = Kiln({"inspect", "--raw", dest});
  ASSERT_EQ(original.exit_code, 0) << Describe(original);
  ASSERT_EQ(copied.exit_code, 0) << Describe(copied);
  EXPECT_EQ(copied.out, original.out);
  EXPECT_EQ(Sha256Of(copied.out).str(), multi);

  // Both platforms came along.
  RunResult tree = Kiln({"inspect", dest});
  ASSERT_EQ(tree.exit_code, 0) << Describe(tree);
  EXPECT_NE(tree.out.find("Platform:  linux/amd64\n"), std::string::npos) << tree.out;
  EXPECT_NE(tree.out.find("Platform:  linux/arm64/v8\n"), std::string::npos) << tree.out;
}

TEST_F(CliAnonymousTest, CopyOnePlatformToLayoutAndBack) {
  const std::string arm64 = fixture_.Get("BUSYBOX_ARM64_DIGEST");
  const fs::path layout = dir_.path() / "arm64";
  RunResult out = Kiln({"copy", "--platform", "linux/arm64/v8", registry_ + "/busybox-multi",
                        "oci-layout://" + layout.string()});
  ASSERT_EQ(out.exit_code, 0) << Describe(out);
  EXPECT_NE(out.out.find(" " + arm64 + ": 3 blobs, "), std::string::npos) << out.out;
  auto index = kiln::util::ParseJson(ReadAll(layout / "index.json"), "index.json");
  ASSERT_TRUE(index.ok());
  ASSERT_EQ((*index)["manifests"].size(), 1u);
  EXPECT_EQ((*index)["manifests"][0]["digest"], arm64);
  EXPECT_FALSE((*index)["manifests"][0].contains("annotations"));  // no :TAG given

  const std::string dest = registry_ + "/" + UniqueRepo("arm64-only");
  RunResult in = Kiln({"copy", "oci-layout://" + layout.string(), dest});
  ASSERT_EQ(in.exit_code, 0) << Describe(in);
  RunResult raw = Kiln({"inspect", "--raw", dest});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  EXPECT_EQ(Sha256Of(raw.out).str(), arm64);
}

TEST_F(CliAnonymousTest, CopyWithinRegistryMountsBlobs) {
  const std::string dest = registry_ + "/" + UniqueRepo("mounted");
  RunResult r = Kiln({"copy", "--all", registry_ + "/busybox-multi", dest});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out.ends_with("(0 uploaded, 4 mounted, 0 present)\n")) << r.out;
  RunResult again = Kiln({"copy", registry_ + "/busybox-multi", dest});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_TRUE(again.out.ends_with("(0 uploaded, 0 mounted, 4 present)\n")) << again.out;
}

TEST_F(CliAnonymousTest, CopyLayoutWithSeveralImagesNeedsATag) {
  LayoutBuilder l;
  const std::string a = l.Manifest("amd64", "", "");
  const std::string b = l.Manifest("arm64", "", "");
  const fs::path dir = dir_.path() / "two";
  l.Write(dir, l.Descriptor("application/vnd.oci.image.manifest.v1+json", a, kTagV1) + "," +
                   l.Descriptor("application/vnd.oci.image.manifest.v1+json", b));
  RunResult r = Kiln({"copy", "oci-layout://" + dir.string(), registry_ + "/x"});
  ExpectOneErrorLine(r);
  EXPECT_EQ(r.err, "kiln: error: oci-layout://" + dir.string() +
                       ": index.json lists 2 images; name one with :TAG (tags: v1)\n");
  RunResult missing = Kiln({"inspect", "oci-layout://" + dir.string() + ":v9"});
  ExpectOneErrorLine(missing);
  EXPECT_EQ(missing.err, "kiln: error: oci-layout://" + dir.string() +
                             ":v9: no image tagged \"v9\" in index.json (tags: v1)\n");
}

// ---------------------------------------------------------------------------
// errors

TEST_F(CliAnonymousTest, UnreachableRegistryIsOneLine) {
  RunResult r = Kiln({"pull", "127.0.0.1:1/nothing/here"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  RunResult inspect = Kiln({"inspect", "127.0.0.1:1/nothing/here"});
  ExpectOneErrorLine(inspect);
}

TEST_F(CliAnonymousTest, UnknownRepositoryIsNotFound) {
  RunResult r = Kiln({"pull", registry_ + "/" + UniqueRepo("never-pushed")});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find(registry_), std::string::npos) << r.err;
}

TEST_F(CliAnonymousTest, MalformedReferenceIsNamed) {
  RunResult r = Kiln({"pull", "Foo//bar"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("\"Foo//bar\""), std::string::npos) << r.err;

  RunResult transport = Kiln({"inspect", "ftp://x/y"});
  ExpectOneErrorLine(transport);
  EXPECT_EQ(transport.err,
            "kiln: error: invalid image location \"ftp://x/y\": unknown transport \"ftp\" "
            "(expected docker, oci-layout or oci-archive)\n");

  RunResult platform = Kiln({"pull", "--platform", "linux/amd64/v2/x", registry_ + "/busybox"});
  ExpectOneErrorLine(platform);

  RunResult usage = Kiln({"copy", "--all", "--platform", "linux/amd64", "a", "b"});
  ExpectOneErrorLine(usage);
}

// ---------------------------------------------------------------------------
// basic auth

TEST_F(CliBasicAuthTest, PullWithCredentialsFromDockerConfig) {
  const std::string password = fixture_.Get("PASSWORD");
  ASSERT_FALSE(password.empty());
  WriteCredentials(password);
  RunResult r = Kiln({"pull", registry_ + "/busybox"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(r.out.starts_with("pulled " + registry_ + "/busybox:latest " +
                                fixture_.Get("BUSYBOX_DIGEST")))
      << r.out;
  EXPECT_EQ(r.out.find(password), std::string::npos);

  // Push with the same credentials, then inspect.
  const std::string dest = registry_ + "/" + UniqueRepo("auth-copy");
  RunResult copy = Kiln({"copy", registry_ + "/busybox", dest});
  ASSERT_EQ(copy.exit_code, 0) << Describe(copy);
  RunResult inspect = Kiln({"inspect", dest});
  ASSERT_EQ(inspect.exit_code, 0) << Describe(inspect);
}

TEST_F(CliBasicAuthTest, NoCredentialsNamesTheRegistry) {
  RunResult r = Kiln({"pull", registry_ + "/busybox"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("registry " + registry_), std::string::npos) << r.err;
  RunResult inspect = Kiln({"inspect", registry_ + "/busybox"});
  ExpectOneErrorLine(inspect);
  EXPECT_NE(inspect.err.find("registry " + registry_), std::string::npos) << inspect.err;
}

TEST_F(CliBasicAuthTest, WrongPasswordNamesTheRegistryAndHidesIt) {
  const std::string wrong = "not-the-password-" + std::to_string(::getpid());
  WriteCredentials(wrong);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"pull", registry_ + "/busybox"},
           {"inspect", "--format", "json", registry_ + "/busybox"},
           {"copy", registry_ + "/busybox", "oci-layout://" + (dir_.path() / "out").string()}}) {
    RunResult r = Kiln(args);
    ExpectOneErrorLine(r);
    EXPECT_NE(r.err.find("registry " + registry_), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(wrong), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(Base64Encode(fixture_.Get("USER") + ":" + wrong)), std::string::npos);
    EXPECT_EQ(r.err.find(fixture_.Get("PASSWORD")), std::string::npos);
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// debug parse / debug graph: the Dockerfile frontend with the registry client
// as its image resolver.

TEST_F(CliAnonymousTest, DebugGraphResolvesBaseImagesThroughTheRegistry) {
  const std::string multi = fixture_.Get("BUSYBOX_MULTI_DIGEST");
  const fs::path ctx = dir_.path() / "ctx";
  WriteFile(ctx / "Dockerfile",
            "ARG REG\nFROM ${REG}/busybox-multi AS base\n"
            "ARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"
            "FROM scratch\nCOPY --from=base /arch /\nCOPY Dockerfile /\n");
  RunResult r = Kiln({"debug", "graph", "--platform", "linux/arm64", "--build-arg",
                      "REG=" + registry_, ctx.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // The image op pulls exactly what the record pins: the index digest.
  EXPECT_NE(r.out.find("\"docker-image://" + registry_ + "/busybox-multi@" + multi + "\""),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("TARGETARCH=arm64"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"local://context\""), std::string::npos) << r.out;

  RunResult dot =
      Kiln({"debug", "graph", "--format", "dot", "--build-arg", "REG=" + registry_, ctx.string()});
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  EXPECT_TRUE(dot.out.starts_with("digraph kiln {")) << dot.out;
}

TEST_F(CliAnonymousTest, DebugGraphUnknownImageNamesTheLine) {
  const fs::path ctx = dir_.path() / "ctx";
  WriteFile(ctx / "Dockerfile", "FROM " + registry_ + "/no-such-image:1\n");
  RunResult r = Kiln({"debug", "graph", ctx.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.err.find((ctx / "Dockerfile").string() + ":1: resolving " + registry_ + "/no-such-image:1"),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(" 1 | FROM " + registry_ + "/no-such-image:1"), std::string::npos) << r.err;
}

TEST_F(CliAnonymousTest, DebugParsePrintsBuildKitsDump) {
  const fs::path file = dir_.path() / "Dockerfile";
  WriteFile(file, "FROM busybox\nCOPY --chown=1:1 a /b\nRUN echo \\\n\n  hi\n");
  RunResult r = Kiln({"debug", "parse", file.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out,
            "(from \"busybox\")\n(copy [\"--chown=1:1\"] \"a\" \"/b\")\n(run \"echo   hi\")\n");
  EXPECT_NE(r.err.find("warning: " + file.string() + ":"), std::string::npos) << r.err;

  WriteFile(file, "FROM busybox\nCOPY\n");
  RunResult bad = Kiln({"debug", "parse", file.string()});
  EXPECT_EQ(bad.exit_code, 0) << Describe(bad);  // the parser accepts it; instructions do not
  RunResult graph = Kiln({"debug", "graph", "-f", file.string(), dir_.path().string()});
  EXPECT_EQ(graph.exit_code, 1);
  EXPECT_NE(graph.err.find(file.string() + ":2: "), std::string::npos) << graph.err;
}
