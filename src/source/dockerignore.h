// .dockerignore: Docker's pattern matcher, with identical semantics
// (moby/patternmatcher as used by `docker build` and BuildKit v0.10):
// one pattern per line, `#` comments, blank lines ignored, leading and
// trailing whitespace trimmed, patterns cleaned (filepath.Clean) and
// leading "/" dropped, `!` re-includes, the last matching pattern wins,
// `*`, `?`, `[...]`, `\` escapes and `**` (any number of directories); a
// pattern matching a directory excludes everything under it; a path is
// also matched through its parent directories.
//
// Thread-safety: an IgnoreMatcher is immutable after Parse.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kiln::source {

class IgnoreMatcher {
 public:
  // Parses .dockerignore content; a bad pattern is kInvalidArgument naming
  // ".dockerignore:LINE" and the pattern.
  static Result<IgnoreMatcher> Parse(std::string_view text);
  static Result<IgnoreMatcher> FromPatterns(std::vector<std::string> patterns);

  bool empty() const { return patterns_.empty(); }
  // `path` is relative to the context root, "/"-separated, cleaned.
  bool Excluded(std::string_view path) const;
  // Whether a directory that is itself excluded may still hold an included
  // path (some `!` pattern could match below it), so a walk must descend.
  bool MayIncludeBelow(std::string_view dir) const;

  struct Pattern {
    std::string text;  // cleaned, without "!"
    bool exclusion = true;
    std::vector<std::string> dirs;  // text split at "/"
  };
  const std::vector<Pattern>& patterns() const { return patterns_; }

 private:
  struct Compiled;  // patterns_ compiled for matching; shared, immutable
  std::vector<Pattern> patterns_;
  std::shared_ptr<const Compiled> compiled_;
};

// Go's path.Match: whether `name` matches the shell pattern `pattern` as a
// whole (`*` and `?` never match "/", `[...]` classes with `^` negation and
// ranges, `\` escapes). A malformed pattern is kInvalidArgument ("syntax
// error in pattern") whatever `name` is. Used for COPY wildcards, one path
// component at a time.
Result<bool> PathMatch(std::string_view pattern, std::string_view name);

// Go's path.Clean for "/"-separated paths: collapses "//", "." and "..",
// drops a trailing "/"; "" becomes ".".
std::string CleanPath(std::string_view path);

}  // namespace kiln::source
