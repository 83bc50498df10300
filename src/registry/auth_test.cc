#include "registry/auth.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "util/base64.h"

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;

// A fresh directory, removed with its content.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/kiln-registry-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteFile(const fs::path& p, const std::string& data, mode_t mode = 0644) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  ::chmod(p.c_str(), mode);
}

Challenge MakeChallenge(std::string scheme, std::map<std::string, std::string> params) {
  return Challenge{std::move(scheme), std::move(params)};
}

TEST(ChallengeTest, BearerWithQuotedValuesAndCommas) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
      R"(scope="repository:library/alpine:pull,push")");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0], MakeChallenge("bearer", {{"realm", "https://auth.docker.io/token"},
                                              {"service", "registry.docker.io"},
                                              {"scope", "repository:library/alpine:pull,push"}}));
}

TEST(ChallengeTest, BasicAndSpacing) {
  auto c = ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0], MakeChallenge("basic", {{"realm", "Registry Realm"}}));

  c = ParseWwwAuthenticate("BEARER  Realm = \"x\" , Service=reg ,error=\"insufficient_scope\"");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0],
            MakeChallenge("bearer",
                          {{"realm", "x"}, {"service", "reg"}, {"error", "insufficient_scope"}}));
}

TEST(ChallengeTest, SeveralChallenges) {
  auto c = ParseWwwAuthenticate(
      R"(Negotiate, Basic realm="a,b", Bearer realm="https://t/token",service="s")");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0], MakeChallenge("negotiate", {}));
  EXPECT_EQ((*c)[1], MakeChallenge("basic", {{"realm", "a,b"}}));
  EXPECT_EQ((*c)[2], MakeChallenge("bearer", {{"realm", "https://t/token"}, {"service", "s"}}));
}

TEST(ChallengeTest, EscapesInQuotedString) {
  auto c = ParseWwwAuthenticate(R"(Bearer realm="a\"b\\c")");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)[0].Param("realm"), "a\"b\\c");
}

TEST(ChallengeTest, Malformed) {
  EXPECT_EQ(ParseWwwAuthenticate("").status().code(), StatusCode::kInvalidArgument);
  auto c = ParseWwwAuthenticate(R"(Bearer realm="unterminated)");
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("unterminated"), std::string::npos);
  EXPECT_EQ(ParseWwwAuthenticate("\"x\"").status().code(), StatusCode::kInvalidArgument);
}

TEST(ScopeTest, RepositoryScope) {
  EXPECT_EQ(RepositoryScope("library/alpine", "pull"), "repository:library/alpine:pull");
  EXPECT_EQ(RepositoryScope("a/b/c", "pull,push"), "repository:a/b/c:pull,push");
}

TEST(TokenTest, ParseResponse) {
  const auto now = std::chrono::steady_clock::now();
  auto t = ParseTokenResponse(R"({"token":"abc","expires_in":300})", now);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->value, "abc");
  EXPECT_EQ(t->expires, now + std::chrono::seconds(300));

  t = ParseTokenResponse(R"({"access_token":"xyz"})", now);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->value, "xyz");
  EXPECT_EQ(t->expires, now + std::chrono::seconds(60));

  EXPECT_EQ(ParseTokenResponse(R"({"expires_in":3})", now).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenResponse("not json", now).status().code(), StatusCode::kInvalidArgument);
}

// Regression (fuzz_registry): an expires_in near INT64_MAX overflowed the
// nanosecond clock (undefined behaviour; in practice a token that had
// expired a second before it arrived). A lifetime is capped at a year.
TEST(TokenTest, HugeExpiresInDoesNotOverflow) {
  const auto now = std::chrono::steady_clock::now();
  for (const char* body : {R"({"token":"t","expires_in":9223372036854775807})",
                           R"({"token":"t","expires_in":9223372036854776})",
                           R"({"token":"t","expires_in":18446744073709551615})"}) {
    auto t = ParseTokenResponse(body, now);
    ASSERT_TRUE(t.ok()) << body;
    EXPECT_GT(t->expires, now + std::chrono::seconds(59)) << body;
    EXPECT_LE(t->expires, now + std::chrono::hours(24 * 366)) << body;
  }
}

TEST(TokenTest, CacheExpiry) {
  TokenCache cache;
  const auto now = std::chrono::steady_clock::now();
  cache.Put("r\nscope", Token{"t1", now + std::chrono::seconds(300)});
  cache.Put("r\nshort", Token{"t2", now + std::chrono::seconds(5)});
  EXPECT_EQ(cache.Get("r\nscope"), "t1");
  EXPECT_EQ(cache.Get("r\nshort"), std::nullopt);  // within the 10 s margin
  EXPECT_EQ(cache.Get("other"), std::nullopt);
  cache.Drop("r\nscope");
  EXPECT_EQ(cache.Get("r\nscope"), std::nullopt);
}

TEST(CredentialsTest, ServerNames) {
  EXPECT_EQ(CredentialServerName("docker.io"), "https://index.docker.io/v1/");
  EXPECT_EQ(CredentialServerName("ghcr.io"), "ghcr.io");
  EXPECT_EQ(CredentialServerName("127.0.0.1:5000"), "127.0.0.1:5000");
}

TEST(CredentialsTest, ConfigDir) {
  EXPECT_EQ(DockerConfigDir("/x"), fs::path("/x"));
  const char* old = std::getenv("DOCKER_CONFIG");
  std::string saved = old != nullptr ? old : "";
  ::setenv("DOCKER_CONFIG", "/from/env", 1);
  EXPECT_EQ(DockerConfigDir({}), fs::path("/from/env"));
  ::unsetenv("DOCKER_CONFIG");
  const char* home = std::getenv("HOME");
  if (home != nullptr) {
    EXPECT_EQ(DockerConfigDir({}), fs::path(home) / ".docker");
  }
  if (old != nullptr) ::setenv("DOCKER_CONFIG", saved.c_str(), 1);
}

TEST(CredentialsTest, NoConfigIsAnonymous) {
  TempDir dir;
  auto c = LoadCredentials(dir.path(), "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->empty());
  c = LoadCredentials({}, "ghcr.io");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->empty());
}

TEST(CredentialsTest, AuthsEntries) {
  TempDir dir;
  const std::string auth = util::Base64Encode("alice:pa:ss");
  WriteFile(dir.path() / "config.json", R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": ")" +
                                            util::Base64Encode("hub:hubpw") + R"("},
      "https://ghcr.io": {"auth": ")" + auth +
                                            R"("},
      "127.0.0.1:5000": {"username": "bob", "password": "pw"},
      "http://reg.example/v2/": {"identitytoken": "refresh-me"},
      "tok.example": {"registrytoken": "bearer-me"}
    }
  })");
  auto c = LoadCredentials(dir.path(), "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "pa:ss");

  c = LoadCredentials(dir.path(), "docker.io");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "hub");
  EXPECT_EQ(c->password, "hubpw");

  c = LoadCredentials(dir.path(), "127.0.0.1:5000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->password, "pw");

  c = LoadCredentials(dir.path(), "reg.example");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_token, "refresh-me");

  c = LoadCredentials(dir.path(), "tok.example");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->registry_token, "bearer-me");

  c = LoadCredentials(dir.path(), "127.0.0.1:5001");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->empty());
}

TEST(CredentialsTest, BadConfigNamesTheEntryNotTheSecret) {
  TempDir dir;
  WriteFile(dir.path() / "config.json",
            R"({"auths":{"ghcr.io":{"auth":")" + util::Base64Encode("no-colon-secret") + R"("}}})");
  auto c = LoadCredentials(dir.path(), "ghcr.io");
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("auths[\"ghcr.io\"].auth"), std::string::npos)
      << c.status().message();
  EXPECT_EQ(c.status().message().find("no-colon-secret"), std::string::npos);
  EXPECT_EQ(c.status().message().find(util::Base64Encode("no-colon-secret")), std::string::npos);

  WriteFile(dir.path() / "config.json", "{not json");
  c = LoadCredentials(dir.path(), "ghcr.io");
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("config.json"), std::string::npos);
}

// Puts a fake docker-credential-test on PATH for the test's lifetime.
class HelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("PATH");
    old_path_ = path != nullptr ? path : "";
    ::setenv("PATH", (dir_.path().string() + ":" + old_path_).c_str(), 1);
    // Records its stdin; answers per server name.
    WriteFile(dir_.path() / "docker-credential-test",
              R"(#!/bin/sh
[ "$1" = get ] || { echo "bad action $1" >&2; exit 2; }
read -r server
printf '%s' "$server" > ")" +
                  (dir_.path() / "last-server").string() + R"("
case "$server" in
  ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"helper-user","Secret":"helper-secret"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"<token>","Secret":"id-token"}' ;;
  broken.example) echo 'this is not json' ;;
  failing.example) echo 'keychain locked' ; exit 3 ;;
  *) echo 'credentials not found in native keychain' ; exit 1 ;;
esac
)",
              0755);
  }
  void TearDown() override { ::setenv("PATH", old_path_.c_str(), 1); }
  std::string LastServer() {
    std::ifstream in(dir_.path() / "last-server");
    std::string s;
    std::getline(in, s);
    return s;
  }

  TempDir dir_;
  std::string old_path_;
};

TEST_F(HelperTest, RunsHelperWithServerOnStdin) {
  auto c = RunCredentialHelper("test", "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->username, "helper-user");
  EXPECT_EQ(c->password, "helper-secret");
  EXPECT_EQ(LastServer(), "ghcr.io");
}

TEST_F(HelperTest, TokenUsernameMeansIdentityToken) {
  auto c = RunCredentialHelper("test", "https://index.docker.io/v1/");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->username.empty());
  EXPECT_EQ(c->identity_token, "id-token");
}

TEST_F(HelperTest, NotFoundIsAnonymous) {
  auto c = RunCredentialHelper("test", "nothing.example");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->empty());
}

TEST_F(HelperTest, Failures) {
  auto c = RunCredentialHelper("test", "failing.example");
  EXPECT_EQ(c.status().code(), StatusCode::kExecFailed);
  EXPECT_EQ(c.status().exit_code(), 3);
  EXPECT_NE(c.status().message().find("docker-credential-test"), std::string::npos);
  EXPECT_NE(c.status().message().find("keychain locked"), std::string::npos);

  c = RunCredentialHelper("test", "broken.example");
  EXPECT_EQ(c.status().code(), StatusCode::kIOError);
  EXPECT_NE(c.status().message().find("docker-credential-test"), std::string::npos);

  c = RunCredentialHelper("absent-helper-kiln", "ghcr.io");
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("docker-credential-absent-helper-kiln"), std::string::npos);
}

TEST_F(HelperTest, CredHelpersAndCredsStoreFromConfig) {
  TempDir cfg;
  WriteFile(cfg.path() / "config.json", R"({
    "auths": {"127.0.0.1:5000": {"auth": ")" +
                                            util::Base64Encode("file:pw") + R"("},
              "ghcr.io": {"auth": ")" + util::Base64Encode("shadowed:pw") +
                                            R"("}},
    "credHelpers": {"ghcr.io": "test"}
  })");
  auto c = LoadCredentials(cfg.path(), "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->username, "helper-user");
  c = LoadCredentials(cfg.path(), "127.0.0.1:5000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "file");

  // credsStore for everything; the file's entry when the store has none.
  WriteFile(cfg.path() / "config.json", R"({
    "auths": {"127.0.0.1:5000": {"auth": ")" +
                                            util::Base64Encode("file:pw") + R"("}},
    "credsStore": "test"
  })");
  c = LoadCredentials(cfg.path(), "docker.io");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->identity_token, "id-token");
  EXPECT_EQ(LastServer(), "https://index.docker.io/v1/");
  c = LoadCredentials(cfg.path(), "127.0.0.1:5000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "file");
}

}  // namespace
}  // namespace kiln::registry
