// MemberLayout: what a parsed JSON object looked like beyond the fields a
// model understands, so that writing the model back reproduces the document.
//
// Every JSON model in kiln::image (Descriptor, Manifest, Index, ImageConfig
// and their nested objects) carries one. It records
//   - the members the model does not know, as raw compact JSON (what Go's
//     json.Compact makes of them), so they are written back unchanged;
//   - the order of all members in the parsed document;
//   - for known members whose parsed value was an empty literal (null, "",
//     [], {}, false, 0), that literal, so `"User":""` or `"OnBuild":null`
//     survive even where a freshly built object would omit them.
//
// Output order rule, shared by every model: members keep the order they had
// in the parsed document; a known member the document did not have is placed
// after the last member (in document order) that comes before it in the
// model's canonical order (the Go struct order named in each model's header),
// or first if there is none; unknown members added with SetUnknown() go last. A default-constructed
// layout therefore yields exactly the canonical order, and parse-then-write is
// byte-identical for any compact input Go's encoding/json could have written.
//
// Thread-safety: a value type; no internal synchronization.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/json.h"

namespace kiln::image {

class MemberLayout {
 public:
  // One member of the parsed document.
  struct Entry {
    std::string key;
    // For a known member whose value was an empty literal: that literal
    // ("null", "\"\"", "[]", "{}", "false", "0"); otherwise empty.
    std::string empty_literal;
  };

  // Members the model does not know, in document order; values are compact
  // JSON.
  const std::vector<util::RawMember>& unknown() const { return unknown_; }
  // The raw compact value of unknown member `key`, if present.
  std::optional<std::string> GetUnknown(std::string_view key) const;
  // Adds or replaces unknown member `key`. `raw_json` must already be compact
  // JSON (callers with arbitrary text use GoCompact first). A new key is
  // written after all other members; a replaced one keeps its place.
  void SetUnknown(std::string key, std::string raw_json);
  // Removes unknown member `key`; returns whether it was there.
  bool RemoveUnknown(std::string_view key);

  // The members of the parsed document, in order (empty when the object was
  // built in code).
  const std::vector<Entry>& order() const { return order_; }
  // The entry for `key` if the parsed document had that member.
  const Entry* Find(std::string_view key) const;

  // Records a member of the document being parsed (used by the parsers).
  void AddParsedMember(std::string key, std::string empty_literal);
  // Forgets unknown members and document order: output becomes the canonical
  // form, as Go gives after decoding into the model's struct and re-encoding.
  void Clear();

 private:
  std::vector<Entry> order_;
  std::vector<util::RawMember> unknown_;
};

}  // namespace kiln::image
