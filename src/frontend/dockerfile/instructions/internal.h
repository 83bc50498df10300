// Helpers behind instructions.h that reproduce Go library behaviour BuildKit
// relies on: flag parsing (BFlags), heredoc words, Go's time.ParseDuration,
// go-units' RAMInBytes, encoding/csv for --mount values, strconv's number
// and bool parsing, and the "did you mean" suggestions. Declared here so
// instructions_test.cc can check them directly; nothing outside
// instructions/ includes this header.
//
// Thread-safety: pure functions; a FlagSet is used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kiln::dockerfile::internal {

// The flags of one instruction, declared by the instruction's parser and
// then matched against the raw "--name=value" words (BuildKit's BFlags).
class FlagSet {
 public:
  explicit FlagSet(const std::vector<std::string>& args) : args_(args) {}

  void AddBool(std::string name, bool def);
  void AddString(std::string name, std::string def);
  void AddStrings(std::string name);  // may repeat: --mount=a --mount=b

  // Errors, in BuildKit's wording: "Unknown flag: x", "Duplicate flag
  // specified: x", "Missing a value on flag: x", "Expecting boolean value
  // for flag x, not: y", "Arg should start with -- : x".
  Status Parse();

  // Value of a declared flag (its default when unused; "true"/"false" for
  // booleans). Precondition: `name` was declared.
  const std::string& Value(std::string_view name) const;
  bool IsTrue(std::string_view name) const { return Value(name) == "true"; }
  const std::vector<std::string>& Values(std::string_view name) const;
  bool Used(std::string_view name) const;

 private:
  enum class Type { kBool, kString, kStrings };
  struct Flag {
    std::string name;
    Type type;
    std::string value;
    std::vector<std::string> values;
    bool used = false;
  };
  Flag* Find(std::string_view name);
  const Flag& Get(std::string_view name) const;

  const std::vector<std::string>& args_;
  std::vector<Flag> flags_;
};

// A heredoc word such as `<<-'EOF'` or `3<<EOF` (BuildKit's ParseHeredoc).
struct HeredocWord {
  std::string name;  // quotes and escapes removed
  int file_descriptor = 0;
  bool expand = true;  // false when part of the word was quoted
  bool chomp = false;  // `<<-`
};
// nullopt when `word` is not a heredoc or is malformed (MustParseHeredoc).
std::optional<HeredocWord> ParseHeredocWord(std::string_view word);

// Removes the tabs at the start of every line (the `<<-` form).
std::string ChompHeredocContent(std::string_view content);

// Go's time.ParseDuration, in nanoseconds, with Go's error texts
// (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
// `time: unknown unit "d" in duration "1d"`).
Result<std::int64_t> ParseGoDuration(std::string_view text);

// docker/go-units RAMInBytes: "10m" -> 10485760 (binary multiples, optional
// "i"/"b" suffix). Error text: "invalid size: '<text>'".
Result<std::int64_t> RamInBytes(std::string_view text);

// One record of Go's encoding/csv reader (comma-separated, "double quoted"
// fields with "" escapes). Errors use encoding/csv's texts ("EOF",
// `parse error on line 1, column 5: bare " in non-quoted-field`).
Result<std::vector<std::string>> ReadCsvRecord(std::string_view text);

// strconv.ParseUint(text, base, 32): nullopt on a syntax or range error.
std::optional<std::uint64_t> ParseGoUint32(std::string_view text, int base);
// strconv.ParseInt(text, 10, 32) with strconv's error text
// (`strconv.ParseInt: parsing "x": invalid syntax` / `value out of range`).
Result<std::int64_t> ParseGoInt32(std::string_view text);
// strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False.
std::optional<bool> ParseGoBool(std::string_view text);

// BuildKit's suggest.WrapError: "<message> (did you mean <option>?)" when
// an option is within edit distance 2 of `value` (closest first, earliest
// option on ties), else `message` unchanged. An exact match means the
// error is unrelated to the value and nothing is added.
std::string WithSuggestion(std::string message, std::string_view value,
                           const std::vector<std::string_view>& options, bool case_sensitive);

// The syntax check of one raw --mount value made while parsing (CSV, bare
// flags, no variables in `from`); the rest waits for expansion.
Status CheckMountSyntax(std::string_view value);

// Levenshtein distance (unit costs).
int EditDistance(std::string_view a, std::string_view b);

std::string AsciiUpper(std::string_view s);
std::string TrimSpace(std::string_view s);

}  // namespace kiln::dockerfile::internal
