#include "registry/http.h"

#include <gtest/gtest.h>

#include <ctime>

namespace kiln::registry {
namespace {

using std::chrono::seconds;

TEST(HttpTest, RetryAfterSeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(ParseRetryAfter("120", now), seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), seconds(0));
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("1.5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
}

TEST(HttpTest, RetryAfterHttpDate) {
  // 2015-10-21T07:28:00Z
  const auto at = std::chrono::system_clock::from_time_t(1445412480);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", at), seconds(0));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", at), seconds(30));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", at), seconds(0));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 UTC", at), std::nullopt);
}

// Regression (fuzz_registry): a date after 2262 overflowed the clock's
// nanosecond count (undefined behaviour, a wrong or negative delay). The
// caller refuses waits above RegistryOptions::max_retry_after.
TEST(HttpTest, RetryAfterFarFutureDate) {
  const auto at = std::chrono::system_clock::from_time_t(1445412480);  // 2015-10-21T07:28:00Z
  struct tm tm {};
  ASSERT_NE(::strptime("Sun, 06 Nov 2849 00:49:37 GMT", "%a, %d %b %Y %H:%M:%S GMT", &tm), nullptr);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 2849 00:49:37 GMT", at),
            seconds(::timegm(&tm) - 1445412480));
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", at)->count() > 0, true);
  // Rounded up to the next second.
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", at + std::chrono::milliseconds(1)),
            seconds(30));
}

TEST(HttpTest, QueryEscape) {
  EXPECT_EQ(QueryEscape("repository:library/alpine:pull,push"),
            "repository%3Alibrary%2Falpine%3Apull%2Cpush");
  EXPECT_EQ(QueryEscape("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(QueryEscape("a b+c&d=e"), "a%20b%2Bc%26d%3De");
  EXPECT_EQ(QueryEscape("\xff"), "%FF");
}

TEST(HttpTest, UrlOrigin) {
  EXPECT_EQ(UrlOrigin("http://127.0.0.1:5000/v2/x?y"), "http://127.0.0.1:5000");
  EXPECT_EQ(UrlOrigin("HTTPS://Storage.Example/blob"), "https://storage.example");
  EXPECT_EQ(UrlOrigin("https://host?x=1"), "https://host");
  EXPECT_EQ(UrlOrigin("https://host"), "https://host");
  EXPECT_EQ(UrlOrigin("/v2/x"), "");
}

TEST(HttpTest, FindHeaderIsCaseInsensitive) {
  HeaderList h = {{"Content-Type", "application/json"},
                  {"docker-content-digest", "sha256:1"},
                  {"Docker-Content-Digest", "sha256:2"}};
  EXPECT_EQ(FindHeader(h, "content-type"), "application/json");
  EXPECT_EQ(FindHeader(h, "DOCKER-CONTENT-DIGEST"), "sha256:1");
  EXPECT_EQ(FindHeader(h, "Location"), std::nullopt);
}

TEST(HttpTest, UnresolvableHostIsNotRetried) {
  auto t = Transport::Create({});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Request req;
  req.url = "http://registry.invalid:5000/v2/";  // .invalid never resolves (RFC 2606)
  Response r = (*t)->Do(req);
  EXPECT_EQ(r.error.code(), StatusCode::kIOError) << r.error.ToString();
  EXPECT_FALSE(r.retryable);
}

TEST(HttpTest, ConnectionRefusedIsRetryable) {
  auto t = Transport::Create({});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Request req;
  req.url = "http://127.0.0.1:1/v2/";
  Response r = (*t)->Do(req);
  EXPECT_EQ(r.error.code(), StatusCode::kIOError) << r.error.ToString();
  EXPECT_TRUE(r.retryable);
  EXPECT_NE(r.error.message().find("GET http://127.0.0.1:1/v2/"), std::string::npos)
      << r.error.message();
}

}  // namespace
}  // namespace kiln::registry
