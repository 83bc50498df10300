#include "source/git.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "util/base64.h"
#include "util/digest.h"
#include "util/network.h"
#include "util/strings.h"

extern char** environ;

namespace kiln::source {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMask = "xxxxx";

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

bool IsFullCommit(std::string_view s) { return s.size() == 40 && IsHex(s); }

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && util::AsciiLower(s.substr(0, prefix.size())) == prefix;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// user@host:path with user in [A-Za-z0-9_-]+, host without '/', and no "://".
bool IsScpLike(std::string_view s) {
  if (s.find("://") != std::string_view::npos) return false;
  size_t at = s.find('@');
  if (at == 0 || at == std::string_view::npos) return false;
  for (char c : s.substr(0, at)) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  size_t colon = s.find(':', at);
  if (colon == std::string_view::npos || colon == at + 1) return false;
  std::string_view host = s.substr(at + 1, colon - at - 1);
  return host.find('/') == std::string_view::npos;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && IsHex(s.substr(i + 1, 2))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A ref git must not read as an option and that is a plausible ref name
// (git check-ref-format's character rules).
bool ValidRefName(std::string_view ref) {
  if (ref.empty()) return true;
  if (ref[0] == '-' || ref.back() == '/' || ref.back() == '.' || ref[0] == '/') return false;
  if (ref.find("..") != std::string_view::npos || ref.find("@{") != std::string_view::npos ||
      ref.find("//") != std::string_view::npos || EndsWith(ref, ".lock")) {
    return false;
  }
  for (char c : ref) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\') {
      return false;
    }
  }
  return true;
}

// The remote (no fragment) with credentials masked, for messages about text
// that did not parse.
std::string RedactRaw(std::string_view text) {
  std::string_view s = text.substr(0, text.find('#'));
  size_t scheme = s.find("://");
  if (scheme != std::string_view::npos) {
    size_t auth = scheme + 3;
    size_t end = s.find_first_of("/?", auth);
    std::string_view authority =
        s.substr(auth, end == std::string_view::npos ? s.npos : end - auth);
    size_t at = authority.rfind('@');
    if (at == std::string_view::npos || at == 0) return std::string(text);
    std::string_view userinfo = authority.substr(0, at);
    std::string out(s.substr(0, auth));
    out += userinfo.find(':') != std::string_view::npos ? "xxxxx:xxxxx" : "xxxxx";
    out += text.substr(auth + at);
    return out;
  }
  if (IsScpLike(s)) {
    size_t at = s.find('@');
    if (s.substr(0, at) == "git") return std::string(text);
    return std::string(kMask) + std::string(text.substr(at));
  }
  return std::string(text);
}

Status Invalid(std::string_view url, std::string_view why) {
  return Status::InvalidArgument("git URL \"" + RedactRaw(url) + "\": " + std::string(why));
}

// ---- running git ----------------------------------------------------------

struct GitRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  bool deadline_exceeded = false;  // killed: GitWait::deadline passed
  bool stalled = false;            // killed: no output for GitWait::stall
};

// How long a git run that talks to a remote may wait; the default: as long
// as it takes.
struct GitWait {
  util::Deadline* deadline = nullptr;  // overall (ls-remote: a small answer)
  // Killed when git prints nothing for this long (fetches run with
  // --progress, which prints at least once a second while data arrives).
  std::chrono::milliseconds stall{0};
};

// Runs `git args...` with `env` (complete "K=V" list), stdin on /dev/null,
// in a new session (its own process group). On cancellation, or when `wait`
// runs out, the whole process group is killed and git reaped before this
// returns. kIOError when git cannot be started, kCancelled when `cancel`
// fired; otherwise the exit code is returned, whatever it is (with
// GitRun::deadline_exceeded or stalled set when `wait` killed it).
Result<GitRun> RunGit(const std::vector<std::string>& args, const std::vector<std::string>& env,
                      util::Canceller* cancel, const GitWait& wait = {}) {
  std::vector<char*> argv;
  static char git_name[] = "git";
  argv.push_back(git_name);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    return Status::IOError("git: pipe: " + std::string(std::strerror(errno)));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Status::IOError("git: pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, "git", &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Status::IOError("cannot run git: " + std::string(std::strerror(rc)) +
                           " (install the git package)");
  }
  GitRun run;
  {
    using Clock = std::chrono::steady_clock;
    // The group leader is reaped below, after every kill: -pid names no
    // other process group meanwhile.
    util::CancelScope scope(cancel, [pid] { ::kill(-pid, SIGKILL); });
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&run.out, &run.err};
    int open_fds = 2;
    char buf[65536];
    Clock::time_point last_output = Clock::now();
    std::optional<Clock::time_point> killed_at;
    while (open_fds > 0) {
      // Wakes at least 4 times a second to look at the clock and the canceller.
      int n = ::poll(fds, 2, 250);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; n > 0 && i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          sinks[i]->append(buf, static_cast<size_t>(got));
          last_output = Clock::now();
        } else if (got == 0 || errno != EINTR) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
      const Clock::time_point now = Clock::now();
      if (killed_at) {
        // A process that left the group may hold the pipes open: stop
        // reading soon after the kill rather than wait for it.
        if (now - *killed_at > std::chrono::seconds(2)) break;
        continue;
      }
      if (cancel != nullptr && cancel->cancelled()) {
        killed_at = now;
      } else if (wait.deadline != nullptr && wait.deadline->Expired()) {
        run.deadline_exceeded = true;
        killed_at = now;
      } else if (wait.stall.count() > 0 && now - last_output > wait.stall) {
        run.stalled = true;
        killed_at = now;
      }
      if (killed_at) ::kill(-pid, SIGKILL);
    }
    for (auto& f : fds) {
      if (f.fd >= 0) ::close(f.fd);
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    run.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  }
  if (cancel != nullptr && cancel->cancelled()) return cancel->Check();
  return run;
}

// Names of variables a surrounding environment may set that would point git
// somewhere else or change its language.
bool DroppedVar(std::string_view name) {
  static const char* const kDropped[] = {"GIT_DIR",
                                         "GIT_WORK_TREE",
                                         "GIT_INDEX_FILE",
                                         "GIT_OBJECT_DIRECTORY",
                                         "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                                         "GIT_NAMESPACE",
                                         "GIT_COMMON_DIR",
                                         "GIT_TERMINAL_PROMPT",
                                         "LC_ALL",
                                         "LANG",
                                         "LANGUAGE",
                                         "GIT_CONFIG_COUNT",
                                         "GIT_ASKPASS",
                                         "SSH_ASKPASS",
                                         "GIT_PROTOCOL_FROM_USER"};
  for (const char* d : kDropped) {
    if (name == d) return true;
  }
  return false;
}

// What git runs with for one remote: the environment and the secret strings
// to scrub from its output.
struct GitEnv {
  std::vector<std::string> env;
  std::vector<std::string> secrets;
};

GitEnv MakeEnv(const GitRef& ref, const GitOptions& options) {
  GitEnv g;
  int user_count = 0;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string_view name = kv.substr(0, kv.find('='));
    if (name == "GIT_CONFIG_COUNT") {
      user_count = std::atoi(std::string(kv.substr(name.size() + 1)).c_str());
    }
    if (DroppedVar(name)) continue;
    g.env.emplace_back(kv);
  }
  // Keep the user's own GIT_CONFIG_KEY_i/VALUE_i (0..user_count-1); ours follow.
  std::vector<std::pair<std::string, std::string>> config = {
      {"advice.detachedHead", "false"},
      {"init.defaultBranch", "main"},
      {"gc.auto", "0"},
      {"credential.interactive", "false"},
  };
  std::string authorization;
  bool http = ref.transport == GitTransport::kHttp || ref.transport == GitTransport::kHttps;
  if (http) {
    auto secret = [&](const std::string& id) -> const std::string* {
      auto it = options.secrets.find(id + "." + ref.host);
      if (it != options.secrets.end() && !it->second.empty()) return &it->second;
      it = options.secrets.find(id);
      if (it != options.secrets.end() && !it->second.empty()) return &it->second;
      return nullptr;
    };
    if (ref.has_userinfo) {
      std::string basic = util::Base64Encode(ref.username + ":" + ref.password);
      authorization = "Basic " + basic;
      g.secrets.push_back(basic);
    } else if (const std::string* header = secret("GIT_AUTH_HEADER")) {
      authorization = *header;
    } else if (const std::string* token = secret("GIT_AUTH_TOKEN")) {
      std::string basic = util::Base64Encode("x-access-token:" + *token);
      authorization = "Basic " + basic;
      g.secrets.push_back(*token);
      g.secrets.push_back(basic);
    }
    if (!authorization.empty()) {
      config.emplace_back("http." + ref.remote + ".extraHeader", "Authorization: " + authorization);
      g.secrets.push_back(authorization);
    }
  }
  if (!ref.password.empty()) g.secrets.push_back(ref.password);
  // A user without a password is usually a token (https://TOKEN@host/).
  if (ref.has_userinfo && !ref.has_password && !ref.username.empty()) {
    g.secrets.push_back(ref.username);
  }
  for (const auto& [id, value] : options.secrets) {
    if (id.rfind("GIT_AUTH_", 0) == 0 && !value.empty()) g.secrets.push_back(value);
  }
  for (size_t i = 0; i < config.size(); ++i) {
    int n = user_count + static_cast<int>(i);
    g.env.push_back("GIT_CONFIG_KEY_" + std::to_string(n) + "=" + config[i].first);
    g.env.push_back("GIT_CONFIG_VALUE_" + std::to_string(n) + "=" + config[i].second);
  }
  g.env.push_back("GIT_CONFIG_COUNT=" +
                  std::to_string(user_count + static_cast<int>(config.size())));
  g.env.push_back("GIT_TERMINAL_PROMPT=0");
  g.env.push_back("GIT_ASKPASS=true");  // answers every prompt with nothing
  g.env.push_back("SSH_ASKPASS=true");
  g.env.push_back("SSH_ASKPASS_REQUIRE=never");
  g.env.push_back("LC_ALL=C");
  // Long secrets first, so a secret containing a shorter one is masked whole.
  std::sort(g.secrets.begin(), g.secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return g;
}

std::string Scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.size() < 3) continue;  // too short to mask without garbling the text
    for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos)) {
      text.replace(pos, s.size(), kMask);
      pos += kMask.size();
    }
  }
  return text;  // git is never given a URL with credentials, so it prints none
}

// The most telling line of git's stderr, one line, redacted.
std::string GitMessage(const GitRun& run, const GitEnv& env) {
  std::string err = Scrub(run.err, env.secrets);
  // Progress (--progress) rewrites its line with '\r': each is a line.
  std::replace(err.begin(), err.end(), '\r', '\n');
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < err.size()) {
    size_t nl = err.find('\n', start);
    std::string line = err.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  std::string pick;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.rfind("fatal: ", 0) == 0 || l.rfind("error: ", 0) == 0) {
      pick = l.substr(l.find(' ') + 1);
      // "fatal: unable to connect to host:" continues on the next line
      // ("host[0: 1.2.3.4]: errno=Connection refused").
      if (!pick.empty() && pick.back() == ':' && i + 1 < lines.size()) pick += " " + lines[i + 1];
      break;
    }
  }
  if (pick.empty() && !lines.empty()) pick = lines.back();
  if (pick.empty()) pick = "git exited with status " + std::to_string(run.exit_code);
  return pick;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// The Status for a git run against a remote that failed.
Status RemoteError(const GitRef& ref, std::string_view what, const GitRun& run, const GitEnv& env) {
  std::string msg = GitMessage(run, env);
  std::string prefix = "git " + ref.RedactedRemote() + ": " + std::string(what) + ": ";
  const std::string& e = run.err;
  if (Contains(e, "Authentication failed") || Contains(e, "could not read Username") ||
      Contains(e, "could not read Password") || Contains(e, "terminal prompts disabled") ||
      Contains(e, "Permission denied") || Contains(e, "returned error: 401") ||
      Contains(e, "returned error: 403")) {
    return Status::Unauthorized(prefix + msg +
                                " (give credentials with --secret id=GIT_AUTH_TOKEN or in your "
                                "git configuration)");
  }
  if (Contains(e, "Connection refused") || Contains(e, "unable to connect") ||
      Contains(e, "Could not resolve host") || Contains(e, "Failed to connect") ||
      Contains(e, "Could not resolve hostname") || Contains(e, "Connection timed out") ||
      Contains(e, "Network is unreachable") || Contains(e, "No route to host") ||
      Contains(e, "unable to look up") || Contains(e, "Connection reset")) {
    return Status::IOError(prefix + "cannot reach the remote: " + msg);
  }
  if (Contains(e, "not found") || Contains(e, "no such repository") ||
      Contains(e, "does not appear to be a git repository") || Contains(e, "not exported") ||
      Contains(e, "No such file") || Contains(e, "returned error: 404") ||
      Contains(e, "Repository not found")) {
    return Status::NotFound(prefix + "no such repository: " + msg);
  }
  return Status::ExecFailed(prefix + msg, run.exit_code);
}

// An flock() on a file, released when destroyed.
class FileLock {
 public:
  static Result<FileLock> Acquire(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Status::IOError("git cache lock " + path.string() + ": " + std::strerror(errno));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        int e = errno;
        ::close(fd);
        return Status::IOError("git cache lock " + path.string() + ": " + std::strerror(e));
      }
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// A directory removed with its content when destroyed.
class TempTree {
 public:
  static Result<TempTree> Make(const fs::path& parent, std::string_view prefix) {
    std::string tmpl = (parent / (std::string(prefix) + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Status::IOError("cannot make a directory in " + parent.string() + ": " +
                             std::strerror(errno));
    }
    return TempTree(tmpl);
  }
  TempTree(TempTree&& o) noexcept : path_(std::exchange(o.path_, fs::path())) {}
  TempTree& operator=(TempTree&&) = delete;
  ~TempTree() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempTree(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

Status FsError(std::string_view what, const fs::path& p, const std::error_code& ec) {
  return Status::IOError(std::string(what) + " " + p.string() + ": " + ec.message());
}

// Removes every `.git` (directory or file) in the tree.
Status RemoveGitDirs(const fs::path& root) {
  std::error_code ec;
  std::vector<fs::path> found;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->path().filename() == ".git") {
      found.push_back(it->path());
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
    }
  }
  if (ec) return FsError("cannot walk", root, ec);
  for (const auto& p : found) {
    fs::remove_all(p, ec);
    if (ec) return FsError("cannot remove", p, ec);
  }
  return Status::Ok();
}

// Moves `src` (a directory) to `dest`, which must not exist or be empty.
Status MoveTree(const fs::path& src, const fs::path& dest) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dest, ec))) {
    if (!fs::is_directory(fs::symlink_status(dest, ec)) || !fs::is_empty(dest, ec)) {
      return Status::FailedPrecondition("git checkout: " + dest.string() +
                                        " exists and is not an empty directory");
    }
    for (const auto& entry : fs::directory_iterator(src, ec)) {
      fs::path to = dest / entry.path().filename();
      fs::rename(entry.path(), to, ec);
      if (ec == std::errc::cross_device_link) {
        ec.clear();
        fs::copy(entry.path(), to, fs::copy_options::recursive | fs::copy_options::copy_symlinks,
                 ec);
      }
      if (ec) return FsError("cannot move into", to, ec);
    }
    if (ec) return FsError("cannot read", src, ec);
    return Status::Ok();
  }
  if (dest.has_parent_path()) fs::create_directories(dest.parent_path(), ec);
  if (ec) return FsError("cannot create", dest.parent_path(), ec);
  fs::rename(src, dest, ec);
  if (ec == std::errc::cross_device_link) {
    ec.clear();
    fs::copy(src, dest, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  }
  if (ec) return FsError("cannot move checkout to", dest, ec);
  return Status::Ok();
}

}  // namespace

// ---- GitRef ------------------------------------------------------------------

std::string GitRef::RedactedRemote() const {
  switch (transport) {
    case GitTransport::kScp: {
      size_t at = remote.find('@');
      if (at == std::string::npos || remote.substr(0, at) == "git") return remote;
      return std::string(kMask) + remote.substr(at);
    }
    case GitTransport::kSsh:
      return RedactRaw(remote);
    default:
      break;
  }
  if (!has_userinfo) return remote;
  size_t auth = remote.find("://") + 3;
  std::string mask = has_password ? "xxxxx:xxxxx@" : "xxxxx@";
  return remote.substr(0, auth) + mask + remote.substr(auth);
}

std::string GitRef::Redacted() const {
  std::string out = RedactedRemote();
  if (!ref.empty()) out += "#" + ref;
  if (!subdir.empty()) out += (ref.empty() ? "#:" : ":") + subdir;
  return out;
}

bool LooksLikeGitUrl(std::string_view text) {
  if (StartsWithNoCase(text, "git://") || StartsWithNoCase(text, "ssh://") ||
      text.rfind("github.com/", 0) == 0 || IsScpLike(text.substr(0, text.find('#')))) {
    return true;
  }
  if (StartsWithNoCase(text, "http://") || StartsWithNoCase(text, "https://")) {
    std::string_view path = text.substr(0, text.find('#'));
    path = path.substr(0, path.find('?'));
    return EndsWith(path, ".git") || EndsWith(path, ".git/");
  }
  return false;
}

Result<GitRef> ParseGitRef(std::string_view url, const GitParseOptions& options) {
  if (url.empty()) return Status::InvalidArgument("git URL: empty");
  for (char c : url) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ')
      return Invalid(url, "contains whitespace or a control character");
  }
  GitRef r;
  std::string_view base = url;
  std::string_view fragment;
  size_t hash = url.find('#');
  if (hash != std::string_view::npos) {
    base = url.substr(0, hash);
    fragment = url.substr(hash + 1);
  }
  if (base.empty()) return Invalid(url, "no remote before '#'");

  std::string text(base);
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos) {
    if (IsScpLike(text)) {
      size_t at = text.find('@');
      size_t colon = text.find(':', at);
      r.transport = GitTransport::kScp;
      r.host = text.substr(at + 1, colon - at - 1);
      if (r.host[0] == '-') return Invalid(url, "the host must not start with '-'");
      if (colon + 1 >= text.size()) return Invalid(url, "no repository path after ':'");
      r.remote = text;
    } else if (text.rfind("github.com/", 0) == 0 || options.assume_git) {
      text = "https://" + text;
      scheme_end = 5;
    } else {
      return Invalid(url,
                     "not a git URL (use git://, https://, http://, ssh:// or user@host:path)");
    }
  }
  if (scheme_end != std::string::npos) {
    std::string scheme = util::AsciiLower(std::string_view(text).substr(0, scheme_end));
    if (scheme == "git") {
      r.transport = GitTransport::kGit;
    } else if (scheme == "https") {
      r.transport = GitTransport::kHttps;
    } else if (scheme == "http") {
      r.transport = GitTransport::kHttp;
    } else if (scheme == "ssh") {
      r.transport = GitTransport::kSsh;
    } else {
      return Invalid(url, "unsupported scheme \"" + scheme +
                              "\" (use git://, https://, http://, ssh:// or user@host:path)");
    }
    size_t auth = scheme_end + 3;
    size_t path_start = text.find('/', auth);
    std::string authority =
        text.substr(auth, path_start == std::string::npos ? std::string::npos : path_start - auth);
    std::string path = path_start == std::string::npos ? "" : text.substr(path_start);
    if (path.find('?') != std::string::npos && r.transport != GitTransport::kHttp &&
        r.transport != GitTransport::kHttps) {
      return Invalid(url, "a query string is only meaningful for http(s) remotes");
    }
    std::string userinfo;
    size_t at = authority.rfind('@');
    bool has_userinfo = at != std::string::npos;
    if (has_userinfo) {
      userinfo = authority.substr(0, at);
      authority = authority.substr(at + 1);
    }
    std::string hostport = authority;
    std::string port;
    if (!hostport.empty() && hostport[0] == '[') {
      size_t close = hostport.find(']');
      if (close == std::string::npos) return Invalid(url, "unterminated IPv6 address");
      r.host = hostport.substr(0, close + 1);
      if (close + 1 < hostport.size()) {
        if (hostport[close + 1] != ':') return Invalid(url, "malformed host");
        port = hostport.substr(close + 2);
      }
    } else {
      size_t colon = hostport.rfind(':');
      r.host = hostport.substr(0, colon);
      if (colon != std::string::npos) port = hostport.substr(colon + 1);
    }
    if (r.host.empty()) return Invalid(url, "no host");
    if (r.host[0] == '-') return Invalid(url, "the host must not start with '-'");
    if (hostport.find(':') != std::string::npos && hostport[0] != '[' &&
        (port.empty() || !std::all_of(port.begin(), port.end(), ::isdigit))) {
      return Invalid(url, "the port must be a number");
    }
    if (path.empty() || path == "/") return Invalid(url, "no repository path");
    std::string_view plain_path = std::string_view(path).substr(0, path.find('?'));
    if (!options.assume_git &&
        (r.transport == GitTransport::kHttp || r.transport == GitTransport::kHttps) &&
        !EndsWith(plain_path, ".git") && !EndsWith(plain_path, ".git/") &&
        std::string_view(text).substr(auth).rfind("github.com/", 0) != 0) {
      return Invalid(url, "an http(s) URL is read as git only when its path ends in \".git\"");
    }
    std::string scheme_prefix = text.substr(0, auth);
    if (has_userinfo) {
      size_t colon = userinfo.find(':');
      switch (r.transport) {
        case GitTransport::kGit:
          return Invalid(url, "the git:// protocol has no authentication; remove the user-info");
        case GitTransport::kSsh:
          if (colon != std::string::npos) {
            return Invalid(url, "ssh remotes take no password in the URL; use an ssh agent or key");
          }
          r.remote = scheme_prefix + userinfo + "@" + authority + path;
          break;
        default:
          r.has_userinfo = true;
          r.has_password = colon != std::string::npos;
          r.username = PercentDecode(userinfo.substr(0, colon));
          if (r.has_password) r.password = PercentDecode(userinfo.substr(colon + 1));
          r.remote = scheme_prefix + authority + path;
          break;
      }
    } else {
      r.remote = scheme_prefix + authority + path;
    }
  }

  if (!fragment.empty()) {
    size_t colon = fragment.find(':');
    r.ref = std::string(fragment.substr(0, colon));
    if (colon != std::string_view::npos) {
      std::string raw(fragment.substr(colon + 1));
      if (!raw.empty() && raw[0] == '/') raw.erase(0, raw.find_first_not_of('/'));
      std::string clean = fs::path(raw).lexically_normal().generic_string();
      while (!clean.empty() && clean.back() == '/') clean.pop_back();
      if (clean == "." || clean.empty()) clean.clear();
      if (clean == ".." || clean.rfind("../", 0) == 0) {
        return Invalid(url, "subdir \"" + std::string(fragment.substr(colon + 1)) +
                                "\" leaves the repository");
      }
      r.subdir = clean;
    }
    if (!ValidRefName(r.ref)) {
      return Invalid(url, "\"" + r.ref + "\" is not a valid branch, tag or commit name");
    }
  }
  return r;
}

// ---- GitSource ------------------------------------------------------------------

struct GitSource::Impl {
  fs::path dir;  // ROOT/git
  std::shared_ptr<snapshot::Snapshotter> snapshots;
  util::NetworkOptions network;
  std::atomic<int> ls_remotes{0}, fetches{0}, full_fetches{0}, fetches_skipped{0}, checkouts{0},
      checkouts_reused{0};

  fs::path CacheDir(const GitRef& ref) const {
    return dir / std::string(util::Sha256Of(ref.RedactedRemote()).hex());
  }

  Result<GitRun> Git(const std::vector<std::string>& args, const GitEnv& env,
                     const GitOptions& options) {
    return RunGit(args, env.env, options.cancel);
  }

  // Runs a git command that talks to ref's remote (`doing` names it in
  // errors) under the network limits: the overall deadline when `overall`
  // (ls-remote, whose answer is small), else the stall window (fetches, run
  // with --progress so that data arriving shows). Running out of time is
  // kIOError naming the remote and how to allow more.
  Result<GitRun> Remote(const GitRef& ref, const std::string& doing,
                        const std::vector<std::string>& args, const GitEnv& env,
                        const GitOptions& options, bool overall) {
    util::Deadline deadline(network.timeout, 0);
    GitWait wait;
    if (overall) {
      wait.deadline = &deadline;
    } else {
      wait.stall = network.stall_timeout;
    }
    KILN_ASSIGN_OR_RETURN(GitRun run, RunGit(args, env.env, options.cancel, wait));
    const std::string what = "git " + ref.RedactedRemote() + ": " + doing;
    if (run.deadline_exceeded) {
      return Status::IOError(
          util::DeadlineMessage(what, deadline, util::RaiseHint(network, "timeout")));
    }
    if (run.stalled) {
      std::string msg = what + ": nothing received for " +
                        util::FormatSeconds(network.stall_timeout) + " (stalled server)";
      if (std::string hint = util::RaiseHint(network, "stall-timeout"); !hint.empty()) {
        msg += "; " + hint;
      }
      return Status::IOError(msg);
    }
    return run;
  }

  // Creates the bare cache repository when missing. Call with its lock held.
  Status EnsureCache(const GitRef& ref, const fs::path& cache, const GitEnv& env,
                     const GitOptions& options) {
    std::error_code ec;
    if (!fs::exists(cache / "HEAD", ec)) {
      fs::remove_all(cache, ec);  // a half-made one from a killed process
      KILN_ASSIGN_OR_RETURN(GitRun init,
                            Git({"init", "--bare", "-q", "--", cache.string()}, env, options));
      if (init.exit_code != 0) {
        return Status::IOError("git " + ref.RedactedRemote() + ": cannot create the cache " +
                               cache.string() + ": " + GitMessage(init, env));
      }
    }
    KILN_ASSIGN_OR_RETURN(
        GitRun set,
        Git({"-C", cache.string(), "config", "remote.origin.url", ref.remote}, env, options));
    if (set.exit_code != 0) {
      return Status::IOError("git " + ref.RedactedRemote() + ": cannot configure the cache " +
                             cache.string() + ": " + GitMessage(set, env));
    }
    return Status::Ok();
  }

  Result<bool> HasCommit(const fs::path& cache, const std::string& commit, const GitEnv& env,
                         const GitOptions& options) {
    KILN_ASSIGN_OR_RETURN(GitRun run, Git({"-C", cache.string(), "rev-parse", "--verify", "-q",
                                           "refs/kiln/" + commit + "^{commit}"},
                                          env, options));
    return run.exit_code == 0;
  }

  // Fetch with the cache lock held.
  Result<bool> FetchLocked(const GitRef& ref, const fs::path& cache, const std::string& commit,
                           const GitEnv& env, const GitOptions& options) {
    KILN_RETURN_IF_ERROR(EnsureCache(ref, cache, env, options));
    KILN_ASSIGN_OR_RETURN(bool have, HasCommit(cache, commit, env, options));
    if (have) {
      ++fetches_skipped;
      return false;
    }
    ++fetches;
    const std::string c = cache.string();
    KILN_ASSIGN_OR_RETURN(GitRun shallow,
                          Remote(ref, "fetching commit " + commit,
                                 {"-C", c, "fetch", "-q", "--progress", "--no-tags", "--depth=1",
                                  "--no-write-fetch-head", "origin", commit},
                                 env, options, false));
    bool got = false;
    if (shallow.exit_code == 0) {
      KILN_ASSIGN_OR_RETURN(GitRun check,
                            Git({"-C", c, "cat-file", "-e", commit + "^{commit}"}, env, options));
      got = check.exit_code == 0;
    } else {
      Status classified = RemoteError(ref, "fetch", shallow, env);
      if (classified.code() == StatusCode::kIOError ||
          classified.code() == StatusCode::kUnauthorized) {
        return classified;
      }
    }
    if (!got) {
      // The server does not let us fetch by commit (or is dumb http): get
      // every branch and tag, then look for the commit.
      ++full_fetches;
      std::vector<std::string> args = {"-C", c, "fetch", "-q", "--progress", "--no-tags"};
      std::error_code ec;
      if (fs::exists(cache / "shallow", ec)) args.push_back("--unshallow");
      args.insert(args.end(), {"--no-write-fetch-head", "origin",
                               "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"});
      KILN_ASSIGN_OR_RETURN(
          GitRun full, Remote(ref, "fetching every branch and tag (to find " + commit + ")", args,
                              env, options, false));
      if (full.exit_code != 0) return RemoteError(ref, "fetch", full, env);
      KILN_ASSIGN_OR_RETURN(GitRun check,
                            Git({"-C", c, "cat-file", "-e", commit + "^{commit}"}, env, options));
      if (check.exit_code != 0) {
        return Status::NotFound("git " + ref.RedactedRemote() + ": commit " + commit +
                                " not found on the remote");
      }
    }
    KILN_ASSIGN_OR_RETURN(
        GitRun keep, Git({"-C", c, "update-ref", "refs/kiln/" + commit, commit}, env, options));
    if (keep.exit_code != 0) {
      return Status::IOError("git " + ref.RedactedRemote() + ": cannot record commit " + commit +
                             " in the cache " + c + ": " + GitMessage(keep, env));
    }
    return true;
  }

  // Checks out into a fresh staging tree; returns the directory holding the
  // result (the subdir when set).
  Result<fs::path> Stage(const GitRef& ref, const std::string& commit,
                         const GitCheckoutOptions& checkout, const GitOptions& options,
                         const fs::path& staging) {
    GitEnv env = MakeEnv(ref, options);
    fs::path cache = CacheDir(ref);
    fs::path work = staging / "tree";
    const std::string w = work.string();
    KILN_ASSIGN_OR_RETURN(GitRun init, Git({"init", "-q", "--", w}, env, options));
    if (init.exit_code != 0) {
      return Status::IOError("git " + ref.RedactedRemote() + ": cannot create a checkout in " + w +
                             ": " + GitMessage(init, env));
    }
    {
      KILN_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(cache.string() + ".lock"));
      KILN_ASSIGN_OR_RETURN(bool fetched, FetchLocked(ref, cache, commit, env, options));
      (void)fetched;
      KILN_ASSIGN_OR_RETURN(GitRun local, Git({"-C", w, "fetch", "-q", "--no-tags", "--depth=1",
                                               "file://" + cache.string(), "refs/kiln/" + commit},
                                              env, options));
      if (local.exit_code != 0) {
        return Status::IOError("git " + ref.RedactedRemote() + ": cannot copy commit " + commit +
                               " out of the cache " + cache.string() + ": " +
                               GitMessage(local, env));
      }
    }
    ++checkouts;
    std::vector<std::string> co = {"-C", w, "checkout", "-q"};
    if (checkout.keep_git_dir && !checkout.branch.empty()) {
      if (!ValidRefName(checkout.branch)) {
        return Status::InvalidArgument("git " + ref.RedactedRemote() + ": \"" + checkout.branch +
                                       "\" is not a valid branch name");
      }
      co.insert(co.end(), {"-B", checkout.branch, commit});
    } else {
      co.insert(co.end(), {"--detach", commit});
    }
    KILN_ASSIGN_OR_RETURN(GitRun run, Git(co, env, options));
    if (run.exit_code != 0) {
      return Status::IOError("git " + ref.RedactedRemote() + ": cannot check out commit " + commit +
                             ": " + GitMessage(run, env));
    }
    std::error_code ec;
    fs::remove(work / ".git" / "FETCH_HEAD", ec);
    // Submodule URLs relative to the remote resolve against origin.
    KILN_ASSIGN_OR_RETURN(GitRun add,
                          Git({"-C", w, "remote", "add", "origin", ref.remote}, env, options));
    if (add.exit_code != 0) {
      return Status::IOError("git " + ref.RedactedRemote() +
                             ": cannot configure the checkout: " + GitMessage(add, env));
    }
    if (fs::exists(work / ".gitmodules", ec)) {
      KILN_ASSIGN_OR_RETURN(GitRun sub, Remote(ref, "fetching the submodules of " + commit,
                                               {"-C", w, "submodule", "update", "--init",
                                                "--recursive", "--depth=1", "-q", "--progress"},
                                               env, options, false));
      if (sub.exit_code != 0) {
        // A submodule commit that is no branch tip cannot be fetched shallowly
        // from every server.
        KILN_ASSIGN_OR_RETURN(sub, Remote(ref, "fetching the submodules of " + commit,
                                          {"-C", w, "submodule", "update", "--init", "--recursive",
                                           "-q", "--progress"},
                                          env, options, false));
      }
      if (sub.exit_code != 0) {
        return RemoteError(ref, "submodules of commit " + commit, sub, env);
      }
    }
    if (checkout.keep_git_dir) {
      KILN_ASSIGN_OR_RETURN(
          GitRun set,
          Git({"-C", w, "remote", "set-url", "origin", ref.RedactedRemote()}, env, options));
      if (set.exit_code != 0) {
        return Status::IOError("git " + ref.RedactedRemote() +
                               ": cannot configure the checkout: " + GitMessage(set, env));
      }
    } else {
      KILN_RETURN_IF_ERROR(RemoveGitDirs(work));
    }
    if (ref.subdir.empty()) return work;
    fs::path sub = work / ref.subdir;
    fs::path canonical = fs::weakly_canonical(sub, ec);
    fs::path root = fs::weakly_canonical(work, ec);
    auto rel = canonical.lexically_relative(root).generic_string();
    if (ec || !fs::is_directory(fs::symlink_status(sub, ec)) || rel.rfind("..", 0) == 0) {
      return Status::NotFound("git " + ref.Redacted() + ": subdir \"" + ref.subdir +
                              "\" is not a directory in commit " + commit);
    }
    return sub;
  }
};

GitSource::GitSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GitSource::~GitSource() = default;

Result<std::shared_ptr<GitSource>> GitSource::Open(const fs::path& root,
                                                   std::shared_ptr<snapshot::Snapshotter> snapshots,
                                                   const util::NetworkOptions& network) {
  auto impl = std::make_unique<Impl>();
  impl->network = network;
  impl->dir = root / "git";
  impl->snapshots = std::move(snapshots);
  std::error_code ec;
  fs::create_directories(impl->dir / "tmp", ec);
  if (ec) return FsError("cannot create", impl->dir / "tmp", ec);
  return std::shared_ptr<GitSource>(new GitSource(std::move(impl)));
}

fs::path GitSource::CacheDir(const GitRef& ref) const { return impl_->CacheDir(ref); }

GitStats GitSource::stats() const {
  GitStats s;
  s.ls_remotes = impl_->ls_remotes.load();
  s.fetches = impl_->fetches.load();
  s.full_fetches = impl_->full_fetches.load();
  s.fetches_skipped = impl_->fetches_skipped.load();
  s.checkouts = impl_->checkouts.load();
  s.checkouts_reused = impl_->checkouts_reused.load();
  return s;
}

Result<GitResolved> GitSource::Resolve(const GitRef& ref, const GitOptions& options) {
  GitResolved out;
  if (IsFullCommit(ref.ref)) {
    out.commit = util::AsciiLower(ref.ref);
    return out;
  }
  GitEnv env = MakeEnv(ref, options);
  bool hex_prefix = ref.ref.size() >= 4 && IsHex(ref.ref);
  std::vector<std::string> args = {"-C", impl_->dir.string(), "ls-remote", "--", ref.remote};
  if (ref.ref.empty()) {
    args.push_back("HEAD");
  } else if (!hex_prefix) {
    args.push_back(ref.ref);
    args.push_back(ref.ref + "^{}");
  }
  ++impl_->ls_remotes;
  KILN_ASSIGN_OR_RETURN(GitRun run, impl_->Remote(ref, "listing refs", args, env, options, true));
  if (run.exit_code != 0) return RemoteError(ref, "cannot list refs", run, env);

  // name -> object id, in the order git printed them.
  std::vector<std::pair<std::string, std::string>> refs;
  size_t start = 0;
  while (start < run.out.size()) {
    size_t nl = run.out.find('\n', start);
    std::string line =
        run.out.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    size_t tab = line.find('\t');
    if (tab == 40 && IsFullCommit(line.substr(0, 40)))
      refs.emplace_back(line.substr(41), line.substr(0, 40));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  auto find = [&](const std::string& name) -> const std::string* {
    for (const auto& [n, id] : refs) {
      if (n == name) return &id;
    }
    return nullptr;
  };
  auto pick = [&](const std::string& name) -> bool {
    const std::string* id = find(name);
    if (id == nullptr) return false;
    const std::string* peeled = find(name + "^{}");
    out.commit = peeled != nullptr ? *peeled : *id;
    out.ref_name = name;
    out.is_branch = name.rfind("refs/heads/", 0) == 0;
    return true;
  };
  const std::string& r = ref.ref;
  if (r.empty()) {
    if (pick("HEAD")) return out;
    return Status::NotFound("git " + ref.RedactedRemote() +
                            ": the remote has no HEAD (name a branch, tag or commit with #REF)");
  }
  if (r.rfind("refs/", 0) == 0
          ? pick(r)
          : (pick("refs/heads/" + r) || pick("refs/tags/" + r) || (r == "HEAD" && pick("HEAD")))) {
    return out;
  }
  if (r.rfind("refs/", 0) != 0) {
    for (const auto& [n, id] : refs) {
      if (!EndsWith(n, "^{}") && EndsWith(n, "/" + r) && pick(n)) return out;
    }
  }
  if (hex_prefix) {
    std::string prefix = util::AsciiLower(r);
    std::string match;
    for (const auto& [n, id] : refs) {
      if (id.rfind(prefix, 0) == 0) {
        if (!match.empty() && match != id) {
          return Status::NotFound("git " + ref.RedactedRemote() + ": abbreviated commit \"" + r +
                                  "\" is ambiguous; give the full 40-hex commit id");
        }
        match = id;
      }
    }
    if (!match.empty()) {
      out.commit = match;
      return out;
    }
    return Status::NotFound("git " + ref.RedactedRemote() + ": ref \"" + r +
                            "\" not found, and the remote resolves abbreviated commit ids only "
                            "for branch and tag tips; give the full 40-hex commit id");
  }
  return Status::NotFound("git " + ref.RedactedRemote() + ": ref \"" + r +
                          "\" not found (no branch, tag or commit of that name)");
}

Result<bool> GitSource::Fetch(const GitRef& ref, const std::string& commit,
                              const GitOptions& options) {
  if (!IsFullCommit(commit)) {
    return Status::InvalidArgument("git " + ref.RedactedRemote() + ": \"" + commit +
                                   "\" is not a full 40-hex commit id");
  }
  GitEnv env = MakeEnv(ref, options);
  fs::path cache = impl_->CacheDir(ref);
  KILN_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(cache.string() + ".lock"));
  return impl_->FetchLocked(ref, cache, util::AsciiLower(commit), env, options);
}

Status GitSource::Checkout(const GitRef& ref, const std::string& commit,
                           const GitCheckoutOptions& checkout, const GitOptions& options,
                           const fs::path& dest_dir) {
  if (!IsFullCommit(commit)) {
    return Status::InvalidArgument("git " + ref.RedactedRemote() + ": \"" + commit +
                                   "\" is not a full 40-hex commit id");
  }
  KILN_ASSIGN_OR_RETURN(TempTree staging, TempTree::Make(impl_->dir / "tmp", "checkout-"));
  KILN_ASSIGN_OR_RETURN(fs::path tree, impl_->Stage(ref, util::AsciiLower(commit), checkout,
                                                    options, staging.path()));
  return MoveTree(tree, dest_dir);
}

Result<std::string> GitSource::CheckoutSnapshot(const GitRef& ref, const std::string& commit,
                                                const GitCheckoutOptions& checkout,
                                                const GitOptions& options) {
  if (impl_->snapshots == nullptr) {
    return Status::FailedPrecondition(
        "git: CheckoutSnapshot on a GitSource opened without a "
        "snapshotter");
  }
  if (!IsFullCommit(commit)) {
    return Status::InvalidArgument("git " + ref.RedactedRemote() + ": \"" + commit +
                                   "\" is not a full 40-hex commit id");
  }
  std::string c = util::AsciiLower(commit);
  std::string key(util::Sha256Of("git-checkout\n" + ref.remote + "\n" + c + "\n" + ref.subdir +
                                 "\n" + (checkout.keep_git_dir ? "keep\n" : "drop\n") +
                                 checkout.branch)
                      .hex());
  KILN_ASSIGN_OR_RETURN(std::vector<snapshot::Info> all, impl_->snapshots->List());
  for (const auto& info : all) {
    auto it = info.labels.find(std::string(kLabelGitCheckout));
    if (it != info.labels.end() && it->second == key) {
      ++impl_->checkouts_reused;
      return info.id;
    }
  }
  KILN_ASSIGN_OR_RETURN(TempTree staging, TempTree::Make(impl_->dir / "tmp", "checkout-"));
  KILN_ASSIGN_OR_RETURN(fs::path tree, impl_->Stage(ref, c, checkout, options, staging.path()));
  KILN_ASSIGN_OR_RETURN(snapshot::Active active, impl_->snapshots->Prepare(""));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tree, ec)) {
    fs::path to = active.path() / entry.path().filename();
    fs::copy(entry.path(), to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) return FsError("cannot copy the checkout into snapshot", to, ec);
  }
  if (ec) return FsError("cannot read", tree, ec);
  return active.Commit({{std::string(kLabelGitCommit), c}, {std::string(kLabelGitCheckout), key}});
}

}  // namespace kiln::source
