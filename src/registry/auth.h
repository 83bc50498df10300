// Registry authentication: WWW-Authenticate challenges, credentials from the
// Docker client configuration and credential helpers, and bearer tokens.
//
// What a registry wants is learnt from its challenge (the /v2/ ping or a 401):
// Basic, or Bearer with a token server (realm), a service and a scope. Where
// the credentials for a registry come from follows the Docker CLI:
// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; a `credHelpers`
// entry for the registry, else `credsStore`, runs `docker-credential-<name>
// get` (the server name on stdin, {"Username","Secret"} JSON on stdout);
// otherwise `auths` holds `auth` (base64 "user:password"), or `username` and
// `password`, and maybe an `identitytoken` (an OAuth2 refresh token) or a
// `registrytoken` (a bearer token used as is). Docker Hub's entry is keyed
// "https://index.docker.io/v1/"; other entries match by host, with or without
// a scheme and path.
//
// Secrets never appear in a Status message or a log: errors name the
// registry, the config file or the helper program only.
//
// Called by client.cc; exposed for unit tests.
//
// Thread-safety: the free functions are reentrant (a credential helper runs
// as a child process per call). TokenCache is internally synchronized.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/http.h"
#include "util/status.h"

namespace kiln::registry {

// One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1).
struct Challenge {
  std::string scheme;                         // lower-cased: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lower-cased; values unquoted

  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
  friend bool operator==(const Challenge&, const Challenge&) = default;
};

// Parses a WWW-Authenticate value: one or more challenges separated by
// commas, each a scheme and auth-params `name=value` or `name="quoted,
// value"` (backslash escapes honoured). Token68 forms are skipped.
// kInvalidArgument (quoting the header's scheme part only) if malformed.
Result<std::vector<Challenge>> ParseWwwAuthenticate(std::string_view header);

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token for the token server
  std::string registry_token;  // a bearer token sent as is

  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
};

// The directory holding config.json: `configured` if not empty, else
// $DOCKER_CONFIG, else $HOME/.docker.
std::filesystem::path DockerConfigDir(const std::filesystem::path& configured);

// The name the Docker CLI uses for `domain` in config.json and with
// credential helpers: "https://index.docker.io/v1/" for docker.io, the
// domain itself otherwise.
std::string CredentialServerName(std::string_view domain);

// The credentials for registry `domain` ("docker.io", "ghcr.io",
// "127.0.0.1:5000"). Empty credentials when there is no config file or it
// has nothing for the registry, or the helper reports none.
// Errors: kInvalidArgument for a config.json that is not valid JSON or a bad
// `auth` value (naming the file and the entry, not its value); kExecFailed
// or kIOError for a credential helper that fails or prints bad JSON (naming
// the helper program).
Result<Credentials> LoadCredentials(const std::filesystem::path& config_dir,
                                    std::string_view domain);

// Runs `docker-credential-<helper> get` from PATH with `server` on stdin.
// Empty credentials if the helper reports "credentials not found".
Result<Credentials> RunCredentialHelper(std::string_view helper, std::string_view server);

// "repository:<path>:<actions>", e.g. "repository:library/alpine:pull".
std::string RepositoryScope(std::string_view path, std::string_view actions);

// A bearer token and when it stops being usable.
struct Token {
  std::string value;
  std::chrono::steady_clock::time_point expires;
};

// The token server's answer: {"token"|"access_token", "expires_in",
// "refresh_token"}; expires_in defaults to 60 s (distribution's token spec)
// and is capped at a year.
// kInvalidArgument if it has no token.
Result<Token> ParseTokenResponse(std::string_view body, std::chrono::steady_clock::time_point now);

// Tokens by (registry, scope set). A token is handed out until 10 seconds
// before it expires.
class TokenCache {
 public:
  std::optional<std::string> Get(const std::string& key);
  void Put(const std::string& key, Token token);
  void Drop(const std::string& key);

 private:
  std::mutex mu_;
  std::map<std::string, Token> tokens_;  // guarded by mu_
};

}  // namespace kiln::registry
