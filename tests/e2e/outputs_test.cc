// End-to-end tests of `kiln build`'s outputs (-o type=image|docker|local|tar
// and the options of type=oci): pushes to the loopback fixture's registry
// (anonymous, and a second fixture with basic auth) read back with skopeo;
// Docker archives checked by their files and by `skopeo inspect
// docker-archive:`; filesystem outputs compared with the image kiln wrote
// as an OCI archive in the same build, read by tests/support/oci_image.h.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
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
using kiln::testing::RunOptions;
using kiln::testing::RunResult;
using kiln::testing::TempDir;
using kiln::testing::WriteFile;

constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";

class OutputTest : public BuildTest {
 protected:
  // A small image on the fixture's busybox: two new layers (COPY, RUN) with
  // a file, a directory, a symlink and a hard link.
  void WriteAppContext() {
    WriteFile(ctx() / "Dockerfile",
              "ARG REGISTRY\n"
              "FROM ${REGISTRY}/busybox:latest\n"
              "COPY hello.txt /data/hello.txt\n"
              "RUN chmod 0640 /data/hello.txt && ln -s hello.txt /data/link && "
              "ln /data/hello.txt /data/hard && mkdir -p /data/empty\n"
              "CMD [\"cat\", \"/data/hello.txt\"]\n");
    WriteFile(ctx() / "hello.txt", "hello from outputs\n");
  }

  // `kiln build` with the given outputs (no implicit type=oci).
  RunResult BuildWith(std::vector<std::string> extra, RunOptions ro = {}) {
    std::vector<std::string> args = {"build", "--progress", "plain", "--build-arg",
                                     "REGISTRY=" + registry_};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(ctx().string());
    return Kiln(args, ro);
  }

  // `skopeo inspect` of a docker:// reference (plain HTTP), parsed.
  json SkopeoInspect(const std::string& ref, const std::string& creds = "", bool raw = false) {
    std::vector<std::string> args = {"inspect", "--tls-verify=false"};
    if (raw) args.push_back("--raw");
    if (!creds.empty()) args.insert(args.end(), {"--creds", creds});
    args.push_back("docker://" + ref);
    RunResult r = kiln::testing::Run("/usr/bin/skopeo", args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (r.exit_code != 0) return json();
    return json::parse(r.out);
  }

  json Metadata(const fs::path& file) { return json::parse(ReadAll(file)); }
};

// Compares a directory with the filesystem of an image: every entry of the
// image is there with its type, mode, owner and content.
void ExpectTreeMatches(const OciImage& img, const fs::path& dir) {
  for (const auto& [path, e] : img.files) {
    const fs::path p = dir / path;
    struct stat st;
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << "missing: " << path;
    EXPECT_EQ(st.st_uid, static_cast<uid_t>(e.uid)) << path;
    EXPECT_EQ(st.st_gid, static_cast<gid_t>(e.gid)) << path;
    switch (e.type) {
      case 'f':
        EXPECT_TRUE(S_ISREG(st.st_mode)) << path;
        EXPECT_EQ(st.st_mode & 07777, e.mode & 07777) << path;
        EXPECT_EQ(ReadAll(p), e.data) << path;
        break;
      case 'd':
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << path;
        EXPECT_EQ(st.st_mode & 07777, e.mode & 07777) << path;
        break;
      case 'l':
        EXPECT_TRUE(S_ISLNK(st.st_mode)) << path;
        EXPECT_EQ(fs::read_symlink(p).string(), e.data) << path;
        break;
      case 'h': {
        struct stat target;
        ASSERT_EQ(::lstat((dir / e.data).c_str(), &target), 0) << path << " -> " << e.data;
        EXPECT_EQ(st.st_ino, target.st_ino) << "a hard link: " << path;
        break;
      }
      default:
        break;
    }
  }
}

TEST_F(OutputTest, PushTwoTagsAndPullBack) {
  WriteAppContext();
  const std::string repo = registry_ + "/outputs-push/app";
  const fs::path meta = dir_.path() / "meta.json";
  RunResult r =
      BuildWith({"--push", "-t", repo + ":1", "-t", repo + ":2", "--metadata-file", meta.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_EQ(r.out.size(), 72u) << "the digest on stdout: " << r.out;
  const std::string digest = r.out.substr(0, 71);

  for (const std::string tag : {"1", "2"}) {
    const json inspected = SkopeoInspect(repo + ":" + tag);
    EXPECT_EQ(inspected.value("Digest", ""), digest) << "tag " << tag;
    EXPECT_NE(r.err.find(" pushing " + repo + ":" + tag + "\n"), std::string::npos)
        << "a progress task per reference: " << r.err;
  }
  // The base image's layer is mounted from its repository on the same
  // registry, not uploaded; the second tag finds every blob there.
  EXPECT_NE(r.err.find(" mounted from busybox "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" already exists "), std::string::npos) << r.err;
  // Docker schema2 media types by default, the bytes pushed as stored.
  RunResult raw = kiln::testing::Run(
      "/usr/bin/skopeo", {"inspect", "--tls-verify=false", "--raw", "docker://" + repo + ":1"});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  EXPECT_EQ(kiln::util::Sha256Of(raw.out).str(), digest);
  const json manifest = json::parse(raw.out);
  EXPECT_EQ(manifest["mediaType"], kDockerManifest);
  EXPECT_EQ(manifest["layers"].size(), 3u) << "busybox, COPY, RUN";

  // The exporter response of a push.
  const json m = Metadata(meta);
  EXPECT_EQ(m["containerimage.digest"], digest);
  EXPECT_EQ(m["image.name"], repo + ":1," + repo + ":2");
  EXPECT_TRUE(m.contains("containerimage.buildinfo"));
  EXPECT_TRUE(m.contains("containerimage.config.digest"));

  // Pushing again: everything is already there, same digest.
  RunResult again = BuildWith({"-o", "type=image,name=" + repo + ":3,push=true"});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(again.out, r.out);
  EXPECT_EQ(SkopeoInspect(repo + ":3").value("Digest", ""), digest);
}

TEST_F(OutputTest, PushWithOciMediaTypesToAnotherRepository) {
  WriteAppContext();
  const std::string repo = registry_ + "/outputs-push-oci/app";
  RunResult r = BuildWith({"-o", "type=registry,\"name=" + repo + ":a," + repo + "-copy:b\"," +
                                     "oci-mediatypes=true,registry.insecure=true"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string digest = r.out.substr(0, 71);
  for (const std::string& ref : {repo + ":a", repo + "-copy:b"}) {
    RunResult raw = kiln::testing::Run(
        "/usr/bin/skopeo", {"inspect", "--tls-verify=false", "--raw", "docker://" + ref});
    ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
    EXPECT_EQ(kiln::util::Sha256Of(raw.out).str(), digest) << ref;
    EXPECT_EQ(json::parse(raw.out)["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  }
  // Copy the image back out of the registry and compare with the OCI
  // archive of a build of the same inputs.
  const fs::path pulled = dir_.path() / "pulled";
  RunResult copy = kiln::testing::Run("/usr/bin/skopeo",
                                      {"copy", "--src-tls-verify=false", "docker://" + repo + ":a",
                                       "oci:" + pulled.string() + ":x"});
  ASSERT_EQ(copy.exit_code, 0) << Describe(copy);
  auto back = ReadOciImage(pulled);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->manifest_digest, digest);
  EXPECT_EQ(back->files.at("data/hello.txt").data, "hello from outputs\n");
}

TEST_F(OutputTest, PushWithBasicAuth) {
  kiln::fixture::FixtureOptions fo;
  fo.auth = "basic";
  fo.images = false;
  auto started = kiln::fixture::Fixture::Start(fo);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  kiln::fixture::Fixture auth = std::move(*started);
  const std::string reg = auth.Get("REGISTRY");
  const std::string user = auth.Get("USER");
  const std::string password = auth.Get("PASSWORD");
  ASSERT_FALSE(password.empty());
  WriteAppContext();
  const std::string ref = reg + "/outputs-auth/app:1";
  const fs::path meta = dir_.path() / "meta.json";

  // Without credentials: refused, and said so.
  RunResult denied = BuildWith({"--push", "-t", ref});
  EXPECT_NE(denied.exit_code, 0) << Describe(denied);
  EXPECT_NE(denied.err.find(reg), std::string::npos) << denied.err;

  const fs::path config = dir_.path() / "docker-config";
  WriteFile(config / "config.json",
            json({{"auths", {{reg, {{"auth", kiln::util::Base64Encode(user + ":" + password)}}}}}})
                .dump());
  RunOptions ro;
  ro.env["DOCKER_CONFIG"] = config.string();
  RunResult r = BuildWith({"--push", "-t", ref, "--metadata-file", meta.string()}, ro);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string digest = r.out.substr(0, 71);
  EXPECT_EQ(SkopeoInspect(ref, user + ":" + password).value("Digest", ""), digest);
  for (const std::string* text : {&r.out, &r.err, &denied.out, &denied.err}) {
    EXPECT_EQ(text->find(password), std::string::npos) << "the password leaked: " << *text;
  }
  const std::string metadata = ReadAll(meta);
  EXPECT_EQ(metadata.find(password), std::string::npos);
  EXPECT_EQ(Metadata(meta)["image.name"], ref);
}

// A cold build writes its archive while the layers are compressed; a warm
// rebuild (every layer reused) writes it afterwards from the store. The two
// files are the same bytes, and skopeo reads the first.
TEST_F(OutputTest, ArchiveWrittenDuringExportEqualsOneWrittenAfter) {
  WriteAppContext();
  const fs::path cold = dir_.path() / "cold.tar";
  const fs::path warm = dir_.path() / "warm.tar";
  RunResult r = BuildWith({"-o", "type=oci,dest=" + cold.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  RunResult again = BuildWith({"-o", "type=oci,dest=" + warm.string()});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_NE(again.err.find("0 layers compressed"), std::string::npos) << again.err;
  EXPECT_TRUE(ReadAll(cold) == ReadAll(warm)) << "the archives differ";
  RunResult inspect =
      kiln::testing::Run("/usr/bin/skopeo", {"inspect", "oci-archive:" + cold.string()});
  ASSERT_EQ(inspect.exit_code, 0) << Describe(inspect);
  EXPECT_EQ(json::parse(inspect.out)["Layers"].size(), 3u);
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

TEST_F(OutputTest, DockerArchive) {
  WriteAppContext();
  const fs::path archive = dir_.path() / "docker.tar";
  const fs::path oci = dir_.path() / "oci.tar";
  RunResult r = BuildWith({"-o", "type=docker,dest=" + archive.string() + ",name=app:1", "-o",
                           "type=oci,dest=" + oci.string(), "-t", "example.com/team/app"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const fs::path x = dir_.path() / "x";
  fs::create_directories(x);
  ASSERT_EQ(std::system(("tar -C " + x.string() + " -xf " + archive.string()).c_str()), 0);
  for (const char* f : {"manifest.json", "repositories", "index.json", "oci-layout"}) {
    EXPECT_TRUE(fs::exists(x / f)) << f;
  }
  const json manifest = json::parse(ReadAll(x / "manifest.json"));
  ASSERT_EQ(manifest.size(), 1u);
  EXPECT_EQ(manifest[0]["RepoTags"], json::parse(R"(["app:1","example.com/team/app:latest"])"));
  const std::string config_path = manifest[0]["Config"];
  const json config = json::parse(ReadAll(x / config_path));
  EXPECT_EQ(config["architecture"], "amd64");
  ASSERT_EQ(manifest[0]["Layers"].size(), 3u);
  const std::string top_layer = manifest[0]["Layers"][2];
  EXPECT_EQ(json::parse(ReadAll(x / "repositories")),
            json({{"app", {{"1", top_layer.substr(13)}}},
                  {"example.com/team/app", {{"latest", top_layer.substr(13)}}}}));
  // The archive's image is a Docker schema2 one; the OCI output's layers
  // are the same blobs.
  const json index = json::parse(ReadAll(x / "index.json"));
  EXPECT_EQ(index["manifests"][0]["mediaType"], kDockerManifest);
  OciImage img = ReadOciImage(oci).value();
  ASSERT_EQ(img.layer_digests.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ("blobs/sha256/" + img.layer_digests[i].substr(7),
              manifest[0]["Layers"][i].get<std::string>());
  }

  // skopeo reads it as a docker archive.
  RunResult inspect =
      kiln::testing::Run("/usr/bin/skopeo", {"inspect", "docker-archive:" + archive.string()});
  ASSERT_EQ(inspect.exit_code, 0) << Describe(inspect);
  const json i = json::parse(inspect.out);
  EXPECT_EQ(i["Architecture"], "amd64");
  EXPECT_EQ(i["Layers"].size(), 3u);
  EXPECT_EQ(i["Env"], config["config"]["Env"]);

  // To stdout.
  RunResult piped = BuildWith({"-o", "type=docker,dest=-,name=app:1"});
  ASSERT_EQ(piped.exit_code, 0) << Describe(piped);
  auto paths = kiln::testing::TarPaths(piped.out);
  ASSERT_TRUE(paths.ok()) << paths.status().ToString();
  const std::set<std::string> names(paths->begin(), paths->end());
  EXPECT_TRUE(names.count("manifest.json"));
  EXPECT_TRUE(names.count("index.json"));
}

TEST_F(OutputTest, LocalAndTarMatchTheImage) {
  WriteAppContext();
  const fs::path local = dir_.path() / "local";
  const fs::path tar = dir_.path() / "fs.tar";
  RunResult r =
      BuildWith({"-o", "type=local,dest=" + local.string(), "-o", "type=tar,dest=" + tar.string(),
                 "-o", "type=oci,dest=" + out().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  ASSERT_TRUE(img.files.count("data/hello.txt"));
  ASSERT_TRUE(img.files.count("bin/busybox"));
  ExpectTreeMatches(img, local);
  EXPECT_EQ(ReadAll(local / "data" / "hello.txt"), "hello from outputs\n");

  const fs::path extracted = dir_.path() / "extracted";
  fs::create_directories(extracted);
  ASSERT_EQ(std::system(
                ("tar -C " + extracted.string() + " --numeric-owner -xpf " + tar.string()).c_str()),
            0);
  ExpectTreeMatches(img, extracted);
  auto paths = kiln::testing::TarPaths(ReadAll(tar));
  ASSERT_TRUE(paths.ok());
  std::set<std::string> in_tar;
  for (std::string p : *paths) {
    while (!p.empty() && p.back() == '/') p.pop_back();
    in_tar.insert(p);
  }
  std::set<std::string> in_image;
  for (const auto& [p, e] : img.files) in_image.insert(p);
  EXPECT_EQ(in_tar, in_image) << "the tar holds exactly the image's filesystem";

  // Filesystem outputs only: no image digest on stdout, the record in the
  // metadata (R40).
  const fs::path meta = dir_.path() / "meta.json";
  RunResult only =
      BuildWith({"-o", "type=local,dest=" + local.string(), "--metadata-file", meta.string()});
  ASSERT_EQ(only.exit_code, 0) << Describe(only);
  EXPECT_EQ(only.out, "");
  const json m = Metadata(meta);
  EXPECT_TRUE(m.contains("containerimage.buildinfo"));
  EXPECT_FALSE(m.contains("containerimage.digest"));

  // "-o -": the tar on stdout.
  RunResult piped = BuildWith({"-o", "-"});
  ASSERT_EQ(piped.exit_code, 0) << Describe(piped);
  EXPECT_EQ(piped.out, ReadAll(tar)) << "the same normalized tar";
}

TEST_F(OutputTest, SourceDateEpochClampsFilesystemOutputs) {
  WriteAppContext();
  const fs::path local = dir_.path() / "local";
  RunResult r = BuildWith(
      {"--build-arg", "SOURCE_DATE_EPOCH=1000", "-o", "type=local,dest=" + local.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  struct stat st;
  ASSERT_EQ(::lstat((local / "data" / "hello.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1000);
}

TEST_F(OutputTest, ZstdLayersAreReadableBySkopeo) {
  WriteAppContext();
  RunResult r =
      BuildWith({"-o", "type=oci,dest=" + out().string() +
                           ",compression=zstd,compression-level=3,force-compression=true"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  const json manifest = json::parse(img.manifest_json);
  ASSERT_EQ(manifest["layers"].size(), 3u);
  for (const json& l : manifest["layers"]) {
    EXPECT_EQ(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
  }
  EXPECT_EQ(img.files.at("data/hello.txt").data, "hello from outputs\n");
  const fs::path copied = dir_.path() / "copied";
  RunResult copy = kiln::testing::Run(
      "/usr/bin/skopeo", {"copy", "oci-archive:" + out().string(), "dir:" + copied.string()});
  ASSERT_EQ(copy.exit_code, 0) << Describe(copy);
  const json copied_manifest = json::parse(ReadAll(copied / "manifest.json"));
  EXPECT_EQ(copied_manifest["layers"], manifest["layers"]) << "the same zstd blobs";
}

TEST_F(OutputTest, UncompressedLayers) {
  WriteAppContext();
  RunResult r = BuildWith({"-o", "type=oci,dest=" + out().string() +
                                     ",compression=uncompressed,force-compression=true"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  const json manifest = json::parse(img.manifest_json);
  ASSERT_EQ(manifest["layers"].size(), 3u);
  const json config = json::parse(img.config_json);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(manifest["layers"][i]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    EXPECT_EQ(manifest["layers"][i]["digest"], config["rootfs"]["diff_ids"][i])
        << "an uncompressed layer's digest is its diff_id";
  }
  EXPECT_EQ(img.files.at("data/hello.txt").data, "hello from outputs\n");
}

// Checks an OCI layout extracted from an archive (or written as a
// directory), independently of kiln: every blob file hashes to its name, and
// every descriptor reachable from index.json (indexes, manifests, configs,
// layers) names a blob that is there with the size the descriptor states.
void ExpectLayoutConsistent(const fs::path& dir, const std::string& what) {
  ASSERT_TRUE(fs::exists(dir / "oci-layout")) << what;
  ASSERT_TRUE(fs::exists(dir / "index.json")) << what << ": no index.json";
  size_t blob_files = 0;
  for (const auto& e : fs::directory_iterator(dir / "blobs" / "sha256")) {
    ++blob_files;
    EXPECT_EQ(kiln::util::Sha256Of(ReadAll(e.path())).hex(), e.path().filename().string())
        << what << ": a corrupt blob";
  }
  EXPECT_GT(blob_files, 0u) << what;
  std::vector<json> todo;
  const json top = json::parse(ReadAll(dir / "index.json"));
  for (const json& d : top["manifests"]) todo.push_back(d);
  size_t reached = 0;
  while (!todo.empty()) {
    const json d = todo.back();
    todo.pop_back();
    ++reached;
    const fs::path blob = dir / "blobs" / "sha256" / d["digest"].get<std::string>().substr(7);
    ASSERT_TRUE(fs::exists(blob)) << what << ": missing " << d.dump();
    EXPECT_EQ(fs::file_size(blob), d["size"].get<uint64_t>()) << what << ": " << d.dump();
    const std::string type = d.value("mediaType", "");
    if (type.find("index") != std::string::npos || type.find("list") != std::string::npos) {
      const json index = json::parse(ReadAll(blob));
      for (const json& m : index["manifests"]) todo.push_back(m);
    } else if (type.find("manifest") != std::string::npos) {
      const json m = json::parse(ReadAll(blob));
      todo.push_back(m["config"]);
      for (const json& l : m["layers"]) todo.push_back(l);
    }
  }
  EXPECT_GE(reached, 3u) << what;
}

// Extracts the tar `file` into a fresh directory beside it.
fs::path Extract(const fs::path& file) {
  const fs::path x = file.string() + ".x";
  fs::create_directories(x);
  const std::string cmd = "tar -C " + x.string() + " -xf " + file.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return x;
}

// A tmpfs mounted by the test holds either the state root or the outputs,
// the other one being on the disk under $TMPDIR: every output crosses a
// filesystem boundary (copy_file_range fails with EXDEV).
class CrossFilesystemOutputTest : public OutputTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    // The parameter: true puts the root on the tmpfs, false the outputs.
    mount_point_ = GetParam() ? root() : dir_.path() / "outputs";
    fs::create_directories(mount_point_);
    ASSERT_EQ(::mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, "size=2g,mode=0700"), 0)
        << "mounting a tmpfs (the test runs as root): " << std::strerror(errno);
    mounted_ = true;
    outputs_ = dir_.path() / "outputs";
    fs::create_directories(outputs_);
  }
  void TearDown() override {
    if (mounted_) {
      EXPECT_EQ(::umount2(mount_point_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
    }
  }

  // No temp file is left beside the outputs.
  void ExpectNoTempFiles() {
    for (const auto& e : fs::directory_iterator(outputs_)) {
      const std::string name = e.path().filename().string();
      EXPECT_TRUE(name.find(".tmp-") == std::string::npos &&
                  name.find(".kiln-") == std::string::npos)
          << e.path();
    }
  }

  fs::path mount_point_, outputs_;
  bool mounted_ = false;
};

// Guards issue 15 (OCI and Docker archives written across filesystems had a
// corrupt blob and no index.json while kiln exited 0): every output type,
// written while the layers are exported (a cold build) and afterwards from
// the store (a warm one), and a two-platform build, with the state root and
// the outputs on different filesystems, both ways.
TEST_P(CrossFilesystemOutputTest, EveryOutputIsIntact) {
  WriteAppContext();
  for (const std::string run : {"cold", "warm"}) {
    const fs::path oci = outputs_ / (run + "-oci.tar");
    const fs::path docker = outputs_ / (run + "-docker.tar");
    const fs::path layout = outputs_ / (run + "-layout");
    const fs::path tar = outputs_ / (run + "-fs.tar");
    const fs::path local = outputs_ / (run + "-local");
    RunResult r =
        BuildWith({"-o", "type=oci,dest=" + oci.string(), "-o",
                   "type=docker,dest=" + docker.string() + ",name=app:1", "-o",
                   "type=oci,tar=false,dest=" + layout.string(), "-o",
                   "type=tar,dest=" + tar.string(), "-o", "type=local,dest=" + local.string()});
    ASSERT_EQ(r.exit_code, 0) << run << ": " << Describe(r);
    if (run == "warm") {
      EXPECT_NE(r.err.find("0 layers compressed"), std::string::npos) << r.err;
    }
    ExpectLayoutConsistent(Extract(oci), run + " type=oci");
    const fs::path dx = Extract(docker);
    ExpectLayoutConsistent(dx, run + " type=docker");
    const json manifest = json::parse(ReadAll(dx / "manifest.json"));
    ASSERT_EQ(manifest.size(), 1u);
    for (const json& l : manifest[0]["Layers"]) {
      EXPECT_TRUE(fs::exists(dx / l.get<std::string>())) << l;
    }
    ExpectLayoutConsistent(layout, run + " type=oci,tar=false");
    auto read = ReadOciImage(oci);
    ASSERT_TRUE(read.ok()) << run << ": " << read.status().ToString();
    const OciImage& img = *read;
    ExpectTreeMatches(img, local);
    const fs::path tx = Extract(tar);
    ExpectTreeMatches(img, tx);
    RunResult inspect =
        kiln::testing::Run("/usr/bin/skopeo", {"inspect", "docker-archive:" + docker.string()});
    EXPECT_EQ(inspect.exit_code, 0) << Describe(inspect);
    ExpectNoTempFiles();
  }

  // Two platforms: an index in the archive, one folder per platform.
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox-multi:latest\n"
            "COPY hello.txt /data/hello.txt\n");
  const fs::path multi = outputs_ / "multi-oci.tar";
  const fs::path multi_tar = outputs_ / "multi-fs.tar";
  const fs::path multi_local = outputs_ / "multi-local";
  RunResult r = BuildWith(
      {"--platform", "linux/amd64,linux/arm64", "-o", "type=oci,dest=" + multi.string(), "-o",
       "type=tar,dest=" + multi_tar.string(), "-o", "type=local,dest=" + multi_local.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectLayoutConsistent(Extract(multi), "two-platform type=oci");
  const fs::path mx = Extract(multi_tar);
  for (const char* p : {"linux_amd64", "linux_arm64"}) {
    EXPECT_EQ(ReadAll(mx / p / "data" / "hello.txt"), "hello from outputs\n") << p;
    EXPECT_EQ(ReadAll(multi_local / p / "data" / "hello.txt"), "hello from outputs\n") << p;
  }
  ExpectNoTempFiles();
}

INSTANTIATE_TEST_SUITE_P(Directions, CrossFilesystemOutputTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "RootOnTmpfs" : "OutputsOnTmpfs";
                         });

// Bytes on disk below `dir`, each inode once (du -sk).
uint64_t DiskUsage(const fs::path& dir) {
  RunResult du = kiln::testing::Run("/usr/bin/du", {"-sk", dir.string()});
  EXPECT_EQ(du.exit_code, 0) << Describe(du);
  return std::stoull(du.out) * 1024;
}

// Guards issue 15 (the copy snapshotter turned sparse files into full
// files: a 256 MiB sparse file cost 256 MiB more at every step): a real
// build with the copy driver, a RUN making a 256 MiB sparse file and two
// more steps on top, then the file extracted by type=local. The state root
// stays small and the extracted file keeps its holes.
TEST_F(OutputTest, SparseFilesStaySparseWithTheCopySnapshotter) {
  env_["KILN_SNAPSHOTTER"] = "copy";
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN dd if=/dev/zero of=/sparse bs=1 count=0 seek=268435456 2>/dev/null\n"
            "RUN echo one > /one\n"
            "RUN echo two > /two\n");
  const fs::path local = dir_.path() / "local";
  RunResult r = BuildWith({"-o", "type=local,dest=" + local.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  struct stat st;
  ASSERT_EQ(::stat((local / "sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 256 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the extracted file's holes were filled";
  EXPECT_LT(DiskUsage(root() / "snapshots-copy"), 64u << 20)
      << "three copy-driver snapshots of a 256 MiB sparse file";
}

TEST_F(OutputTest, UnknownOptionIsRejected) {
  WriteAppContext();
  RunResult r = BuildWith({"-o", "type=docker,dest=x.tar,bogus=1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(
      r.err.find(
          R"(kiln: error: -o: unknown option "bogus" for exporter "docker" (type=docker takes )"
          R"(buildinfo, buildinfo-attrs, compression, compression-level, dest, )"
          R"(force-compression, name, oci-mediatypes, tar))"
          "\n"),
      std::string::npos)
      << r.err;
  RunResult level = BuildWith({"-o", "type=oci,dest=x.tar,compression-level=99"});
  EXPECT_EQ(level.exit_code, 1) << Describe(level);
  EXPECT_NE(
      level.err.find(
          R"(kiln: error: -o: output type=oci: compression-level "99" is not a level from 0 to 9)"
          "\n"),
      std::string::npos)
      << level.err;
  EXPECT_FALSE(fs::exists(ctx() / "x.tar"));
}

}  // namespace
