// Helpers for end-to-end tests that run the kiln binary: temp directories,
// files, and running kiln with captured output and a controlled environment.
// Thread-safety: plain functions; TempDir is a value owned by one test.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kiln::testing {

// A fresh directory under $TMPDIR, removed with its content (read-only
// blobs included) when destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kiln-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string ReadAll(const std::filesystem::path& path);
// Creates parent directories.
void WriteFile(const std::filesystem::path& path, const std::string& data);

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or not started
  int signal = 0;
  std::string out;
  std::string err;
};

struct RunOptions {
  // Variables set (or, with an empty value and unset=true, removed).
  std::map<std::string, std::string> env;
  std::vector<std::string> unset = {"KILN_ROOT", "DOCKER_CONFIG"};
  // When not empty, SIGINT is sent once stderr contains `interrupt_after`.
  std::string interrupt_after;
  // Called with the child's pid and its stderr so far after each read from
  // it, and about every 20 ms while the child runs; it may signal the child
  // (the pid stays valid: the child is reaped only after the last call).
  std::function<void(int pid, const std::string& err)> watch;
};

// Runs `program` with `args`, stdout and stderr captured. Returns when the
// child has exited, with what it wrote until then (output still written by
// descendants that outlive it, holding its pipes, is not waited for).
RunResult Run(const std::string& program, const std::vector<std::string>& args,
              const RunOptions& options = {});

// "exit N\nstdout:\n...\nstderr:\n..." for failure messages.
std::string Describe(const RunResult& r);

}  // namespace kiln::testing
