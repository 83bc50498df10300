// HttpSource against the loopback fixture (tests/fixture): its HTTP file
// server (/hello.txt, /data.bin, /sub/file.txt with ETag and Last-Modified,
// conditional requests) and, for a server that stalls, the fault proxy's
// "delay" rule. Under ctest this attaches to the shared anonymous fixture.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "fixture.h"
#include "source/http.h"

namespace kiln::source {
namespace {

namespace fs = std::filesystem;

class HttpFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture::FixtureOptions options;
    const char* shared = std::getenv("KILN_FIXTURE_ENV_NONE");
    // Run alone, skip building the images this test does not need.
    if (shared == nullptr || *shared == '\0') options.images = false;
    auto f = fixture::Fixture::Start(options);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fixture_ = new fixture::Fixture(std::move(*f));
  }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(fixture_, nullptr);
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/kiln-http-fixture-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    auto store = content::Store::Open(tmp_ / "store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_.emplace(std::move(*store));
    auto src = HttpSource::Open(*store_, tmp_ / "http-cache.db");
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    source_ = *src;
    base_ = fixture_->Get("HTTP");  // http://127.0.0.1:PORT
    ASSERT_EQ(base_.rfind("http://", 0), 0u) << base_;
  }
  void TearDown() override {
    source_.reset();
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(tmp_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(tmp_, ec);
  }

  // A token no other test uses, for request paths and fault rules.
  static std::string Unique(const std::string& what) {
    std::random_device rd;
    return "kiln-source-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  }

  static util::Digest MustDigest(const std::string& s) {
    auto d = util::Digest::Parse(s);
    EXPECT_TRUE(d.ok()) << s;
    return d.ok() ? *d : util::Digest();
  }

  static fixture::Fixture* fixture_;
  fs::path tmp_;
  std::optional<content::Store> store_;
  std::shared_ptr<HttpSource> source_;
  std::string base_;
};

fixture::Fixture* HttpFixtureTest::fixture_ = nullptr;

size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// A small request to the fault proxy's control interface.
std::string Control(const std::string& method, const std::string& url, const std::string& body) {
  CURL* curl = curl_easy_init();
  std::string out;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << url;
  return out;
}

TEST_F(HttpFixtureTest, FetchPinsTheSha256OfTheServedFile) {
  auto hello = source_->Fetch(base_ + "/hello.txt", {});
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_EQ(hello->digest, MustDigest(fixture_->Get("HTTP_HELLO_SHA256")));
  EXPECT_EQ(hello->size, 28u);
  EXPECT_EQ(hello->filename, "hello.txt");
  EXPECT_EQ(hello->last_modified_unix, 1704067200);  // the fixture's fixed epoch
  auto body = store_->Read(hello->digest);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, "hello from the kiln fixture\n");

  auto data = source_->Fetch(base_ + "/data.bin", {});
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(data->digest, MustDigest(fixture_->Get("HTTP_DATA_SHA256")));
  EXPECT_EQ(data->size, 1u << 20);
  EXPECT_TRUE(store_->Has(data->digest));

  auto sub = source_->Fetch(base_ + "/sub/file.txt", {});
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  EXPECT_EQ(sub->filename, "file.txt");
  EXPECT_EQ(sub->digest, util::Sha256Of("a file in a subdirectory\n"));
}

TEST_F(HttpFixtureTest, ChecksumMatchAndMismatch) {
  HttpFetchOptions options;
  options.checksum = MustDigest(fixture_->Get("HTTP_DATA_SHA256"));
  auto ok = source_->Fetch(base_ + "/data.bin", options);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->digest, *options.checksum);

  auto bad = source_->Fetch(base_ + "/hello.txt", options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(bad.status().message(),
            "checksum of " + base_ + "/hello.txt does not match: expected " +
                fixture_->Get("HTTP_DATA_SHA256") + ", got " + fixture_->Get("HTTP_HELLO_SHA256"));
  EXPECT_FALSE(store_->Has(MustDigest(fixture_->Get("HTTP_HELLO_SHA256"))));
}

TEST_F(HttpFixtureTest, NotFoundNamesTheRedactedUrl) {
  std::string host = base_.substr(std::string("http://").size());
  std::string path = "/" + Unique("missing");
  auto f = source_->Fetch("http://user:secret@" + host + path, {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.status().message(),
            "fetching http://xxxxx:xxxxx@" + host + path + ": server answered HTTP 404 Not Found");
  EXPECT_EQ(f.status().ToString().find("secret"), std::string::npos);
}

TEST_F(HttpFixtureTest, SecondFetchIsConditional) {
  // The query makes the request line ours alone in the server's log; the
  // file server ignores it.
  std::string token = Unique("conditional");
  std::string url = base_ + "/data.bin?" + token;
  auto first = source_->Fetch(url, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = source_->Fetch(url, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(second->size, first->size);
  EXPECT_EQ(second->filename, "data.bin");
  EXPECT_EQ(second->last_modified_unix, first->last_modified_unix);

  // The server answered the second request with 304 Not Modified.
  std::ifstream log(fs::path(fixture_->Get("STATE")) / "logs" / "http.log");
  ASSERT_TRUE(log.good());
  std::stringstream text;
  text << log.rdbuf();
  std::string line = "\"GET /data.bin?" + token + " HTTP/1.1\" ";
  EXPECT_NE(text.str().find(line + "200"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(line + "304"), std::string::npos) << text.str();

  // The cache row holds the validators the server sent.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((tmp_ / "http-cache.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT etag, last_modified, digest FROM http_cache WHERE url = ?", -1,
                         &stmt, nullptr),
      SQLITE_OK);
  sqlite3_bind_text(stmt, 1, url.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  std::string etag = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))),
            "Mon, 01 Jan 2024 00:00:00 GMT");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2))),
            fixture_->Get("HTTP_DATA_SHA256"));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(HttpFixtureTest, CancellationAbortsAStalledRequest) {
  // The fault proxy holds requests for our path for 60 s before answering.
  std::string path = "/v2/" + Unique("cancel") + "/blobs/x";
  std::string control = fixture_->Get("FAULT_CONTROL");
  std::string rule = Control("POST", control + "/rules",
                             "{\"mode\": \"delay\", \"seconds\": 60, \"match\": \"" + path + "\"}");
  ASSERT_NE(rule.find("\"id\""), std::string::npos) << rule;
  std::string id = rule.substr(rule.find(':') + 1);
  id = id.substr(0, id.find('}'));
  while (!id.empty() && id.front() == ' ') id.erase(0, 1);

  util::Canceller cancel;
  HttpFetchOptions options;
  options.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.Cancel("interrupted");
  });
  std::string url = "http://" + fixture_->Get("FAULT_PROXY") + path;
  auto f = source_->Fetch(url, options);
  canceller.join();
  Control("DELETE", control + "/rules/" + id, "");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(f.status().message(), "fetching " + url + ": interrupted");
}

}  // namespace
}  // namespace kiln::source
