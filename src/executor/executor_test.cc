// Integration tests: real containers through crun on a busybox rootfs.
// They run as root.
#include "executor/executor.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "canary_disk.h"

// Designated initializers below name only the members a test sets; the
// rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// Interface names of a /proc/net/dev listing.
std::set<std::string> Interfaces(const std::string& net_dev) {
  std::set<std::string> out;
  std::istringstream in(net_dev);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    out.insert(name);
  }
  return out;
}

// Everything below `dir`, as paths relative to it.
std::set<std::string> Tree(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.insert(fs::relative(e.path(), dir).string());
  return out;
}

struct Output {
  Status status;
  std::string out, err;
};

using kiln::testing::CanaryDisk;

// A TCP server on `addr` that answers every connection with "hello\n".
class HelloServer {
 public:
  explicit HelloServer(const std::string& addr) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd_, 16) != 0) return;
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        (void)!write(c, "hello\n", 6);
        close(c);
      }
    });
  }
  ~HelloServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
  std::thread thread_;
};

// The host's first non-loopback IPv4 address ("" when it has none).
std::string HostAddress() {
  ifaddrs* all = nullptr;
  std::string out;
  if (getifaddrs(&all) != 0) return out;
  for (ifaddrs* i = all; i && out.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) != 0) out = buf;
  }
  freeifaddrs(all);
  return out;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-executor-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    rootfs_ = tmp_ / "rootfs";
    fs::create_directories(rootfs_ / "bin");
    fs::create_directories(rootfs_ / "etc");
    fs::copy_file("/bin/busybox", rootfs_ / "bin/busybox");
    for (const char* applet :
         {"sh",  "echo", "cat",  "id", "ls",    "sleep", "hostname", "mkdir", "touch", "env",
          "pwd", "stat", "grep", "wc", "mknod", "dd",    "nc",       "head",  "od",    "ip"}) {
      fs::create_symlink("busybox", rootfs_ / "bin" / applet);
    }
    WriteText(rootfs_ / "etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\n"
              "app:x:1000:1000:App:/home/app:/bin/sh\n");
    WriteText(rootfs_ / "etc/group",
              "root:x:0:\n"
              "staff:x:50:app\n"
              "app:x:1000:\n");
    Result<std::unique_ptr<Executor>> e =
        Executor::Open({.state_dir = tmp_ / "state", .runtime = ""});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    executor_ = std::move(*e);
    // The rootfs as it was before any run.
    before_ = Tree(rootfs_);
  }

  void TearDown() override {
    executor_.reset();
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  Output Run(ProcessSpec process, RunOptions options = {}) {
    Output o;
    options.rootfs = rootfs_;
    options.on_stdout = [&](std::string_view s) { o.out.append(s); };
    options.on_stderr = [&](std::string_view s) { o.err.append(s); };
    o.status = executor_->Run(process, options);
    return o;
  }

  Output Sh(const std::string& script, ProcessSpec process = {}, RunOptions options = {}) {
    process.args = {"/bin/sh", "-c", script};
    return Run(std::move(process), std::move(options));
  }

  // The runtime's containers under the executor's state dir.
  std::string RuntimeList() {
    std::string cmd = "crun --root " + (tmp_ / "state/runtime").string() + " list -q 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }

  fs::path tmp_, rootfs_;
  std::unique_ptr<Executor> executor_;
  std::set<std::string> before_;
};

TEST_F(ExecutorTest, ReportsTheRuntimeVersion) {
  EXPECT_THAT(executor_->runtime_version(), ::testing::StartsWith("crun 1."));
}

TEST_F(ExecutorTest, MissingRuntimeIsFailedPrecondition) {
  Result<std::unique_ptr<Executor>> e =
      Executor::Open({.state_dir = tmp_ / "state2", .runtime = "/nonexistent/crun"});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.status().message(),
            "OCI runtime /nonexistent/crun not found or not executable; install the Debian package "
            "crun or runc");
}

TEST_F(ExecutorTest, BadInputIsRejectedBeforeRunning) {
  Output o = Run({});
  EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status.message(), "executor: the process has no arguments");

  o = Sh("true", {.cwd = "work"});
  EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status.message(), "executor: working directory \"work\" is not an absolute path");

  RunOptions opts;
  opts.mounts.push_back({.type = Mount::Type::kTmpfs, .dest = "/.."});
  o = Sh("true", {}, opts);
  EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status.message(), "executor: mount target \"/..\" must be an absolute path below /");

  opts.mounts = {{.type = Mount::Type::kBind, .dest = "/src", .source = "relative/dir"}};
  o = Sh("true", {}, opts);
  EXPECT_EQ(o.status.message(),
            "executor: bind mount source \"relative/dir\" for /src must be an absolute host path");
  EXPECT_EQ(Tree(rootfs_), before_);
}

// Issue 15, failure 10: bytes that are not UTF-8 in the command gave
// nlohmann::json's type_error text ("[json.exception.type_error.316] ...");
// each field is named now, and nothing is created in the root.
TEST_F(ExecutorTest, TextThatIsNotUtf8IsNamedBeforeRunning) {
  Output o = Sh("echo caf\xe9");
  EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status.message(),
            "executor: argument 3 is not valid UTF-8 (byte 0xe9 at offset 8): an OCI runtime "
            "takes it as JSON text, which must be UTF-8");
  o = Sh("true", {.env = {"OK=1",
                          "TOKEN=s3cr\xff"
                          "et"}});
  EXPECT_EQ(o.status.message(),
            "executor: environment variable TOKEN is not valid UTF-8 (byte 0xff at offset 10): an "
            "OCI runtime takes it as JSON text, which must be UTF-8");
  EXPECT_EQ(o.status.message().find("s3cr"), std::string::npos);
  o = Sh("true", {.cwd = "/caf\xe9"});
  EXPECT_EQ(o.status.message().rfind("executor: working directory is not valid UTF-8", 0), 0u);
  RunOptions opts;
  opts.mounts.push_back({.type = Mount::Type::kTmpfs, .dest = "/t\xc3"});
  o = Sh("true", {}, opts);
  EXPECT_EQ(o.status.message().rfind("executor: mount target is not valid UTF-8", 0), 0u);
  EXPECT_EQ(Tree(rootfs_), before_);
}

TEST_F(ExecutorTest, CapturesStdoutAndStderrSeparately) {
  Output o = Sh("echo out; echo err >&2; echo out2");
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "out\nout2\n");
  EXPECT_EQ(o.err, "err\n");
}

TEST_F(ExecutorTest, NonZeroExitIsExecFailedWithTheCode) {
  Output o = Sh("echo failing >&2; exit 3");
  EXPECT_EQ(o.status.code(), StatusCode::kExecFailed);
  EXPECT_EQ(o.status.exit_code(), 3);
  EXPECT_EQ(o.status.message(),
            "process \"/bin/sh -c echo failing >&2; exit 3\" did not complete successfully: exit "
            "code: 3");
  EXPECT_EQ(o.err, "failing\n");
}

TEST_F(ExecutorTest, MissingProgramNamesTheRuntimeError) {
  Output o = Run({.args = {"/bin/nonexistent"}});
  EXPECT_EQ(o.status.code(), StatusCode::kExecFailed);
  EXPECT_EQ(o.status.message(),
            "process \"/bin/nonexistent\" did not complete successfully: exit code: 1: crun: "
            "executable file "
            "`/bin/nonexistent` not found in $PATH: No such file or directory");
}

TEST_F(ExecutorTest, EnvGetsDefaultPathAndHome) {
  Output o = Sh("echo \"$FOO|$PATH|$HOME\"", {.env = {"FOO=bar baz"}});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n");

  o = Sh("echo \"$PATH|$HOME\"", {.env = {"PATH=/bin", "HOME=/custom"}});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "/bin|/custom\n");
}

TEST_F(ExecutorTest, WorkingDirectoryIsCreatedAndKept) {
  Output o = Sh("pwd", {.cwd = "/work/sub"});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "/work/sub\n");
  EXPECT_TRUE(fs::is_directory(rootfs_ / "work/sub"));
}

TEST_F(ExecutorTest, UserByNameGetsUidGidGroupsAndHome) {
  Output o = Sh("id; echo $HOME", {.user = "app"});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "uid=1000(app) gid=1000(app) groups=50(staff)\n/home/app\n");
}

TEST_F(ExecutorTest, UserByUidAndGid) {
  Output o = Sh("id", {.user = "1000:50"});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "uid=1000(app) gid=50(staff)\n");

  o = Sh("id", {.user = "4242"});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "uid=4242 gid=0(root)\n");
}

TEST_F(ExecutorTest, UnknownUserFailsBeforeRunning) {
  Output o = Sh("touch /ran", {.user = "nobody"});
  EXPECT_EQ(o.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(o.status.message(), "unable to find user nobody: no matching entries in /etc/passwd");
  EXPECT_FALSE(fs::exists(rootfs_ / "ran"));
}

TEST_F(ExecutorTest, NetworkNoneHasOnlyLoopback) {
  Output o = Sh("cat /proc/net/dev", {.network = Network::kNone});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(Interfaces(o.out), std::set<std::string>({"lo"}));
}

TEST_F(ExecutorTest, NetworkHostSeesTheHostInterfaces) {
  Output o = Sh("cat /proc/net/dev", {.network = Network::kHost});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(Interfaces(o.out), Interfaces(ReadFile("/proc/net/dev")));
}

TEST_F(ExecutorTest, HostnameAndEtcHosts) {
  Output o = Sh("hostname; cat /etc/hosts; grep -c nameserver /etc/resolv.conf",
                {.hostname = "builder", .network = Network::kHost});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_THAT(o.out, ::testing::StartsWith("builder\n127.0.0.1\tlocalhost builder\n"));
  // The host's nameservers.
  size_t host_nameservers = 0;
  std::istringstream in(ReadFile("/etc/resolv.conf"));
  for (std::string line; std::getline(in, line);)
    host_nameservers += line.rfind("nameserver", 0) == 0;
  EXPECT_THAT(o.out, ::testing::EndsWith("\n" + std::to_string(host_nameservers) + "\n"));
}

TEST_F(ExecutorTest, ReadOnlyBindCannotBeWritten) {
  fs::create_directories(tmp_ / "host-ro");
  WriteText(tmp_ / "host-ro/f", "from host\n");
  RunOptions opts;
  opts.mounts.push_back({.type = Mount::Type::kBind,
                         .dest = "/mnt/ro",
                         .source = (tmp_ / "host-ro").string(),
                         .readonly = true});
  Output o = Sh("cat /mnt/ro/f; touch /mnt/ro/new", {}, opts);
  EXPECT_EQ(o.status.code(), StatusCode::kExecFailed);
  EXPECT_EQ(o.out, "from host\n");
  EXPECT_THAT(o.err, HasSubstr("Read-only file system"));
  EXPECT_FALSE(fs::exists(tmp_ / "host-ro/new"));
  EXPECT_FALSE(fs::exists(rootfs_ / "mnt")) << "mount stub left behind";
}

TEST_F(ExecutorTest, ReadWriteBindIsWritten) {
  fs::create_directories(tmp_ / "host-rw");
  RunOptions opts;
  opts.mounts.push_back(
      {.type = Mount::Type::kBind, .dest = "/cache", .source = (tmp_ / "host-rw").string()});
  Output o = Sh("echo written > /cache/new", {}, opts);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(ReadFile(tmp_ / "host-rw/new"), "written\n");
  EXPECT_FALSE(fs::exists(rootfs_ / "cache"));
}

TEST_F(ExecutorTest, TmpfsMountWithSizeLeavesNothing) {
  RunOptions opts;
  opts.mounts.push_back(
      {.type = Mount::Type::kTmpfs, .dest = "/scratch/tmp", .tmpfs_size = 1 << 20});
  Output o =
      Sh("grep ' /scratch/tmp ' /proc/mounts; echo x > /scratch/tmp/file; cat /scratch/tmp/file",
         {}, opts);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_THAT(o.out, ::testing::StartsWith("tmpfs /scratch/tmp tmpfs "));
  EXPECT_THAT(o.out, HasSubstr("size=1024k"));
  EXPECT_THAT(o.out, ::testing::EndsWith("\nx\n"));
  EXPECT_FALSE(fs::exists(rootfs_ / "scratch"));
}

TEST_F(ExecutorTest, SecretIsReadableWithOwnerAndModeAndLeavesNoTrace) {
  const std::string secret = "s3cr3t-value-do-not-leak";
  RunOptions opts;
  opts.mounts.push_back({.type = Mount::Type::kSecret,
                         .dest = "/run/secrets/token",
                         .data = secret,
                         .uid = 1000,
                         .gid = 50,
                         .mode = 0440});
  Output o =
      Sh("cat /run/secrets/token; echo; stat -c '%u %g %a' /run/secrets/token; echo x > "
         "/run/secrets/token",
         {.user = "app"}, opts);
  EXPECT_EQ(o.status.code(), StatusCode::kExecFailed);  // the secret is read-only
  EXPECT_EQ(o.out, secret + "\n1000 50 440\n");
  EXPECT_FALSE(fs::exists(rootfs_ / "run")) << "secret mount stub left behind";
  EXPECT_THAT(o.status.message(), ::testing::Not(HasSubstr(secret)));
  // Nothing of the run stays in the state dir.
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/bundles"));
}

TEST_F(ExecutorTest, RunLeavesOnlyWhatTheProcessWrote) {
  Output o = Sh("echo data > /persist; mkdir -p /made/dir; cat /etc/hosts > /dev/null");
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  std::set<std::string> expected = before_;
  expected.insert({"persist", "made", "made/dir"});
  // No /proc, /dev, /sys, /etc/hosts or /etc/resolv.conf stubs.
  EXPECT_EQ(Tree(rootfs_), expected);
  EXPECT_EQ(ReadFile(rootfs_ / "persist"), "data\n");
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/bundles"));
}

TEST_F(ExecutorTest, ExistingMountPointsAreKept) {
  // An image that ships empty /etc/hosts and /proc keeps them.
  WriteText(rootfs_ / "etc/hosts", "");
  fs::create_directories(rootfs_ / "proc");
  std::set<std::string> before = Tree(rootfs_);
  Output o = Sh("true");
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(Tree(rootfs_), before);
}

TEST_F(ExecutorTest, StubWithContentIsKept) {
  // The process wrote into a directory the runtime created as part of a
  // mount target: that directory stays, the empty ones below it go.
  RunOptions opts;
  fs::create_directories(tmp_ / "host");
  opts.mounts.push_back(
      {.type = Mount::Type::kBind, .dest = "/a/b/c", .source = (tmp_ / "host").string()});
  Output o = Sh("echo kept > /a/file", {}, opts);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(ReadFile(rootfs_ / "a/file"), "kept\n");
  EXPECT_FALSE(fs::exists(rootfs_ / "a/b"));
}

TEST_F(ExecutorTest, CancelKillsTheContainer) {
  util::Canceller canceller;
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  RunOptions opts;
  opts.rootfs = rootfs_;
  opts.cancel = &canceller;
  opts.on_stdout = [&](std::string_view) {
    std::lock_guard<std::mutex> lock(mu);
    started = true;
    cv.notify_all();
  };
  Status result;
  std::thread runner([&] {
    result = executor_->Run({.args = {"/bin/sh", "-c", "echo started; sleep 1000"}}, opts);
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return started; });
  }
  canceller.Cancel("interrupted by test");
  runner.join();
  EXPECT_EQ(result.code(), StatusCode::kCancelled);
  EXPECT_EQ(result.message(), "interrupted by test");
  EXPECT_EQ(RuntimeList(), "");
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/bundles"));
}

TEST_F(ExecutorTest, CancelBeforeTheContainerStarts) {
  util::Canceller canceller;
  RunOptions opts;
  opts.rootfs = rootfs_;
  opts.cancel = &canceller;
  // Cancelled from another thread while Run is starting the runtime: either
  // Run sees it first, or the kill retries until the container exists.
  std::thread canceller_thread([&] { canceller.Cancel(); });
  Status st = executor_->Run({.args = {"/bin/sleep", "1000"}}, opts);
  canceller_thread.join();
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_EQ(st.message(), "build cancelled");
  EXPECT_EQ(RuntimeList(), "");
}

TEST_F(ExecutorTest, RunsInParallel) {
  // Two rootfs (one per RUN, as snapshots give) and a shared host directory
  // where each waits for the other's marker, so the runs must overlap.
  fs::path rootfs2 = tmp_ / "rootfs2";
  fs::copy(rootfs_, rootfs2, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::create_directories(tmp_ / "sync");
  auto run = [&](const fs::path& rootfs, const std::string& me, const std::string& other) {
    Output o;
    RunOptions opts;
    opts.rootfs = rootfs;
    opts.mounts.push_back(
        {.type = Mount::Type::kBind, .dest = "/sync", .source = (tmp_ / "sync").string()});
    opts.on_stdout = [&](std::string_view s) { o.out.append(s); };
    opts.on_stderr = [&](std::string_view s) { o.err.append(s); };
    o.status =
        executor_->Run({.args = {"/bin/sh", "-c",
                                 "echo " + me + "; touch /sync/" + me + "; while [ ! -e /sync/" +
                                     other + " ]; do sleep 0.05; done"}},
                       opts);
    return o;
  };
  Output a, b;
  std::thread ta([&] { a = run(rootfs_, "A", "B"); });
  std::thread tb([&] { b = run(rootfs2, "B", "A"); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.status.ok()) << a.status.ToString() << a.err;
  ASSERT_TRUE(b.status.ok()) << b.status.ToString() << b.err;
  EXPECT_EQ(a.out, "A\n");
  EXPECT_EQ(b.out, "B\n");
  EXPECT_EQ(RuntimeList(), "");
  EXPECT_EQ(Tree(rootfs_), before_);
}

// Guards issue 15 failure 5 (devices): a RUN step, or a layer, could make a
// node for a host disk and read or write it. A real loop device backed by
// a canary file: a node made with mknod (matching major:minor) and one the
// rootfs ships (as a layer would) can be created but neither read nor
// written; the canary keeps its bytes and the device serves no request.
TEST_F(ExecutorTest, HostBlockDevicesCannotBeOpened) {
  CanaryDisk disk(tmp_ / "canary.img");
  ASSERT_TRUE(disk.ok()) << "losetup failed";
  const std::string mm = std::to_string(disk.major_num()) + " " + std::to_string(disk.minor_num());
  fs::create_directories(rootfs_ / "shipped");
  ASSERT_EQ(::mknod((rootfs_ / "shipped/disk").c_str(), S_IFBLK | 0666,
                    makedev(disk.major_num(), disk.minor_num())),
            0);
  const std::pair<long, long> io_before = disk.Io();
  Output o = Sh("mknod /made b " + mm +
                " && echo made; "
                "for d in /made /shipped/disk; do "
                "  dd if=$d of=/copy bs=512 count=1 2>/dev/null && echo copied $d; "
                "  echo pwned | dd of=$d bs=512 conv=notrunc 2>/dev/null && echo wrote $d; "
                "  cat $d >/dev/null 2>&1 && echo read $d; "
                "done; true");
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "made\n");  // mknod works, as in BuildKit; nothing was read or written
  // (Not EXPECT_EQ: gtest's diff of two 1 MiB texts would exhaust memory.)
  EXPECT_TRUE(disk.untouched()) << "the canary was written";
  EXPECT_EQ(disk.Io(), io_before) << "the loop device served a request";
}

// Without device control RUN is refused rather than run unconfined: a
// child process that no longer sees the cgroup v1 "devices" hierarchy (this
// host is not cgroup v2) gets kFailedPrecondition and nothing runs.
TEST_F(ExecutorTest, NoDeviceControlRefusesToRun) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        umount2("/sys/fs/cgroup/devices", MNT_DETACH) != 0) {
      _exit(2);
    }
    Result<std::unique_ptr<Executor>> e =
        Executor::Open({.state_dir = tmp_ / "state-nodev", .runtime = ""});
    if (!e.ok()) _exit(3);
    RunOptions opts;
    opts.rootfs = rootfs_;
    Status st = (*e)->Run({.args = {"/bin/sh", "-c", "touch /ran"}}, opts);
    const bool refused = st.code() == StatusCode::kFailedPrecondition &&
                         st.message().find("RUN needs cgroup device control") != std::string::npos;
    _exit(refused ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "no cgroup v1 devices hierarchy to hide";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "not refused";
  EXPECT_FALSE(fs::exists(rootfs_ / "ran"));
}

// The standard character devices stay usable, including a node RUN makes
// for one of them (as BuildKit allows).
TEST_F(ExecutorTest, StandardCharacterDevicesWork) {
  Output o =
      Sh("echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && "
         "mknod /mynull c 1 3 && echo y > /mynull && echo ok");
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "4\n4\nok\n");
}

// Guards issue 15 failure 5 (network): RUN's default network was the
// host's, so a step reached services on the host's 127.0.0.1.
TEST_F(ExecutorTest, DefaultNetworkIsSandboxedWithOutboundAccess) {
  HelloServer local("127.0.0.1");
  ASSERT_GT(local.port(), 0);
  const std::string host_ip = HostAddress();
  ASSERT_FALSE(host_ip.empty()) << "the host has no non-loopback IPv4 address";
  HelloServer outside(host_ip);
  ASSERT_GT(outside.port(), 0);
  const std::string lp = std::to_string(local.port());
  const std::string script = "nc -w 2 127.0.0.1 " + lp +
                             " </dev/null; echo local=$?; "
                             "nc -w 2 10.0.2.2 " +
                             lp +
                             " </dev/null; echo gateway=$?; "
                             "nc -w 2 " +
                             host_ip + " " + std::to_string(outside.port()) +
                             " </dev/null; echo out=$?; "
                             "cat /sys/class/net/lo/operstate; grep -c 'tap0:' /proc/net/dev; "
                             "grep -c '^tap0\t00000000' /proc/net/route; cat /etc/resolv.conf";
  Output o = Sh(script);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_THAT(o.out, HasSubstr("local=1\n"));
  EXPECT_THAT(o.out, HasSubstr("gateway=1\n"));
  EXPECT_THAT(o.out, HasSubstr("hello\nout=0\n"));
  EXPECT_THAT(o.out, HasSubstr("out=0\nunknown\n1\n1\nnameserver 10.0.2.3\n"));
  EXPECT_THAT(o.out, ::testing::Not(HasSubstr("nameserver 127.")));

  // On request, the host's network, loopback included.
  o = Sh("nc -w 2 127.0.0.1 " + lp + " </dev/null; echo local=$?", {.network = Network::kHost});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString() << o.err;
  EXPECT_EQ(o.out, "hello\nlocal=0\n");
}

// Guards issue 15 failure 7: after SIGKILL of kiln the container kept
// running (crun re-parents it). A process using the executor is killed
// during `sleep 1000`; within 2 s no process of the container is left and
// the runtime lists no running container once the next executor cleans up.
TEST_F(ExecutorTest, ContainerDiesWithItsKilledProcess) {
  fs::create_directories(tmp_ / "sync");
  const std::string marker = "4242" + std::to_string(getpid());
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunOptions opts;
    opts.rootfs = rootfs_;
    opts.mounts.push_back(
        {.type = Mount::Type::kBind, .dest = "/sync", .source = (tmp_ / "sync").string()});
    Status st =
        executor_->Run({.args = {"/bin/sh", "-c", "touch /sync/started; sleep " + marker}}, opts);
    _exit(st.ok() ? 0 : 1);
  }
  for (int i = 0; i < 1000 && !fs::exists(tmp_ / "sync/started"); ++i) usleep(10000);
  ASSERT_TRUE(fs::exists(tmp_ / "sync/started"));
  auto sleepers = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string cmd = ReadFile(e.path() / "cmdline");
      if (cmd.find("sleep") != std::string::npos && cmd.find(marker) != std::string::npos) ++n;
    }
    return n;
  };
  EXPECT_EQ(sleepers(), 1);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status;
  waitpid(child, &status, 0);
  auto start = std::chrono::steady_clock::now();
  while (sleepers() > 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(2))
    usleep(10000);
  EXPECT_EQ(sleepers(), 0) << "the container outlived the process that ran it";

  // An empty cgroup of a container whose root is gone, made two minutes
  // ago, and one just made (a runtime may be about to use it).
  const fs::path orphan = "/sys/fs/cgroup/devices/kiln/k00000000000a-0000000000000001";
  const fs::path fresh = "/sys/fs/cgroup/devices/kiln/k00000000000a-0000000000000002";
  ASSERT_EQ(::mkdir(orphan.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(fresh.c_str(), 0755), 0);
  fs::last_write_time(orphan, fs::file_time_type::clock::now() - std::chrono::minutes(2));

  // What the killed process left (runtime state, bundle, cgroups) goes
  // with ReapContainers.
  std::set<std::string> ids;
  for (const auto& e : fs::directory_iterator(tmp_ / "state/bundles"))
    ids.insert(e.path().filename());
  ASSERT_EQ(ids.size(), 1u);
  Result<util::ReapStats> reaped =
      ReapContainers(tmp_ / "state", [](std::string_view) { return true; });
  ASSERT_TRUE(reaped.ok()) << reaped.status().ToString();
  EXPECT_GE(reaped->items, 1u);
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/bundles"));
  EXPECT_TRUE(fs::is_empty(tmp_ / "state/runtime"));
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/devices/kiln/" + *ids.begin()));
  EXPECT_FALSE(fs::exists(orphan)) << "an orphan cgroup stays";
  EXPECT_TRUE(fs::exists(fresh)) << "a fresh cgroup was removed";
  ::rmdir(fresh.c_str());
}

}  // namespace
}  // namespace kiln::executor
