#include "git_http_server.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>
#include <vector>

#include "kiln_process.h"
#include "util/status.h"

extern char** environ;

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;

// The server: argv root mode auth portfile logfile. Each request is logged
// as "METHOD PATH" plus " fetch" when it asks for objects.
constexpr char kServerPy[] = R"PY(
import base64, http.server, os, subprocess, sys
root, mode, auth, portfile, logfile = sys.argv[1:6]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.serve()
    def do_POST(self):
        self.serve()
    def serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with open(logfile, "a") as f:
            f.write("%s %s%s\n" % (self.command, self.path, " fetch" if b"want " in body else ""))
        if auth != "-":
            want = "Basic " + base64.b64encode(auth.encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, b"", [("WWW-Authenticate", 'Basic realm="git"')])
        path, _, query = self.path.partition("?")
        if mode == "dumb":
            f = os.path.join(root, path.lstrip("/"))
            if self.command != "GET" or not os.path.isfile(f):
                return self.reply(404)
            with open(f, "rb") as fh:
                return self.reply(200, fh.read())
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR="127.0.0.1",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(n))
        for h, v in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
            if self.headers.get(h):
                env[v] = self.headers.get(h)
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, rest = out.partition(sep)
        status, headers = 200, []
        for line in head.decode().splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.reply(status, rest, headers)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
)PY";

std::atomic<int> counter{0};

}  // namespace

GitHttpServer::GitHttpServer(const fs::path& root, const fs::path& scratch, const std::string& mode,
                             const std::string& auth) {
  const int n = counter++;
  log_ = scratch / ("git-http-requests-" + mode + "-" + std::to_string(n));
  const fs::path script = scratch / "git_http_server.py";
  WriteFile(script, kServerPy);
  const fs::path portfile = scratch / ("git-http-port-" + mode + "-" + std::to_string(n));
  WriteFile(log_, "");
  std::vector<std::string> args = {"python3", script.string(),   root.string(), mode,
                                   auth,      portfile.string(), log_.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const int rc = ::posix_spawnp(&pid_, "python3", nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  KILN_CHECK(rc == 0, "cannot start python3 for the git HTTP server");
  for (int i = 0; i < 500 && !fs::exists(portfile); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  port_ = ReadAll(portfile);
  KILN_CHECK(!port_.empty(), "the git HTTP server did not start");
}

GitHttpServer::~GitHttpServer() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::string GitHttpServer::Url(const std::string& userinfo) const {
  return "http://" + (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + port_ + "/";
}

int GitHttpServer::Fetches() const {
  std::istringstream in(ReadAll(log_));
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 6 && line.substr(line.size() - 6) == " fetch") ++n;
  }
  return n;
}

void GitHttpServer::ClearLog() const { WriteFile(log_, ""); }

}  // namespace kiln::testing
