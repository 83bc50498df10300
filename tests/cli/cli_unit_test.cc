// Unit tests of the CLI's own logic: image locations, human-readable sizes,
// the default state root and the refs.json stopgap.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/config.h"
#include "cli/image_location.h"
#include "cli/ref_index.h"
#include "cli/registry_commands.h"
#include "cli/resolver.h"
#include "image/platform.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

TEST(ImageLocationTest, BareAndDockerReferencesAreNormalized) {
  auto bare = ParseImageLocation("busybox");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_TRUE(bare->is_registry());
  EXPECT_EQ(bare->reference.String(), "docker.io/library/busybox:latest");
  EXPECT_EQ(bare->String(), "docker://docker.io/library/busybox:latest");

  auto docker = ParseImageLocation("docker://127.0.0.1:5000/a/b@sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(docker.ok()) << docker.status().ToString();
  EXPECT_EQ(docker->reference.domain, "127.0.0.1:5000");
  EXPECT_EQ(docker->reference.path, "a/b");
  EXPECT_EQ(docker->reference.tag, "");  // a digest needs no tag
}

TEST(ImageLocationTest, LayoutAndArchiveWithAndWithoutTag) {
  auto layout = ParseImageLocation("oci-layout:///tmp/out:v1.0");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->transport, Transport::kOciLayout);
  EXPECT_EQ(layout->path, "/tmp/out");
  EXPECT_EQ(layout->tag, "v1.0");
  EXPECT_EQ(layout->String(), "oci-layout:///tmp/out:v1.0");

  auto archive = ParseImageLocation("oci-archive://img.tar");
  ASSERT_TRUE(archive.ok());
  EXPECT_EQ(archive->transport, Transport::kOciArchive);
  EXPECT_EQ(archive->path, "img.tar");
  EXPECT_EQ(archive->tag, "");

  // What follows the last ':' is not a tag: the path is taken whole.
  auto colon = ParseImageLocation("oci-layout:///a:b/c");
  ASSERT_TRUE(colon.ok());
  EXPECT_EQ(colon->path, "/a:b/c");
  EXPECT_EQ(colon->tag, "");
}

TEST(ImageLocationTest, Errors) {
  EXPECT_EQ(ParseImageLocation("oci-layout://:v1").status().message(),
            "invalid image location \"oci-layout://:v1\": the path is empty");
  EXPECT_EQ(ParseImageLocation("s3://bucket/x").status().message(),
            "invalid image location \"s3://bucket/x\": unknown transport \"s3\" (expected docker, "
            "oci-layout or oci-archive)");
  auto bad = ParseImageLocation("docker://UPPER/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"UPPER/x\""), std::string::npos)
      << bad.status().message();
}

TEST(HumanSizeTest, DecimalUnits) {
  EXPECT_EQ(HumanSize(0), "0 B");
  EXPECT_EQ(HumanSize(999), "999 B");
  EXPECT_EQ(HumanSize(1000), "1.0 kB");
  EXPECT_EQ(HumanSize(2'100'000), "2.1 MB");
  EXPECT_EQ(HumanSize(999'960), "1.0 MB");  // never "1000.0 kB"
  EXPECT_EQ(HumanSize(3'000'000'000ull), "3.0 GB");
}

class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DefaultRootTest, KilnRootWins) {
  EnvGuard g("KILN_ROOT");
  ::setenv("KILN_ROOT", "/srv/kiln", 1);
  EXPECT_EQ(DefaultRoot(), fs::path("/srv/kiln"));
  ::unsetenv("KILN_ROOT");
  if (::geteuid() == 0) {
    EXPECT_EQ(DefaultRoot(), fs::path("/var/lib/kiln"));
  } else {
    EnvGuard x("XDG_DATA_HOME");
    ::setenv("XDG_DATA_HOME", "/home/u/data", 1);
    EXPECT_EQ(DefaultRoot(), fs::path("/home/u/data/kiln"));
  }
}

TEST(RefIndexTest, RecordsAndRewrites) {
  const fs::path root =
      fs::path(::testing::TempDir()) / ("kiln-refs-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto empty = ReadReferences(root);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  const auto a = util::Digest::Parse("sha256:" + std::string(64, 'a'));
  const auto b = util::Digest::Parse("sha256:" + std::string(64, 'b'));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(RecordReference(root, "docker.io/library/busybox:latest", *a).ok());
  ASSERT_TRUE(RecordReference(root, "docker.io/library/alpine:3", *a).ok());
  ASSERT_TRUE(RecordReference(root, "docker.io/library/busybox:latest", *b).ok());

  auto refs = ReadReferences(root);
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ(refs->at("docker.io/library/busybox:latest"), *b);
  EXPECT_EQ(refs->at("docker.io/library/alpine:3"), *a);

  std::ifstream in(root / "refs.json");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "{\n  \"docker.io/library/alpine:3\": \"sha256:" + std::string(64, 'a') +
                          "\",\n  \"docker.io/library/busybox:latest\": \"sha256:" +
                          std::string(64, 'b') + "\"\n}\n");
  // No temp files left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2u);  // refs.json and its lock file

  std::ofstream(root / "refs.json") << "[1]";
  EXPECT_EQ(ReadReferences(root).status().code(), StatusCode::kInvalidArgument);
  fs::remove_all(root);
}

}  // namespace
}  // namespace kiln::cli

namespace kiln::cli {
namespace {

class KilnConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: ctest runs the cases as parallel processes.
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("kiln-config-test-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path Write(const std::string& text) {
    std::ofstream(dir_ / "config.json") << text;
    return dir_ / "config.json";
  }
  std::filesystem::path dir_;
};

TEST_F(KilnConfigTest, ReadsInsecureRegistries) {
  auto c = LoadConfig(Write(R"({"insecure-registries": ["registry.lan:5000", "10.0.0.5"]})"), true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->insecure_registries, (std::vector<std::string>{"registry.lan:5000", "10.0.0.5"}));
}

TEST_F(KilnConfigTest, MissingDefaultFileIsEmptyButNamedFileMustExist) {
  auto c = LoadConfig(dir_ / "absent.json", false);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->insecure_registries.empty());
  auto named = LoadConfig(dir_ / "absent.json", true);
  EXPECT_EQ(named.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(named.status().message(),
            "cannot read kiln config " + (dir_ / "absent.json").string() + ": no such file");
}

TEST_F(KilnConfigTest, BadInputNamesFileAndMember) {
  const std::string where = "kiln config " + (dir_ / "config.json").string();
  EXPECT_EQ(LoadConfig(Write(R"({"insecure_registries": []})"), true).status().message(),
            where +
                ": unknown setting \"insecure_registries\" (known: insecure-registries, "
                "network)");
  EXPECT_EQ(LoadConfig(Write(R"({"insecure-registries": "a:5000"})"), true).status().message(),
            where + ": \"insecure-registries\" must be an array of \"host[:port]\" strings");
  EXPECT_EQ(LoadConfig(Write(R"({"insecure-registries": ["a", 5]})"), true).status().message(),
            where + ": insecure-registries[1] must be a non-empty \"host[:port]\" string");
  EXPECT_EQ(LoadConfig(Write("[]"), true).status().message(), where + ": expected a JSON object");
  EXPECT_FALSE(LoadConfig(Write("{"), true).ok());
}

TEST_F(KilnConfigTest, ReadsNetworkLimitsAndNamesTheFileInTheHint) {
  auto c = LoadConfig(Write(R"({"network": {"timeout": 2.5, "connect-timeout": 10,
                                             "stall-timeout": 60, "min-rate": 1024}})"),
                      true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->network.timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c->network.connect_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c->network.stall_timeout, std::chrono::seconds(60));
  EXPECT_EQ(c->network.min_rate, 1024u);
  EXPECT_EQ(util::RaiseHint(c->network, "timeout"),
            "raise it with {\"network\": {\"timeout\": SECONDS}} in the kiln config " +
                (dir_ / "config.json").string());
  // Defaults, and the default file named even when it does not exist.
  auto d = LoadConfig(dir_ / "absent.json", false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->network.timeout, std::chrono::seconds(300));
  EXPECT_EQ(d->network.stall_timeout, std::chrono::seconds(30));
  EXPECT_EQ(d->network.config_file, (dir_ / "absent.json").string());
}

TEST_F(KilnConfigTest, BadNetworkSettingsNameTheMember) {
  const std::string where = "kiln config " + (dir_ / "config.json").string();
  EXPECT_EQ(LoadConfig(Write(R"({"network": {"timeuot": 5}})"), true).status().message(),
            where +
                ": unknown setting \"network.timeuot\" (known: timeout, connect-timeout, "
                "stall-timeout, min-rate)");
  EXPECT_EQ(LoadConfig(Write(R"({"network": {"timeout": "5s"}})"), true).status().message(),
            where + ": network.timeout must be a number of seconds between 0.001 and 86400");
  EXPECT_EQ(LoadConfig(Write(R"({"network": {"timeout": 0}})"), true).status().message(),
            where + ": network.timeout must be a number of seconds between 0.001 and 86400");
  EXPECT_FALSE(LoadConfig(Write(R"({"network": {"min-rate": -1}})"), true).ok());
  EXPECT_FALSE(LoadConfig(Write(R"({"network": 5})"), true).ok());
}

}  // namespace
}  // namespace kiln::cli

namespace kiln::cli {
namespace {

// --platform lists: normalized, in order; empty items and repeats (after
// normalizing) are errors naming the flag.
TEST(PlatformListTest, ParsesNormalizesAndRefusesRepeats) {
  auto list = ParsePlatformList("linux/amd64,linux/arm64,linux/arm/v7");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ(image::Format((*list)[0]), "linux/amd64");
  EXPECT_EQ((*list)[1].architecture, "arm64");
  EXPECT_EQ((*list)[2].variant, "v7");
  auto host = ParsePlatformList("");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->size(), 1u) << "the host's platform";
  auto twice = ParsePlatformList("linux/arm64,linux/arm64/v8");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("given twice"), std::string::npos)
      << twice.status().message();
  auto empty = ParsePlatformList("linux/amd64,,linux/arm64");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("--platform"), std::string::npos)
      << empty.status().message();
}

}  // namespace
}  // namespace kiln::cli
