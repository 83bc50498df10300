// Internal to kiln::image: reading and writing JSON objects member by member
// with a MemberLayout, so every model round-trips what it does not know.
// Not part of the module's API; included by the model .cc files only.
//
// Paths in error messages name the member as a person would find it in the
// document: "layers[2].digest", "config.Env[0]", "manifests[1].platform.os".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "image/member_layout.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/status.h"

namespace kiln::image::internal {

// "a" + "b" -> "a.b"; "" + "b" -> "b".
std::string Member(std::string_view path, std::string_view key);
// "layers" + 2 -> "layers[2]".
std::string Element(std::string_view path, size_t index);

// Value readers. `raw` is one compact JSON value. As in Go's encoding/json, a
// null leaves `out` as it was. A value of the wrong type is an error naming
// `path`, what was expected and what was found.
Status ReadString(std::string_view raw, const std::string& path, std::string* out);
Status ReadInt64(std::string_view raw, const std::string& path, int64_t* out);
Status ReadBool(std::string_view raw, const std::string& path, bool* out);
Status ReadStringList(std::string_view raw, const std::string& path, std::vector<std::string>* out);
Status ReadStringMap(std::string_view raw, const std::string& path,
                     std::map<std::string, std::string>* out);
// An object used as a set (Go's map[string]struct{}): its keys.
Status ReadKeySet(std::string_view raw, const std::string& path, std::set<std::string>* out);
// A digest string, validated by util::Digest.
Status ReadDigest(std::string_view raw, const std::string& path, util::Digest* out);
// The raw compact elements of an array; null gives none.
Result<std::vector<std::string>> SplitArray(std::string_view raw, const std::string& path);

// A member the model knows: how to read its raw value.
struct FieldIn {
  std::string_view key;
  std::function<Status(std::string_view raw, const std::string& path)> read;
};

// Reads the object `raw` (null reads as an empty object). Known members go to
// their reader; the rest, and the document's member order, go to `layout`,
// which is cleared first. `path` names the object in messages ("" at the top).
Status ReadObject(std::string_view raw, const std::string& path,
                  std::initializer_list<FieldIn> fields, MemberLayout* layout);

// What to write for a known member whose value is empty and whose parsed
// document did not hold an empty literal for it (Go's struct tags).
enum class WhenEmpty {
  kOmit,   // `json:",omitempty"`
  kNull,   // a nil slice, map or pointer without omitempty
  kWrite,  // a struct or scalar without omitempty: write the value as is
};

// A member the model knows: how to write it.
struct FieldOut {
  std::string_view key;
  bool empty;
  WhenEmpty when_empty;
  std::function<void(util::JsonWriter&)> write;
};

// Writes an object: `fields` in canonical order merged with `layout` as
// MemberLayout's header describes. With `sort_keys`, members are written in
// bytewise key order instead (Go's map encoding).
void WriteObject(util::JsonWriter& w, const MemberLayout& layout, std::span<const FieldOut> fields,
                 bool sort_keys = false);

// Helpers for common value shapes.
void WriteStringList(util::JsonWriter& w, const std::vector<std::string>& v);
void WriteStringMap(util::JsonWriter& w, const std::map<std::string, std::string>& m);
void WriteKeySet(util::JsonWriter& w, const std::set<std::string>& s);

}  // namespace kiln::image::internal
