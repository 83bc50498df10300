// libFuzzer entry point for .dockerignore patterns (source/dockerignore.h):
// pattern compilation and matching against fuzzed paths. The input is a
// .dockerignore text, then a NUL byte, then the paths to match, one a line
// (without a NUL the lines are both the patterns and the paths). Besides
// crashes, sanitizer findings and slow matches (catastrophic backtracking
// shows as a libFuzzer timeout) it checks the promise the context walk
// (source/local.cc) relies on to prune: when a directory is excluded and
// MayIncludeBelow() says nothing below it can be re-included, every path
// below it is excluded. It also checks that PathMatch reports a malformed
// pattern whatever the name, and that CleanPath is idempotent.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "source/dockerignore.h"
#include "util/status.h"

namespace src = kiln::source;

namespace {

std::vector<std::string_view> Lines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    out.push_back(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view ignore = input.substr(0, nul);
  const std::string_view path_text = nul == std::string_view::npos ? input : input.substr(nul + 1);
  std::vector<std::string_view> paths = Lines(path_text);
  if (paths.size() > 64) paths.resize(64);

  for (std::string_view p : paths) {
    const std::string once = src::CleanPath(p);
    KILN_CHECK(src::CleanPath(once) == once, "CleanPath is not idempotent: " + once);
  }

  // Shell patterns (COPY wildcards): each line against each path component.
  std::vector<std::string_view> patterns = Lines(ignore);
  if (patterns.size() > 16) patterns.resize(16);
  // KILN_FUZZ_PRINT=1 prints every answer, to compare two matchers.
  static const bool print = std::getenv("KILN_FUZZ_PRINT") != nullptr;
  for (std::string_view pattern : patterns) {
    auto empty = src::PathMatch(pattern, "");
    for (std::string_view p : paths) {
      auto r = src::PathMatch(pattern, p.substr(0, p.find('/')));
      if (print) std::printf("match %d %d\n", r.ok(), r.ok() && *r);
      KILN_CHECK(r.ok() == empty.ok(), "PathMatch reports a bad pattern only for some names");
    }
  }

  auto m = src::IgnoreMatcher::Parse(ignore);
  if (!m.ok()) {
    KILN_CHECK(m.status().code() == kiln::StatusCode::kInvalidArgument &&
                   m.status().message().starts_with(".dockerignore:"),
               "Parse error: " + m.status().ToString());
    return 0;
  }
  for (std::string_view raw : paths) {
    const std::string p = src::CleanPath(raw);
    const bool excluded = m->Excluded(p);
    if (print) std::printf("excluded %d below %d\n", excluded, m->MayIncludeBelow(p));
    if (p == ".." || p.starts_with("../")) continue;  // a walk never meets these
    KILN_CHECK(m->Excluded(raw) == excluded, "Excluded() depends on how the path is written");
    // Every ancestor that prunes the walk must exclude the path.
    for (size_t k = 0; k < p.size(); ++k) {
      if (p[k] != '/' || k == 0) continue;
      const std::string dir = p.substr(0, k);
      if (m->Excluded(dir) && !m->MayIncludeBelow(dir)) {
        KILN_CHECK(excluded, "\"" + p + "\" is included but the walk prunes \"" + dir + "\"");
      }
    }
  }
  return 0;
}
