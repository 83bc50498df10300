// Unit tests of the outputs: -o parsing and option checks (K11), image
// output options, the OCI archive skip when nothing changed, the Docker
// archive's structure, and the local and tar outputs of a real snapshot
// (the copy driver, so no mount is needed).
#include "exporter/outputs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "content/layout.h"
#include "image/config.h"
#include "kiln_process.h"
#include "snapshot/labels.h"

namespace kiln::exporter {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln::testing::TempDir;

image::ImageConfig Template(const std::string& json_text) {
  auto c = image::ParseImageConfig(json_text);
  KILN_CHECK(c.ok(), c.status().ToString());
  return *c;
}

TEST(OutputsTest, AnUnchangedArchiveIsNotWrittenAgain) {
  TempDir dir;
  auto store = content::Store::Open(dir.path() / "content");
  ASSERT_TRUE(store.ok());
  ImageRequest req;
  req.config = Template(R"({"architecture":"amd64","os":"linux"})");
  auto img = WriteImage(*store, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  auto out = ParseOutput("type=oci,dest=" + (dir.path() / "image.tar").string());
  ASSERT_TRUE(out.ok());
  OutputEnv env;
  env.store = &*store;
  env.state_dir = dir.path() / "outputs";
  OutputResult result;
  bool& skipped = result.skipped;
  auto write = [&](std::vector<std::string> names) {
    auto opts = ParseImageOutputOptions(*out, names);
    KILN_CHECK(opts.ok(), opts.status().ToString());
    return WriteImageOutput(env, *out, *opts, *img, &result);
  };
  ASSERT_TRUE(write({}).ok());
  EXPECT_FALSE(skipped);
  ASSERT_TRUE(write({}).ok());
  EXPECT_TRUE(skipped) << "same content, same file: nothing to write";

  // Other content (a name annotation): written again.
  ASSERT_TRUE(write({"app:1"}).ok());
  EXPECT_FALSE(skipped);
  ASSERT_TRUE(write({"app:1"}).ok());
  EXPECT_TRUE(skipped);

  // The file touched (or replaced) since: written again.
  std::ofstream(dir.path() / "image.tar", std::ios::app) << "x";
  ASSERT_TRUE(write({"app:1"}).ok());
  EXPECT_FALSE(skipped);
  fs::remove(dir.path() / "image.tar");
  ASSERT_TRUE(write({"app:1"}).ok());
  EXPECT_FALSE(skipped);
  EXPECT_TRUE(fs::exists(dir.path() / "image.tar"));

  // Without a state dir every call writes.
  env.state_dir.clear();
  ASSERT_TRUE(write({"app:1"}).ok());
  EXPECT_FALSE(skipped);
}

image::Platform Linux(const std::string& arch, const std::string& variant = "") {
  image::Platform p;
  p.os = "linux";
  p.architecture = arch;
  p.variant = variant;
  return p;
}

TEST(PlatformFolderTest, BuildxNames) {
  EXPECT_EQ(PlatformFolder(Linux("amd64")), "linux_amd64");
  EXPECT_EQ(PlatformFolder(Linux("arm64")), "linux_arm64");
  EXPECT_EQ(PlatformFolder(Linux("arm", "v7")), "linux_arm_v7");
}

// A multi-platform result: type=oci's index.json names the index (with the
// name annotations), every blob of both images is in the archive once, and
// unchanged content is skipped as for one image; type=docker is refused.
TEST(OutputsTest, IndexArchiveAndDockerRefusal) {
  TempDir dir;
  auto store = content::Store::Open(dir.path() / "content");
  ASSERT_TRUE(store.ok());
  std::vector<PlatformImage> images;
  for (const char* arch : {"amd64", "arm64"}) {
    ImageRequest req;
    req.config = Template(std::string(R"({"architecture":")") + arch + R"(","os":"linux"})");
    auto img = WriteImage(*store, req);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    images.push_back({Linux(arch), *img});
  }
  auto index = WriteIndex(*store, images, true);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  OutputEnv env;
  env.store = &*store;
  env.state_dir = dir.path() / "outputs";
  OutputResult result;

  const fs::path layout = dir.path() / "layout";
  auto out = ParseOutput("type=oci,tar=false,dest=" + layout.string());
  ASSERT_TRUE(out.ok());
  auto opts = ParseImageOutputOptions(*out, {"app:1"});
  ASSERT_TRUE(opts.ok());
  Status st = WriteImageOutput(env, *out, *opts, *index, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::ifstream in(layout / "index.json");
  const json top = json::parse(in);
  ASSERT_EQ(top["manifests"].size(), 1u);
  EXPECT_EQ(top["manifests"][0]["digest"], index->descriptor.digest.str());
  EXPECT_EQ(top["manifests"][0]["mediaType"], "application/vnd.oci.image.index.v1+json");
  EXPECT_EQ(top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1");
  for (const PlatformImage& pi : images) {
    for (const image::Descriptor& d : {pi.image.manifest, pi.image.config}) {
      EXPECT_TRUE(fs::exists(layout / "blobs" / "sha256" / std::string(d.digest.hex())))
          << d.digest.str();
    }
  }

  const fs::path tar = dir.path() / "index.tar";
  out = ParseOutput("type=oci,dest=" + tar.string());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(WriteImageOutput(env, *out, *opts, *index, &result).ok());
  EXPECT_FALSE(result.skipped);
  ASSERT_TRUE(WriteImageOutput(env, *out, *opts, *index, &result).ok());
  EXPECT_TRUE(result.skipped);

  out = ParseOutput("type=docker,dest=" + (dir.path() / "d.tar").string());
  ASSERT_TRUE(out.ok());
  st = WriteImageOutput(env, *out, *opts, *index, &result);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "output type=docker holds one platform, and this build made 2 (linux/amd64, "
            "linux/arm64): use type=oci or type=image for several platforms, or build one "
            "--platform");
  EXPECT_FALSE(fs::exists(dir.path() / "d.tar"));
}

TEST(ParseOutputTest, TypesAndErrors) {
  auto o = ParseOutput("type=oci,dest=out.tar,tar=false");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->type, "oci");
  EXPECT_EQ(o->attrs.at("dest"), "out.tar");
  EXPECT_EQ(o->attrs.at("tar"), "false");
  auto local = ParseOutput("./dir");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->type, "local");
  auto bad = ParseOutput("type=oci,dest");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "output \"type=oci,dest\": \"dest\" is not KEY=VALUE");
  // An empty -o was a type=local output with an empty destination (found by
  // fuzz_cli_options, issue 15).
  auto empty = ParseOutput("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(),
            "output \"\": empty (expected a directory, - for a tar on stdout, or "
            "type=TYPE[,KEY=VALUE...])");
  auto notype = ParseOutput("dest=x");
  ASSERT_FALSE(notype.ok());
  EXPECT_EQ(notype.status().message(),
            "output \"dest=x\": no type= given (expected one of image, registry, oci, docker, "
            "local, tar)");
}

TEST(ParseOutputTest, QuotedValuesMayHoldCommas) {
  auto o = ParseOutput(R"(type=image,"name=a:1,localhost:5000/b:2",push=true)");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->type, "image");
  EXPECT_EQ(o->attrs.at("name"), "a:1,localhost:5000/b:2");
  auto opts = ParseImageOutputOptions(*o, {"c:3"});
  ASSERT_TRUE(opts.ok()) << opts.status().ToString();
  EXPECT_EQ(opts->names, (std::vector<std::string>{"a:1", "localhost:5000/b:2", "c:3"}))
      << "the output's names, then the -t names";
  EXPECT_TRUE(opts->push);
  EXPECT_FALSE(opts->oci_mediatypes) << "Docker media types by default for type=image";

  auto doubled = ParseOutput(R"(type=oci,"dest=a""b")");
  ASSERT_TRUE(doubled.ok());
  EXPECT_EQ(doubled->attrs.at("dest"), "a\"b");
  auto open = ParseOutput(R"(type=oci,"dest=x)");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().message(), R"(output "type=oci,"dest=x": unterminated quote)");

  auto reg = ParseOutput("type=registry,name=localhost:5000/x");
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(reg->type, "image") << "buildx's alias";
  EXPECT_EQ(reg->attrs.at("push"), "true");
  auto stdout_tar = ParseOutput("-");
  ASSERT_TRUE(stdout_tar.ok());
  EXPECT_EQ(stdout_tar->type, "tar");
  EXPECT_EQ(stdout_tar->attrs.at("dest"), "-");
}

TEST(ParseOutputTest, EveryTypeRejectsUnknownOptions) {
  const std::map<std::string, std::string> expected = {
      {"image", R"(unknown option "bogus" for exporter "image" (type=image takes buildinfo, )"
                R"(buildinfo-attrs, compression, compression-level, force-compression, name, )"
                R"(oci-mediatypes, push, registry.insecure))"},
      {"registry", R"(unknown option "bogus" for exporter "image" (type=image takes buildinfo, )"
                   R"(buildinfo-attrs, compression, compression-level, force-compression, name, )"
                   R"(oci-mediatypes, push, registry.insecure))"},
      {"oci",
       R"(unknown option "bogus" for exporter "oci" (type=oci takes buildinfo, buildinfo-attrs, )"
       R"(compression, compression-level, dest, force-compression, name, oci-mediatypes, tar))"},
      {"docker",
       R"(unknown option "bogus" for exporter "docker" (type=docker takes buildinfo, )"
       R"(buildinfo-attrs, compression, compression-level, dest, force-compression, name, )"
       R"(oci-mediatypes, tar))"},
      {"local", R"(unknown option "bogus" for exporter "local" (type=local takes buildinfo, )"
                R"(buildinfo-attrs, dest))"},
      {"tar", R"(unknown option "bogus" for exporter "tar" (type=tar takes buildinfo, )"
              R"(buildinfo-attrs, dest))"},
  };
  for (const auto& [type, message] : expected) {
    auto o = ParseOutput("type=" + type + ",dest=x,bogus=1");
    ASSERT_FALSE(o.ok()) << type;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(o.status().message(), message) << type;
  }
  // "dest" is not an option of type=image either.
  auto image_dest = ParseOutput("type=image,dest=x");
  ASSERT_FALSE(image_dest.ok());
  EXPECT_EQ(image_dest.status().message().rfind(R"(unknown option "dest" for exporter "image")", 0),
            0u);
  auto unknown_type = ParseOutput("type=cacheonly");
  ASSERT_FALSE(unknown_type.ok());
  EXPECT_EQ(unknown_type.status().message(),
            R"(output "type=cacheonly": unknown type "cacheonly" (expected one of image, )"
            R"(registry, oci, docker, local, tar))");
  auto no_dest = ParseOutput("type=local");
  ASSERT_FALSE(no_dest.ok());
  EXPECT_EQ(no_dest.status().message(), "output type=local needs dest=DIR");
  auto no_tar_dest = ParseOutput("type=tar");
  ASSERT_FALSE(no_tar_dest.ok());
  EXPECT_EQ(no_tar_dest.status().message(), "output type=tar needs dest=FILE (or - for stdout)");
}

TEST(ParseImageOutputOptionsTest, CompressionAndLevels) {
  auto opts = [](const std::string& spec) {
    auto o = ParseOutput(spec);
    KILN_CHECK(o.ok(), o.status().ToString());
    return ParseImageOutputOptions(*o, {});
  };
  auto zstd = opts("type=image,compression=zstd,compression-level=22");
  ASSERT_TRUE(zstd.ok()) << zstd.status().ToString();
  EXPECT_EQ(zstd->layers.compression, util::Compression::kZstd);
  EXPECT_EQ(zstd->layers.level, 22);
  EXPECT_TRUE(zstd->oci_mediatypes) << "zstd layers imply OCI media types";
  auto none = opts("type=docker,dest=x,compression=uncompressed,force-compression=true");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->layers.compression, util::Compression::kNone);
  EXPECT_TRUE(none->layers.force);
  EXPECT_FALSE(none->oci_mediatypes) << "Docker media types by default for type=docker";
  auto oci = opts("type=oci,dest=x");
  ASSERT_TRUE(oci.ok());
  EXPECT_TRUE(oci->oci_mediatypes);
  auto docker_oci = opts("type=docker,dest=x,oci-mediatypes=true");
  ASSERT_TRUE(docker_oci.ok());
  EXPECT_TRUE(docker_oci->oci_mediatypes);

  const std::map<std::string, std::string> errors = {
      {"type=image,compression=lz4",
       R"(output type=image: compression "lz4" is not supported (expected gzip, zstd or )"
       R"(uncompressed))"},
      {"type=oci,dest=x,compression-level=10",
       R"(output type=oci: compression-level "10" is not a level from 0 to 9)"},
      {"type=oci,dest=x,compression=zstd,compression-level=23",
       R"(output type=oci: compression-level "23" is not a level from 0 to 22)"},
      {"type=oci,dest=x,compression-level=fast",
       R"(output type=oci: compression-level "fast" is not a level from 0 to 9)"},
      {"type=image,force-compression=yes",
       R"(output type=image: option force-compression: invalid value "yes" (expected true, )"
       R"(false, 1 or 0))"},
      {"type=image,push=true", "output type=image,push=true needs a name (name=REF or -t REF)"},
      {"type=image,name=Upper/Case", R"(output type=image: invalid image name "Upper/Case": )"},
  };
  for (const auto& [spec, message] : errors) {
    auto r = opts(spec);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << spec;
    EXPECT_EQ(r.status().message().substr(0, message.size()), message) << spec;
  }
}

// A snapshotter (copy driver) and a store in a temp dir, with an image
// built from two snapshots.
class OutputFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = content::Store::Open(dir_.path() / "content");
    ASSERT_TRUE(store.ok());
    store_.emplace(std::move(*store));
    snapshot::Options so;
    so.force_copy = true;
    auto snaps = snapshot::Snapshotter::Open(dir_.path() / "snapshots", so);
    ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
    snaps_ = *snaps;
    // Bottom: a directory, a file, an executable owned by 1000:1000.
    auto a = snaps_->Prepare("");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    fs::create_directories(a->path() / "etc");
    std::ofstream(a->path() / "etc" / "hello") << "hello\n";
    std::ofstream(a->path() / "run.sh") << "#!/bin/sh\n";
    ASSERT_EQ(::chmod((a->path() / "run.sh").c_str(), 0750), 0);
    ASSERT_EQ(::lchown((a->path() / "run.sh").c_str(), 1000, 1000), 0);
    auto bottom = a->Commit({{std::string(snapshot::kLabelCreated), "2026-01-01T00:00:00Z"}});
    ASSERT_TRUE(bottom.ok()) << bottom.status().ToString();
    // Top: a symlink (absolute, pointing outside), a hard link, a replaced file.
    auto b = snaps_->Prepare(*bottom);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    fs::create_symlink("/etc/passwd", b->path() / "abs-link");
    fs::create_directories(b->path() / "escape");
    std::ofstream(b->path() / "escape" / "inside") << "inside\n";
    std::ofstream(b->path() / "etc" / "hello") << "hello again\n";
    fs::create_hard_link(b->path() / "etc" / "hello", b->path() / "hello-link");
    auto top = b->Commit({{std::string(snapshot::kLabelCreated), "2026-01-01T00:00:01Z"}});
    ASSERT_TRUE(top.ok()) << top.status().ToString();
    top_ = *top;
    env_.store = &*store_;
    env_.snapshots = snaps_.get();
    env_.state_dir = dir_.path() / "outputs";
  }

  Output Parse(const std::string& spec) {
    auto o = ParseOutput(spec);
    KILN_CHECK(o.ok(), o.status().ToString());
    return *o;
  }

  std::string ExportBytes(const std::string& id, std::optional<int64_t> clamp) {
    std::string bytes;
    snapshot::DiffOptions o;
    o.clamp_mtime = clamp;
    Status st = snaps_->Export(
        id,
        [&](std::string_view c) {
          bytes.append(c);
          return Status::Ok();
        },
        o);
    KILN_CHECK(st.ok(), st.ToString());
    return bytes;
  }

  static std::string Slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  TempDir dir_;
  std::optional<content::Store> store_;
  std::shared_ptr<snapshot::Snapshotter> snaps_;
  std::string top_;
  OutputEnv env_;
};

TEST_F(OutputFilesTest, TarIsTheSnapshotsExport) {
  const fs::path dest = dir_.path() / "fs.tar";
  std::vector<util::TaskUpdate> updates;
  env_.report = [&](const util::TaskUpdate& u) { updates.push_back(u); };
  OutputResult result;
  Status st = WriteFilesystemOutput(env_, Parse("type=tar,dest=" + dest.string()), top_, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(dest), ExportBytes(top_, std::nullopt));
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back().state, util::TaskUpdate::State::kDone);
  EXPECT_EQ(updates.back().current, fs::file_size(dest));
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".kiln-"), std::string::npos)
        << "no temp file left: " << e.path();
  }

  // SOURCE_DATE_EPOCH clamps the mtimes.
  env_.source_date_epoch = 1000;
  st = WriteFilesystemOutput(env_, Parse("type=tar,dest=" + dest.string()), top_, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(dest), ExportBytes(top_, 1000));
  EXPECT_NE(Slurp(dest), ExportBytes(top_, std::nullopt));

  // Nothing built (FROM scratch alone): an empty tar.
  st = WriteFilesystemOutput(env_, Parse("type=tar,dest=" + dest.string()), "", &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(dest), ExportBytes("", std::nullopt));

  // A destination in a directory that does not exist.
  st = WriteFilesystemOutput(
      env_, Parse("type=tar,dest=" + (dir_.path() / "no" / "x.tar").string()), top_, &result);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  EXPECT_NE(st.message().find("output type=tar: cannot create a file in " +
                              (dir_.path() / "no").string()),
            std::string::npos)
      << st.message();
}

// Ctrl-C while a filesystem output is written (issue 15): the export stops
// at its next chunk with kCancelled (exit 130) instead of finishing and
// reporting success; a tar leaves no file behind, not even a temp file.
TEST_F(OutputFilesTest, CancelledOutputStopsAtTheNextChunk) {
  auto c = snaps_->Prepare(top_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ofstream(c->path() / "big", std::ios::binary) << std::string(8 << 20, 'x');
  auto big = c->Commit({{std::string(snapshot::kLabelCreated), "2026-01-01T00:00:02Z"}});
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  for (const std::string type : {"tar", "local"}) {
    SCOPED_TRACE(type);
    util::Canceller cancel;
    env_.cancel = &cancel;
    int chunks = 0;  // reports of bytes written
    uint64_t last = 0;
    env_.report = [&](const util::TaskUpdate& u) {
      if (u.current <= last) return;
      last = u.current;
      if (++chunks == 1) cancel.Cancel("build cancelled (interrupted)");
    };
    const fs::path dest = dir_.path() / ("cancelled-" + type);
    OutputResult result;
    Status st = WriteFilesystemOutput(env_, Parse("type=" + type + ",dest=" + dest.string()), *big,
                                      &result);
    EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
    EXPECT_EQ(chunks, 1) << "chunks exported after the cancellation";
    if (type == "tar") {
      EXPECT_FALSE(fs::exists(dest));
      for (const auto& e : fs::directory_iterator(dir_.path())) {
        EXPECT_EQ(e.path().filename().string().find(".kiln-"), std::string::npos)
            << "no temp file left: " << e.path();
      }
    }
  }
  // Cancelled before it starts: nothing is written.
  util::Canceller cancelled;
  cancelled.Cancel("build cancelled (interrupted)");
  env_.cancel = &cancelled;
  env_.report = nullptr;
  const fs::path dest = dir_.path() / "never.tar";
  OutputResult result;
  Status st = WriteFilesystemOutput(env_, Parse("type=tar,dest=" + dest.string()), *big, &result);
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  EXPECT_FALSE(fs::exists(dest));
}

// Several platforms: a folder per platform, in DIR or at the top of the tar;
// the scratch snapshot the tar is made from does not stay.
TEST_F(OutputFilesTest, SeveralPlatformsGiveAFolderEach) {
  const std::vector<PlatformFilesystem> platforms = {{Linux("amd64"), top_},
                                                     {Linux("arm", "v7"), ""}};
  auto before = snaps_->List();
  ASSERT_TRUE(before.ok());
  OutputResult result;
  const fs::path dest = dir_.path() / "fs.tar";
  Status st =
      WriteFilesystemOutput(env_, Parse("type=tar,dest=" + dest.string()), platforms, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto after = snaps_->List();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size()) << "the scratch snapshot is removed";
  const fs::path unpacked = dir_.path() / "unpacked";
  fs::create_directories(unpacked);
  std::ifstream tar(dest, std::ios::binary);
  st = snapshot::ExtractTar(unpacked, [&tar](char* buf, size_t cap) -> Result<size_t> {
    tar.read(buf, static_cast<std::streamsize>(cap));
    return static_cast<size_t>(tar.gcount());
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(unpacked / "linux_amd64" / "etc" / "hello"), "hello again\n");
  EXPECT_TRUE(fs::is_symlink(unpacked / "linux_amd64" / "abs-link"));
  EXPECT_TRUE(fs::is_directory(unpacked / "linux_arm_v7"));
  EXPECT_TRUE(fs::is_empty(unpacked / "linux_arm_v7"));

  const fs::path local = dir_.path() / "local";
  st = WriteFilesystemOutput(env_, Parse("type=local,dest=" + local.string()), platforms, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(local / "linux_amd64" / "etc" / "hello"), "hello again\n");
  EXPECT_TRUE(fs::is_directory(local / "linux_arm_v7"));
}

TEST_F(OutputFilesTest, LocalExtractsTheFilesystemAndStaysInside) {
  const fs::path dest = dir_.path() / "out";
  const fs::path outside = dir_.path() / "outside";
  fs::create_directories(dest);
  fs::create_directories(outside);
  // Already in the destination: a symlink pointing outside where the image
  // has a directory, and a file the image replaces.
  fs::create_directory_symlink(outside, dest / "escape");
  fs::create_directories(dest / "etc");
  std::ofstream(dest / "etc" / "hello") << "old\n";
  std::ofstream(dest / "unrelated") << "kept\n";
  env_.source_date_epoch = 1000;
  Status st = WriteFilesystemOutput(env_, Parse("type=local,dest=" + dest.string()), top_, nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();

  EXPECT_EQ(Slurp(dest / "etc" / "hello"), "hello again\n") << "files overwrite";
  EXPECT_EQ(Slurp(dest / "unrelated"), "kept\n");
  EXPECT_FALSE(fs::exists(outside / "inside")) << "nothing written through the old symlink";
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(dest / "escape")));
  EXPECT_EQ(Slurp(dest / "escape" / "inside"), "inside\n");
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dest / "abs-link")));
  EXPECT_EQ(fs::read_symlink(dest / "abs-link"), "/etc/passwd");
  struct stat run, hello, link;
  ASSERT_EQ(::lstat((dest / "run.sh").c_str(), &run), 0);
  EXPECT_EQ(run.st_mode & 07777, 0750u);
  EXPECT_EQ(run.st_uid, 1000u) << "owners kept (tests run as root)";
  EXPECT_EQ(run.st_gid, 1000u);
  EXPECT_EQ(run.st_mtime, 1000) << "mtimes clamped to SOURCE_DATE_EPOCH";
  ASSERT_EQ(::lstat((dest / "etc" / "hello").c_str(), &hello), 0);
  ASSERT_EQ(::lstat((dest / "hello-link").c_str(), &link), 0);
  EXPECT_EQ(hello.st_ino, link.st_ino) << "hard links kept";

  // Nothing built: an empty directory is made.
  const fs::path empty = dir_.path() / "empty" / "sub";
  st = WriteFilesystemOutput(env_, Parse("type=local,dest=" + empty.string()), "", nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(fs::is_directory(empty));
  EXPECT_TRUE(fs::is_empty(empty));

  // A file in the way of the destination.
  std::ofstream(dir_.path() / "file") << "x";
  st = WriteFilesystemOutput(env_, Parse("type=local,dest=" + (dir_.path() / "file").string()),
                             top_, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind(
                "output type=local: cannot create directory " + (dir_.path() / "file").string(), 0),
            0u)
      << st.message();
}

TEST_F(OutputFilesTest, DockerArchiveStructure) {
  auto layers = ExportLayers(*snaps_, *store_, top_, {}, 2, nullptr);
  ASSERT_TRUE(layers.ok()) << layers.status().ToString();
  ImageRequest req;
  req.config = Template(R"({"architecture":"amd64","os":"linux"})");
  req.layers = *layers;
  req.oci_mediatypes = false;
  auto img = WriteImage(*store_, req);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const fs::path dest = dir_.path() / "docker.tar";
  const Output out = Parse("type=docker,dest=" + dest.string() + ",name=app:1");
  auto opts = ParseImageOutputOptions(out, {"localhost:5000/team/tool", "app:1"});
  ASSERT_TRUE(opts.ok());
  OutputResult result;
  Status st = WriteImageOutput(env_, out, *opts, *img, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(result.skipped);

  auto archive = content::ImageArchive::OpenArchive(dest);
  ASSERT_TRUE(archive.ok()) << archive.status().ToString();
  EXPECT_EQ(archive->format(), content::Format::kDockerArchive);
  EXPECT_FALSE(archive->index_json().empty()) << "the OCI layout is there too";
  const json manifest = json::parse(archive->docker_manifest_json());
  ASSERT_TRUE(manifest.is_array());
  ASSERT_EQ(manifest.size(), 1u);
  const std::string config_path = "blobs/sha256/" + std::string(img->config.digest.hex());
  EXPECT_EQ(manifest[0]["Config"], config_path);
  EXPECT_EQ(manifest[0]["RepoTags"], json::parse(R"(["app:1","localhost:5000/team/tool:latest"])"))
      << "familiar names, each once, tagged";
  ASSERT_EQ(manifest[0]["Layers"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const std::string path = "blobs/sha256/" + std::string(img->layers[i].digest.hex());
    EXPECT_EQ(manifest[0]["Layers"][i], path);
    auto digest = archive->FileDigest(path);
    ASSERT_TRUE(digest.ok()) << path;
    EXPECT_EQ(*digest, img->layers[i].digest);
  }
  auto config = archive->ReadFile(config_path);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(*config, img->config_bytes);
  const std::string top_layer(img->layers.back().digest.hex());
  EXPECT_EQ(json::parse(archive->docker_repositories_json()),
            json::parse(R"({"app":{"1":")" + top_layer +
                        R"("},"localhost:5000/team/tool":{"latest":")" + top_layer + R"("}})"));
  const json index = json::parse(archive->index_json());
  EXPECT_EQ(index["manifests"][0]["digest"], img->manifest.digest.str());
  EXPECT_EQ(index["manifests"][0]["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json");

  // Unchanged: not written again (the skip the oci output has).
  st = WriteImageOutput(env_, out, *opts, *img, &result);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(result.skipped);
  // Other names, other manifest.json: written again.
  auto other = ParseImageOutputOptions(out, {});
  ASSERT_TRUE(other.ok());
  st = WriteImageOutput(env_, out, *other, *img, &result);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(result.skipped);
  auto again = content::ImageArchive::OpenArchive(dest);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(json::parse(again->docker_manifest_json())[0]["RepoTags"], json::parse(R"(["app:1"])"));

  // A directory layout (tar=false) gets the same files.
  const fs::path layout = dir_.path() / "layout";
  const Output dir_out = Parse("type=docker,dest=" + layout.string() + ",tar=false");
  st = WriteImageOutput(env_, dir_out, *other, *img, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(fs::exists(layout / "manifest.json"));
  EXPECT_TRUE(fs::exists(layout / "repositories"));
  EXPECT_TRUE(fs::exists(layout / "index.json"));
}

TEST_F(OutputFilesTest, ImageWithoutPushWritesNothing) {
  ImageRequest req;
  req.config = Template(R"({"architecture":"amd64","os":"linux"})");
  auto img = WriteImage(*store_, req);
  ASSERT_TRUE(img.ok());
  const Output out = Parse("type=image,name=app:1");
  auto opts = ParseImageOutputOptions(out, {});
  ASSERT_TRUE(opts.ok());
  OutputResult result;
  Status st = WriteImageOutput(env_, out, *opts, *img, &result);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(result.pushed.empty());
  EXPECT_FALSE(fs::exists(env_.state_dir));
}

// An archive written while its layers are made (ArchiveStream) holds the
// same bytes as one written afterwards; when every layer is reused nothing
// is begun and the ordinary path (with its unchanged-archive skip) applies.
TEST_F(OutputFilesTest, ArchiveWrittenWhileLayersAreMadeIsTheSame) {
  // Three more layers of a few MB (random: they stay large when compressed),
  // so that several are made at once and the head one is streamed.
  std::string top = top_;
  for (int i = 0; i < 3; ++i) {
    auto a = snaps_->Prepare(top);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    std::string data((3 + i) << 20, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
    for (char& c : data) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>(x);
    }
    std::ofstream(a->path() / ("big" + std::to_string(i)), std::ios::binary) << data;
    auto id = a->Commit({{std::string(snapshot::kLabelCreated),
                          "2026-01-01T00:00:0" + std::to_string(i + 2) + "Z"}});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    top = *id;
  }
  for (const std::string& type : {std::string("oci"), std::string("docker")}) {
    SCOPED_TRACE(type);
    const fs::path streamed = dir_.path() / (type + "-streamed.tar");
    const Output out = Parse("type=" + type + ",dest=" + streamed.string());
    auto opts = ParseImageOutputOptions(out, {"app:1"});
    ASSERT_TRUE(opts.ok());
    auto stream = StartArchiveOutput(env_, out);
    ASSERT_TRUE(stream.ok()) << stream.status().ToString();
    ASSERT_NE(stream->get(), nullptr);
    LayerOptions lo = opts->layers;
    lo.source_date_epoch = type == "oci" ? 100 : 200;  // a variant of its own: made anew
    LayerStats stats;
    auto layers =
        ExportLayers(*snaps_, *store_, top, lo, 2, nullptr, &stats, nullptr, stream->get());
    ASSERT_TRUE(layers.ok()) << layers.status().ToString();
    EXPECT_EQ(stats.compressed, 5);
    ASSERT_NE((*stream)->writer(), nullptr) << "layers were made: the archive was begun";
    EXPECT_FALSE(fs::exists(streamed)) << "nothing at the destination before the commit";
    ImageRequest req;
    req.config = Template(R"({"architecture":"amd64","os":"linux"})");
    req.layers = *layers;
    req.oci_mediatypes = opts->oci_mediatypes;
    auto img = WriteImage(*store_, req);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    OutputResult result;
    Status st = WriteImageOutput(env_, out, *opts, *img, &result, stream->get());
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_FALSE(result.skipped);

    // The same image written afterwards, from the store.
    const fs::path after = dir_.path() / (type + "-after.tar");
    const Output out2 = Parse("type=" + type + ",dest=" + after.string());
    ASSERT_TRUE(WriteImageOutput(env_, out2, *opts, *img, &result).ok());
    EXPECT_TRUE(Slurp(streamed) == Slurp(after)) << "the streamed archive differs";
    auto archive = content::ImageArchive::OpenArchive(streamed);
    ASSERT_TRUE(archive.ok()) << archive.status().ToString();
    for (const exporter::Layer& l : *layers) EXPECT_TRUE(archive->HasBlob(l.blob.digest));

    // Every layer reused: nothing begun; the unchanged archive is left alone.
    auto again = StartArchiveOutput(env_, out);
    ASSERT_TRUE(again.ok());
    LayerStats reused;
    auto layers2 =
        ExportLayers(*snaps_, *store_, top, lo, 2, nullptr, &reused, nullptr, again->get());
    ASSERT_TRUE(layers2.ok());
    EXPECT_EQ(reused.compressed, 0);
    EXPECT_EQ((*again)->writer(), nullptr);
    ASSERT_TRUE(WriteImageOutput(env_, out, *opts, *img, &result, again->get()).ok());
    EXPECT_TRUE(result.skipped);
  }
  // Outputs that cannot be begun early: none.
  for (const std::string& spec : std::vector<std::string>{
           "type=oci,dest=-", "type=oci,tar=false,dest=" + (dir_.path() / "dir").string(),
           "type=image,name=x", "type=tar,dest=" + (dir_.path() / "fs.tar").string()}) {
    auto none = StartArchiveOutput(env_, Parse(spec));
    ASSERT_TRUE(none.ok()) << spec;
    EXPECT_EQ(none->get(), nullptr) << spec;
  }
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos)
        << "a temp file was left: " << e.path();
  }
}

// A layer that fails to export abandons the archive begun for it: nothing
// at the destination, no temp file.
TEST_F(OutputFilesTest, FailedExportLeavesNoArchive) {
  const fs::path dest = dir_.path() / "failed.tar";
  auto stream = StartArchiveOutput(env_, Parse("type=oci,dest=" + dest.string()));
  ASSERT_TRUE(stream.ok());
  util::Canceller cancel;
  cancel.Cancel();
  LayerOptions lo;
  lo.source_date_epoch = 300;
  auto layers =
      ExportLayers(*snaps_, *store_, top_, lo, 2, &cancel, nullptr, nullptr, stream->get());
  EXPECT_FALSE(layers.ok());
  stream->reset();
  EXPECT_FALSE(fs::exists(dest));
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace kiln::exporter
