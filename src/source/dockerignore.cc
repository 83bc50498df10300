#include "source/dockerignore.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace kiln::source {
namespace {

// One element of a compiled pattern. Shell patterns (PathMatch) use kLiteral,
// kOne, kStar and kClass; .dockerignore patterns add the two `**` forms.
enum class TokKind {
  kLiteral,  // one code point
  kOne,      // `?`: any code point but '/'
  kStar,     // `*`: any run of code points without '/'
  kClass,    // `[...]`: one code point in (or, negated, not in) the ranges
  kDirs,     // `**/` or inner `**`: empty, or any string ending in '/'
  kRest,     // trailing `**`: anything, '/' included
};

struct Range {
  char32_t lo;
  char32_t hi;
};

struct Token {
  explicit Token(TokKind k, char32_t c = 0) : kind(k), ch(c) {}
  TokKind kind;
  char32_t ch;
  bool negated = false;
  std::vector<Range> ranges;
};

using Tokens = std::vector<Token>;

// Decodes the UTF-8 code point at s[*i] and advances *i. A malformed byte
// decodes as itself (one byte), which keeps matching byte-exact for names
// that are not UTF-8.
char32_t NextRune(std::string_view s, size_t* i) {
  auto b = static_cast<unsigned char>(s[*i]);
  int len = 0;
  char32_t r = 0;
  if (b < 0x80) {
    ++*i;
    return b;
  } else if ((b & 0xE0) == 0xC0) {
    len = 2;
    r = b & 0x1F;
  } else if ((b & 0xF0) == 0xE0) {
    len = 3;
    r = b & 0x0F;
  } else if ((b & 0xF8) == 0xF0) {
    len = 4;
    r = b & 0x07;
  } else {
    ++*i;
    return b;
  }
  if (*i + len > s.size()) {
    ++*i;
    return b;
  }
  for (int k = 1; k < len; ++k) {
    auto c = static_cast<unsigned char>(s[*i + k]);
    if ((c & 0xC0) != 0x80) {
      ++*i;
      return b;
    }
    r = (r << 6) | (c & 0x3F);
  }
  *i += len;
  return r;
}

const Status kSyntaxError = Status::InvalidArgument("syntax error in pattern");

// Reads one class member (a code point, possibly `\`-escaped) at p[*i].
Result<char32_t> ClassChar(std::string_view p, size_t* i) {
  if (*i >= p.size() || p[*i] == '-' || p[*i] == ']') return kSyntaxError;
  if (p[*i] == '\\') {
    ++*i;
    if (*i >= p.size()) return kSyntaxError;
  }
  char32_t r = NextRune(p, i);
  if (*i >= p.size()) return kSyntaxError;  // the class never closes
  return r;
}

// Parses a class whose '[' is at p[*i - 1].
Result<Token> ParseClass(std::string_view p, size_t* i, bool strict_ranges) {
  Token t(TokKind::kClass);
  if (*i < p.size() && p[*i] == '^') {
    t.negated = true;
    ++*i;
  }
  while (true) {
    if (*i < p.size() && p[*i] == ']' && !t.ranges.empty()) {
      ++*i;
      return t;
    }
    KILN_ASSIGN_OR_RETURN(char32_t lo, ClassChar(p, i));
    char32_t hi = lo;
    if (p[*i] == '-') {
      ++*i;
      KILN_ASSIGN_OR_RETURN(hi, ClassChar(p, i));
    }
    if (strict_ranges && hi < lo) {
      return Status::InvalidArgument("invalid character class range");
    }
    t.ranges.push_back({lo, hi});
  }
}

// Compiles a pattern. `docker` selects .dockerignore's `**` handling; shell
// patterns treat "**" as "*".
Result<Tokens> Compile(std::string_view p, bool docker) {
  Tokens out;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '*') {
      ++i;
      if (docker && i < p.size() && p[i] == '*') {
        ++i;
        if (i < p.size() && p[i] == '/') ++i;
        out.emplace_back(i == p.size() ? TokKind::kRest : TokKind::kDirs);
      } else if (out.empty() || out.back().kind != TokKind::kStar) {
        out.emplace_back(TokKind::kStar);
      }
    } else if (c == '?') {
      ++i;
      out.emplace_back(TokKind::kOne);
    } else if (c == '[') {
      ++i;
      KILN_ASSIGN_OR_RETURN(Token t, ParseClass(p, &i, docker));
      out.push_back(std::move(t));
    } else if (c == '\\') {
      ++i;
      if (i >= p.size()) return kSyntaxError;
      out.emplace_back(TokKind::kLiteral, NextRune(p, &i));
    } else {
      out.emplace_back(TokKind::kLiteral, NextRune(p, &i));
    }
  }
  return out;
}

bool InClass(const Token& t, char32_t r) {
  bool in = false;
  for (const Range& range : t.ranges) {
    if (range.lo <= r && r <= range.hi) {
      in = true;
      break;
    }
  }
  return in != t.negated;
}

// Whether tokens[ti..] match all of s[si..]: a run of the pattern as an NFA
// over the bytes of s, without recursion or backtracking. A state is a
// token index and, for `**`, whether it is skipping (inside the "any string
// ending in '/'" it may match, where the next token may only start after a
// '/'). pending[row] holds the states reachable at byte offset si (row =
// si % kRing; a token that consumes a code point jumps 1-4 bytes ahead).
// `*` consumes any byte but '/', one at a time. O(tokens x |s|) steps and
// O(tokens) memory: a .dockerignore can come from a remote context, and
// backtracking took exponential time on patterns such as
// "*a*a*a*a*a*a*a*a*b".
bool MatchAt(const Tokens& tokens, size_t ti, std::string_view s, size_t si) {
  // Without `*` or `**` a pattern matches one code point per token: no
  // states to keep (the common case: a context walk matches every path).
  bool plain = true;
  for (size_t t = ti; t < tokens.size() && plain; ++t) {
    plain = tokens[t].kind != TokKind::kStar && tokens[t].kind != TokKind::kDirs &&
            tokens[t].kind != TokKind::kRest;
  }
  if (plain) {
    for (; ti < tokens.size(); ++ti) {
      if (si >= s.size()) return false;
      const Token& tok = tokens[ti];
      const char32_t r = NextRune(s, &si);
      if (tok.kind == TokKind::kLiteral && r != tok.ch) return false;
      if (tok.kind == TokKind::kOne && r == '/') return false;
      if (tok.kind == TokKind::kClass && !InClass(tok, r)) return false;
    }
    return si == s.size();
  }
  constexpr size_t kRing = 5;
  const size_t states = 2 * (tokens.size() + 1);  // 2 * t + skipping
  // Scratch reused across calls on this thread (no allocation per match).
  thread_local std::vector<size_t> pending[kRing];
  thread_local std::vector<size_t> seen;
  for (auto& row : pending) row.clear();
  // seen[row * states + state] == offset: the state is pending there.
  seen.assign(kRing * states, SIZE_MAX);
  size_t queued = 0;  // entries in all rows
  auto add = [&](size_t at, size_t t, bool skipping) {
    const size_t state = 2 * t + (skipping ? 1 : 0);
    size_t& stamp = seen[(at % kRing) * states + state];
    if (stamp == at) return;
    stamp = at;
    pending[at % kRing].push_back(state);
    ++queued;
  };
  add(si, ti, false);
  for (; queued > 0 && si <= s.size(); ++si) {
    std::vector<size_t>& now = pending[si % kRing];
    // `now` grows while it is read: `*` and `**` also match the empty string.
    for (size_t k = 0; k < now.size(); ++k) {
      const size_t t = now[k] / 2;
      const bool skipping = now[k] % 2 == 1;
      if (t == tokens.size()) {
        if (si == s.size()) return true;
        continue;
      }
      const Token& tok = tokens[t];
      switch (tok.kind) {
        case TokKind::kRest:
          return true;
        case TokKind::kDirs:
          if (!skipping) add(si, t + 1, false);  // the empty string
          if (si < s.size()) {
            add(si + 1, t, true);
            if (s[si] == '/') add(si + 1, t + 1, false);
          }
          break;
        case TokKind::kStar:
          add(si, t + 1, false);
          if (si < s.size() && s[si] != '/') add(si + 1, t, false);
          break;
        case TokKind::kLiteral:
        case TokKind::kOne:
        case TokKind::kClass: {
          if (si >= s.size()) break;
          size_t next = si;
          const char32_t r = NextRune(s, &next);
          if (tok.kind == TokKind::kLiteral && r != tok.ch) break;
          if (tok.kind == TokKind::kOne && r == '/') break;
          if (tok.kind == TokKind::kClass && !InClass(tok, r)) break;
          add(next, t + 1, false);
          break;
        }
      }
    }
    queued -= now.size();
    now.clear();
  }
  return false;
}

std::vector<std::string> Split(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

struct IgnoreMatcher::Compiled {
  std::vector<Tokens> whole;                // per pattern, the whole text
  std::vector<std::vector<Tokens>> by_dir;  // per pattern, each "/" component
};

std::string CleanPath(std::string_view path) {
  if (path.empty()) return ".";
  bool rooted = path.front() == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(i, slash - i);
    i = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out += '/';
    out += parts[k];
  }
  return out.empty() ? "." : out;
}

Result<bool> PathMatch(std::string_view pattern, std::string_view name) {
  KILN_ASSIGN_OR_RETURN(Tokens tokens, Compile(pattern, /*docker=*/false));
  return MatchAt(tokens, 0, name, 0);
}

Result<IgnoreMatcher> IgnoreMatcher::FromPatterns(std::vector<std::string> patterns) {
  IgnoreMatcher m;
  auto compiled = std::make_shared<Compiled>();
  for (const std::string& raw : patterns) {
    std::string_view p = TrimSpace(raw);
    if (p.empty()) continue;
    Pattern pattern;
    if (p.front() == '!') {
      pattern.exclusion = false;
      p = TrimSpace(p.substr(1));
      if (p.empty()) {
        return Status::InvalidArgument(
            "invalid exclude pattern \"!\": \"!\" must be followed by the pattern it re-includes");
      }
    }
    std::string clean = CleanPath(p);
    if (clean.size() > 1 && clean.front() == '/') clean.erase(0, 1);
    // Shell syntax first (as `docker build` checks it), then the compiled form.
    auto shell = Compile(clean, /*docker=*/false);
    if (!shell.ok()) {
      return Status::InvalidArgument("invalid exclude pattern " + Quote(raw) + ": " +
                                     shell.status().message());
    }
    auto whole = Compile(clean, /*docker=*/true);
    if (!whole.ok()) {
      return Status::InvalidArgument("invalid exclude pattern " + Quote(raw) + ": " +
                                     whole.status().message());
    }
    pattern.text = clean;
    pattern.dirs = Split(clean);
    std::vector<Tokens> dirs;
    for (const std::string& d : pattern.dirs) {
      auto t = Compile(d, /*docker=*/true);
      // A component of a valid pattern can only fail when a class spans a
      // "/" ("[/]"); such a component matches nothing below it.
      dirs.push_back(t.ok() ? std::move(*t) : Tokens{Token(TokKind::kLiteral, U'\0')});
    }
    compiled->whole.push_back(std::move(*whole));
    compiled->by_dir.push_back(std::move(dirs));
    m.patterns_.push_back(std::move(pattern));
  }
  m.compiled_ = std::move(compiled);
  return m;
}

Result<IgnoreMatcher> IgnoreMatcher::Parse(std::string_view text) {
  std::vector<std::string> patterns;
  std::vector<int> lines;
  int line_no = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(i, nl - i);
    i = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 0 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    ++line_no;
    if (!line.empty() && line.front() == '#') continue;
    line = TrimSpace(line);
    if (line.empty()) continue;
    patterns.emplace_back(line);
    lines.push_back(line_no);
  }
  // Validate line by line so the error can name the line.
  for (size_t k = 0; k < patterns.size(); ++k) {
    auto one = FromPatterns({patterns[k]});
    if (!one.ok()) {
      return Status::InvalidArgument(".dockerignore:" + std::to_string(lines[k]) + ": " +
                                     one.status().message());
    }
  }
  return FromPatterns(std::move(patterns));
}

bool IgnoreMatcher::Excluded(std::string_view raw_path) const {
  if (patterns_.empty()) return false;
  std::string path = CleanPath(raw_path);
  if (path.size() > 1 && path.front() == '/') path.erase(0, 1);
  if (path == "." || path == "/") return false;  // the context root is never excluded
  // The parent directories, shortest first ("a", "a/b" for "a/b/c").
  std::vector<std::string_view> parents;
  for (size_t k = 0; k < path.size(); ++k) {
    if (path[k] == '/') parents.push_back(std::string_view(path).substr(0, k));
  }
  bool matched = false;
  for (size_t p = 0; p < patterns_.size(); ++p) {
    // A pattern can only change the outcome: an exclude pattern when the
    // path is not yet excluded, a `!` pattern when it is.
    if (patterns_[p].exclusion == matched) continue;
    const Tokens& tokens = compiled_->whole[p];
    bool match = MatchAt(tokens, 0, path, 0);
    for (size_t k = 0; !match && k < parents.size(); ++k) {
      match = MatchAt(tokens, 0, parents[k], 0);
    }
    if (match) matched = patterns_[p].exclusion;
  }
  return matched;
}

bool IgnoreMatcher::MayIncludeBelow(std::string_view raw_dir) const {
  std::string dir = CleanPath(raw_dir);
  if (dir.size() > 1 && dir.front() == '/') dir.erase(0, 1);
  std::vector<std::string> parts = dir == "." ? std::vector<std::string>{} : Split(dir);
  for (size_t p = 0; p < patterns_.size(); ++p) {
    if (patterns_[p].exclusion) continue;
    const std::vector<std::string>& pdirs = patterns_[p].dirs;
    bool possible = true;
    bool deep = false;
    for (size_t k = 0; k < parts.size(); ++k) {
      if (k >= pdirs.size()) {
        possible = false;
        break;
      }
      if (pdirs[k].find("**") != std::string::npos) {
        deep = true;
        break;
      }
      if (!MatchAt(compiled_->by_dir[p][k], 0, parts[k], 0)) {
        possible = false;
        break;
      }
    }
    if (deep) return true;
    if (possible && pdirs.size() > parts.size()) return true;
  }
  return false;
}

}  // namespace kiln::source
