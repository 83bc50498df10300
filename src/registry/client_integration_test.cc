// registry::Client against the real thing: Debian's docker-registry started
// by the loopback fixture (tests/fixture), anonymous, with htpasswd basic
// auth and with bearer tokens, and through the fixture's fault proxy.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "content/store.h"
#include "fixture.h"
#include "image/media_types.h"
#include "image/platform.h"
#include "image/reference.h"
#include "registry/client.h"
#include "registry/http.h"
#include "util/base64.h"
#include "util/cancel.h"
#include "util/digest.h"
#include "util/json.h"

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;
using image::Descriptor;
using image::Reference;
using util::Digest;

// A fresh directory, removed with its content (read-only blobs included).
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kiln-registry-it-XXXXXX";
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
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A repository name of this process: push destinations differ between
// repeated runs against one shared fixture, so counts of uploads hold.
std::string Own(const std::string& repo) { return repo + "-" + std::to_string(::getpid()); }

Reference Ref(const std::string& s) {
  auto r = image::ParseNormalizedNamed(s);
  KILN_CHECK(r.ok(), r.status().ToString());
  return *r;
}

image::Platform Plat(const std::string& s) {
  auto p = image::ParsePlatform(s);
  KILN_CHECK(p.ok(), p.status().ToString());
  return image::Normalize(*p);
}

content::Store NewStore(const fs::path& root) {
  auto s = content::Store::Open(root);
  KILN_CHECK(s.ok(), s.status().ToString());
  return *s;
}

std::vector<std::string> Files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  return out;
}

// Fast retries for tests.
RegistryOptions TestOptions(const fs::path& docker_config_dir) {
  RegistryOptions o;
  o.docker_config_dir = docker_config_dir;
  o.initial_backoff = std::chrono::milliseconds(20);
  o.max_backoff = std::chrono::milliseconds(200);
  o.low_speed_time = std::chrono::milliseconds(5000);
  return o;
}

Client NewClient(const RegistryOptions& o) {
  auto c = Client::Create(o);
  KILN_CHECK(c.ok(), c.status().ToString());
  return std::move(c).value();
}

// Every digest the pulled image reaches, in the store.
void ExpectImageInStore(const Resolved& r, const content::Store& store) {
  EXPECT_TRUE(store.Has(r.top.digest));
  EXPECT_TRUE(store.Has(r.manifest.digest));
  EXPECT_TRUE(store.Has(r.config.digest));
  for (const auto& l : r.layers) EXPECT_TRUE(store.Has(l.digest)) << l.digest.str();
}

void WriteDockerConfig(const fs::path& dir, const std::string& registry, const std::string& user,
                       const std::string& password) {
  std::ofstream out(dir / "config.json");
  out << R"({"auths":{")" << registry << R"(":{"auth":")"
      << util::Base64Encode(user + ":" + password) << "\"}}}";
}

// One fixture per auth mode, started on first use and stopped (by PID) when
// the test binary ends. Under ctest, each attaches to the shared fixture of
// its mode (KILN_FIXTURE_ENV_<AUTH>, see tests/fixture/CMakeLists.txt), so
// every test uses its own repository names and fault rules that match only
// its own paths.
std::map<std::string, std::unique_ptr<fixture::Fixture>>& FixtureSlots() {
  static auto* slots = new std::map<std::string, std::unique_ptr<fixture::Fixture>>;
  return *slots;
}

fixture::Fixture& GetFixture(const std::string& auth) {
  auto& slot = FixtureSlots()[auth];
  if (!slot) {
    fixture::FixtureOptions o;
    o.auth = auth;
    auto f = fixture::Fixture::Start(o);
    KILN_CHECK(f.ok(), f.status().ToString());
    slot = std::make_unique<fixture::Fixture>(std::move(*f));
  }
  return *slot;
}

class FixtureEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { FixtureSlots().clear(); }
};
[[maybe_unused]] ::testing::Environment* const kFixtureEnvironment =
    ::testing::AddGlobalTestEnvironment(new FixtureEnvironment);

// --- anonymous access ---

class AnonymousTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = &GetFixture("none");
    registry_ = fixture_->Get("REGISTRY");
    ASSERT_FALSE(registry_.empty());
  }
  TempDir config_;  // empty docker config: anonymous
  TempDir tmp_;
  Client client_ = NewClient(TestOptions(config_.path()));
  fixture::Fixture* fixture_ = nullptr;
  std::string registry_;
};

TEST_F(AnonymousTest, ResolveByTag) {
  auto r = client_.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest.str(), fixture_->Get("BUSYBOX_DIGEST"));
  EXPECT_EQ(r->top.media_type, image::kMediaTypeOciManifest);
  EXPECT_FALSE(r->is_index());
  EXPECT_EQ(r->manifest.digest, r->top.digest);
  EXPECT_EQ(util::Sha256Of(r->manifest_bytes), r->manifest.digest);
  EXPECT_EQ(r->config.media_type, image::kMediaTypeOciConfig);
  ASSERT_EQ(r->layers.size(), 1u);
}

TEST_F(AnonymousTest, ResolveByDigest) {
  const std::string digest = fixture_->Get("BUSYBOX_DIGEST");
  auto r = client_.Resolve(Ref(registry_ + "/busybox@" + digest), Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest.str(), digest);
}

TEST_F(AnonymousTest, IndexPlatformSelection) {
  const std::string ref = registry_ + "/busybox-multi:latest";
  auto arm = client_.Resolve(Ref(ref), Plat("linux/arm64"));
  ASSERT_TRUE(arm.ok()) << arm.status().ToString();
  EXPECT_TRUE(arm->is_index());
  EXPECT_EQ(arm->top.digest.str(), fixture_->Get("BUSYBOX_MULTI_DIGEST"));
  EXPECT_EQ(arm->top.media_type, image::kMediaTypeOciIndex);
  EXPECT_EQ(util::Sha256Of(arm->top_bytes), arm->top.digest);
  EXPECT_EQ(arm->manifest.digest.str(), fixture_->Get("BUSYBOX_ARM64_DIGEST"));
  ASSERT_TRUE(arm->manifest.platform.has_value());
  EXPECT_EQ(arm->manifest.platform->architecture, "arm64");

  auto amd = client_.Resolve(Ref(ref), Plat("linux/amd64"));
  ASSERT_TRUE(amd.ok()) << amd.status().ToString();
  EXPECT_EQ(amd->top.digest, arm->top.digest);  // the pin is the index
  EXPECT_NE(amd->manifest.digest, arm->manifest.digest);
  EXPECT_EQ(amd->manifest.platform->architecture, "amd64");

  auto none = client_.Resolve(Ref(ref), Plat("linux/s390x"));
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("linux/s390x"), std::string::npos)
      << none.status().message();
}

TEST_F(AnonymousTest, DockerSchema2) {
  auto r = client_.Resolve(Ref(registry_ + "/busybox-docker:latest"), Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest.str(), fixture_->Get("BUSYBOX_DOCKER_DIGEST"));
  EXPECT_EQ(r->top.media_type, image::kMediaTypeDockerManifest);
  EXPECT_EQ(r->config.media_type, image::kMediaTypeDockerConfig);
}

TEST_F(AnonymousTest, UnknownTagAndRepository) {
  auto r = client_.Resolve(Ref(registry_ + "/busybox:no-such-tag"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find(registry_ + "/busybox"), std::string::npos);
  r = client_.Resolve(Ref(registry_ + "/no/such/repo:1"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
}

TEST_F(AnonymousTest, PullStoresEverythingAndSkipsWhatItHas) {
  auto store = NewStore(tmp_.path() / "store");
  const Reference ref = Ref(registry_ + "/busybox-multi:latest");
  auto p = client_.Pull(ref, Plat("linux/arm64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ExpectImageInStore(p->resolved, store);
  EXPECT_EQ(p->blobs_fetched, 4u);  // index, manifest, config, layer
  EXPECT_EQ(p->blobs_skipped, 0u);
  EXPECT_TRUE(Files(tmp_.path() / "store/ingest").empty());

  auto again = client_.Pull(ref, Plat("linux/arm64"), store);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->blobs_fetched, 0u);
  EXPECT_EQ(again->blobs_skipped, 4u);
  EXPECT_EQ(again->resolved.top.digest, p->resolved.top.digest);
}

TEST_F(AnonymousTest, FetchManifest) {
  auto m = client_.FetchManifest(Ref(registry_ + "/busybox-multi:latest"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->descriptor.digest.str(), fixture_->Get("BUSYBOX_MULTI_DIGEST"));
  EXPECT_EQ(m->descriptor.media_type, image::kMediaTypeOciIndex);
  EXPECT_EQ(util::Sha256Of(m->bytes), m->descriptor.digest);
}

// Pushes what was pulled to a new repository, pulls it back into an empty
// store, and compares every blob byte for byte.
void RoundTrip(Client& client, const std::string& registry, const std::string& src,
               const std::string& dst, const fs::path& tmp) {
  auto a = NewStore(tmp / "a");
  auto pulled = client.Pull(Ref(registry + "/" + src), Plat("linux/amd64"), a);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  PushStats stats;
  Status pushed = client.Push(a, pulled->resolved.top, Ref(registry + "/" + dst), {}, &stats);
  ASSERT_TRUE(pushed.ok()) << pushed.ToString();
  EXPECT_EQ(stats.blobs_uploaded, 2u);
  EXPECT_EQ(stats.manifests_pushed, 1u);

  auto b = NewStore(tmp / "b");
  auto back = client.Pull(Ref(registry + "/" + dst), Plat("linux/amd64"), b);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->resolved.top.digest, pulled->resolved.top.digest);
  EXPECT_EQ(back->resolved.top.media_type, pulled->resolved.top.media_type);
  auto listed = a.List();
  ASSERT_TRUE(listed.ok());
  for (const Digest& d : *listed) {
    EXPECT_EQ(*b.Read(d), *a.Read(d)) << d.str();
  }
  EXPECT_EQ(b.List()->size(), listed->size());

  // Pushing again uploads nothing.
  PushStats again;
  ASSERT_TRUE(client.Push(a, pulled->resolved.top, Ref(registry + "/" + dst), {}, &again).ok());
  EXPECT_EQ(again.blobs_uploaded, 0u);
  EXPECT_EQ(again.blobs_existing, 2u);
}

TEST_F(AnonymousTest, PushPullRoundTripOci) {
  RoundTrip(client_, registry_, "busybox:latest", Own("roundtrip/oci") + ":v1", tmp_.path());
}

TEST_F(AnonymousTest, PushPullRoundTripDockerSchema2) {
  RoundTrip(client_, registry_, "busybox-docker:latest", Own("roundtrip/docker") + ":v1",
            tmp_.path());
}

TEST_F(AnonymousTest, PushIndexThenPickPlatforms) {
  auto store = NewStore(tmp_.path() / "a");
  const Reference src = Ref(registry_ + "/busybox-multi:latest");
  auto amd = client_.Pull(src, Plat("linux/amd64"), store);
  ASSERT_TRUE(amd.ok()) << amd.status().ToString();
  auto arm = client_.Pull(src, Plat("linux/arm64"), store);
  ASSERT_TRUE(arm.ok()) << arm.status().ToString();

  PushStats stats;
  const Reference dst = Ref(registry_ + "/" + Own("roundtrip/multi") + ":v2");
  ASSERT_TRUE(client_.Push(store, amd->resolved.top, dst, {}, &stats).ok());
  EXPECT_EQ(stats.manifests_pushed, 3u);

  auto b = NewStore(tmp_.path() / "b");
  auto back = client_.Pull(dst, Plat("linux/arm64"), b);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->resolved.top.digest.str(), fixture_->Get("BUSYBOX_MULTI_DIGEST"));
  EXPECT_EQ(back->resolved.manifest.digest.str(), fixture_->Get("BUSYBOX_ARM64_DIGEST"));
  EXPECT_EQ(*b.Read(back->resolved.config.digest), *store.Read(arm->resolved.config.digest));

  // By digest, without a tag.
  auto by_digest = client_.Resolve(
      Ref(registry_ + "/" + Own("roundtrip/multi") + "@" + fixture_->Get("BUSYBOX_MULTI_DIGEST")),
      Plat("linux/amd64"));
  ASSERT_TRUE(by_digest.ok()) << by_digest.status().ToString();
  EXPECT_EQ(by_digest->manifest.digest, amd->resolved.manifest.digest);
}

TEST_F(AnonymousTest, DockerManifestList) {
  auto store = NewStore(tmp_.path() / "a");
  auto pulled = client_.Pull(Ref(registry_ + "/busybox-docker:latest"), Plat("linux/amd64"), store);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  const Descriptor& m = pulled->resolved.manifest;
  const std::string list =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",)"
      R"("manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
      R"("digest":")" +
      m.digest.str() + R"(","size":)" + std::to_string(m.size) +
      R"(,"platform":{"architecture":"amd64","os":"linux"}}]})";
  Descriptor top;
  top.media_type = std::string(image::kMediaTypeDockerManifestList);
  top.digest = *store.Put(list);
  top.size = static_cast<int64_t>(list.size());
  const Reference dst = Ref(registry_ + "/" + Own("roundtrip/dockerlist") + ":1");
  Status s = client_.Push(store, top, dst);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto r = client_.Resolve(dst, Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_index());
  EXPECT_EQ(r->top.digest, top.digest);
  EXPECT_EQ(r->top.media_type, image::kMediaTypeDockerManifestList);
  EXPECT_EQ(r->manifest.digest.str(), fixture_->Get("BUSYBOX_DOCKER_DIGEST"));
  EXPECT_EQ(Client::Create({}).value().Resolve(dst, Plat("linux/arm64")).status().code(),
            StatusCode::kNotFound);
}

TEST_F(AnonymousTest, CrossRepositoryMount) {
  auto store = NewStore(tmp_.path() / "a");
  auto pulled = client_.Pull(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"), store);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  PushOptions opts;
  opts.mount_from = {Ref("docker.io/library/busybox"), Ref(registry_ + "/busybox")};
  PushStats stats;
  Status s = client_.Push(store, pulled->resolved.top,
                          Ref(registry_ + "/" + Own("mounted/app") + ":1"), opts, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.blobs_mounted, 2u);
  EXPECT_EQ(stats.blobs_uploaded, 0u);
  auto r = client_.Resolve(Ref(registry_ + "/" + Own("mounted/app") + ":1"), Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest, pulled->resolved.top.digest);
}

// An image made here: a random layer of `layer_size` bytes.
struct MadeImage {
  Descriptor manifest;
  Descriptor layer;
};

MadeImage MakeImage(const content::Store& store, size_t layer_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string layer(layer_size, '\0');
  for (char& c : layer) c = static_cast<char>(rng());
  const Digest layer_digest = *store.Put(layer);
  const std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
      layer_digest.str() + R"("]}})";
  const Digest config_digest = *store.Put(config);
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      config_digest.str() + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
      layer_digest.str() + R"(","size":)" + std::to_string(layer.size()) + "}]}";
  MadeImage out;
  out.manifest.media_type = std::string(image::kMediaTypeOciManifest);
  out.manifest.digest = *store.Put(manifest);
  out.manifest.size = static_cast<int64_t>(manifest.size());
  out.layer.digest = layer_digest;
  out.layer.size = static_cast<int64_t>(layer.size());
  return out;
}

TEST_F(AnonymousTest, ChunkedUpload) {
  auto a = NewStore(tmp_.path() / "a");
  MadeImage img = MakeImage(a, (3 << 20) + 12345, 7);
  PushOptions opts;
  opts.monolithic_limit = 1 << 20;
  opts.chunk_size = 1 << 20;
  PushStats stats;
  Status s =
      client_.Push(a, img.manifest, Ref(registry_ + "/" + Own("chunked/app") + ":1"), opts, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.blobs_uploaded, 2u);

  auto b = NewStore(tmp_.path() / "b");
  auto back =
      client_.Pull(Ref(registry_ + "/" + Own("chunked/app") + ":1"), Plat("linux/amd64"), b);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->resolved.top.digest, img.manifest.digest);
  EXPECT_EQ(*b.Read(img.layer.digest), *a.Read(img.layer.digest));
}

TEST_F(AnonymousTest, ParallelPullOfManyLayers) {
  // Several images' layers in one manifest would need building; instead
  // pull several images at once through one client from several threads.
  auto store = NewStore(tmp_.path() / "s");
  std::vector<std::thread> threads;
  std::vector<Status> results(3);
  const char* refs[] = {"busybox:latest", "busybox-docker:latest", "busybox-multi:latest"};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto p = client_.Pull(Ref(registry_ + "/" + refs[i]), Plat("linux/amd64"), store);
      results[i] = p.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(AnonymousTest, ConnectionsAreReused) {
  auto t = Transport::Create({});
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 5; ++i) {
    Request req;
    req.url = "http://" + registry_ + "/v2/";
    Response r = (*t)->Do(req);
    ASSERT_TRUE(r.error.ok()) << r.error.ToString();
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_EQ((*t)->stats().requests, 5u);
  EXPECT_EQ((*t)->stats().connections, 1u);
}

TEST_F(AnonymousTest, PushMissingBlobIsNotFound) {
  auto store = NewStore(tmp_.path() / "a");
  MadeImage img = MakeImage(store, 1000, 9);
  ASSERT_TRUE(store.Delete(img.layer.digest).ok());
  Status s = client_.Push(store, img.manifest, Ref(registry_ + "/" + Own("missing/app") + ":1"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find(img.layer.digest.str()), std::string::npos);
}

// --- faults, through the fixture's proxy ---

// Each fault test copies busybox:latest (by mounting) into a repository of
// its own, "fault/<test name>-<pid>", and adds rules matching only that path.
class FaultTest : public AnonymousTest {
 protected:
  void SetUp() override {
    AnonymousTest::SetUp();
    proxy_ = fixture_->Get("FAULT_PROXY");
    control_ = fixture_->Get("FAULT_CONTROL");
    ASSERT_FALSE(proxy_.empty());
    auto t = Transport::Create({});
    ASSERT_TRUE(t.ok());
    transport_ = std::move(*t);
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // The pid keeps repeated runs against one shared fixture apart.
    repo_ = "fault/" + name + "-" + std::to_string(::getpid());
    auto seed = NewStore(tmp_.path() / "seed");
    auto pulled = client_.Pull(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"), seed);
    ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
    PushOptions opts;
    opts.mount_from = {Ref(registry_ + "/busybox")};
    Status s =
        client_.Push(seed, pulled->resolved.top, Ref(registry_ + "/" + repo_ + ":latest"), opts);
    ASSERT_TRUE(s.ok()) << s.ToString();
    image_ = Ref(proxy_ + "/" + repo_ + ":latest");
    layer_ = pulled->resolved.layers.at(0).digest;
  }
  void TearDown() override {
    for (int id : rules_) Control("DELETE", "/rules/" + std::to_string(id));
  }

  std::string Control(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    Request req;
    req.method = method;
    req.url = control_ + path;
    req.body = body;
    if (!body.empty()) req.headers.push_back("Content-Type: application/json");
    Response r = transport_->Do(req);
    EXPECT_TRUE(r.error.ok()) << r.error.ToString();
    EXPECT_LT(r.status, 300) << method << " " << path << ": " << r.body;
    return r.body;
  }
  // Adds a rule for paths under this test's repository plus `suffix`.
  void AddRule(nlohmann::json rule, const std::string& suffix) {
    rule["match"] = "/" + repo_ + "/" + suffix;
    auto answer = nlohmann::json::parse(Control("POST", "/rules", rule.dump()), nullptr, false);
    if (answer.is_object() && answer.contains("id")) rules_.push_back(answer["id"].get<int>());
  }
  // The proxy's log of this test's requests.
  std::vector<nlohmann::json> Requests() {
    std::vector<nlohmann::json> out;
    auto all = nlohmann::json::parse(Control("GET", "/requests"), nullptr, false);
    if (!all.is_object()) return out;
    for (const auto& r : all["requests"]) {
      if (Str(r, "path").find("/" + repo_ + "/") != std::string::npos) out.push_back(r);
    }
    return out;
  }
  // A string member of a logged request; "" when absent or null.
  static std::string Str(const nlohmann::json& r, const char* key) {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
  }
  static bool IsFault(const nlohmann::json& r) {
    return r.contains("fault") && !r["fault"].is_null() && r["fault"] != "" && r["fault"] != false;
  }

  std::string proxy_;
  std::string control_;
  std::string repo_;
  Reference image_;
  Digest layer_;
  std::vector<int> rules_;
  std::unique_ptr<Transport> transport_;
};

TEST_F(FaultTest, CorruptBlobIsRejectedAndNothingStored) {
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "corrupt"}, {"times", -1}}, "blobs/" + layer_.str());
  auto p = client_.Pull(image_, Plat("linux/amd64"), store);
  EXPECT_EQ(p.status().code(), StatusCode::kDigestMismatch) << p.status().ToString();
  EXPECT_NE(p.status().message().find(layer_.str()), std::string::npos);
  EXPECT_FALSE(store.Has(layer_));
  EXPECT_TRUE(Files(tmp_.path() / "s/ingest").empty());
}

TEST_F(FaultTest, ServerErrorsAreRetried) {
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "status"}, {"status", 500}, {"times", 2}}, "blobs/");
  AddRule({{"mode", "status"}, {"status", 502}, {"times", 1}}, "manifests/");
  auto p = client_.Pull(image_, Plat("linux/amd64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ExpectImageInStore(p->resolved, store);
  int faults = 0;
  for (const auto& r : Requests()) faults += IsFault(r) ? 1 : 0;
  EXPECT_EQ(faults, 3);
}

TEST_F(FaultTest, PersistentServerErrorFails) {
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "status"}, {"status", 503}, {"times", -1}}, "blobs/");
  auto p = client_.Pull(image_, Plat("linux/amd64"), store);
  EXPECT_EQ(p.status().code(), StatusCode::kIOError) << p.status().ToString();
  EXPECT_NE(p.status().message().find("503"), std::string::npos) << p.status().message();
  EXPECT_TRUE(Files(tmp_.path() / "s/ingest").empty());
}

TEST_F(FaultTest, TooManyRequestsHonoursRetryAfter) {
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "throttle"}, {"retry_after", 1}, {"times", 1}}, "blobs/");
  const auto start = std::chrono::steady_clock::now();
  auto p = client_.Pull(image_, Plat("linux/amd64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // A lower bound only: honouring Retry-After is a wait, and a loaded machine
  // can make it longer, never shorter (no upper bound is asserted).
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(950));
}

TEST_F(FaultTest, RetryAfterBeyondTheLimitFails) {
  RegistryOptions o = TestOptions(config_.path());
  o.max_retry_after = std::chrono::seconds(1);
  Client client = NewClient(o);
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "throttle"}, {"retry_after", 3600}, {"times", -1}}, "blobs/");
  auto p = client.Pull(image_, Plat("linux/amd64"), store);
  EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted) << p.status().ToString();
}

TEST_F(FaultTest, CutConnectionResumesWithRange) {
  auto store = NewStore(tmp_.path() / "s");
  AddRule({{"mode", "cut"}, {"after", 4096}, {"times", 1}}, "blobs/" + layer_.str());
  auto p = client_.Pull(image_, Plat("linux/amd64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(store.Has(layer_));
  bool resumed = false;
  for (const auto& r : Requests()) {
    if (Str(r, "path").find(layer_.str()) != std::string::npos &&
        Str(r, "range") == "bytes=4096-") {
      resumed = true;
      EXPECT_EQ(r.value("status", 0), 206) << r.dump();
    }
  }
  EXPECT_TRUE(resumed);
}

TEST_F(FaultTest, StalledResponseTimesOutAndIsRetried) {
  RegistryOptions o = TestOptions(config_.path());
  o.low_speed_time = std::chrono::milliseconds(1000);
  Client client = NewClient(o);
  auto store = NewStore(tmp_.path() / "s");
  // The first GET of the layer stalls for far longer than low_speed_time; the
  // client must give up on it and fetch the blob again. Checked by what the
  // proxy saw, not by wall time (tests never assert timings).
  AddRule({{"mode", "delay"}, {"seconds", 30}, {"times", 1}}, "blobs/" + layer_.str());
  auto p = client.Pull(image_, Plat("linux/amd64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(store.Has(layer_));
  // The stalled request is still hanging in the proxy (its log entry comes
  // when it ends), so the stall is read from the rule's hit count.
  auto rules = nlohmann::json::parse(Control("GET", "/rules"), nullptr, false);
  int stalled = 0;
  for (const auto& r : rules["rules"]) {
    if (r.value("id", -1) == rules_.back()) stalled = r.value("hits", 0);
  }
  int served = 0;
  for (const auto& r : Requests()) {
    if (Str(r, "method") == "GET" && Str(r, "path").find(layer_.str()) != std::string::npos &&
        !IsFault(r)) {
      ++served;
    }
  }
  EXPECT_EQ(stalled, 1);
  EXPECT_GE(served, 1);
}

// Issue 15: a manifest trickled at 2 B/s never trips the stall window; the
// operation's deadline ends it, with a message naming registry and manifest.
TEST_F(FaultTest, TrickledManifestHitsTheOperationDeadline) {
  RegistryOptions o = TestOptions(config_.path());
  o.timeout = std::chrono::milliseconds(1500);
  o.timeout_hint = "raise it somewhere";
  Client client = NewClient(o);
  AddRule({{"mode", "trickle"}, {"rate", 2}, {"method", "GET"}, {"times", -1}}, "manifests/");
  auto r = client.Resolve(image_, Plat("linux/amd64"));
  ASSERT_EQ(r.status().code(), StatusCode::kIOError) << r.status().ToString();
  EXPECT_NE(
      r.status().message().find("registry " + proxy_ + ": fetching manifest " + repo_ + "@sha256:"),
      std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(
                ": no complete response in 1.5 s (slow or stalled server); raise it somewhere"),
            std::string::npos)
      << r.status().message();
}

// Issue 15: cancellation ends a request that never gets an answer and a
// backoff sleep (Retry-After: 50) at once, as kCancelled.
TEST_F(FaultTest, CancellationEndsRequestsAndBackoff) {
  for (const char* mode : {"hang", "throttle"}) {
    for (int id : rules_) Control("DELETE", "/rules/" + std::to_string(id));
    rules_.clear();
    util::Canceller cancel;
    RegistryOptions o = TestOptions(config_.path());
    o.cancel = &cancel;
    Client client = NewClient(o);
    AddRule({{"mode", mode}, {"retry_after", 50}, {"times", -1}}, "manifests/");
    std::thread canceller([&cancel] {
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
      cancel.Cancel("test cancelled");
    });
    auto r = client.Resolve(image_, Plat("linux/amd64"));
    canceller.join();
    EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << mode << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find("test cancelled"), std::string::npos)
        << r.status().message();
  }
}

TEST_F(FaultTest, OversizedManifestIsRejected) {
  for (bool chunked : {false, true}) {
    for (int id : rules_) Control("DELETE", "/rules/" + std::to_string(id));
    rules_.clear();
    AddRule({{"mode", "big_manifest"}, {"times", -1}, {"chunked", chunked}}, "manifests/");
    auto r = client_.Resolve(image_, Plat("linux/amd64"));
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted)
        << "chunked=" << chunked << ": " << r.status().ToString();
    auto m = client_.FetchManifest(image_);
    EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted)
        << "chunked=" << chunked << ": " << m.status().ToString();
  }
}

TEST_F(FaultTest, ManifestWithWrongBytesIsRejected) {
  AddRule({{"mode", "corrupt"}, {"times", -1}}, "manifests/");
  auto r = client_.Resolve(image_, Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kDigestMismatch) << r.status().ToString();
}

// --- basic auth ---

class BasicAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = &GetFixture("basic");
    registry_ = fixture_->Get("REGISTRY");
    user_ = fixture_->Get("USER");
    password_ = fixture_->Get("PASSWORD");
    ASSERT_FALSE(password_.empty());
  }
  TempDir config_;
  TempDir tmp_;
  fixture::Fixture* fixture_ = nullptr;
  std::string registry_, user_, password_;
};

TEST_F(BasicAuthTest, PullAndPushWithCredentials) {
  WriteDockerConfig(config_.path(), registry_, user_, password_);
  Client client = NewClient(TestOptions(config_.path()));
  auto store = NewStore(tmp_.path() / "s");
  auto p = client.Pull(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->resolved.top.digest.str(), fixture_->Get("BUSYBOX_DIGEST"));
  Status s = client.Push(store, p->resolved.top, Ref(registry_ + "/" + Own("basic/copy") + ":1"));
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST_F(BasicAuthTest, WrongPasswordNamesRegistryNotSecret) {
  const std::string wrong = "wrong-" + password_;
  WriteDockerConfig(config_.path(), registry_, user_, wrong);
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthorized) << r.status().ToString();
  EXPECT_NE(r.status().message().find(registry_), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("busybox"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find(wrong), std::string::npos);
  EXPECT_EQ(r.status().message().find(util::Base64Encode(user_ + ":" + wrong)), std::string::npos);
}

TEST_F(BasicAuthTest, NoCredentials) {
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthorized) << r.status().ToString();
  EXPECT_NE(r.status().message().find(registry_), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("no credentials"), std::string::npos) << r.status().message();
}

// --- bearer tokens ---

class TokenAuthTest : public BasicAuthTest {
 protected:
  void SetUp() override {
    fixture_ = &GetFixture("token");
    registry_ = fixture_->Get("REGISTRY");
    user_ = fixture_->Get("USER");
    password_ = fixture_->Get("PASSWORD");
    ASSERT_FALSE(password_.empty());
  }
};

TEST_F(TokenAuthTest, PullAndPushWithPassword) {
  WriteDockerConfig(config_.path(), registry_, user_, password_);
  Client client = NewClient(TestOptions(config_.path()));
  auto store = NewStore(tmp_.path() / "s");
  auto p = client.Pull(Ref(registry_ + "/busybox-multi:latest"), Plat("linux/arm64"), store);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->resolved.manifest.digest.str(), fixture_->Get("BUSYBOX_ARM64_DIGEST"));
  PushOptions opts;
  opts.mount_from = {Ref(registry_ + "/busybox-multi")};
  PushStats stats;
  Status s = client.Push(store, p->resolved.manifest,
                         Ref(registry_ + "/" + Own("token/copy") + ":1"), opts, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.blobs_mounted, 2u);
  auto r = client.Resolve(Ref(registry_ + "/" + Own("token/copy") + ":1"), Plat("linux/arm64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest, p->resolved.manifest.digest);
}

TEST_F(TokenAuthTest, IdentityToken) {
  const std::string token = fixture_->Get("IDENTITY_TOKEN");
  ASSERT_FALSE(token.empty());
  std::ofstream(config_.path() / "config.json")
      << R"({"auths":{")" << registry_ << R"(":{"identitytoken":")" << token << "\"}}}";
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top.digest.str(), fixture_->Get("BUSYBOX_DIGEST"));
}

TEST_F(TokenAuthTest, WrongPasswordNamesRegistryNotSecret) {
  const std::string wrong = "wrong-" + password_;
  WriteDockerConfig(config_.path(), registry_, user_, wrong);
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthorized) << r.status().ToString();
  EXPECT_NE(r.status().message().find(registry_), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("busybox"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find(wrong), std::string::npos);
}

TEST_F(TokenAuthTest, AnonymousIsRefused) {
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthorized) << r.status().ToString();
  EXPECT_NE(r.status().message().find(registry_), std::string::npos) << r.status().message();
}

TEST_F(TokenAuthTest, CredentialHelper) {
  // A docker-credential-kilntest on PATH answering for this registry.
  TempDir bin;
  const fs::path helper = bin.path() / "docker-credential-kilntest";
  {
    std::ofstream out(helper);
    out << "#!/bin/sh\nread -r server\n[ \"$server\" = \"" << registry_
        << "\" ] || { echo 'credentials not found in native keychain'; exit 1; }\n"
        << "printf '{\"Username\":\"%s\",\"Secret\":\"%s\"}\\n' '" << user_ << "' '" << password_
        << "'\n";
  }
  fs::permissions(helper, fs::perms::owner_all);
  const std::string old_path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  ::setenv("PATH", (bin.path().string() + ":" + old_path).c_str(), 1);
  std::ofstream(config_.path() / "config.json")
      << R"({"credHelpers":{")" << registry_ << R"(":"kilntest"}})";
  Client client = NewClient(TestOptions(config_.path()));
  auto r = client.Resolve(Ref(registry_ + "/busybox:latest"), Plat("linux/amd64"));
  ::setenv("PATH", old_path.c_str(), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

}  // namespace
}  // namespace kiln::registry
