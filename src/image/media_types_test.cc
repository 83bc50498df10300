#include "image/media_types.h"

#include <gtest/gtest.h>

namespace kiln::image {
namespace {

TEST(MediaTypesTest, Predicates) {
  EXPECT_TRUE(IsIndex(kMediaTypeOciIndex));
  EXPECT_TRUE(IsIndex(kMediaTypeDockerManifestList));
  EXPECT_FALSE(IsIndex(kMediaTypeOciManifest));

  EXPECT_TRUE(IsManifest(kMediaTypeOciManifest));
  EXPECT_TRUE(IsManifest(kMediaTypeDockerManifest));
  EXPECT_FALSE(IsManifest(kMediaTypeDockerManifestSchema1Signed));
  EXPECT_FALSE(IsManifest(kMediaTypeOciIndex));

  EXPECT_TRUE(IsConfig(kMediaTypeOciConfig));
  EXPECT_TRUE(IsConfig(kMediaTypeDockerConfig));
  EXPECT_FALSE(IsConfig(kMediaTypeBuildkitCacheConfig));

  for (auto mt : {kMediaTypeOciLayer, kMediaTypeOciLayerGzip, kMediaTypeOciLayerZstd,
                  kMediaTypeOciLayerNondistributable, kMediaTypeOciLayerNondistributableGzip,
                  kMediaTypeOciLayerNondistributableZstd, kMediaTypeDockerLayer,
                  kMediaTypeDockerLayerGzip, kMediaTypeDockerLayerZstd,
                  kMediaTypeDockerLayerForeign, kMediaTypeDockerLayerForeignGzip}) {
    EXPECT_TRUE(IsLayer(mt)) << mt;
  }
  EXPECT_FALSE(IsLayer(kMediaTypeOciConfig));
  EXPECT_FALSE(IsLayer("application/vnd.docker.image.rootfs.other"));
  EXPECT_FALSE(IsLayer(""));

  EXPECT_TRUE(IsNondistributableLayer(kMediaTypeOciLayerNondistributableGzip));
  EXPECT_TRUE(IsNondistributableLayer(kMediaTypeDockerLayerForeignGzip));
  EXPECT_FALSE(IsNondistributableLayer(kMediaTypeOciLayerGzip));
}

TEST(MediaTypesTest, Compression) {
  EXPECT_EQ(LayerCompressionOf(kMediaTypeOciLayer), LayerCompression::kUncompressed);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeDockerLayer), LayerCompression::kUncompressed);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeOciLayerGzip), LayerCompression::kGzip);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeDockerLayerGzip), LayerCompression::kGzip);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeDockerLayerForeignGzip), LayerCompression::kGzip);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeOciLayerZstd), LayerCompression::kZstd);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeDockerLayerZstd), LayerCompression::kZstd);
  EXPECT_EQ(LayerCompressionOf("application/vnd.oci.image.layer.v1.tar+bzip2"),
            LayerCompression::kUnknown);
  EXPECT_EQ(LayerCompressionOf(kMediaTypeOciManifest), LayerCompression::kUnknown);
}

}  // namespace
}  // namespace kiln::image
