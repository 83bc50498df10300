#include "sanitizer_reports.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;

// The folder reports go to, or empty when reports are not routed.
std::string ReportsDir() {
  const char* dir = std::getenv("KILN_SANITIZER_REPORTS");
  return dir != nullptr ? std::string(dir) : std::string();
}

// The sanitizers name the file "<log_path>.<pid>".
std::string Prefix(const std::string& program) {
  return (fs::path(ReportsDir()) / fs::path(program).filename()).string();
}

}  // namespace

void RouteSanitizerReports(const std::string& program, std::vector<std::string>* env) {
  if (ReportsDir().empty()) return;
  const std::string option = "log_path=" + Prefix(program);
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
    const std::string key = std::string(name) + "=";
    bool found = false;
    for (std::string& e : *env) {
      if (e.rfind(key, 0) != 0) continue;
      found = true;
      if (e.size() > key.size()) e += ":";
      e += option;
    }
    if (!found) env->push_back(key + option);
  }
}

std::string CollectSanitizerReports(const std::string& program, pid_t pid) {
  if (ReportsDir().empty()) return "";
  const fs::path file = Prefix(program) + "." + std::to_string(pid);
  std::error_code ec;
  if (!fs::exists(file, ec)) return "";
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  ADD_FAILURE() << "sanitizer report from " << program << " (pid " << pid << ", " << file.string()
                << "):\n"
                << text.str();
  return text.str();
}

}  // namespace kiln::testing
