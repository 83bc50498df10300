// The executor: runs one process of a RUN step in a container through an
// OCI runtime (crun if installed, else runc; both Debian packages) from a
// runtime spec it generates: the rootfs given by the caller (a snapshot's
// writable mount), namespaces (mount, pid, ipc, uts, network unless
// kHost), the default capability set of Docker, the user resolved from the
// image's /etc/passwd and /etc/group (util/userdb.h), env, the working
// directory (created if missing), a hostname, /proc, /dev, /dev/shm, /sys
// read-only, and /etc/hosts and /etc/resolv.conf bind-mounted from generated
// files. Extra mounts (bind, tmpfs, and secrets passed as bytes) come from
// the caller.
//
// Containment beyond the namespaces: the device cgroup lets the process
// read or write only the standard character devices (null, zero, full,
// random, urandom, tty, console, ptmx, pts), whatever nodes it makes or
// the rootfs holds; a host without cgroup device control gets
// kFailedPrecondition instead of a run. The runtime runs as pid 1 of a PID
// namespace of kiln's that dies with kiln (even by SIGKILL), and the
// container's processes with it.
//
// Nothing of the run's plumbing reaches the rootfs: mount points the
// runtime had to create (for /etc/hosts, a secret's target, a bind target)
// are removed afterwards when they did not exist before, and secret bytes
// live only in a private tmpfs under the executor's state dir.
//
// stdout and stderr stream to the caller's sinks as they arrive. Cancel
// kills the container (SIGKILL through the runtime) and Run returns
// kCancelled after the runtime has cleaned up. A non-zero exit is
// kExecFailed with Status::exit_code().
//
// Thread-safety: Run may be called from several threads at once; each run
// has its own container id and bundle.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/cancel.h"
#include "util/owner.h"
#include "util/status.h"

namespace kiln::executor {

// kSandbox (the default): a network namespace of the step's own with
// outbound access through slirp4netns (user-mode NAT); the host's loopback
// is not reachable. kHost: the host's network (RUN --network=host). kNone:
// loopback only.
enum class Network { kSandbox, kHost, kNone };

struct Mount {
  enum class Type { kBind, kTmpfs, kSecret };
  Type type = Type::kBind;
  std::string dest;                        // absolute path in the container
  std::string source;                      // kBind: host path
  bool readonly = false;                   // kBind
  long long tmpfs_size = 0;                // kTmpfs, bytes; 0 = runtime default
  std::string data;                        // kSecret: the secret's bytes (never logged)
  unsigned uid = 0, gid = 0, mode = 0400;  // kSecret: file owner and mode
};

struct ProcessSpec {
  std::vector<std::string> args;
  std::vector<std::string> env;  // "NAME=value"; PATH gets Docker's default when absent
  std::string cwd = "/";
  std::string user;  // "" = root; "name", "uid", "name:group", "uid:gid"
  std::string hostname = "kiln";
  Network network = Network::kSandbox;
};

struct RunOptions {
  std::filesystem::path rootfs;  // writable full filesystem
  std::vector<Mount> mounts;
  std::function<void(std::string_view)> on_stdout;  // may be null
  std::function<void(std::string_view)> on_stderr;  // may be null
  util::Canceller* cancel = nullptr;
  // The process's architecture (Go name: "arm64", "arm", ...); "" = the
  // host's. A foreign one runs through its binfmt_misc emulator (see
  // emulation.h); kFailedPrecondition saying how to install one when none
  // is registered.
  std::string arch;
};

struct Options {
  std::filesystem::path state_dir;  // ROOT/executor: bundles, runtime state
  std::string runtime;              // program path; "" = crun, else runc, from PATH
};

class Executor {
 public:
  // kFailedPrecondition naming the packages to install when no runtime is
  // found.
  static Result<std::unique_ptr<Executor>> Open(Options options);
  ~Executor();

  // The runtime in use ("crun 1.8.1" / "runc 1.1.5").
  const std::string& runtime_version() const;

  Status Run(const ProcessSpec& process, const RunOptions& options);

  struct Impl;

 private:
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Stops and removes the containers under `state_dir` (an Options::state_dir)
// whose ids `stale` accepts: what a killed kiln left (util/owner.h). Every
// process left in such a container's cgroups is killed before its runtime
// state and bundle are removed; kFailedPrecondition when one cannot be.
// Also removes empty kiln container cgroups older than a minute whatever
// root they came from (a killed kiln's whose root was deleted).
Result<util::ReapStats> ReapContainers(const std::filesystem::path& state_dir,
                                       const util::StaleFn& stale);

}  // namespace kiln::executor
