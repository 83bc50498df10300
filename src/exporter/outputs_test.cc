// Unit tests of the outputs: -o parsing and option checks (K11), image
// output options, and the OCI archive skip when nothing changed.
#include "exporter/outputs.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "image/config.h"

namespace kiln::exporter {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kiln-exporter-test-XXXXXX";
    KILN_CHECK(::mkdtemp(tmpl) != nullptr, "mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_symlink())
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

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
  auto notype = ParseOutput("dest=x");
  ASSERT_FALSE(notype.ok());
  EXPECT_EQ(notype.status().message(),
            "output \"dest=x\": no type= given (expected one of image, registry, oci, docker, "
            "local, tar)");
}

}  // namespace
}  // namespace kiln::exporter
