// registry::Client against scripted servers (test_server.h): what a real
// registry does not do on demand — redirects to storage on another origin,
// bodies cut without range support, tokens that expire between requests.
#include "registry/client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "image/media_types.h"
#include "registry/test_server.h"
#include "util/base64.h"
#include "util/digest.h"

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;
using test::ServerRequest;
using test::TestServer;
using util::Digest;

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/kiln-registry-client-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

image::Reference Ref(const std::string& s) { return *image::ParseNormalizedNamed(s); }

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() {
    blob_ = std::string(100000, 'x');
    for (size_t i = 0; i < blob_.size(); ++i) blob_[i] = static_cast<char>('a' + i % 26);
    desc_.media_type = std::string(image::kMediaTypeOciLayer);
    desc_.digest = util::Sha256Of(blob_);
    desc_.size = static_cast<int64_t>(blob_.size());
  }
  content::Store NewStore() { return *content::Store::Open(tmp_.path() / "store"); }
  Client NewClient() {
    RegistryOptions o;
    o.docker_config_dir = tmp_.path() / "docker";
    o.initial_backoff = std::chrono::milliseconds(5);
    o.max_backoff = std::chrono::milliseconds(20);
    return *Client::Create(o);
  }
  void WriteCredentials(const std::string& host, const std::string& user,
                        const std::string& password) {
    fs::create_directories(tmp_.path() / "docker");
    std::ofstream(tmp_.path() / "docker/config.json")
        << R"({"auths":{")" << host << R"(":{"auth":")" << util::Base64Encode(user + ":" + password)
        << "\"}}}";
  }
  std::string BlobPath() const { return "/v2/repo/blobs/" + desc_.digest.str(); }

  TempDir tmp_;
  std::string blob_;
  image::Descriptor desc_;
};

TEST_F(ClientTest, RedirectToAnotherOriginDropsAuthorization) {
  TestServer storage([&](const ServerRequest&) { return TestServer::Reply(200, {}, blob_); });
  const std::string basic = "Basic " + util::Base64Encode("user:secret");
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") {
      return TestServer::Reply(401, {"WWW-Authenticate: Basic realm=\"r\""}, "");
    }
    if (r.Header("authorization") != basic) return TestServer::Reply(401, {}, "");
    return TestServer::Reply(307, {"Location: http://" + storage.host() + "/b?sig=1"}, "");
  });
  WriteCredentials(registry.host(), "user", "secret");
  Client client = NewClient();
  auto store = NewStore();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*store.Read(desc_.digest), blob_);
  auto at_storage = storage.requests();
  ASSERT_EQ(at_storage.size(), 1u);
  EXPECT_EQ(at_storage[0].target, "/b?sig=1");
  EXPECT_EQ(at_storage[0].Header("authorization"), "");
}

TEST_F(ClientTest, RedirectWithinTheRegistryKeepsAuthorization) {
  const std::string basic = "Basic " + util::Base64Encode("user:secret");
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") {
      return TestServer::Reply(401, {"WWW-Authenticate: Basic realm=\"r\""}, "");
    }
    if (r.Header("authorization") != basic) return TestServer::Reply(401, {}, "");
    if (r.target == BlobPath()) return TestServer::Reply(302, {"Location: /storage/b"}, "");
    if (r.target == "/storage/b") return TestServer::Reply(200, {}, blob_);
    return TestServer::Reply(404, {}, "");
  });
  WriteCredentials(registry.host(), "user", "secret");
  Client client = NewClient();
  auto store = NewStore();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(store.Has(desc_.digest));
}

// A registry that cuts the first blob response after `cut` bytes.
std::string CutOnce(const ServerRequest& r, const std::string& blob, size_t cut, bool ranges,
                    int* blob_requests) {
  if (r.target == "/v2/") return TestServer::Reply(200, {}, "");
  ++*blob_requests;
  std::string accept = ranges ? "Accept-Ranges: bytes\r\n" : "";
  if (*blob_requests == 1) {
    return "HTTP/1.1 200 OK\r\n" + accept + "Content-Length: " + std::to_string(blob.size()) +
           "\r\n\r\n" + blob.substr(0, cut);
  }
  std::string range = r.Header("range");
  if (ranges && range == "bytes=" + std::to_string(cut) + "-") {
    return TestServer::Reply(206,
                             {"Content-Range: bytes " + std::to_string(cut) + "-" +
                              std::to_string(blob.size() - 1) + "/" + std::to_string(blob.size())},
                             blob.substr(cut));
  }
  return TestServer::Reply(200, {}, blob);
}

TEST_F(ClientTest, CutBlobResumesWithRangeWhenSupported) {
  int n = 0;
  TestServer registry([&](const ServerRequest& r) { return CutOnce(r, blob_, 30000, true, &n); });
  Client client = NewClient();
  auto store = NewStore();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*store.Read(desc_.digest), blob_);
  auto reqs = registry.requests();
  ASSERT_EQ(reqs.size(), 3u);  // ping, cut, resumed
  EXPECT_EQ(reqs[2].Header("range"), "bytes=30000-");
}

TEST_F(ClientTest, CutBlobStartsOverWithoutRangeSupport) {
  int n = 0;
  TestServer registry([&](const ServerRequest& r) { return CutOnce(r, blob_, 30000, false, &n); });
  Client client = NewClient();
  auto store = NewStore();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*store.Read(desc_.digest), blob_);
  auto reqs = registry.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].Header("range"), "");
}

TEST_F(ClientTest, BlobLongerThanItsDescriptorIsRejected) {
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") return TestServer::Reply(200, {}, "");
    return TestServer::Reply(200, {}, blob_ + "extra");
  });
  Client client = NewClient();
  auto store = NewStore();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store);
  EXPECT_EQ(s.code(), StatusCode::kDigestMismatch) << s.ToString();
  EXPECT_FALSE(store.Has(desc_.digest));
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "store/ingest"));
}

// Guards issue 15 (a digest-mismatch message said "(1 bytes)" for the
// expected size): a manifest fetched by digest that the registry answers
// with other bytes names the expected digest (no size: a digest reference
// states none) and the digest and size of what was sent.
TEST_F(ClientTest, ManifestMismatchStatesBothDigestsAndSizes) {
  const std::string wanted = R"({"schemaVersion":2})";
  const Digest digest = util::Sha256Of(wanted);
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") return TestServer::Reply(200, {}, "");
    return TestServer::Reply(200, {"Content-Type: application/vnd.oci.image.manifest.v1+json"},
                             "{");
  });
  Client client = NewClient();
  auto m = client.FetchManifest(Ref(registry.host() + "/repo@" + digest.str()));
  EXPECT_EQ(m.status().code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(m.status().message(), "manifest " + registry.host() + "/repo@" + digest.str() +
                                      ": expected " + digest.str() + ", the registry sent " +
                                      util::Sha256Of("{").str() + " (1 byte)");
}

TEST_F(ClientTest, BearerTokenIsScopedCachedAndRefreshedOn401) {
  int tokens = 0;
  int blob_gets = 0;
  std::string realm;
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") {
      return TestServer::Reply(
          401, {"WWW-Authenticate: Bearer realm=\"" + realm + "\",service=\"svc\""}, "");
    }
    if (r.target.starts_with("/token?")) {
      if (r.Header("authorization") != "Basic " + util::Base64Encode("user:secret")) {
        return TestServer::Reply(401, {}, "");
      }
      ++tokens;
      return TestServer::Reply(
          200, {"Content-Type: application/json"},
          R"({"token":"tok)" + std::to_string(tokens) + R"(","expires_in":300})");
    }
    ++blob_gets;
    // The first token "expires" after one use.
    if (r.Header("authorization") == "Bearer tok1" && blob_gets > 1) {
      return TestServer::Reply(401,
                               {"WWW-Authenticate: Bearer realm=\"" + realm +
                                "\",service=\"svc\",scope=\"repository:repo:pull\""},
                               "");
    }
    if (r.Header("authorization").starts_with("Bearer tok")) {
      return TestServer::Reply(200, {}, blob_);
    }
    return TestServer::Reply(401, {}, "");
  });
  realm = "http://" + registry.host() + "/token";
  WriteCredentials(registry.host(), "user", "secret");
  Client client = NewClient();
  {
    auto store = NewStore();
    ASSERT_TRUE(client.FetchBlob(Ref(registry.host() + "/repo"), desc_, store).ok());
  }
  EXPECT_EQ(tokens, 1);
  fs::permissions(tmp_.path() / "store", fs::perms::owner_all, fs::perm_options::add);
  ASSERT_TRUE(NewStore().Delete(desc_.digest).ok());
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, NewStore());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(tokens, 2);  // the cached token was refused: a fresh one, once
  bool saw_scope = false;
  for (const auto& r : registry.requests()) {
    if (r.target.starts_with("/token?")) {
      EXPECT_NE(r.target.find("service=svc"), std::string::npos) << r.target;
      saw_scope = r.target.find("scope=repository%3Arepo%3Apull") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_scope);
}

TEST_F(ClientTest, TokenServerRefusalNamesRegistryNotSecret) {
  std::string realm;
  TestServer registry([&](const ServerRequest& r) {
    if (r.target == "/v2/") {
      return TestServer::Reply(401, {"WWW-Authenticate: Bearer realm=\"" + realm + "\""}, "");
    }
    return TestServer::Reply(401, {}, "");
  });
  realm = "http://" + registry.host() + "/token";
  WriteCredentials(registry.host(), "user", "hunter2-secret");
  Client client = NewClient();
  Status s = client.FetchBlob(Ref(registry.host() + "/repo"), desc_, NewStore());
  EXPECT_EQ(s.code(), StatusCode::kUnauthorized) << s.ToString();
  EXPECT_NE(s.message().find(registry.host()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("repo"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(util::Base64Encode("user:hunter2-secret")), std::string::npos);
}

TEST_F(ClientTest, MonolithicPushFollowsRelativeLocation) {
  auto store = NewStore();
  ASSERT_TRUE(store.Put(blob_).ok());
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  const Digest config_digest = *store.Put(config);
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      config_digest.str() + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
      desc_.digest.str() + R"(","size":)" + std::to_string(blob_.size()) + "}]}";
  image::Descriptor top;
  top.media_type = std::string(image::kMediaTypeOciManifest);
  top.digest = *store.Put(manifest);
  top.size = static_cast<int64_t>(manifest.size());

  std::map<std::string, std::string> uploaded;  // digest -> bytes
  std::string put_manifest, put_type;
  int sessions = 0;
  std::mutex mu;
  TestServer registry([&](const ServerRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    if (r.target == "/v2/") return TestServer::Reply(200, {}, "");
    if (r.method == "HEAD") return TestServer::Reply(404, {}, "");
    if (r.method == "POST" && r.target == "/v2/repo/blobs/uploads/") {
      ++sessions;
      return TestServer::Reply(
          202, {"Location: /v2/repo/blobs/uploads/s" + std::to_string(sessions) + "?_state=x"}, "");
    }
    if (r.method == "PUT" && r.target.starts_with("/v2/repo/blobs/uploads/s")) {
      auto d = r.target.find("&digest=");
      if (d == std::string::npos) return TestServer::Reply(400, {}, "");
      std::string digest = r.target.substr(d + 8);
      digest.replace(digest.find("%3A"), 3, ":");
      uploaded[digest] = r.body;
      return TestServer::Reply(201, {}, "");
    }
    if (r.method == "PUT" && r.target == "/v2/repo/manifests/v1") {
      put_manifest = r.body;
      put_type = r.Header("content-type");
      return TestServer::Reply(201, {"Docker-Content-Digest: " + util::Sha256Of(r.body).str()}, "");
    }
    return TestServer::Reply(404, {}, "");
  });
  Client client = NewClient();
  PushStats stats;
  Status s = client.Push(store, top, Ref(registry.host() + "/repo:v1"), {}, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.blobs_uploaded, 2u);
  EXPECT_EQ(uploaded[desc_.digest.str()], blob_);
  EXPECT_EQ(uploaded[config_digest.str()], config);
  EXPECT_EQ(put_manifest, manifest);
  EXPECT_EQ(put_type, image::kMediaTypeOciManifest);
}

}  // namespace
}  // namespace kiln::registry
