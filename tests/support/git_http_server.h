// A loopback HTTP server for git repositories, for tests: smart HTTP through
// `git http-backend`, or the files as they are (dumb HTTP, which also serves
// remote build contexts: tarballs, Dockerfiles); optionally requiring basic
// credentials. It runs python3 in its own process group, killed by its PID
// when the object is destroyed, and logs every request so tests can count
// object fetches.
// Thread-safety: owned by one test.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace kiln::testing {

class GitHttpServer {
 public:
  // Serves the files under `root`; `mode` is "smart" or "dumb"; `auth`
  // ("user:password", or "-" for none) is required of every request.
  // `scratch` holds the script, the port file and the request log.
  GitHttpServer(const std::filesystem::path& root, const std::filesystem::path& scratch,
                const std::string& mode, const std::string& auth = "-");
  ~GitHttpServer();
  GitHttpServer(const GitHttpServer&) = delete;
  GitHttpServer& operator=(const GitHttpServer&) = delete;

  // http://[userinfo@]127.0.0.1:PORT/
  std::string Url(const std::string& userinfo = "") const;
  // Requests so far that fetched objects (a `want` line in their body).
  int Fetches() const;
  void ClearLog() const;

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::string port_;
};

}  // namespace kiln::testing
