#include "registry/auth.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/base64.h"
#include "util/json.h"
#include "util/strings.h"

extern char** environ;

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// "https://host/v1/" -> "host"; "host:5000" -> "host:5000".
std::string HostOfConfigKey(std::string_view key) {
  if (key.starts_with("http://")) {
    key.remove_prefix(7);
  } else if (key.starts_with("https://")) {
    key.remove_prefix(8);
  }
  key = key.substr(0, key.find('/'));
  return util::AsciiLower(key);
}

bool IsDockerHub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// Runs `program get`, `input` on stdin; collects stdout (at most 1 MiB) and
// the exit code.
struct HelperOutput {
  std::string out;
  std::string err;
  int exit_code = 0;
};

Result<HelperOutput> RunHelper(const std::string& program, std::string_view input) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0)
    return Status::IOError("pipe: " + std::string(strerror(errno)));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return Status::IOError("pipe: " + std::string(strerror(errno)));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return Status::IOError("pipe: " + std::string(strerror(errno)));
  }
  // The server name is short: it fits the pipe buffer, so writing it before
  // the child starts never blocks and never meets a closed reader.
  std::string_view rest = input.substr(0, 4000);
  while (!rest.empty()) {
    ssize_t n = ::write(in_pipe[1], rest.data(), rest.size());
    if (n <= 0) break;
    rest.remove_prefix(static_cast<size_t>(n));
  }
  ::close(in_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::string arg_get = "get";
  std::string prog = program;
  char* argv[] = {prog.data(), arg_get.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, prog.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Status::NotFound("credential helper " + program + ": cannot run: " + strerror(rc));
  }
  HelperOutput result;
  constexpr size_t kLimit = 1 << 20;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& dst = i == 0 ? result.out : result.err;
      if (dst.size() < kLimit) dst.append(buf, static_cast<size_t>(n));
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

std::string FirstLine(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  s = s.substr(0, s.find('\n'));
  if (s.size() > 200) s = s.substr(0, 200);
  return std::string(s);
}

std::string JsonString(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// Fills `creds` from one `auths` entry. The error names the entry only.
Status CredentialsFromAuthEntry(const nlohmann::json& entry, const std::string& where,
                                Credentials* creds) {
  if (!entry.is_object()) return Status::InvalidArgument(where + ": expected an object");
  std::string auth = JsonString(entry, "auth");
  if (!auth.empty()) {
    auto decoded = util::Base64Decode(auth);
    if (!decoded.ok()) return Status::InvalidArgument(where + ".auth: not valid base64");
    auto colon = decoded->find(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument(where + ".auth: expected base64 of \"username:password\"");
    }
    creds->username = decoded->substr(0, colon);
    creds->password = decoded->substr(colon + 1);
  } else {
    creds->username = JsonString(entry, "username");
    creds->password = JsonString(entry, "password");
  }
  creds->identity_token = JsonString(entry, "identitytoken");
  creds->registry_token = JsonString(entry, "registrytoken");
  return Status::Ok();
}

}  // namespace

Result<std::vector<Challenge>> ParseWwwAuthenticate(std::string_view s) {
  std::vector<Challenge> out;
  size_t i = 0;
  const size_t n = s.size();
  auto skip_ws = [&] {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) ++i;
  };
  auto read_token = [&] {
    size_t start = i;
    while (i < n && IsTokenChar(s[i])) ++i;
    return s.substr(start, i - start);
  };
  auto bad = [&](std::string_view why) {
    std::string_view shown = s.substr(0, std::min<size_t>(s.find(' '), 40));
    return Status::InvalidArgument("invalid WWW-Authenticate header (scheme \"" +
                                   std::string(shown) + "\"): " + std::string(why) + " at offset " +
                                   std::to_string(i));
  };
  while (true) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
    if (i >= n) break;
    std::string_view scheme = read_token();
    if (scheme.empty()) return bad("expected an auth scheme");
    Challenge c;
    c.scheme = util::AsciiLower(scheme);
    while (true) {
      skip_ws();
      const size_t save = i;
      std::string_view name = read_token();
      skip_ws();
      if (name.empty() || i >= n || s[i] != '=') {
        i = save;
        break;
      }
      ++i;
      skip_ws();
      std::string value;
      if (i < n && s[i] == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          char ch = s[i++];
          if (ch == '\\' && i < n) {
            value.push_back(s[i++]);
          } else if (ch == '"') {
            closed = true;
            break;
          } else {
            value.push_back(ch);
          }
        }
        if (!closed) return bad("unterminated quoted string");
      } else {
        value = std::string(read_token());
        // token68 padding ("abc==") and other odd values: take up to a comma.
        while (i < n && s[i] != ',' && s[i] != ' ' && s[i] != '\t') value.push_back(s[i++]);
      }
      c.params[util::AsciiLower(name)] = std::move(value);
      skip_ws();
      if (i < n && s[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    out.push_back(std::move(c));
    skip_ws();
    if (i < n && s[i] != ',' && !IsTokenChar(s[i])) {
      // A token68 after the scheme ("Negotiate abc/+"): skip to the next comma.
      while (i < n && s[i] != ',') ++i;
    }
  }
  if (out.empty()) return Status::InvalidArgument("empty WWW-Authenticate header");
  return out;
}

fs::path DockerConfigDir(const fs::path& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("DOCKER_CONFIG"); env != nullptr && *env != '\0') {
    return env;
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return fs::path(home) / ".docker";
  }
  return {};
}

std::string CredentialServerName(std::string_view domain) {
  if (IsDockerHub(domain)) return "https://index.docker.io/v1/";
  return std::string(domain);
}

Result<Credentials> RunCredentialHelper(std::string_view helper, std::string_view server) {
  const std::string program = "docker-credential-" + std::string(helper);
  KILN_ASSIGN_OR_RETURN(HelperOutput out, RunHelper(program, std::string(server) + "\n"));
  if (out.exit_code != 0) {
    std::string msg = FirstLine(out.out.empty() ? out.err : out.out);
    if (msg.find("credentials not found") != std::string::npos) return Credentials{};
    return Status::ExecFailed(program + " get (for " + std::string(server) + ") exited with code " +
                                  std::to_string(out.exit_code) + ": " + msg,
                              out.exit_code);
  }
  auto json = util::ParseJson(out.out, program + " output");
  if (!json.ok() || !json->is_object()) {
    return Status::IOError(program + " get (for " + std::string(server) +
                           ") printed something other than a JSON object");
  }
  Credentials creds;
  std::string user = JsonString(*json, "Username");
  std::string secret = JsonString(*json, "Secret");
  if (user == "<token>") {
    creds.identity_token = std::move(secret);
  } else {
    creds.username = std::move(user);
    creds.password = std::move(secret);
  }
  return creds;
}

Result<Credentials> LoadCredentials(const fs::path& config_dir, std::string_view domain) {
  if (config_dir.empty()) return Credentials{};
  const fs::path file = config_dir / "config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) return Credentials{};  // no config: anonymous
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = util::ParseJson(ss.str(), file.string());
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& cfg = *parsed;
  if (!cfg.is_object()) return Status::InvalidArgument(file.string() + ": expected a JSON object");

  const std::string host = util::AsciiLower(domain);
  const std::string server = CredentialServerName(host);
  auto helpers = cfg.find("credHelpers");
  if (helpers != cfg.end() && helpers->is_object()) {
    for (auto it = helpers->begin(); it != helpers->end(); ++it) {
      const std::string key_host = HostOfConfigKey(it.key());
      bool match = key_host == host || (IsDockerHub(host) && IsDockerHub(key_host));
      if (match && it->is_string()) return RunCredentialHelper(it->get<std::string>(), server);
    }
  }
  std::string store = JsonString(cfg, "credsStore");
  if (!store.empty()) {
    auto creds = RunCredentialHelper(store, server);
    // The Docker CLI falls back to the file when the store has nothing.
    if (!creds.ok() || !creds->empty()) return creds;
  }
  auto auths = cfg.find("auths");
  if (auths == cfg.end() || !auths->is_object()) return Credentials{};
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    const std::string key_host = HostOfConfigKey(it.key());
    bool match = key_host == host || (IsDockerHub(host) && IsDockerHub(key_host));
    if (!match) continue;
    Credentials creds;
    KILN_RETURN_IF_ERROR(
        CredentialsFromAuthEntry(*it, file.string() + ": auths[\"" + it.key() + "\"]", &creds));
    if (!creds.empty()) return creds;
  }
  return Credentials{};
}

std::string RepositoryScope(std::string_view path, std::string_view actions) {
  return "repository:" + std::string(path) + ":" + std::string(actions);
}

Result<Token> ParseTokenResponse(std::string_view body, std::chrono::steady_clock::time_point now) {
  auto json = util::ParseJson(body, "token server response");
  if (!json.ok() || !json->is_object()) {
    return Status::InvalidArgument("the token server's response is not a JSON object");
  }
  Token t;
  t.value = JsonString(*json, "token");
  if (t.value.empty()) t.value = JsonString(*json, "access_token");
  if (t.value.empty()) {
    return Status::InvalidArgument("the token server's response has no token");
  }
  // At most a year: the steady clock counts nanoseconds in 64 bits, and a
  // server's "expires_in" near INT64_MAX would overflow it.
  constexpr int64_t kMaxExpiresIn = int64_t{366} * 24 * 3600;
  int64_t expires_in = 60;
  auto it = json->find("expires_in");
  if (it != json->end() && it->is_number_integer() && it->get<int64_t>() > 0) {
    expires_in = std::min(it->get<int64_t>(), kMaxExpiresIn);
  }
  t.expires = now + std::chrono::seconds(expires_in);
  return t;
}

std::optional<std::string> TokenCache::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() + std::chrono::seconds(10) >= it->second.expires) {
    tokens_.erase(it);
    return std::nullopt;
  }
  return it->second.value;
}

void TokenCache::Put(const std::string& key, Token token) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[key] = std::move(token);
}

void TokenCache::Drop(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.erase(key);
}

}  // namespace kiln::registry
