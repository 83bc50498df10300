// HttpSource against a scripted loopback server (registry/test_server.h),
// for what the fixture's file server does not do on demand: redirects,
// Content-Disposition, error statuses, a server that stalls.
#include "source/http.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "registry/test_server.h"

namespace kiln::source {
namespace {

namespace fs = std::filesystem;
using registry::test::ServerRequest;
using registry::test::TestServer;

TEST(RedactUrlTest, ReplacesCredentials) {
  EXPECT_EQ(RedactUrl("http://user:secret@127.0.0.1:8080/a/b?x=1"),
            "http://xxxxx:xxxxx@127.0.0.1:8080/a/b?x=1");
  EXPECT_EQ(RedactUrl("https://token@host/f"), "https://xxxxx@host/f");
  EXPECT_EQ(RedactUrl("https://host/f@x"), "https://host/f@x");
  EXPECT_EQ(RedactUrl("https://u:p@ss@host"), "https://xxxxx:xxxxx@host");
  EXPECT_EQ(RedactUrl("https://host/"), "https://host/");
  EXPECT_EQ(RedactUrl("not a url"), "not a url");
}

class HttpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kiln-http-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    auto store = content::Store::Open(tmp_ / "store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_.emplace(std::move(*store));
    auto src = HttpSource::Open(*store_, tmp_ / "http-cache.db");
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    source_ = *src;
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

  fs::path tmp_;
  std::optional<content::Store> store_;
  std::shared_ptr<HttpSource> source_;
};

const char kDate[] = "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT";

TEST_F(HttpSourceTest, FetchStoresAndPinsTheBody) {
  TestServer server([](const ServerRequest&) {
    return TestServer::Reply(200, {"ETag: \"v1\"", kDate}, "payload\n");
  });
  auto f = source_->Fetch("http://" + server.host() + "/dir/file%20name.txt?q=1", {});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->digest, util::Sha256Of("payload\n"));
  EXPECT_EQ(f->size, 8u);
  EXPECT_EQ(f->filename, "file name.txt");
  EXPECT_EQ(f->last_modified_unix, 1704067200);
  auto body = store_->Read(f->digest);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, "payload\n");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/dir/file%20name.txt?q=1");
  EXPECT_EQ(reqs[0].Header("if-none-match"), "");
}

TEST_F(HttpSourceTest, FilenameFromContentDispositionOrIndexHtml) {
  const char* const kDispositions[] = {"attachment; filename=\"../evil/report.pdf\"",
                                       "inline;filename=plain.txt; size=1", ""};
  std::atomic<int> which{0};
  TestServer server([&](const ServerRequest&) {
    std::vector<std::string> h;
    std::string disposition = kDispositions[which.load()];
    if (!disposition.empty()) h.push_back("Content-Disposition: " + disposition);
    return TestServer::Reply(200, h, "x");
  });
  auto f = source_->Fetch("http://" + server.host() + "/download?id=7", {});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->filename, "report.pdf");
  EXPECT_EQ(f->last_modified_unix, 0);
  which = 1;
  f = source_->Fetch("http://" + server.host() + "/download", {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "plain.txt");
  which = 2;
  f = source_->Fetch("http://" + server.host() + "/", {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "index.html");
  f = source_->Fetch("http://" + server.host(), {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "index.html");
  f = source_->Fetch("http://" + server.host() + "/a/b/", {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->filename, "b");
}

TEST_F(HttpSourceTest, ConditionalRequestReusesStoredBody) {
  TestServer server([](const ServerRequest& r) {
    if (r.Header("if-none-match") == "\"v1\"") return TestServer::Reply(304, {"ETag: \"v1\""}, "");
    return TestServer::Reply(200, {"ETag: \"v1\"", kDate}, "cached body");
  });
  std::string url = "http://" + server.host() + "/file.bin";
  auto first = source_->Fetch(url, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = source_->Fetch(url, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(second->size, first->size);
  EXPECT_EQ(second->filename, "file.bin");
  EXPECT_EQ(second->last_modified_unix, 1704067200);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].Header("if-none-match"), "\"v1\"");
  EXPECT_EQ(reqs[1].Header("if-modified-since"), "Mon, 01 Jan 2024 00:00:00 GMT");

  // The blob is gone from the store: the next fetch asks unconditionally.
  ASSERT_TRUE(store_->Delete(first->digest).ok());
  auto third = source_->Fetch(url, {});
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->digest, first->digest);
  reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].Header("if-none-match"), "");
  EXPECT_TRUE(store_->Has(first->digest));

  // The cache survives reopening.
  source_.reset();
  auto reopened = HttpSource::Open(*store_, tmp_ / "http-cache.db");
  ASSERT_TRUE(reopened.ok());
  auto fourth = (*reopened)->Fetch(url, {});
  ASSERT_TRUE(fourth.ok());
  EXPECT_EQ(fourth->digest, first->digest);
  reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[3].Header("if-none-match"), "\"v1\"");
}

TEST_F(HttpSourceTest, ChangedContentIsFetchedAgain) {
  std::atomic<int> version{1};
  TestServer server([&](const ServerRequest& r) {
    std::string etag = "\"v" + std::to_string(version) + "\"";
    if (r.Header("if-none-match") == etag) return TestServer::Reply(304, {}, "");
    return TestServer::Reply(200, {"ETag: " + etag}, "version " + std::to_string(version));
  });
  std::string url = "http://" + server.host() + "/f";
  auto a = source_->Fetch(url, {});
  ASSERT_TRUE(a.ok());
  version = 2;
  auto b = source_->Fetch(url, {});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->digest, util::Sha256Of("version 2"));
}

TEST_F(HttpSourceTest, FollowsRedirects) {
  TestServer server([&](const ServerRequest& r) {
    if (r.target == "/old") return TestServer::Reply(302, {"Location: /new/thing.tar"}, "");
    return TestServer::Reply(200, {}, "moved");
  });
  auto f = source_->Fetch("http://" + server.host() + "/old", {});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->digest, util::Sha256Of("moved"));
  EXPECT_EQ(f->filename, "old");  // named after the URL asked for
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(HttpSourceTest, ErrorStatusesNameTheRedactedUrl) {
  std::atomic<int> status{404};
  TestServer server([&](const ServerRequest&) { return TestServer::Reply(status, {}, "no"); });
  std::string host = server.host();
  auto f = source_->Fetch("http://user:secret@" + host + "/missing", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.status().message(),
            "fetching http://xxxxx:xxxxx@" + host + "/missing: server answered HTTP 404 X");
  // The credentials were used for the request.
  EXPECT_EQ(server.requests()[0].Header("authorization"), "Basic dXNlcjpzZWNyZXQ=");
  status = 500;
  f = source_->Fetch("http://" + host + "/boom", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kIOError);
  EXPECT_EQ(f.status().message(), "fetching http://" + host + "/boom: server answered HTTP 500 X");
  status = 403;
  f = source_->Fetch("http://" + host + "/private", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kUnauthorized);
  auto blobs = store_->List();
  ASSERT_TRUE(blobs.ok());
  EXPECT_TRUE(blobs->empty());  // error pages are never stored
}

TEST_F(HttpSourceTest, ChecksumIsEnforced) {
  TestServer server([](const ServerRequest&) { return TestServer::Reply(200, {}, "content"); });
  std::string url = "http://" + server.host() + "/f.txt";
  HttpFetchOptions options;
  options.checksum = util::Sha256Of("content");
  auto f = source_->Fetch(url, options);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->digest, *options.checksum);

  TestServer other([](const ServerRequest&) { return TestServer::Reply(200, {}, "tampered"); });
  std::string bad_url = "http://u:pw@" + other.host() + "/f.txt";
  f = source_->Fetch(bad_url, options);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(f.status().message(), "checksum of http://xxxxx:xxxxx@" + other.host() +
                                      "/f.txt does not match: expected " + options.checksum->str() +
                                      ", got " + util::Sha256Of("tampered").str());
  EXPECT_FALSE(store_->Has(util::Sha256Of("tampered")));

  auto sha512 = util::Digest::Parse("sha512:" + std::string(128, 'a'));
  ASSERT_TRUE(sha512.ok());
  options.checksum = *sha512;
  f = source_->Fetch(url, options);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kUnimplemented);
}

TEST_F(HttpSourceTest, BadUrlsAndUnreachableServers) {
  auto f = source_->Fetch("ftp://u:p@host/file", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.status().message(),
            "cannot fetch ftp://xxxxx:xxxxx@host/file: only http:// and https:// URLs are "
            "supported");
  std::string host;
  {
    TestServer gone([](const ServerRequest&) { return std::string(); });
    host = gone.host();
  }  // closed: nothing listens on the port now
  f = source_->Fetch("http://user:secret@" + host + "/x", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kIOError);
  EXPECT_EQ(f.status().message().rfind("fetching http://xxxxx:xxxxx@" + host + "/x: ", 0), 0u)
      << f.status().message();
  EXPECT_EQ(f.status().message().find("secret"), std::string::npos);
}

TEST_F(HttpSourceTest, CancelledBeforeAndDuring) {
  util::Canceller cancel;
  TestServer server([&](const ServerRequest&) {
    // The build is cancelled while the server has not answered yet.
    cancel.Cancel("interrupted by the user");
    std::this_thread::sleep_for(std::chrono::seconds(3));
    return TestServer::Reply(200, {}, "late");
  });
  HttpFetchOptions options;
  options.cancel = &cancel;
  std::string url = "http://" + server.host() + "/slow";
  auto f = source_->Fetch(url, options);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(f.status().message(), "fetching " + url + ": interrupted by the user");
  EXPECT_FALSE(store_->Has(util::Sha256Of("late")));
  // Already cancelled: no request at all.
  f = source_->Fetch(url, options);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(server.requests().size(), 1u);
}

}  // namespace
}  // namespace kiln::source
