// End-to-end tests of `kiln buildinfo inspect`: the real kiln binary run on
// image archives written here blob by blob, the way BuildKit v0.10.6's `oci`
// and `docker` exporters lay them out (a foreign producer: the archive is
// written with libarchive directly, not with kiln's own writer).
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "util/base64.h"
#include "util/digest.h"

namespace {

namespace fs = std::filesystem;
using kiln::util::Base64Encode;
using kiln::util::Sha256Of;

struct RunResult {
  int exit_code;
  std::string out;  // stdout and stderr, interleaved
};

RunResult RunKiln(const std::string& args) {
  std::string cmd = std::string(KILN_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// Blobs by digest plus the top-level index.json of an OCI layout.
struct Layout {
  std::map<std::string, std::string> blobs;
  std::string index_json;

  std::string Put(const std::string& data) {
    std::string d = Sha256Of(data).str();
    blobs[d] = data;
    return d;
  }
  std::string Descriptor(const std::string& media_type, const std::string& data,
                         const std::string& extra = "") {
    return "{\"mediaType\":\"" + media_type + "\",\"digest\":\"" + Put(data) +
           "\",\"size\":" + std::to_string(data.size()) + extra + "}";
  }
};

void AddEntry(archive* a, const std::string& name, const std::string& data) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
  ASSERT_EQ(archive_write_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
  archive_entry_free(e);
}

void WriteTar(const fs::path& path, const std::map<std::string, std::string>& entries) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& [name, data] : entries) AddEntry(a, name, data);
  archive_write_close(a);
  archive_write_free(a);
}

void WriteOciArchive(const fs::path& path, const Layout& l) {
  std::map<std::string, std::string> entries;
  for (const auto& [d, data] : l.blobs) entries["blobs/sha256/" + d.substr(7)] = data;
  entries["oci-layout"] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  entries["index.json"] = l.index_json;
  WriteTar(path, entries);
}

// Compact Go-style record, as BuildKit v0.10.6 encodes it.
std::string Record(const std::string& arch_pin) {
  return "{\"frontend\":\"dockerfile.v0\",\"sources\":["
         "{\"type\":\"docker-image\",\"ref\":\"docker.io/library/busybox:latest\",\"pin\":\"" +
         arch_pin +
         "\"},"
         "{\"type\":\"http\",\"ref\":\"https://raw.githubusercontent.com/moby/moby/master/"
         "README.md\",\"pin\":\"sha256:"
         "419455202b0ef97e480d7f8199b26a721a417818bc0e2d106975f74323f25e6c\"}]}";
}

// A config as BuildKit's writer leaves it: top-level members sorted.
std::string Config(const std::string& arch, const std::string& member, const std::string& record) {
  return "{\"architecture\":\"" + arch +
         "\",\"config\":{\"Cmd\":[\"sh\"]},\"created\":\"2022-11-01T00:00:00Z\","
         "\"history\":[{\"created\":\"2022-11-01T00:00:00Z\",\"created_by\":\"RUN true # "
         "buildkit\",\"comment\":\"buildkit.dockerfile.v0\"}],"
         "\"" +
         member + "\":\"" + Base64Encode(record) +
         "\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
}

std::string Manifest(Layout& l, const std::string& config) {
  return "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
         "\"config\":" +
         l.Descriptor("application/vnd.oci.image.config.v1+json", config) + ",\"layers\":[]}";
}

const char kBusyboxPin[] =
    "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578";

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln-inspect-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(InspectTest, SinglePlatformOciArchiveFromBuildKit) {
  Layout l;
  std::string m = Manifest(l, Config("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin)));
  l.index_json = "{\"schemaVersion\":2,\"manifests\":[" +
                 l.Descriptor("application/vnd.oci.image.manifest.v1+json", m,
                              ",\"annotations\":{\"org.opencontainers.image.ref.name\":"
                              "\"latest\"}") +
                 "]}";
  WriteOciArchive(dir_ / "image.tar", l);

  RunResult r = RunKiln("buildinfo inspect --format json " + (dir_ / "image.tar").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(
      r.out,
      "{\n"
      "  \"containerimage.buildinfo\": {\n"
      "    \"frontend\": \"dockerfile.v0\",\n"
      "    \"sources\": [\n"
      "      {\n"
      "        \"type\": \"docker-image\",\n"
      "        \"ref\": \"docker.io/library/busybox:latest\",\n"
      "        \"pin\": \"" +
          std::string(kBusyboxPin) +
          "\"\n"
          "      },\n"
          "      {\n"
          "        \"type\": \"http\",\n"
          "        \"ref\": \"https://raw.githubusercontent.com/moby/moby/master/README.md\",\n"
          "        \"pin\": "
          "\"sha256:419455202b0ef97e480d7f8199b26a721a417818bc0e2d106975f74323f25e6c\"\n"
          "      }\n"
          "    ]\n"
          "  }\n"
          "}\n");

  RunResult pretty = RunKiln("buildinfo inspect " + (dir_ / "image.tar").string());
  ASSERT_EQ(pretty.exit_code, 0) << pretty.out;
  EXPECT_NE(pretty.out.find("containerimage.buildinfo"), std::string::npos) << pretty.out;
  EXPECT_NE(pretty.out.find("dockerfile.v0"), std::string::npos) << pretty.out;
  EXPECT_NE(pretty.out.find(kBusyboxPin), std::string::npos) << pretty.out;
}

TEST_F(InspectTest, MultiPlatformIndexKeyedPerPlatform) {
  Layout l;
  const std::string arm_pin =
      "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  std::string amd = Manifest(l, Config("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin)));
  std::string arm = Manifest(l, Config("arm64", "moby.buildkit.buildinfo.v1", Record(arm_pin)));
  std::string index =
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":[" +
      l.Descriptor("application/vnd.oci.image.manifest.v1+json", amd,
                   ",\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}") +
      "," +
      l.Descriptor(
          "application/vnd.oci.image.manifest.v1+json", arm,
          ",\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}") +
      "]}";
  l.index_json = "{\"schemaVersion\":2,\"manifests\":[" +
                 l.Descriptor("application/vnd.oci.image.index.v1+json", index) + "]}";
  WriteOciArchive(dir_ / "multi.tar", l);

  RunResult r = RunKiln("buildinfo inspect --format json " + (dir_ / "multi.tar").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"containerimage.buildinfo/linux/amd64\": {"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"containerimage.buildinfo/linux/arm64\": {"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"containerimage.buildinfo\": {"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(arm_pin), std::string::npos) << r.out;
}

TEST_F(InspectTest, LayoutDirectoryAndLegacyV0Member) {
  Layout l;
  std::string m = Manifest(l, Config("amd64", "moby.buildkit.buildinfo.v0", Record(kBusyboxPin)));
  l.index_json = "{\"schemaVersion\":2,\"manifests\":[" +
                 l.Descriptor("application/vnd.oci.image.manifest.v1+json", m) + "]}";
  fs::create_directories(dir_ / "layout/blobs/sha256");
  for (const auto& [d, data] : l.blobs) {
    std::ofstream(dir_ / "layout/blobs/sha256" / d.substr(7), std::ios::binary) << data;
  }
  std::ofstream(dir_ / "layout/oci-layout") << "{\"imageLayoutVersion\":\"1.0.0\"}";
  std::ofstream(dir_ / "layout/index.json") << l.index_json;

  RunResult r = RunKiln("buildinfo inspect --format json " + (dir_ / "layout").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(kBusyboxPin), std::string::npos) << r.out;
}

TEST_F(InspectTest, DockerArchive) {
  std::string config = Config("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin));
  std::string hex = Sha256Of(config).str().substr(7);
  WriteTar(dir_ / "docker.tar",
           {{hex + ".json", config},
            {"manifest.json",
             "[{\"Config\":\"" + hex + ".json\",\"RepoTags\":[\"example/app:1\"],\"Layers\":[]}]"},
            {"repositories", "{\"example/app\":{\"1\":\"" + hex + "\"}}"}});
  RunResult r = RunKiln("buildinfo inspect --format json " + (dir_ / "docker.tar").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"containerimage.buildinfo\": {"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(kBusyboxPin), std::string::npos) << r.out;
}

TEST_F(InspectTest, RawConfigFile) {
  std::ofstream(dir_ / "config.json")
      << Config("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin));
  RunResult r = RunKiln("buildinfo inspect --format json " + (dir_ / "config.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(kBusyboxPin), std::string::npos) << r.out;
}

TEST_F(InspectTest, ImageWithoutRecordSaysSo) {
  std::ofstream(dir_ / "config.json")
      << "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}";
  RunResult r = RunKiln("buildinfo inspect " + (dir_ / "config.json").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("no build sources"), std::string::npos) << r.out;
}

TEST_F(InspectTest, CorruptedBlobIsAnError) {
  Layout l;
  std::string m = Manifest(l, Config("amd64", "moby.buildkit.buildinfo.v1", Record(kBusyboxPin)));
  l.index_json = "{\"schemaVersion\":2,\"manifests\":[" +
                 l.Descriptor("application/vnd.oci.image.manifest.v1+json", m) + "]}";
  for (auto& [d, data] : l.blobs) {
    if (data.find("\"architecture\"") != std::string::npos) data[0] = ' ';  // config tampered
  }
  WriteOciArchive(dir_ / "bad.tar", l);
  RunResult r = RunKiln("buildinfo inspect " + (dir_ / "bad.tar").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("is corrupted"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line expected: " << r.out;
}

TEST_F(InspectTest, BadInputIsOneClearLine) {
  RunResult missing = RunKiln("buildinfo inspect " + (dir_ / "nope").string());
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find((dir_ / "nope").string()), std::string::npos) << missing.out;
  EXPECT_EQ(missing.out.find('\n'), missing.out.size() - 1) << missing.out;

  std::ofstream(dir_ / "junk.tar") << "this is not an archive";
  RunResult junk = RunKiln("buildinfo inspect " + (dir_ / "junk.tar").string());
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_EQ(junk.out.find('\n'), junk.out.size() - 1) << junk.out;

  RunResult fmt = RunKiln("buildinfo inspect --format yaml " + (dir_ / "junk.tar").string());
  EXPECT_NE(fmt.exit_code, 0);
  EXPECT_NE(fmt.out.find("yaml"), std::string::npos) << fmt.out;
}

// A registry that is not on loopback is spoken to over HTTPS unless the kiln
// config lists it as insecure. `.invalid` never resolves, so the error shows
// which URL kiln tried without any traffic leaving the machine.
TEST_F(InspectTest, InsecureRegistriesFromConfig) {
  RunResult https = RunKiln("--root " + (dir_ / "root").string() + " --config /dev/null/absent " +
                            "pull registry.invalid:5000/app:1");
  EXPECT_NE(https.exit_code, 0);
  EXPECT_NE(https.out.find("cannot read kiln config /dev/null/absent"), std::string::npos)
      << https.out;

  std::ofstream(dir_ / "empty.json") << "{}";
  RunResult tls = RunKiln("--root " + (dir_ / "root").string() + " --config " +
                          (dir_ / "empty.json").string() + " pull registry.invalid:5000/app:1");
  EXPECT_NE(tls.exit_code, 0);
  EXPECT_NE(tls.out.find("https://registry.invalid:5000/v2/"), std::string::npos) << tls.out;

  std::ofstream(dir_ / "insecure.json") << R"({"insecure-registries": ["registry.invalid:5000"]})";
  RunResult plain =
      RunKiln("--root " + (dir_ / "root").string() + " --config " +
              (dir_ / "insecure.json").string() + " pull registry.invalid:5000/app:1");
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_NE(plain.out.find("http://registry.invalid:5000/v2/"), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find('\n'), plain.out.size() - 1) << plain.out;
}

TEST(VersionTest, PrintsVersion) {
  RunResult r = RunKiln("version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("kiln ", 0), 0u) << r.out;
}

}  // namespace
