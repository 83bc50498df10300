#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "executor/emulation.h"
#include "util/io.h"
#include "util/json.h"
#include "util/rootfs.h"
#include "util/userdb.h"

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;
using util::UniqueFd;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Docker's default capability set.
constexpr const char* kDefaultCaps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

// Docker's default masked and read-only paths.
constexpr const char* kMaskedPaths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
constexpr const char* kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

std::string Errno(int err) { return std::strerror(err); }

// Path components of an absolute or relative in-root path, lexically
// cleaned (util::CleanInRoot), e.g. "/a//b/../c" -> {"a", "c"}.
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  std::string clean = util::CleanInRoot(path);
  size_t start = 0;
  while (start < clean.size()) {
    size_t slash = clean.find('/', start);
    if (slash == std::string::npos) slash = clean.size();
    out.push_back(clean.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string JoinComponents(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out += '/';
    out += comps[i];
  }
  return out;
}

// Opens the directory `rel` inside the root without following any symlink
// (a symlink anywhere in the path fails with ELOOP); -1 with errno set.
int OpenDirNoSymlinks(int root_fd, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  const char* p = rel.empty() ? "." : rel.c_str();
  int fd;
  do {
    fd = static_cast<int>(syscall(SYS_openat2, root_fd, p, &how, sizeof how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

// Mount stubs: the entries of the rootfs that the runtime creates as mount
// points. Record() notes, for a mount target, each path component that does
// not exist yet (the missing one and everything below it); Remove() deletes
// those that are still an empty directory or an empty file, deepest first.
// Neither follows symlinks: a target below a symlink is not tracked.
class MountStubs {
 public:
  explicit MountStubs(int root_fd) : root_fd_(root_fd) {}

  void Record(std::string_view dest) {
    std::vector<std::string> comps = Components(dest);
    for (size_t i = 0; i < comps.size(); ++i) {
      UniqueFd dir(OpenDirNoSymlinks(root_fd_, JoinComponents(comps, i)));
      if (!dir.valid()) return;
      struct stat st;
      if (fstatat(dir.get(), comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) return;
        for (size_t j = i + 1; j <= comps.size(); ++j) created_.insert(JoinComponents(comps, j));
        return;
      }
      if (!S_ISDIR(st.st_mode)) return;  // the runtime resolves it, or fails
    }
  }

  void Remove() {
    std::vector<std::string> paths(created_.begin(), created_.end());
    auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
    std::stable_sort(paths.begin(), paths.end(), [&](const std::string& a, const std::string& b) {
      return depth(a) > depth(b);
    });
    for (const std::string& p : paths) {
      size_t slash = p.rfind('/');
      std::string parent = slash == std::string::npos ? "" : p.substr(0, slash);
      std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
      UniqueFd dir(OpenDirNoSymlinks(root_fd_, parent));
      if (!dir.valid()) continue;
      struct stat st;
      if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        (void)unlinkat(dir.get(), name.c_str(), AT_REMOVEDIR);  // fails when not empty: kept
      } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
        (void)unlinkat(dir.get(), name.c_str(), 0);
      }
    }
  }

 private:
  int root_fd_;
  std::set<std::string> created_;  // in-root paths without a leading '/'
};

// A child process of the runtime program.
struct Child {
  pid_t pid = -1;
  int Wait() {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }
};

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

// Starts `argv` with stdin from /dev/null and stdout/stderr on the given
// descriptors. With `hide_cgroup2` the child first enters a private mount
// namespace where /sys/fs/cgroup/unified is covered by an empty tmpfs:
// crun refuses hybrid cgroup hierarchies whose cgroup2 part has
// controllers, and kiln asks it for no cgroups at all.
Result<Child> Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd,
                    bool hide_cgroup2) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return Status::IOError("cannot open /dev/null: " + Errno(errno));
  static const char kHideFailed[] = "kiln: cannot hide /sys/fs/cgroup/unified from the runtime\n";
  static const char kExecFailed[] = "kiln: cannot execute the OCI runtime\n";

  pid_t pid = fork();
  if (pid < 0) return Status::IOError("fork: " + Errno(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    if (hide_cgroup2) {
      if (unshare(CLONE_NEWNS) != 0 ||
          mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount("tmpfs", "/sys/fs/cgroup/unified", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=4k") != 0) {
        (void)!write(err_fd, kHideFailed, sizeof kHideFailed - 1);
        _exit(127);
      }
    }
    if (dup2(null_fd.get(), 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(127);
    close_range(3, ~0U, 0);
    execv(args[0], args.data());
    (void)!write(2, kExecFailed, sizeof kExecFailed - 1);
    _exit(127);
  }
  return Child{pid};
}

struct Captured {
  int exit_code = 0;
  std::string output;  // stdout and stderr together
};

// Runs `argv` to completion and collects its output.
Result<Captured> RunAndCapture(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::IOError("pipe: " + Errno(errno));
  UniqueFd rd(fds[0]), wr(fds[1]);
  KILN_ASSIGN_OR_RETURN(Child child, Spawn(argv, wr.get(), wr.get(), false));
  wr.reset();
  Captured c;
  char buf[4096];
  while (true) {
    ssize_t n = read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (c.output.size() < (1 << 20)) c.output.append(buf, static_cast<size_t>(n));
  }
  c.exit_code = ExitCodeOf(child.Wait());
  return c;
}

std::string FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* env = getenv("PATH");
  std::string path =
      env && *env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      KILN_CHECK(errno == EINTR, "getrandom failed: " + Errno(errno));
      continue;
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// kInvalidArgument naming the first of `values` that is not valid UTF-8
// (what: "argument", ...), with the offending byte and its offset; the
// value itself is not quoted (an environment variable may hold a secret).
Status CheckUtf8(std::string_view what, const std::vector<std::string>& values) {
  for (size_t v = 0; v < values.size(); ++v) {
    const std::string& s = values[v];
    for (size_t i = 0; i < s.size();) {
      const size_t n = util::Utf8SequenceLength(s, i);
      if (n > 0) {
        i += n;
        continue;
      }
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(s[i]));
      std::string which = std::string(what);
      if (what == "environment variable") {
        which += " " + s.substr(0, s.find('='));
      } else if (values.size() > 1) {
        which += " " + std::to_string(v + 1);
      }
      return Status::InvalidArgument("executor: " + which + " is not valid UTF-8 (byte " + hex +
                                     " at offset " + std::to_string(i) +
                                     "): an OCI runtime takes it as JSON text, which must be "
                                     "UTF-8");
    }
  }
  return Status::Ok();
}

Status WriteFile(const fs::path& path, std::string_view data, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid()) return Status::IOError("cannot create " + path.string() + ": " + Errno(errno));
  KILN_RETURN_IF_ERROR(util::FdSink(fd.get())(data));
  if (fchmod(fd.get(), mode) != 0)
    return Status::IOError("cannot chmod " + path.string() + ": " + Errno(errno));
  return Status::Ok();
}

// True when /sys/fs/cgroup is a hybrid hierarchy whose cgroup2 part has
// controllers enabled (crun refuses to start containers there).
bool HybridCgroupWithControllers() {
  struct statfs sfs;
  if (statfs("/sys/fs/cgroup", &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) return false;
  if (statfs("/sys/fs/cgroup/unified", &sfs) != 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
    return false;
  std::ifstream in("/sys/fs/cgroup/unified/cgroup.controllers");
  std::string word;
  return static_cast<bool>(in >> word);
}

// The open-files limit for containers: Docker's 1048576, or the highest
// this process may set when it lacks CAP_SYS_RESOURCE (a sandboxed host);
// a limit the runtime cannot set fails every run. Probed in a child so this
// process's own limits stay untouched.
unsigned long long NofileLimit() {
  constexpr rlim_t kWanted = 1048576;
  struct rlimit cur;
  if (getrlimit(RLIMIT_NOFILE, &cur) != 0) return kWanted;
  if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max >= kWanted) return kWanted;
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit want = {kWanted, kWanted};
    _exit(setrlimit(RLIMIT_NOFILE, &want) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    return cur.rlim_max;
  }
  return kWanted;
}

// The nameserver, search and options lines of the host's resolv.conf.
std::string ResolvConf() {
  std::ifstream in("/etc/resolv.conf");
  std::string line, out;
  while (std::getline(in, line)) {
    std::string_view l = line;
    while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
    if (l.starts_with("nameserver") || l.starts_with("search") || l.starts_with("options") ||
        l.starts_with("domain")) {
      out.append(l);
      out += '\n';
    }
  }
  return out;
}

std::string JoinArgs(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

bool HasVar(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=')
      return true;
  }
  return false;
}

nlohmann::json MountJson(std::string dest, std::string type, std::string source,
                         std::vector<std::string> options) {
  return {{"destination", std::move(dest)},
          {"type", std::move(type)},
          {"source", std::move(source)},
          {"options", std::move(options)}};
}

// Removes a run's bundle (after unmounting its secrets tmpfs) on every path
// out of Run.
struct BundleGuard {
  fs::path bundle;
  fs::path secrets;  // empty when none were mounted
  ~BundleGuard() {
    if (!secrets.empty()) {
      (void)umount2(secrets.c_str(), MNT_DETACH);
    }
    if (!bundle.empty()) {
      std::error_code ec;
      fs::remove_all(bundle, ec);
    }
  }
};

}  // namespace

struct Executor::Impl {
  Options options;
  std::string runtime_path;
  std::string runtime_name;  // "crun", "runc", or the program's base name
  std::string version;
  bool hide_cgroup2 = false;  // see Spawn
  unsigned long long nofile = 1048576;
  fs::path runtime_root;  // --root of the runtime
  fs::path bundles;

  std::vector<std::string> RuntimeArgs() const {
    std::vector<std::string> argv = {runtime_path};
    if (runtime_name == "crun") argv.push_back("--cgroup-manager=disabled");
    return argv;
  }

  Status Run(const ProcessSpec& process, const RunOptions& options);
};

Executor::Executor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Executor::~Executor() = default;

const std::string& Executor::runtime_version() const { return impl_->version; }

Result<std::unique_ptr<Executor>> Executor::Open(Options options) {
  if (options.state_dir.empty()) {
    return Status::InvalidArgument(
        "executor: state_dir is empty; give a directory for bundles and runtime state");
  }
  auto impl = std::make_unique<Impl>();
  if (!options.runtime.empty()) {
    impl->runtime_path = FindInPath(options.runtime);
    if (impl->runtime_path.empty()) {
      return Status::FailedPrecondition(
          "OCI runtime " + options.runtime +
          " not found or not executable; install the Debian package crun or runc");
    }
  } else {
    impl->runtime_path = FindInPath("crun");
    if (impl->runtime_path.empty()) impl->runtime_path = FindInPath("runc");
    if (impl->runtime_path.empty()) {
      return Status::FailedPrecondition(
          "no OCI runtime found: neither crun nor runc is on PATH; install one (apt-get install "
          "crun)");
    }
  }
  impl->runtime_name = fs::path(impl->runtime_path).filename().string();

  KILN_ASSIGN_OR_RETURN(Captured v, RunAndCapture({impl->runtime_path, "--version"}));
  if (v.exit_code != 0) {
    return Status::FailedPrecondition("OCI runtime " + impl->runtime_path +
                                      " --version failed with exit code " +
                                      std::to_string(v.exit_code) + ": " + v.output);
  }
  // "crun version 1.8.1\n..." -> "crun 1.8.1"
  std::string first = v.output.substr(0, v.output.find('\n'));
  if (size_t pos = first.find(" version "); pos != std::string::npos) {
    impl->version = first.substr(0, pos) + " " + first.substr(pos + 9);
  } else {
    impl->version = impl->runtime_name + " " + first;
  }

  std::error_code ec;
  options.state_dir = fs::absolute(options.state_dir, ec);
  impl->runtime_root = options.state_dir / "runtime";
  impl->bundles = options.state_dir / "bundles";
  for (const fs::path& dir : {options.state_dir, impl->runtime_root, impl->bundles}) {
    fs::create_directories(dir, ec);
    if (ec) return Status::IOError("cannot create " + dir.string() + ": " + ec.message());
    if (chmod(dir.c_str(), 0700) != 0)
      return Status::IOError("cannot chmod " + dir.string() + ": " + Errno(errno));
  }
  impl->hide_cgroup2 = impl->runtime_name == "crun" && HybridCgroupWithControllers();
  impl->nofile = NofileLimit();
  impl->options = std::move(options);
  return std::unique_ptr<Executor>(new Executor(std::move(impl)));
}

Status Executor::Run(const ProcessSpec& process, const RunOptions& options) {
  return impl_->Run(process, options);
}

Status Executor::Impl::Run(const ProcessSpec& process, const RunOptions& given) {
  // A foreign architecture runs through its binfmt_misc emulator; one
  // registered without the F flag must be visible inside the root.
  RunOptions with_emulator;
  const RunOptions* chosen = &given;
  if (!given.arch.empty()) {
    KILN_ASSIGN_OR_RETURN(std::optional<Emulator> emulator, FindEmulator(given.arch));
    if (emulator && !emulator->fix_binary) {
      with_emulator = given;
      Mount m;
      m.type = Mount::Type::kBind;
      m.source = emulator->interpreter.string();
      m.dest = emulator->interpreter.string();
      m.readonly = true;
      with_emulator.mounts.push_back(std::move(m));
      chosen = &with_emulator;
    }
  }
  const RunOptions& options = *chosen;
  if (options.cancel) KILN_RETURN_IF_ERROR(options.cancel->Check());
  if (process.args.empty())
    return Status::InvalidArgument("executor: the process has no arguments");
  if (process.cwd.empty() || process.cwd[0] != '/') {
    return Status::InvalidArgument("executor: working directory \"" + process.cwd +
                                   "\" is not an absolute path");
  }
  for (const Mount& m : options.mounts) {
    if (m.dest.empty() || m.dest[0] != '/' || util::CleanInRoot(m.dest).empty()) {
      return Status::InvalidArgument("executor: mount target \"" + m.dest +
                                     "\" must be an absolute path below /");
    }
    if (m.type == Mount::Type::kBind && (m.source.empty() || m.source[0] != '/')) {
      return Status::InvalidArgument("executor: bind mount source \"" + m.source + "\" for " +
                                     m.dest + " must be an absolute host path");
    }
  }

  // The runtime spec is JSON, whose strings are UTF-8 text (crun refuses
  // other bytes): say which field holds them, before writing anything.
  KILN_RETURN_IF_ERROR(CheckUtf8("argument", process.args));
  KILN_RETURN_IF_ERROR(CheckUtf8("environment variable", process.env));
  KILN_RETURN_IF_ERROR(CheckUtf8("working directory", {process.cwd}));
  KILN_RETURN_IF_ERROR(CheckUtf8("hostname", {process.hostname}));
  for (const Mount& m : options.mounts) {
    KILN_RETURN_IF_ERROR(CheckUtf8("mount target", {m.dest}));
    KILN_RETURN_IF_ERROR(CheckUtf8("mount source", {m.source}));
  }

  std::error_code ec;
  fs::path rootfs = fs::absolute(options.rootfs, ec);
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(rootfs));
  KILN_ASSIGN_OR_RETURN(util::Identity identity, util::ResolveUser(root, process.user));

  std::vector<std::string> env = process.env;
  if (!HasVar(env, "PATH")) env.push_back(kDefaultPath);
  if (!HasVar(env, "HOME")) env.push_back("HOME=" + identity.home);

  // Docker creates a missing working directory, and it stays.
  if (Status st = root.MkdirAll(process.cwd, 0755); !st.ok()) {
    return st.Annotate("cannot create the working directory " + process.cwd + " in " +
                       rootfs.string());
  }

  const std::string id = "kiln-" + RandomHex(8);
  BundleGuard guard;
  const fs::path bundle = bundles / id;
  if (mkdir(bundle.c_str(), 0700) != 0)
    return Status::IOError("cannot create " + bundle.string() + ": " + Errno(errno));
  guard.bundle = bundle;

  KILN_RETURN_IF_ERROR(WriteFile(bundle / "hosts",
                                 "127.0.0.1\tlocalhost" +
                                     (process.hostname.empty() ? "" : " " + process.hostname) +
                                     "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                                 0644));
  KILN_RETURN_IF_ERROR(WriteFile(bundle / "resolv.conf", ResolvConf(), 0644));

  // Secrets: bytes in a private tmpfs of this run only.
  std::vector<fs::path> secret_files(options.mounts.size());
  size_t secret_bytes = 0, secret_count = 0;
  for (const Mount& m : options.mounts) {
    if (m.type == Mount::Type::kSecret) {
      secret_bytes += m.data.size();
      ++secret_count;
    }
  }
  if (secret_count > 0) {
    fs::path dir = bundle / "secrets";
    if (mkdir(dir.c_str(), 0700) != 0)
      return Status::IOError("cannot create " + dir.string() + ": " + Errno(errno));
    size_t size = secret_bytes + 4096 * (secret_count + 16);
    std::string data = "mode=0700,size=" + std::to_string(size);
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data.c_str()) != 0) {
      return Status::IOError("cannot mount a tmpfs for secrets on " + dir.string() + ": " +
                             Errno(errno));
    }
    guard.secrets = dir;
    if (mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
      return Status::IOError("cannot make " + dir.string() + " a private mount: " + Errno(errno));
    }
    for (size_t i = 0; i < options.mounts.size(); ++i) {
      const Mount& m = options.mounts[i];
      if (m.type != Mount::Type::kSecret) continue;
      fs::path file = dir / std::to_string(i);
      // Errors name the target, never the bytes.
      Status st = WriteFile(file, m.data, 0600);
      if (!st.ok())
        return Status::IOError("cannot store the secret for " + m.dest + ": " + st.message());
      if (chown(file.c_str(), m.uid, m.gid) != 0 || chmod(file.c_str(), m.mode & 07777) != 0) {
        return Status::IOError("cannot set owner and mode of the secret for " + m.dest + ": " +
                               Errno(errno));
      }
      secret_files[i] = file;
    }
  }

  nlohmann::json mounts = nlohmann::json::array({
      MountJson("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      MountJson("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      MountJson("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      MountJson("/dev/shm", "tmpfs", "shm",
                {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      MountJson("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      MountJson("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      MountJson("/etc/hosts", "bind", (bundle / "hosts").string(),
                {"rbind", "ro", "nosuid", "nodev"}),
      MountJson("/etc/resolv.conf", "bind", (bundle / "resolv.conf").string(),
                {"rbind", "ro", "nosuid", "nodev"}),
  });
  // The caller's mounts, parents before children.
  std::vector<size_t> order(options.mounts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return Components(options.mounts[a].dest).size() < Components(options.mounts[b].dest).size();
  });
  for (size_t i : order) {
    const Mount& m = options.mounts[i];
    switch (m.type) {
      case Mount::Type::kBind:
        mounts.push_back(MountJson(m.dest, "bind", m.source, {"rbind", m.readonly ? "ro" : "rw"}));
        break;
      case Mount::Type::kTmpfs: {
        std::vector<std::string> opts = {"nosuid", "nodev", "mode=1777"};
        if (m.tmpfs_size > 0) opts.push_back("size=" + std::to_string(m.tmpfs_size));
        mounts.push_back(MountJson(m.dest, "tmpfs", "tmpfs", opts));
        break;
      }
      case Mount::Type::kSecret:
        mounts.push_back(MountJson(m.dest, "bind", secret_files[i].string(),
                                   {"rbind", "ro", "nosuid", "nodev", "noexec"}));
        break;
    }
  }

  // Note what the runtime will have to create, before it does.
  MountStubs stubs(root.fd());
  for (const nlohmann::json& m : mounts) stubs.Record(m["destination"].get<std::string>());

  nlohmann::json caps = nlohmann::json::array();
  for (const char* c : kDefaultCaps) caps.push_back(c);
  nlohmann::json user = {{"uid", identity.uid}, {"gid", identity.gid}};
  if (!identity.additional_gids.empty()) user["additionalGids"] = identity.additional_gids;
  nlohmann::json namespaces = nlohmann::json::array(
      {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (process.network == Network::kNone) namespaces.push_back({{"type", "network"}});

  nlohmann::json config = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", user},
        {"args", process.args},
        {"env", env},
        {"cwd", process.cwd},
        {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
        {"rlimits",
         nlohmann::json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", nofile}, {"soft", nofile}}})},
        {"noNewPrivileges", false}}},
      {"root", {{"path", rootfs.string()}, {"readonly", false}}},
      {"mounts", mounts},
      {"linux",
       {{"namespaces", namespaces},
        {"maskedPaths", kMaskedPaths},
        {"readonlyPaths", kReadonlyPaths}}},
  };
  if (!process.hostname.empty()) config["hostname"] = process.hostname;
  std::string config_text;
  try {
    config_text = config.dump(2);
  } catch (const nlohmann::json::exception&) {
    // CheckUtf8 above covers every string the spec holds from the caller.
    return Status::Internal("executor: cannot encode the runtime spec as JSON");
  }
  KILN_RETURN_IF_ERROR(WriteFile(bundle / "config.json", config_text, 0600));

  // Start the runtime.
  int out_pipe[2], err_pipe[2], cancel_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::IOError("pipe: " + Errno(errno));
  UniqueFd out_rd(out_pipe[0]), out_wr(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return Status::IOError("pipe: " + Errno(errno));
  UniqueFd err_rd(err_pipe[0]), err_wr(err_pipe[1]);
  if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    return Status::IOError("pipe: " + Errno(errno));
  UniqueFd cancel_rd(cancel_pipe[0]);
  // Shared with the cancel callback, which may still be running on the
  // cancelling thread after this scope has removed it.
  struct CancelState {
    std::atomic<bool> requested{false};
    UniqueFd wr;
  };
  auto cancel_state = std::make_shared<CancelState>();
  cancel_state->wr = UniqueFd(cancel_pipe[1]);

  const fs::path log = bundle / "runtime.log";
  std::vector<std::string> argv = RuntimeArgs();
  argv.insert(argv.end(), {"--log=" + log.string(), "--root", runtime_root.string(), "run",
                           "--bundle", bundle.string(), id});
  KILN_ASSIGN_OR_RETURN(Child child, Spawn(argv, out_wr.get(), err_wr.get(), hide_cgroup2));
  out_wr.reset();
  err_wr.reset();

  util::CancelScope scope(options.cancel, [cancel_state] {
    cancel_state->requested.store(true);
    char b = 1;
    (void)!write(cancel_state->wr.get(), &b, 1);
  });
  auto cancel_requested = [&] { return cancel_state->requested.load(); };

  bool killed = false, reaped = false;
  int wait_status = 0;
  char buf[65536];
  while (out_rd.valid() || err_rd.valid()) {
    bool want_kill = cancel_requested() && !killed && !reaped;
    if (want_kill) {
      std::vector<std::string> kill = RuntimeArgs();
      kill.insert(kill.end(), {"--root", runtime_root.string(), "kill", id, "KILL"});
      Result<Captured> k = RunAndCapture(kill);
      if (k.ok() && k->exit_code == 0) {
        killed = true;
      } else if (waitpid(child.pid, &wait_status, WNOHANG) == child.pid) {
        reaped = true;  // the runtime is gone: nothing left to kill
      }
    }
    pollfd pfds[3] = {
        {out_rd.get(), POLLIN, 0}, {err_rd.get(), POLLIN, 0}, {cancel_rd.get(), POLLIN, 0}};
    int timeout = cancel_requested() && !killed && !reaped ? 50 : -1;
    int n = poll(pfds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      KILN_CHECK(false, "poll failed: " + Errno(errno));
    }
    if (pfds[2].revents) {
      (void)!read(cancel_rd.get(), buf, sizeof buf);
    }
    for (int i = 0; i < 2; ++i) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      UniqueFd& fd = i == 0 ? out_rd : err_rd;
      ssize_t r = read(fd.get(), buf, sizeof buf);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r <= 0) {
        fd.reset();
        continue;
      }
      const auto& sink = i == 0 ? options.on_stdout : options.on_stderr;
      if (sink) sink(std::string_view(buf, static_cast<size_t>(r)));
    }
  }
  if (!reaped) wait_status = child.Wait();
  int exit_code = ExitCodeOf(wait_status);

  std::vector<std::string> del = RuntimeArgs();
  del.insert(del.end(), {"--root", runtime_root.string(), "delete", "-f", id});
  Result<Captured> deleted = RunAndCapture(del);
  (void)deleted;  // `run` already deleted it unless it was interrupted
  std::string runtime_log;
  {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    runtime_log = ss.str();
  }
  stubs.Remove();

  if (cancel_requested() && options.cancel) return options.cancel->Check();
  if (exit_code != 0) {
    std::string msg = "process \"" + JoinArgs(process.args) +
                      "\" did not complete successfully: exit code: " + std::to_string(exit_code);
    // The runtime's own error (bad spec, missing program), when it logged one.
    while (!runtime_log.empty() && (runtime_log.back() == '\n' || runtime_log.back() == ' '))
      runtime_log.pop_back();
    // crun logs a setup error from both of its processes: say it once.
    if (runtime_log.size() % 2 == 0 &&
        runtime_log.compare(0, runtime_log.size() / 2, runtime_log, runtime_log.size() / 2) == 0) {
      runtime_log.resize(runtime_log.size() / 2);
    }
    if (!runtime_log.empty()) {
      if (runtime_log.size() > 2000) runtime_log = runtime_log.substr(runtime_log.size() - 2000);
      msg += ": " + runtime_name + ": " + runtime_log;
    }
    return Status::ExecFailed(msg, exit_code);
  }
  return Status::Ok();
}

}  // namespace kiln::executor
