#include "image/json_object.h"

#include <algorithm>
#include <limits>

namespace kiln::image::internal {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

// Returns the index just past the JSON value starting at s[i]; `s` is valid
// JSON (checked by the caller).
size_t SkipValue(std::string_view s, size_t i) {
  int depth = 0;
  bool in_string = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;  // end of the enclosing container
      if (--depth == 0) return i + 1;
    } else if (depth == 0 && (c == ',' || IsSpace(c))) {
      return i;
    }
  }
  return i;
}

Result<nlohmann::json> Parse(std::string_view raw, const std::string& path) {
  return util::ParseJson(raw, path.empty() ? "document" : path);
}

Status TypeError(const std::string& path, std::string_view want, const nlohmann::json& found) {
  return Status::InvalidArgument((path.empty() ? std::string("document") : path) + ": expected " +
                                 std::string(want) + ", found " + found.type_name());
}

bool IsEmptyLiteral(std::string_view raw) {
  return raw == "null" || raw == "\"\"" || raw == "[]" || raw == "{}" || raw == "false" ||
         raw == "0";
}

}  // namespace

std::string Member(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string s(path);
  s += '.';
  s += key;
  return s;
}

std::string Element(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

Status ReadString(std::string_view raw, const std::string& path, std::string* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) return Status::Ok();
  if (!v.is_string()) return TypeError(path, "a string", v);
  *out = v.get<std::string>();
  return Status::Ok();
}

Status ReadInt64(std::string_view raw, const std::string& path, int64_t* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) return Status::Ok();
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::InvalidArgument(path + ": " + std::string(raw) +
                                     " does not fit in a 64-bit integer");
    }
    *out = static_cast<int64_t>(u);
    return Status::Ok();
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (v.is_number()) {
    return Status::InvalidArgument(path + ": expected an integer, found " + std::string(raw));
  }
  return TypeError(path, "an integer", v);
}

Status ReadBool(std::string_view raw, const std::string& path, bool* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) return Status::Ok();
  if (!v.is_boolean()) return TypeError(path, "a boolean", v);
  *out = v.get<bool>();
  return Status::Ok();
}

Status ReadStringList(std::string_view raw, const std::string& path,
                      std::vector<std::string>* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) {
    out->clear();  // Go sets a slice to nil on null
    return Status::Ok();
  }
  if (!v.is_array()) return TypeError(path, "an array of strings", v);
  std::vector<std::string> list;
  list.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].is_null()) {
      list.emplace_back();
    } else if (v[i].is_string()) {
      list.push_back(v[i].get<std::string>());
    } else {
      return TypeError(Element(path, i), "a string", v[i]);
    }
  }
  *out = std::move(list);
  return Status::Ok();
}

Status ReadStringMap(std::string_view raw, const std::string& path,
                     std::map<std::string, std::string>* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) {
    out->clear();
    return Status::Ok();
  }
  if (!v.is_object()) return TypeError(path, "an object of strings", v);
  std::map<std::string, std::string> m;
  for (const auto& [key, value] : v.items()) {
    if (value.is_null()) {
      m[key];
    } else if (value.is_string()) {
      m[key] = value.get<std::string>();
    } else {
      return TypeError(Member(path, key), "a string", value);
    }
  }
  *out = std::move(m);
  return Status::Ok();
}

Status ReadKeySet(std::string_view raw, const std::string& path, std::set<std::string>* out) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
  if (v.is_null()) {
    out->clear();
    return Status::Ok();
  }
  if (!v.is_object()) return TypeError(path, "an object", v);
  std::set<std::string> s;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_object() && !value.is_null()) return TypeError(Member(path, key), "{}", value);
    s.insert(key);
  }
  *out = std::move(s);
  return Status::Ok();
}

Status ReadDigest(std::string_view raw, const std::string& path, util::Digest* out) {
  std::string text;
  KILN_RETURN_IF_ERROR(ReadString(raw, path, &text));
  if (text.empty()) return Status::InvalidArgument(path + ": digest is empty");
  auto d = util::Digest::Parse(text);
  if (!d.ok()) return d.status().Annotate(path);
  *out = *std::move(d);
  return Status::Ok();
}

Result<std::vector<std::string>> SplitArray(std::string_view raw, const std::string& path) {
  if (!nlohmann::json::accept(raw.begin(), raw.end())) {
    return Parse(raw, path).status();
  }
  std::vector<std::string> elements;
  size_t i = SkipSpace(raw, 0);
  if (raw.substr(i, 4) == "null") return elements;
  if (i >= raw.size() || raw[i] != '[') {
    KILN_ASSIGN_OR_RETURN(nlohmann::json v, Parse(raw, path));
    return TypeError(path, "an array", v);
  }
  i = SkipSpace(raw, i + 1);
  while (i < raw.size() && raw[i] != ']') {
    const size_t end = SkipValue(raw, i);
    elements.emplace_back(raw.substr(i, end - i));
    i = SkipSpace(raw, end);
    if (i < raw.size() && raw[i] == ',') i = SkipSpace(raw, i + 1);
  }
  return elements;
}

Status ReadObject(std::string_view raw, const std::string& path,
                  std::initializer_list<FieldIn> fields, MemberLayout* layout) {
  layout->Clear();
  {
    size_t i = SkipSpace(raw, 0);
    size_t end = raw.size();
    while (end > i && IsSpace(raw[end - 1])) --end;
    if (raw.substr(i, end - i) == "null") return Status::Ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<util::RawMember> members,
                        util::SplitObject(raw, path.empty() ? "document" : path));
  for (auto& m : members) {
    const auto field = std::find_if(fields.begin(), fields.end(),
                                    [&](const FieldIn& f) { return f.key == m.key; });
    if (field == fields.end()) {
      layout->AddParsedMember(m.key, "");
      layout->SetUnknown(std::move(m.key), std::move(m.value));
      continue;
    }
    KILN_RETURN_IF_ERROR(field->read(m.value, Member(path, m.key)));
    layout->AddParsedMember(std::move(m.key), IsEmptyLiteral(m.value) ? m.value : "");
  }
  return Status::Ok();
}

void WriteObject(util::JsonWriter& w, const MemberLayout& layout, std::span<const FieldOut> fields,
                 bool sort_keys) {
  auto canonical_index = [&](std::string_view key) -> size_t {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i].key == key) return i;
    }
    return fields.size();
  };
  std::vector<std::string_view> keys;
  keys.reserve(layout.order().size() + fields.size());
  for (const auto& e : layout.order()) keys.push_back(e.key);
  for (size_t ci = 0; ci < fields.size(); ++ci) {
    if (std::find(keys.begin(), keys.end(), fields[ci].key) != keys.end()) continue;
    size_t pos = 0;
    for (size_t j = 0; j < keys.size(); ++j) {
      if (canonical_index(keys[j]) < ci) pos = j + 1;
    }
    keys.insert(keys.begin() + static_cast<std::ptrdiff_t>(pos), fields[ci].key);
  }
  if (sort_keys) std::sort(keys.begin(), keys.end());

  w.BeginObject();
  for (std::string_view key : keys) {
    const size_t ci = canonical_index(key);
    if (ci == fields.size()) {
      if (auto raw = layout.GetUnknown(key)) {
        w.Key(key);
        w.Raw(*raw);
      }
      continue;
    }
    const FieldOut& f = fields[ci];
    if (!f.empty) {
      w.Key(key);
      f.write(w);
      continue;
    }
    if (const MemberLayout::Entry* e = layout.Find(key); e && !e->empty_literal.empty()) {
      w.Key(key);
      w.Raw(e->empty_literal);
      continue;
    }
    switch (f.when_empty) {
      case WhenEmpty::kOmit:
        break;
      case WhenEmpty::kNull:
        w.Key(key);
        w.Null();
        break;
      case WhenEmpty::kWrite:
        w.Key(key);
        f.write(w);
        break;
    }
  }
  w.EndObject();
}

void WriteStringList(util::JsonWriter& w, const std::vector<std::string>& v) {
  w.BeginArray();
  for (const auto& s : v) w.String(s);
  w.EndArray();
}

void WriteStringMap(util::JsonWriter& w, const std::map<std::string, std::string>& m) {
  w.BeginObject();
  for (const auto& [k, v] : m) {
    w.Key(k);
    w.String(v);
  }
  w.EndObject();
}

void WriteKeySet(util::JsonWriter& w, const std::set<std::string>& s) {
  w.BeginObject();
  for (const auto& k : s) {
    w.Key(k);
    w.BeginObject();
    w.EndObject();
  }
  w.EndObject();
}

}  // namespace kiln::image::internal
