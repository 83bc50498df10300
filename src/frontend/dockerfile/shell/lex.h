// Shell-word expansion with BuildKit v0.10's lexer semantics.
//
// Expands one Dockerfile word against a set of variables: single and double
// quotes, the active escape character, `$VAR`, `${VAR}`, `${VAR:-w}`,
// `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`, `${VAR:?msg}`, `${VAR?msg}`, and word
// splitting where BuildKit splits (ProcessWords). It does not run commands:
// `$(...)` and backquotes are kept as text, as in BuildKit.
//
// Called by instructions/ (expansion of FROM, COPY, ENV, ...) and the
// converter. Thread-safety: a Lexer is immutable after construction; its
// methods may be called from several threads.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace kiln::dockerfile {

// Variables in scope, in order; a later entry shadows an earlier one of the
// same name. Names compare exactly on Unix and case-insensitively when the
// lexer is in Windows mode.
using EnvList = std::vector<std::pair<std::string, std::string>>;

// Looks up `name` in `env` (last match wins); nullopt when unset.
std::optional<std::string> LookupEnv(const EnvList& env, std::string_view name,
                                     bool windows = false);

struct LexOptions {
  char escape = '\\';        // the Dockerfile's escape token, '\\' or '`'
  bool windows = false;      // case-insensitive names (the `W` rows of envVarTest)
  bool raw_quotes = false;   // keep quote characters in the output
  bool raw_escapes = false;  // keep escape characters in the output
  bool skip_unset = false;   // leave `$UNSET` as written instead of ""
};

class Lexer {
 public:
  explicit Lexer(LexOptions options = {}) : options_(options) {}

  // One word in, one word out (quotes removed, variables substituted).
  // Errors (kInvalidArgument): an unterminated quote or `${`, a bad
  // substitution, or `${VAR?msg}` / `${VAR:?msg}` on an unset (or empty)
  // variable, whose message is `msg` as BuildKit words it. Messages read as
  // BuildKit's: `failed to process "<word, Go-quoted>": <reason>`, e.g.
  // `failed to process "${X?}": X: is not allowed to be unset`. `used`, when
  // non-null, receives the names of the variables that were referenced and
  // found in `env`, spelled as in `word` (BuildKit's "matches"; names looked
  // up but unset are not added); on error it may hold a partial set.
  //
  // Beyond BuildKit v0.10.6, which rejects them ("missing ':' in
  // substitution"), `${VAR-w}` and `${VAR+w}` work as in POSIX sh and later
  // BuildKit: they test set-ness only, where the `:` forms also treat an
  // empty value as unset. The word after an operator is always expanded,
  // even when unused, so its errors surface (as in BuildKit).
  Result<std::string> ProcessWord(std::string_view word, const EnvList& env,
                                  std::set<std::string>* used = nullptr) const;

  // Like ProcessWord, but splits the result into words on unquoted
  // whitespace the way BuildKit does for instructions that take several
  // words: an unquoted variable's value is split; quoted and escaped text
  // is not.
  // As in BuildKit, an empty word is never produced: `a "" b` gives
  // {"a", "b"} and `""` gives no words at all.
  Result<std::vector<std::string>> ProcessWords(std::string_view word, const EnvList& env,
                                                std::set<std::string>* used = nullptr) const;

  const LexOptions& options() const { return options_; }

 private:
  LexOptions options_;
};

}  // namespace kiln::dockerfile
