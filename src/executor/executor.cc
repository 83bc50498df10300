#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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
#include "util/metrics.h"
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

// How Spawn starts a program.
struct SpawnOptions {
  // Enter a private mount namespace where /sys/fs/cgroup/unified is covered
  // by an empty tmpfs first: crun refuses hybrid cgroup hierarchies whose
  // cgroup2 part has controllers, and kiln has it use the v1 ones.
  bool hide_cgroup2 = false;
  // Tie the program's life to the calling thread's (and so to kiln's): it
  // gets SIGKILL when that thread ends, however kiln dies, including by
  // SIGKILL (PR_SET_PDEATHSIG).
  bool die_with_kiln = false;
  // Run the program as pid 1 of a new PID namespace (implies
  // die_with_kiln): when it dies the kernel kills every process of the
  // namespace, those it re-parented included, before its parent's wait
  // returns. An intermediate process in kiln's namespace relays the exit
  // status (a signal N becomes exit code 128+N); Child::pid is that
  // process, and killing it kills the namespace.
  bool own_pid_namespace = false;
  // Descriptors given to the program as 3, 4, ... (in order).
  std::vector<int> extra_fds;
};

// Starts `argv` with stdin from /dev/null and stdout/stderr on the given
// descriptors.
Result<Child> Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd,
                    const SpawnOptions& so = {}) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return Status::IOError("cannot open /dev/null: " + Errno(errno));
  static const char kHideFailed[] = "kiln: cannot hide /sys/fs/cgroup/unified from the runtime\n";
  static const char kExecFailed[] = "kiln: cannot execute the OCI runtime\n";
  static const char kNsFailed[] = "kiln: cannot create a PID namespace for the runtime\n";
  const pid_t kiln_pid = getpid();
  const int nextra = static_cast<int>(so.extra_fds.size());

  pid_t pid = fork();
  if (pid < 0) return Status::IOError("fork: " + Errno(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    if (so.die_with_kiln || so.own_pid_namespace) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != kiln_pid) _exit(127);
    }
    if (so.hide_cgroup2) {
      if (unshare(CLONE_NEWNS) != 0 ||
          mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount("tmpfs", "/sys/fs/cgroup/unified", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=4k") != 0) {
        (void)!write(err_fd, kHideFailed, sizeof kHideFailed - 1);
        _exit(127);
      }
    }
    // Move the extra descriptors out of the way of 0..2+n before placing them.
    int moved[16];
    if (nextra > 16) _exit(127);
    for (int i = 0; i < nextra; ++i) {
      moved[i] = fcntl(so.extra_fds[static_cast<size_t>(i)], F_DUPFD_CLOEXEC, 64);
      if (moved[i] < 0) _exit(127);
    }
    if (dup2(null_fd.get(), 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(127);
    for (int i = 0; i < nextra; ++i) {
      if (dup2(moved[i], 3 + i) < 0) _exit(127);
    }
    close_range(static_cast<unsigned>(3 + nextra), ~0U, 0);
    if (so.own_pid_namespace) {
      // This process stays in kiln's namespace and relays; its child is
      // pid 1 of the new one. `alive` tells that child whether this
      // process still lives once it has asked for PR_SET_PDEATHSIG, which
      // closes the window where this process died before it asked.
      int alive[2];
      if (unshare(CLONE_NEWPID) != 0 || pipe2(alive, O_CLOEXEC) != 0) {
        (void)!write(2, kNsFailed, sizeof kNsFailed - 1);
        _exit(127);
      }
      pid_t init = fork();
      if (init < 0) _exit(127);
      if (init == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(127);
        close(alive[1]);
        pollfd p = {alive[0], POLLIN, 0};
        if (poll(&p, 1, 0) != 0) _exit(127);  // the relay is gone
        close(alive[0]);
        execv(args[0], args.data());
        (void)!write(2, kExecFailed, sizeof kExecFailed - 1);
        _exit(127);
      }
      close(alive[0]);
      close(0);
      close(1);
      close(2);
      int status = 0;
      while (waitpid(init, &status, 0) < 0) {
        if (errno != EINTR) _exit(127);
      }
      if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
      if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
      _exit(255);
    }
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
  KILN_ASSIGN_OR_RETURN(Child child, Spawn(argv, wr.get(), wr.get()));
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

// The nameserver, search and options lines of the host's resolv.conf; with
// `nameserver` set, that replaces the host's nameservers (the sandbox
// network's DNS forwarder).
std::string ResolvConf(std::string_view nameserver = {}) {
  std::ifstream in("/etc/resolv.conf");
  std::string line, out;
  if (!nameserver.empty()) out = "nameserver " + std::string(nameserver) + "\n";
  while (std::getline(in, line)) {
    std::string_view l = line;
    while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
    if (l.starts_with("nameserver") && !nameserver.empty()) continue;
    if (l.starts_with("nameserver") || l.starts_with("search") || l.starts_with("options") ||
        l.starts_with("domain")) {
      out.append(l);
      out += '\n';
    }
  }
  return out;
}

// slirp4netns's fixed addresses (its defaults, 10.0.2.0/24).
constexpr char kSandboxDns[] = "10.0.2.3";

// The network of a RUN step that asked for none in particular: a network
// namespace of its own, held by a small process of kiln's, with a tap
// device that slirp4netns connects to the outside through ordinary sockets
// of the host (user-mode NAT). Inside: lo up, 10.0.2.100/24 on tap0, a
// default route through 10.0.2.2 and DNS at 10.0.2.3; the host's loopback
// is not reachable (--disable-host-loopback). Both processes die with kiln
// (PR_SET_PDEATHSIG) and are stopped when this object goes.
class SandboxNetwork {
 public:
  static Result<std::unique_ptr<SandboxNetwork>> Start(const std::string& slirp,
                                                       const fs::path& log_path) {
    auto net = std::unique_ptr<SandboxNetwork>(new SandboxNetwork);
    int ready[2], hold[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0)
      return Status::IOError("pipe: " + Errno(errno));
    UniqueFd ready_rd(ready[0]), ready_wr(ready[1]);
    UniqueFd hold_rd(hold[0]);
    net->hold_wr_ = UniqueFd(hold[1]);
    const pid_t kiln_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) return Status::IOError("fork: " + Errno(errno));
    if (pid == 0) {
      // Async-signal-safe calls only: make the namespace, say so, and keep
      // it until the hold pipe closes (kiln is done with it, or dead).
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != kiln_pid) _exit(127);
      char b = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
      (void)!write(ready_wr.get(), &b, 1);
      close(net->hold_wr_.get());
      char c;
      while (read(hold_rd.get(), &c, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
    net->holder_ = pid;
    ready_wr.reset();
    hold_rd.reset();
    char b = 0;
    ssize_t n;
    while ((n = read(ready_rd.get(), &b, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1 || b != 1) {
      return Status::IOError("cannot create a network namespace for the RUN step");
    }
    net->netns_ = "/proc/" + std::to_string(pid) + "/ns/net";

    // slirp4netns: configures the namespace, writes '1' to fd 3 when it is
    // ready, and exits when fd 4 closes.
    int sready[2], sexit[2];
    if (pipe2(sready, O_CLOEXEC) != 0 || pipe2(sexit, O_CLOEXEC) != 0)
      return Status::IOError("pipe: " + Errno(errno));
    UniqueFd sready_rd(sready[0]), sready_wr(sready[1]), sexit_rd(sexit[0]);
    net->exit_wr_ = UniqueFd(sexit[1]);
    UniqueFd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!log.valid()) return Status::IOError("cannot create " + log_path.string());
    SpawnOptions so;
    so.die_with_kiln = true;
    so.extra_fds = {sready_wr.get(), sexit_rd.get()};
    KILN_ASSIGN_OR_RETURN(Child helper,
                          Spawn({slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                                 "--ready-fd=3", "--exit-fd=4", std::to_string(pid), "tap0"},
                                log.get(), log.get(), so));
    net->slirp_ = helper.pid;
    sready_wr.reset();
    sexit_rd.reset();
    pollfd p = {sready_rd.get(), POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, 10000)) < 0 && errno == EINTR) {
    }
    n = r == 1 ? read(sready_rd.get(), &b, 1) : -1;
    if (n != 1) {
      std::ifstream in(log_path);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      if (text.size() > 1000) text = text.substr(text.size() - 1000);
      return Status::IOError("slirp4netns did not set up the RUN step's network" +
                             (text.empty() ? std::string() : ": " + text));
    }
    return net;
  }

  ~SandboxNetwork() {
    exit_wr_.reset();
    hold_wr_.reset();
    for (pid_t pid : {slirp_, holder_}) {
      if (pid <= 0) continue;
      int status;
      // slirp4netns exits when its exit fd closes; give it a moment.
      bool gone = false;
      for (int i = 0; i < 100 && !gone; ++i) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        gone = w == pid || (w < 0 && errno != EINTR);
        if (!gone) usleep(1000);
      }
      if (!gone) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
    }
  }

  // The namespace, for the runtime spec.
  const std::string& netns() const { return netns_; }

 private:
  SandboxNetwork() = default;
  pid_t holder_ = -1, slirp_ = -1;
  UniqueFd hold_wr_, exit_wr_;
  std::string netns_;
};

// Mount points of the cgroup hierarchies (v1 and v2) this process sees.
std::vector<fs::path> CgroupMounts() {
  std::vector<fs::path> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string type;
    after >> type;
    if (type != "cgroup" && type != "cgroup2") continue;
    std::istringstream before(line.substr(0, dash));
    std::string f, point;
    for (int i = 0; i < 5 && before >> f; ++i) {
      if (i == 4) point = f;
    }
    if (!point.empty()) out.emplace_back(point);
  }
  return out;
}

// Where the device policy is enforced: the cgroup v1 "devices" controller,
// or a pure cgroup v2 host (eBPF device programs). Empty when neither.
std::string DeviceControl() {
  struct statfs sfs;
  if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) return "cgroup v2";
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - cgroup ");
    if (dash == std::string::npos) continue;
    std::string opts = "," + line.substr(line.rfind(' ') + 1) + ",";
    if (opts.find(",devices,") != std::string::npos) return "cgroup v1 devices";
  }
  return "";
}

// The device cgroup rules of every RUN step, as runc and BuildKit give
// containers by default: creating any device node is allowed (mknod), but
// only the standard character devices can be read or written.
nlohmann::json DeviceRules() {
  nlohmann::json rules = nlohmann::json::array({
      {{"allow", false}, {"access", "rwm"}},
      {{"allow", true}, {"type", "c"}, {"access", "m"}},
      {{"allow", true}, {"type", "b"}, {"access", "m"}},
  });
  struct Dev {
    int major, minor;  // minor -1: any
  };
  // null, zero, full, random, urandom, tty, console, ptmx, /dev/pts/*.
  for (Dev d : {Dev{1, 3}, Dev{1, 5}, Dev{1, 7}, Dev{1, 8}, Dev{1, 9}, Dev{5, 0}, Dev{5, 1},
                Dev{5, 2}, Dev{136, -1}}) {
    nlohmann::json r = {{"allow", true}, {"type", "c"}, {"major", d.major}, {"access", "rwm"}};
    if (d.minor >= 0) r["minor"] = d.minor;
    rules.push_back(r);
  }
  return rules;
}

// The cgroup (relative to each hierarchy's root) of container `id`.
std::string CgroupPathOf(const std::string& id) { return "/kiln/" + id; }

// SIGKILLs every process left in container `id`'s cgroups, then removes
// them; true when none is left. Waits up to ~2 s for killed processes to
// go.
bool RemoveCgroups(const std::string& id) {
  bool all = true;
  for (const fs::path& mnt : CgroupMounts()) {
    const fs::path dir = mnt / CgroupPathOf(id).substr(1);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) continue;
    bool removed = false;
    for (int i = 0; i < 200 && !removed; ++i) {
      std::error_code ec;
      // Nested cgroups (a runtime may make some) go first.
      std::vector<fs::path> dirs;
      for (auto it = fs::recursive_directory_iterator(dir, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec)) dirs.push_back(it->path());
      }
      dirs.push_back(dir);
      std::sort(dirs.begin(), dirs.end(), std::greater<>());
      for (const fs::path& d : dirs) {
        std::ifstream procs(d / "cgroup.procs");
        pid_t pid;
        while (procs >> pid) ::kill(pid, SIGKILL);
        (void)::rmdir(d.c_str());
      }
      removed = ::rmdir(dir.c_str()) == 0 || errno == ENOENT;
      if (!removed) usleep(10000);
    }
    all = all && removed;
  }
  return all;
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
  std::string device_control;  // DeviceControl(); "" = none: RUN refuses
  std::string slirp_path;      // slirp4netns, "" when not installed

  std::vector<std::string> RuntimeArgs() const {
    std::vector<std::string> argv = {runtime_path};
    if (runtime_name == "crun") argv.push_back("--cgroup-manager=cgroupfs");
    return argv;
  }

  // Removes what is left of container `id` once its PID namespace is gone
  // (the runtime was killed before it could delete it): its cgroups and its
  // state directory. The runtime's own `delete` is not used: its state
  // records the container's pid as seen inside that namespace, which names
  // another process (or none) out here.
  void RemoveContainer(const std::string& id) const {
    (void)RemoveCgroups(id);
    std::error_code ec;
    fs::remove_all(runtime_root / id, ec);
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
  impl->device_control = DeviceControl();
  impl->slirp_path = FindInPath("slirp4netns");
  impl->nofile = NofileLimit();
  impl->options = std::move(options);
  return std::unique_ptr<Executor>(new Executor(std::move(impl)));
}

// Removes the empty cgroups of kiln containers (`/kiln/<tag>-...`) that are
// older than a minute, in every hierarchy: those of containers whose kiln
// was killed and whose state root is gone, so no root's reaper will ever
// name them. Processes are never touched here: the kernel refuses to
// remove a cgroup that has some (a live container's), and a cgroup a
// runtime has just made is younger than a minute.
void RemoveOrphanCgroups() {
  const auto now = fs::file_time_type::clock::now();
  for (const fs::path& mnt : CgroupMounts()) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(mnt / "kiln", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (!util::TagOf(it->path().filename().string())) continue;
      std::error_code tec;
      const auto mtime = fs::last_write_time(it->path(), tec);
      if (tec || now - mtime < std::chrono::minutes(1)) continue;
      (void)::rmdir(it->path().c_str());
    }
  }
}

Result<util::ReapStats> ReapContainers(const fs::path& state_dir, const util::StaleFn& stale) {
  RemoveOrphanCgroups();
  util::ReapStats stats;
  std::set<std::string> ids;
  for (const char* sub : {"runtime", "bundles"}) {
    std::error_code ec;
    fs::directory_iterator it(state_dir / sub, ec);
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) continue;
      return Status::IOError("cannot list " + (state_dir / sub).string() + ": " + ec.message());
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename();
      if (stale(name)) ids.insert(name);
    }
  }
  for (const std::string& id : ids) {
    // Processes still in the container's cgroups are killed first: the
    // container may still be writing into a snapshot.
    if (!RemoveCgroups(id)) {
      return Status::FailedPrecondition("cannot stop the stale container " + id +
                                        ": processes remain in its cgroup /kiln/" + id);
    }
    for (const char* sub : {"runtime", "bundles"}) {
      const fs::path p = state_dir / sub / id;
      if (::access(p.c_str(), F_OK) != 0) continue;
      (void)umount2((p / "secrets").c_str(), MNT_DETACH);
      uint64_t bytes = 0;
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(p, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        struct stat st;
        if (::lstat(it->path().c_str(), &st) == 0)
          bytes += static_cast<uint64_t>(st.st_blocks) * 512;
      }
      fs::remove_all(p, ec);
      if (!ec) {
        ++stats.items;
        stats.bytes += bytes;
      }
    }
  }
  return stats;
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
  // Without device control a step could open the host's disks through a
  // node it makes or a layer ships: refuse rather than run unconfined.
  if (device_control.empty()) {
    return Status::FailedPrecondition(
        "RUN needs cgroup device control to keep the step away from the host's devices, and "
        "this host has none (no cgroup v1 \"devices\" hierarchy is mounted and /sys/fs/cgroup "
        "is not cgroup v2)");
  }
  if (process.network == Network::kSandbox && slirp_path.empty()) {
    return Status::FailedPrecondition(
        "RUN's default network needs slirp4netns, which is not on PATH; install it (apt-get "
        "install slirp4netns), or use RUN --network=none or --network=host");
  }
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

  // The owner tag first: a later kiln tells a killed one's containers from
  // a live one's by it (util/owner.h).
  const std::string id = util::OwnerTag() + "-" + RandomHex(8);
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
  KILN_RETURN_IF_ERROR(
      WriteFile(bundle / "resolv.conf",
                ResolvConf(process.network == Network::kSandbox ? kSandboxDns : ""), 0644));
  std::unique_ptr<SandboxNetwork> network;
  if (process.network == Network::kSandbox) {
    KILN_METRIC("executor: sandbox network setup");
    KILN_ASSIGN_OR_RETURN(network, SandboxNetwork::Start(slirp_path, bundle / "network.log"));
  }

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
  if (network) namespaces.push_back({{"type", "network"}, {"path", network->netns()}});

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
        {"cgroupsPath", CgroupPathOf(id)},
        {"resources", {{"devices", DeviceRules()}}},
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
  SpawnOptions so;
  so.hide_cgroup2 = hide_cgroup2;
  so.own_pid_namespace = true;  // the container dies with kiln
  KILN_ASSIGN_OR_RETURN(Child child, Spawn(argv, out_wr.get(), err_wr.get(), so));
  out_wr.reset();
  err_wr.reset();

  util::CancelScope scope(options.cancel, [cancel_state] {
    cancel_state->requested.store(true);
    char b = 1;
    (void)!write(cancel_state->wr.get(), &b, 1);
  });
  auto cancel_requested = [&] { return cancel_state->requested.load(); };

  bool killed = false;
  int wait_status = 0;
  char buf[65536];
  while (out_rd.valid() || err_rd.valid()) {
    if (cancel_requested() && !killed) {
      // The runtime's relay: its death ends the runtime's PID namespace,
      // and the kernel kills every process of the container with it.
      (void)::kill(child.pid, SIGKILL);
      killed = true;
    }
    pollfd pfds[3] = {
        {out_rd.get(), POLLIN, 0}, {err_rd.get(), POLLIN, 0}, {cancel_rd.get(), POLLIN, 0}};
    int timeout = -1;
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
  wait_status = child.Wait();
  int exit_code = ExitCodeOf(wait_status);

  network.reset();
  RemoveContainer(id);  // `run` already deleted it unless it was interrupted
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
