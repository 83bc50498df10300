// Unit tests of layer export: a layer is compressed once per variant and
// reused afterwards; variants (compression, SOURCE_DATE_EPOCH clamp) and
// forced recompression of pulled layers. Layers come from a real
// snapshotter (the copy driver, so no mount is needed).
#include "exporter/layers.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "snapshot/labels.h"

namespace kiln::exporter {
namespace {

namespace fs = std::filesystem;

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

TEST(ExportLayersTest, CompressesOnceAndReusesAfterwards) {
  TempDir dir;
  auto store = content::Store::Open(dir.path() / "content");
  ASSERT_TRUE(store.ok());
  snapshot::Options so;
  so.force_copy = true;
  auto snaps = snapshot::Snapshotter::Open(dir.path() / "snapshots", so);
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  std::string parent;
  for (int i = 0; i < 3; ++i) {
    auto a = (*snaps)->Prepare(parent);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    std::ofstream(a->path() / ("f" + std::to_string(i))) << std::string(1000 * (i + 1), 'x');
    auto id = a->Commit(
        {{std::string(snapshot::kLabelCreated), "2026-01-01T00:00:0" + std::to_string(i) + "Z"}});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    parent = *id;
  }
  LayerStats first;
  auto layers = ExportLayers(**snaps, *store, parent, {}, 2, nullptr, &first);
  ASSERT_TRUE(layers.ok()) << layers.status().ToString();
  ASSERT_EQ(layers->size(), 3u);
  EXPECT_EQ(first.compressed, 3);
  EXPECT_EQ(first.reused, 0);
  EXPECT_EQ((*layers)[0].created, "2026-01-01T00:00:00Z") << "bottom first";
  for (const Layer& l : *layers) EXPECT_TRUE(store->Has(l.blob.digest));

  LayerStats second;
  auto again = ExportLayers(**snaps, *store, parent, {}, 2, nullptr, &second);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(second.compressed, 0) << "a layer already in the store is never compressed again";
  EXPECT_EQ(second.reused, 3);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*again)[i].blob.digest, (*layers)[i].blob.digest);
    EXPECT_EQ((*again)[i].diff_id, (*layers)[i].diff_id);
  }

  auto none = ExportLayers(**snaps, *store, "", {}, 2, nullptr, nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace kiln::exporter
