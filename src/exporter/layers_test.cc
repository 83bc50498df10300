// Unit tests of layer export: a layer is compressed once per variant and
// reused afterwards; variants (compression, SOURCE_DATE_EPOCH clamp) and
// forced recompression of pulled layers. Layers come from a real
// snapshotter (the copy driver, so no mount is needed).
#include "exporter/layers.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "kiln_process.h"
#include "snapshot/labels.h"

namespace kiln::exporter {
namespace {

namespace fs = std::filesystem;

using kiln::testing::TempDir;

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

// A store and a copy-driver snapshotter in a temp dir.
struct LayerEnv {
  LayerEnv()
      : store_(*content::Store::Open(dir_.path() / "content")),
        snaps_(*snapshot::Snapshotter::Open(dir_.path() / "snapshots", [] {
          snapshot::Options o;
          o.force_copy = true;
          return o;
        }())) {}

  // A built snapshot on `parent` holding one file.
  std::string Built(const std::string& parent, const std::string& name, const std::string& data) {
    auto a = snaps_->Prepare(parent);
    KILN_CHECK(a.ok(), a.status().ToString());
    std::ofstream(a->path() / name) << data;
    auto id = a->Commit({{std::string(snapshot::kLabelCreated), "2026-01-01T00:00:00Z"}});
    KILN_CHECK(id.ok(), id.status().ToString());
    return *id;
  }

  // A "pulled" snapshot: no kiln.created, labels naming a gzip blob of its
  // diff in the store, as source/image leaves them.
  std::string Pulled(const std::string& name, const std::string& data) {
    auto a = snaps_->Prepare("");
    KILN_CHECK(a.ok(), a.status().ToString());
    std::ofstream(a->path() / name) << data;
    auto id = a->Commit();
    KILN_CHECK(id.ok(), id.status().ToString());
    std::string tar;
    KILN_CHECK(snaps_
                   ->Diff(*id,
                          [&](std::string_view c) {
                            tar.append(c);
                            return Status::Ok();
                          })
                   .ok(),
               "diff");
    std::string gz;
    auto c = util::NewCompressor(util::Compression::kGzip, [&](std::string_view b) {
      gz.append(b);
      return Status::Ok();
    });
    KILN_CHECK(c.ok() && (*c)->Write(tar).ok() && (*c)->Finish().ok(), "gzip");
    auto digest = store_.Put(gz);
    KILN_CHECK(digest.ok(), digest.status().ToString());
    KILN_CHECK(snaps_->SetLabel(*id, snapshot::kLabelLayerDiffId, util::Sha256Of(tar).str()).ok(),
               "label");
    KILN_CHECK(snaps_
                   ->SetLabel(*id, snapshot::kLabelLayerMediaType,
                              "application/vnd.docker.image.rootfs.diff.tar.gzip")
                   .ok(),
               "label");
    KILN_CHECK(snaps_->SetLabel(*id, snapshot::kLabelLayerSize, std::to_string(gz.size())).ok(),
               "label");
    KILN_CHECK(snaps_->SetLabel(*id, snapshot::kLabelLayerDigest, digest->str()).ok(), "label");
    return *id;
  }

  Result<std::vector<Layer>> Export(const std::string& top, const LayerOptions& o,
                                    LayerStats* stats = nullptr) {
    return ExportLayers(*snaps_, store_, top, o, 2, nullptr, stats);
  }

  TempDir dir_;
  content::Store store_;
  std::shared_ptr<snapshot::Snapshotter> snaps_;
};

class LayersTest : public ::testing::Test, public LayerEnv {};

TEST_F(LayersTest, VariantSuffixes) {
  LayerOptions o;
  EXPECT_EQ(VariantSuffix(o), "");
  o.compression = util::Compression::kZstd;
  EXPECT_EQ(VariantSuffix(o), ".zstd");
  o.level = 3;
  EXPECT_EQ(VariantSuffix(o), ".zstd-l3");
  o.compression = util::Compression::kNone;
  o.source_date_epoch = 1700000000;
  EXPECT_EQ(VariantSuffix(o), ".none-epoch1700000000") << "no level for uncompressed layers";
}

TEST_F(LayersTest, EachVariantIsCompressedOnceWithItsMediaType) {
  const std::string top = Built("", "f", std::string(5000, 'z'));
  LayerOptions gzip, zstd, none;
  zstd.compression = util::Compression::kZstd;
  none.compression = util::Compression::kNone;
  auto g = Export(top, gzip);
  auto z = Export(top, zstd);
  auto n = Export(top, none);
  ASSERT_TRUE(g.ok() && z.ok() && n.ok());
  EXPECT_EQ((*g)[0].blob.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ((*z)[0].blob.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ((*n)[0].blob.media_type, "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ((*g)[0].diff_id, (*z)[0].diff_id);
  EXPECT_EQ((*n)[0].blob.digest, (*n)[0].diff_id) << "an uncompressed blob is its own diff";
  EXPECT_NE((*g)[0].blob.digest, (*z)[0].blob.digest);
  // The zstd blob really is zstd (magic 28 b5 2f fd).
  auto bytes = store_.Read((*z)[0].blob.digest);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));
  for (const LayerOptions* o : {&gzip, &zstd, &none}) {
    LayerStats again;
    auto l = Export(top, *o, &again);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(again.compressed, 0) << VariantSuffix(*o);
    EXPECT_EQ(again.reused, 1);
  }
}

TEST_F(LayersTest, SourceDateEpochClampsNewLayersOnly) {
  const std::string base = Pulled("base", "from the base image");
  const std::string top = Built(base, "f", "built now");
  LayerOptions plain, clamped;
  clamped.source_date_epoch = 1000;
  auto p = Export(top, plain);
  auto c = Export(top, clamped);
  ASSERT_TRUE(p.ok() && c.ok());
  EXPECT_EQ((*p)[0].blob.digest, (*c)[0].blob.digest) << "the base layer is left as it is";
  EXPECT_NE((*p)[1].diff_id, (*c)[1].diff_id) << "the new layer's file is dated 1000";
  // The same clamp on a fresh state (another snapshotter and store, same
  // content and dates) gives the same layer.
  LayerEnv other;
  const std::string top2 = other.Built("", "f", "built now");
  auto c2 = other.Export(top2, clamped);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ((*c2)[0].diff_id, (*c)[1].diff_id);
  EXPECT_EQ((*c2)[0].blob.digest, (*c)[1].blob.digest);
}

TEST_F(LayersTest, ForceRecompressesPulledLayersOnce) {
  const std::string base = Pulled("base", std::string(3000, 'b'));
  LayerOptions zstd;
  zstd.compression = util::Compression::kZstd;
  auto kept = Export(base, zstd);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ((*kept)[0].blob.media_type, "application/vnd.oci.image.layer.v1.tar+gzip")
      << "without force a pulled layer keeps its blob";
  zstd.force = true;
  LayerStats first;
  auto forced = Export(base, zstd, &first);
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();
  EXPECT_EQ(first.compressed, 1);
  EXPECT_EQ((*forced)[0].blob.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ((*forced)[0].diff_id, (*kept)[0].diff_id) << "same content";
  LayerStats second;
  auto again = Export(base, zstd, &second);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(second.compressed, 0);
  EXPECT_EQ((*again)[0].blob.digest, (*forced)[0].blob.digest);
  // Forcing the compression it already has changes nothing.
  LayerOptions gzip;
  gzip.force = true;
  auto same = Export(base, gzip);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ((*same)[0].blob.digest, (*kept)[0].blob.digest);
}

TEST_F(LayersTest, RecompressionChecksTheDiffId) {
  const std::string base = Pulled("base", "content");
  ASSERT_TRUE(
      snaps_->SetLabel(base, snapshot::kLabelLayerDiffId, util::Sha256Of("other").str()).ok());
  LayerOptions zstd;
  zstd.compression = util::Compression::kZstd;
  zstd.force = true;
  auto l = Export(base, zstd);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kDigestMismatch);
  EXPECT_NE(l.status().message().find("not to its diff_id " + util::Sha256Of("other").str()),
            std::string::npos)
      << l.status().message();
  auto again = Export(base, zstd);
  EXPECT_FALSE(again.ok()) << "nothing was labelled";
}

TEST_F(LayersTest, ReportsOneExportTask) {
  const std::string top = Built("", "f", std::string(1000, 'r'));
  std::vector<util::TaskUpdate> seen;
  std::mutex mu;
  auto report = [&](const util::TaskUpdate& u) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(u);
  };
  auto l = ExportLayers(*snaps_, store_, top, {}, 2, nullptr, nullptr, report);
  ASSERT_TRUE(l.ok());
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front().id, "export-layers");
  EXPECT_EQ(seen.front().state, util::TaskUpdate::State::kRunning);
  EXPECT_EQ(seen.back().state, util::TaskUpdate::State::kDone);
  EXPECT_GT(seen.back().current, 1000u) << "bytes of the tar";
  // Nothing to do: nothing reported.
  seen.clear();
  ASSERT_TRUE(ExportLayers(*snaps_, store_, top, {}, 2, nullptr, nullptr, report).ok());
  EXPECT_TRUE(seen.empty());
}

// Cancelling while a layer is being compressed stops it there (not at the
// end of the layer): the export fails with kCancelled and leaves neither a
// blob nor an ingest file in the store, nor a label on the snapshot.
TEST_F(LayersTest, CancelStopsALayerMidway) {
  std::string data(48u << 20, '\0');  // random: gzip keeps it large
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  const std::string top = Built("", "big", data);
  util::Canceller cancel;
  uint64_t seen_at_cancel = 0;
  std::mutex mu;
  auto report = [&](const util::TaskUpdate& u) {
    std::lock_guard<std::mutex> lock(mu);
    if (u.current > 0 && !cancel.cancelled()) {  // the first progress inside the layer
      seen_at_cancel = u.current;
      cancel.Cancel("stop here");
    }
  };
  auto l = ExportLayers(*snaps_, store_, top, {}, 2, &cancel, nullptr, report);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kCancelled) << l.status().ToString();
  EXPECT_NE(l.status().message().find("stop here"), std::string::npos) << l.status().message();
  EXPECT_GT(seen_at_cancel, 0u);
  EXPECT_LT(seen_at_cancel, data.size()) << "cancelled inside the layer";
  auto blobs = store_.List();
  ASSERT_TRUE(blobs.ok());
  EXPECT_TRUE(blobs->empty()) << "no blob of a cancelled layer";
  EXPECT_TRUE(fs::is_empty(dir_.path() / "content" / "ingest"));
  auto info = snaps_->Stat(top);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.count(std::string(snapshot::kLabelLayerDigest)), 0u);
  // The same export, not cancelled, completes.
  auto again = ExportLayers(*snaps_, store_, top, {}, 2, nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

}  // namespace
}  // namespace kiln::exporter
