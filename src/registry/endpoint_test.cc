#include "registry/endpoint.h"

#include <gtest/gtest.h>

namespace kiln::registry {
namespace {

TEST(EndpointTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("LOCALHOST:5000"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3:443"));
  EXPECT_TRUE(IsLoopbackHost("[::1]:5000"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("[::2]:5000"));
  EXPECT_FALSE(IsLoopbackHost("localhost.example.com"));
  EXPECT_FALSE(IsLoopbackHost("127.0.0.1.nip.io"));
  EXPECT_FALSE(IsLoopbackHost("docker.io"));
  EXPECT_FALSE(IsLoopbackHost(""));
}

TEST(EndpointTest, DockerHubApiHost) {
  EXPECT_EQ(ApiHost("docker.io"), "registry-1.docker.io");
  EXPECT_EQ(ApiHost("index.docker.io"), "registry-1.docker.io");
  EXPECT_EQ(ApiHost("ghcr.io"), "ghcr.io");
  EXPECT_EQ(ApiHost("127.0.0.1:5000"), "127.0.0.1:5000");
}

TEST(EndpointTest, Scheme) {
  const std::vector<std::string> insecure = {"reg.internal:5000", "plain.example"};
  EXPECT_EQ(SchemeFor("docker.io", insecure), "https");
  EXPECT_EQ(SchemeFor("127.0.0.1:5000", {}), "http");
  EXPECT_EQ(SchemeFor("localhost", {}), "http");
  EXPECT_EQ(SchemeFor("[::1]:5000", {}), "http");
  EXPECT_EQ(SchemeFor("reg.internal:5000", insecure), "http");
  EXPECT_EQ(SchemeFor("REG.internal:5000", insecure), "http");
  EXPECT_EQ(SchemeFor("reg.internal:5001", insecure), "https");
  EXPECT_EQ(SchemeFor("reg.internal", insecure), "https");
  EXPECT_EQ(SchemeFor("plain.example", insecure), "http");
  EXPECT_EQ(SchemeFor("plain.example:8080", insecure), "http");
  EXPECT_EQ(SchemeFor("ghcr.io", insecure), "https");
}

TEST(EndpointTest, Urls) {
  EXPECT_EQ(ApiBase("docker.io", {}), "https://registry-1.docker.io/v2/");
  EXPECT_EQ(ApiBase("127.0.0.1:5000", {}), "http://127.0.0.1:5000/v2/");
  const std::string base = "http://127.0.0.1:5000/v2/";
  EXPECT_EQ(ManifestUrl(base, "library/alpine", "3.15"),
            "http://127.0.0.1:5000/v2/library/alpine/manifests/3.15");
  EXPECT_EQ(BlobUrl(base, "a/b", "sha256:00"), "http://127.0.0.1:5000/v2/a/b/blobs/sha256:00");
  EXPECT_EQ(UploadUrl(base, "a/b"), "http://127.0.0.1:5000/v2/a/b/blobs/uploads/");
}

TEST(EndpointTest, ResolveLocation) {
  const std::string req = "http://127.0.0.1:5000/v2/a/blobs/uploads/";
  EXPECT_EQ(ResolveLocation(req, "/v2/a/blobs/uploads/uuid?_state=x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=x");
  EXPECT_EQ(ResolveLocation(req, "https://other/x"), "https://other/x");
  EXPECT_EQ(ResolveLocation(req, "uuid"), "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid");
}

TEST(EndpointTest, AddQuery) {
  EXPECT_EQ(AddQuery("http://h/u", "digest", "sha256:ab"), "http://h/u?digest=sha256%3Aab");
  EXPECT_EQ(AddQuery("http://h/u?_state=s", "digest", "sha256:ab"),
            "http://h/u?_state=s&digest=sha256%3Aab");
  EXPECT_EQ(AddQuery(AddQuery("http://h/u", "mount", "sha256:ab"), "from", "lib/x"),
            "http://h/u?mount=sha256%3Aab&from=lib%2Fx");
}

}  // namespace
}  // namespace kiln::registry
