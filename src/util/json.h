// JSON: Go-compatible writing and nlohmann-json reading.
//
// Records kiln writes (build sources, image configs, manifests) are compared
// byte for byte with what Go's encoding/json produces, so this writer follows
// it exactly (spec K2):
//   - compact output; object members in the order the caller emits them;
//     generic maps (GoMarshal) with keys sorted bytewise;
//   - strings: `"` and `\` backslash-escaped; \n \r \t as such; other control
//     bytes, `<`, `>` and `&` as \u00XX (lowercase hex); U+2028 and U+2029 as
//     \u2028 and \u2029; each byte of an invalid UTF-8 sequence as \ufffd
//     (Go 1.17/1.18 behaviour, which BuildKit v0.10 was built with: \b and \f
//     are written as \u0008 and \u000c);
//   - floats as strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json
//     picks them.
// Reading uses nlohmann-json; its exceptions never leave this module.
//
// Thread-safety: pure functions; a JsonWriter is used by one thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace kiln::util {

// Length of the UTF-8 sequence at s[i] if it is valid by Go's rules
// (utf8.DecodeRuneInString: no overlong forms, surrogates or code points above
// U+10FFFF), else 0. Precondition: i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);
// Go's decoders replace each byte of an invalid UTF-8 sequence with U+FFFD.
// Returns `text` itself when it is valid, else the repaired copy in *storage.
std::string_view ReplaceInvalidUtf8(std::string_view text, std::string* storage);

// Appends `s` as a Go encoding/json string literal, quotes included.
void AppendGoString(std::string* out, std::string_view s);
std::string GoString(std::string_view s);

// Builds compact Go-compatible JSON. The caller emits members in order;
// commas and colons are placed by the writer.
class JsonWriter {
 public:
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t v);
  void Bool(bool v);
  void Null();
  // A value that is already compact Go-style JSON, written as is.
  void Raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void BeforeValue();
  std::string out_;
  std::vector<bool> first_;  // per open container: no member written yet
  bool after_key_ = false;
};

// json.Marshal of a generic value (map[string]interface{} and friends):
// object keys sorted bytewise, Go string escaping, Go number formatting.
std::string GoMarshal(const nlohmann::json& value);
// json.MarshalIndent(value, "", indent).
std::string GoMarshalIndent(const nlohmann::json& value, std::string_view indent = "  ");

// Go's json.Indent(dst, src, "", indent): re-indents valid JSON text keeping
// member order and string spelling; `{}` and `[]` stay as they are.
// kInvalidArgument if `json` is not valid JSON.
Result<std::string> GoIndent(std::string_view json, std::string_view indent = "  ");

// What json.Marshal does to a json.RawMessage: json.Compact with HTML
// escaping. Insignificant whitespace is removed, `<`, `>`, `&`, U+2028 and
// U+2029 are escaped, and every other byte is kept as written (numbers keep
// their spelling). kInvalidArgument if `json` is not valid JSON.
Result<std::string> GoCompact(std::string_view json);

// Parses `text`; on failure the message names `what` and the byte offset.
Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what);

// One member of a JSON object with its value kept as raw compact text.
struct RawMember {
  std::string key;
  std::string value;  // GoCompact() of the member's value
};
// Splits a JSON object into its members, in document order, so unknown
// members can be written back unchanged. A repeated key keeps its last value
// (as Go's decoder does). kInvalidArgument if `json` is not an object.
Result<std::vector<RawMember>> SplitObject(std::string_view json, std::string_view what);

}  // namespace kiln::util
