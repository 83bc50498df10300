// `kiln build` against stalled and slow servers (issue 15, failure 6): every
// network wait ends within a second or two of SIGINT or SIGTERM (exit 130),
// and an operation past its deadline fails with a message naming the
// registry, what was fetched and how to allow more time. The stalls come
// from the fixture's fault proxy (modes trickle, hang, stall) and from
// loopback sockets that accept connections and never answer.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "build_harness.h"

extern char** environ;

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A plain HTTP/1.0 exchange with 127.0.0.1:port; returns the body ("" on
// failure) and sets *status.
std::string HttpCall(const std::string& host_port, const std::string& method,
                     const std::string& path, const std::string& body = "", int* status = nullptr,
                     const std::string& extra_headers = "") {
  const int port = std::stoi(host_port.substr(host_port.rfind(':') + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = method + " " + path + " HTTP/1.0\r\nHost: " + host_port +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                      extra_headers + "\r\n" + body;
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t space = out.find(' ');
  if (status != nullptr) *status = space == std::string::npos ? 0 : std::atoi(&out[space + 1]);
  const size_t head_end = out.find("\r\n\r\n");
  return head_end == std::string::npos ? "" : out.substr(head_end + 4);
}

// A loopback TCP port that accepts connections (the kernel completes the
// handshake) and never says anything: a stalled git or HTTP server.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KILN_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
    KILN_CHECK(::listen(fd_, 64) == 0, "listen");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A kiln process started in the background, its output going to files.
class Background {
 public:
  Background(const std::vector<std::string>& args, const fs::path& dir) {
    out_ = dir / "kiln.out";
    err_ = dir / "kiln.err";
    std::vector<std::string> argv_s = {KilnBinary()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // Without KILN_ROOT and DOCKER_CONFIG from the caller, as Run() does.
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view v(*e);
      if (v.starts_with("KILN_ROOT=") || v.starts_with("DOCKER_CONFIG=")) continue;
      env_s.emplace_back(v);
    }
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    KILN_CHECK(rc == 0, "posix_spawn kiln");
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }

  // Waits up to `limit` for the process to exit; its exit code, -1 when it
  // did not (it is then killed), 128+N when a signal killed it.
  int Wait(std::chrono::seconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      int st = 0;
      const pid_t got = ::waitpid(pid_, &st, WNOHANG);
      if (got == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  bool running() {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      exit_status_ = st;
      pid_ = -1;
    }
    return pid_ > 0;
  }
  void Signal(int sig) { ::kill(pid_, sig); }
  std::string err() const { return ReadAll(err_); }

 private:
  pid_t pid_ = -1;
  int exit_status_ = 0;
  fs::path out_, err_;
};

class NetworkTest : public BuildTest {
 protected:
  NetworkTest() {
    proxy_ = fixture_.Get("FAULT_PROXY");
    const std::string ctl = fixture_.Get("FAULT_CONTROL");  // http://host:port/__fault__
    control_ = ctl.substr(7, ctl.find('/', 7) - 7);
    // A repository of this test's own on the fixture's registry, so that
    // its fault rules touch no other test's requests.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->name());
    for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '-';
    repo_ = "kiln-net-" + name + "-" + std::to_string(::getpid());
    // Through another root: the build's own must not hold the blobs yet.
    RunResult copy = kiln::testing::Run(
        KilnBinary(), {"--root", (dir_.path() / "copy-root").string(), "copy",
                       registry_ + "/busybox:latest", registry_ + "/" + repo_ + ":latest"});
    KILN_CHECK(copy.exit_code == 0, Describe(copy));
  }
  ~NetworkTest() override {
    for (int id : rules_) HttpCall(control_, "DELETE", "/__fault__/rules/" + std::to_string(id));
  }

  // Adds a fault rule (fields as kiln_fixture.py documents them).
  void AddRule(const nlohmann::json& spec) {
    int status = 0;
    const std::string body = HttpCall(control_, "POST", "/__fault__/rules", spec.dump(), &status,
                                      "Content-Type: application/json\r\n");
    ASSERT_EQ(status, 201) << body;
    rules_.push_back(nlohmann::json::parse(body).at("id").get<int>());
  }

  // How many requests the rules of this test have caught.
  int Hits() {
    const std::string body = HttpCall(control_, "GET", "/__fault__/rules");
    int hits = 0;
    const nlohmann::json doc = nlohmann::json::parse(body);
    for (const auto& r : doc.at("rules")) {
      if (std::find(rules_.begin(), rules_.end(), r.at("id").get<int>()) != rules_.end()) {
        hits += r.at("hits").get<int>();
      }
    }
    return hits;
  }

  // The digest of the image's (only) layer, read from the registry.
  std::string LayerDigest() {
    const std::string manifest =
        HttpCall(registry_, "GET", "/v2/" + repo_ + "/manifests/latest", "", nullptr,
                 "Accept: application/vnd.oci.image.manifest.v1+json\r\n");
    return nlohmann::json::parse(manifest).at("layers").at(0).at("digest").get<std::string>();
  }

  // The image through the proxy, where the rules apply.
  std::string Image() const { return proxy_ + "/" + repo_ + ":latest"; }

  void WriteConfig(const nlohmann::json& config) {
    WriteFile(dir_.path() / "config.json", config.dump());
  }

  // `kiln build` of the context in the background, with the config file
  // written by WriteConfig() (an empty one otherwise).
  std::unique_ptr<Background> Start(std::string output = "") {
    if (!fs::exists(dir_.path() / "config.json")) WriteConfig(nlohmann::json::object());
    if (output.empty()) output = "type=oci,dest=" + out().string();
    return std::make_unique<Background>(
        std::vector<std::string>{"--root", root().string(), "--config",
                                 (dir_.path() / "config.json").string(), "build", "--progress",
                                 "plain", "-o", output, ctx().string()},
        dir_.path());
  }

  // Waits (at most 60 s) until a rule of this test has caught a request and
  // `settle` more has passed, so the build is waiting on the fault.
  void WaitForFault(Background& b, std::chrono::milliseconds settle = std::chrono::seconds(1)) {
    const auto end = Clock::now() + std::chrono::seconds(60);
    while (Hits() == 0 && Clock::now() < end && b.running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_GT(Hits(), 0) << "the build never reached the fault; rules: "
                         << HttpCall(control_, "GET", "/__fault__/rules") << "\nstderr:\n"
                         << b.err();
    std::this_thread::sleep_for(settle);
    ASSERT_TRUE(b.running()) << "the build ended before the signal; stderr:\n" << b.err();
  }

  // Sends `sig` and checks that kiln exits 130 within a generous bound;
  // prints the time it took.
  void ExpectCancelled(Background& b, int sig, const std::string& what) {
    const auto t0 = Clock::now();
    b.Signal(sig);
    const int code = b.Wait(std::chrono::seconds(15));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("[ timing ] %s: exit %d %.2f s after %s\n", what.c_str(), code, secs,
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    RecordProperty("seconds_to_exit", std::to_string(secs));
    ASSERT_NE(code, -1) << what << ": kiln still running 15 s after the signal; stderr:\n"
                        << b.err();
    EXPECT_EQ(code, 130) << what << "; stderr:\n" << b.err();
    EXPECT_NE(b.err().find("cancelled"), std::string::npos) << b.err();
  }

  std::string proxy_;
  std::string control_;  // host:port of the fault proxy's control endpoint
  std::string repo_;
  std::vector<int> rules_;
};

// Guards: a manifest trickled at 2 B/s used to hang the build forever.
TEST_F(NetworkTest, TrickledManifestHitsTheDeadlineWithAClearError) {
  AddRule({{"mode", "trickle"},
           {"rate", 2},
           {"method", "GET"},
           {"match", "/" + repo_ + "/manifests/"},
           {"times", -1}});
  WriteFile(ctx() / "Dockerfile", "FROM " + Image() + "\n");
  WriteConfig({{"network", {{"timeout", 3}}}});
  const auto t0 = Clock::now();
  auto b = Start();
  const int code = b->Wait(std::chrono::seconds(60));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("[ timing ] trickled manifest: exit %d after %.2f s\n", code, secs);
  ASSERT_NE(code, -1) << "still running after 60 s; stderr:\n" << b->err();
  EXPECT_EQ(code, 1) << b->err();
  const std::string err = b->err();
  EXPECT_NE(err.find("registry " + proxy_ + ": fetching manifest " + repo_ + "@sha256:"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(": no complete response in 3 s (slow or stalled server); raise it with "
                     "{\"network\": {\"timeout\": SECONDS}} in the kiln config " +
                     (dir_.path() / "config.json").string()),
            std::string::npos)
      << err;
  EXPECT_LT(secs, 30) << "a 3 s deadline";
}

// What stalls, and how the fault proxy makes it stall.
struct Stall {
  const char* name;
  int sig;
};

void PrintTo(const Stall& s, std::ostream* os) {
  *os << s.name << (s.sig == SIGINT ? " SIGINT" : " SIGTERM");
}

class StalledRegistryTest : public NetworkTest, public ::testing::WithParamInterface<Stall> {};

std::string StallName(const ::testing::TestParamInfo<Stall>& info) {
  return std::string(info.param.name) + (info.param.sig == SIGINT ? "_SIGINT" : "_SIGTERM");
}

INSTANTIATE_TEST_SUITE_P(
    Signals, StalledRegistryTest,
    ::testing::Values(Stall{"TrickledManifest", SIGINT}, Stall{"TrickledManifest", SIGTERM},
                      Stall{"NeverHeaders", SIGINT}, Stall{"NeverHeaders", SIGTERM},
                      Stall{"StalledLayer", SIGINT}, Stall{"StalledLayer", SIGTERM},
                      Stall{"Throttled", SIGINT}, Stall{"StalledPush", SIGINT}),
    StallName);

// Guards: SIGINT/SIGTERM were ignored while resolving from a trickling
// registry, held for 5 x 30 s by one that never sends headers (and then exit
// 1), held for the 30 s stall window by a stalled layer download, and held
// for a Retry-After backoff sleep; a push to a registry that never answers
// its upload requests.
TEST_P(StalledRegistryTest, SignalEndsTheBuildWithin15Seconds) {
  const std::string kind = GetParam().name;
  std::string output;
  if (kind == "TrickledManifest") {
    AddRule({{"mode", "trickle"},
             {"rate", 2},
             {"method", "GET"},
             {"match", "/" + repo_ + "/manifests/"},
             {"times", -1}});
    WriteFile(ctx() / "Dockerfile", "FROM " + Image() + "\n");
  } else if (kind == "Throttled") {
    // 429 with Retry-After: 50: the client sleeps before its next attempt.
    AddRule({{"mode", "throttle"},
             {"retry_after", 50},
             {"match", "/" + repo_ + "/manifests/"},
             {"times", -1}});
    WriteFile(ctx() / "Dockerfile", "FROM " + Image() + "\n");
  } else if (kind == "NeverHeaders") {
    AddRule({{"mode", "hang"}, {"match", "/" + repo_ + "/manifests/"}, {"times", -1}});
    WriteFile(ctx() / "Dockerfile", "FROM " + Image() + "\n");
  } else if (kind == "StalledPush") {
    // The base comes straight from the registry; the push goes through the
    // proxy, whose upload requests never get an answer.
    AddRule({{"mode", "hang"}, {"match", "/" + repo_ + "-push/blobs/uploads/"}, {"times", -1}});
    WriteFile(ctx() / "a.txt", "a\n");
    WriteFile(ctx() / "Dockerfile",
              "FROM " + registry_ + "/" + repo_ + ":latest\nCOPY a.txt /a.txt\n");
    output = "type=image,name=" + proxy_ + "/" + repo_ + "-push:latest,push=true";
  } else {
    AddRule({{"mode", "stall"},
             {"after", 1024},
             {"method", "GET"},
             {"match", "/" + repo_ + "/blobs/" + LayerDigest()},
             {"times", -1}});
    WriteFile(ctx() / "a.txt", "a\n");
    WriteFile(ctx() / "Dockerfile", "FROM " + Image() + "\nCOPY a.txt /a.txt\n");
  }
  auto b = Start(output);
  WaitForFault(*b);
  if (HasFatalFailure()) return;
  ExpectCancelled(*b, GetParam().sig, kind);
}

class StalledRemoteTest : public BuildTest, public ::testing::WithParamInterface<int> {};

INSTANTIATE_TEST_SUITE_P(Signals, StalledRemoteTest, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

// Guards: a git remote (git://) or an ADD <url> server that accepts the
// connection and never answers is given up within seconds of the signal.
TEST_P(StalledRemoteTest, GitAndHttpSourcesEndOnSignal) {
  SilentServer silent;
  for (const std::string& add : {"git://" + silent.address() + "/repo.git#main",
                                 "http://" + silent.address() + "/file.txt"}) {
    SCOPED_TRACE(add);
    WriteFile(ctx() / "Dockerfile", "FROM scratch\nADD " + add + " /src\n");
    WriteFile(dir_.path() / "config.json", "{}");
    Background b(
        {"--root", root().string(), "--config", (dir_.path() / "config.json").string(), "build",
         "--progress", "plain", "-o", "type=oci,dest=" + out().string(), ctx().string()},
        dir_.path());
    // No request log on a silent socket: give kiln time to connect.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    ASSERT_TRUE(b.running()) << b.err();
    const auto t0 = Clock::now();
    b.Signal(GetParam());
    const int code = b.Wait(std::chrono::seconds(15));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("[ timing ] %s: exit %d %.2f s after the signal\n", add.c_str(), code, secs);
    ASSERT_NE(code, -1) << "still running 15 s after the signal; stderr:\n" << b.err();
    EXPECT_EQ(code, 130) << b.err();
  }
}

// Guards: a git remote that accepts and never answers kept `git ls-remote`
// waiting forever, and an ADD <url> to such a server waited for the stall
// window; both now end at the configured deadline with a message naming the
// remote, the limit and the config file.
TEST_F(BuildTest, StalledGitAndHttpRemotesHitTheDeadline) {
  SilentServer silent;
  const fs::path config = dir_.path() / "config.json";
  WriteFile(config, R"({"network": {"timeout": 2}})");
  const std::string git = "git://" + silent.address() + "/repo.git";
  // Credentials in the URL never appear in the error.
  const std::string http = "http://kiln:s3cret-pw@" + silent.address() + "/file.txt";
  for (const auto& [add, expected] : std::vector<std::pair<std::string, std::string>>{
           {git + "#main", "git " + git + ": listing refs: no complete response in 2 s"},
           {http, "fetching http://xxxxx:xxxxx@" + silent.address() +
                      "/file.txt: no complete response in 2 s"}}) {
    SCOPED_TRACE(add);
    WriteFile(ctx() / "Dockerfile", "FROM scratch\nADD " + add + " /src\n");
    Background b({"--root", root().string(), "--config", config.string(), "build", "--progress",
                  "plain", "-o", "type=oci,dest=" + out().string(), ctx().string()},
                 dir_.path());
    const auto t0 = Clock::now();
    const int code = b.Wait(std::chrono::seconds(60));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("[ timing ] %s: exit %d after %.2f s\n", add.c_str(), code, secs);
    ASSERT_NE(code, -1) << "still running after 60 s; stderr:\n" << b.err();
    EXPECT_EQ(code, 1) << b.err();
    EXPECT_NE(b.err().find(expected +
                           " (slow or stalled server); raise it with {\"network\": "
                           "{\"timeout\": SECONDS}} in the kiln config " +
                           config.string()),
              std::string::npos)
        << b.err();
    EXPECT_EQ(b.err().find("s3cret-pw"), std::string::npos) << b.err();
  }
}

}  // namespace
}  // namespace kiln::testing
