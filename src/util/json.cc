#include "util/json.h"

#include <charconv>
#include <cmath>

namespace kiln::util {
namespace {

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const size_t left = s.size() - i;
  const unsigned char b0 = b(0);
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && b(k) >= lo && b(k) <= hi;
  };
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

std::string_view ReplaceInvalidUtf8(std::string_view text, std::string* storage) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) break;
    i += n;
  }
  if (i == text.size()) return text;
  storage->assign(text.substr(0, i));
  while (i < text.size()) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      storage->append("\xEF\xBF\xBD");
      ++i;
    } else {
      storage->append(text.substr(i, n));
      i += n;
    }
  }
  return *storage;
}

namespace {

void AppendUnicodeEscape(std::string* out, unsigned int cp) {
  out->append("\\u");
  out->push_back(kHex[(cp >> 12) & 15]);
  out->push_back(kHex[(cp >> 8) & 15]);
  out->push_back(kHex[(cp >> 4) & 15]);
  out->push_back(kHex[cp & 15]);
}

// Go's floatEncoder for float64.
void AppendGoFloat(std::string* out, double f) {
  if (!std::isfinite(f)) {  // Go refuses these; JSON cannot hold them
    out->append("null");
    return;
  }
  char buf[64];
  const double abs = std::fabs(f);
  const bool exp = abs != 0 && (abs < 1e-6 || abs >= 1e21);
  auto r = std::to_chars(buf, buf + sizeof buf, f,
                         exp ? std::chars_format::scientific : std::chars_format::fixed);
  std::string s(buf, r.ptr);
  if (exp) {  // e-07 -> e-7, as encoding/json cleans it up
    const size_t n = s.size();
    if (n >= 4 && s[n - 4] == 'e' && s[n - 3] == '-' && s[n - 2] == '0') {
      s[n - 2] = s[n - 1];
      s.pop_back();
    }
  }
  out->append(s);
}

void MarshalTo(std::string* out, const nlohmann::json& v, std::string_view indent, int depth) {
  const bool pretty = !indent.empty();
  auto newline = [&](int d) {
    out->push_back('\n');
    for (int i = 0; i < d; ++i) out->append(indent);
  };
  switch (v.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out->append("null");
      return;
    case nlohmann::json::value_t::boolean:
      out->append(v.get<bool>() ? "true" : "false");
      return;
    case nlohmann::json::value_t::number_integer:
      out->append(std::to_string(v.get<int64_t>()));
      return;
    case nlohmann::json::value_t::number_unsigned:
      out->append(std::to_string(v.get<uint64_t>()));
      return;
    case nlohmann::json::value_t::number_float:
      AppendGoFloat(out, v.get<double>());
      return;
    case nlohmann::json::value_t::string:
      AppendGoString(out, v.get_ref<const std::string&>());
      return;
    case nlohmann::json::value_t::binary:
      AppendGoString(out, "");  // never produced by kiln's parsers
      return;
    case nlohmann::json::value_t::array: {
      if (v.empty()) {
        out->append("[]");
        return;
      }
      out->push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out->push_back(',');
        first = false;
        if (pretty) newline(depth + 1);
        MarshalTo(out, e, indent, depth + 1);
      }
      if (pretty) newline(depth);
      out->push_back(']');
      return;
    }
    case nlohmann::json::value_t::object: {
      if (v.empty()) {
        out->append("{}");
        return;
      }
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {  // std::map: sorted bytewise
        if (!first) out->push_back(',');
        first = false;
        if (pretty) newline(depth + 1);
        AppendGoString(out, it.key());
        out->append(pretty ? ": " : ":");
        MarshalTo(out, it.value(), indent, depth + 1);
      }
      if (pretty) newline(depth);
      out->push_back('}');
      return;
    }
  }
}

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Index just past the string literal starting at s[i] == '"'.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// Index just past the JSON value starting at s[i] (input already validated).
size_t SkipValue(std::string_view s, size_t i) {
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '"') {
        i = SkipString(s, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return s.size();
  }
  while (i < s.size() && !IsJsonSpace(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsJsonSpace(s[i])) ++i;
  return i;
}

}  // namespace

void AppendGoString(std::string* out, std::string_view s) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '<':
        case '>':
        case '&':
          AppendUnicodeEscape(out, c);
          break;
        default:
          if (c < 0x20) {
            AppendUnicodeEscape(out, c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out->append("\\ufffd");
      ++i;
      continue;
    }
    if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
      AppendUnicodeEscape(out, static_cast<unsigned char>(s[i + 2]) == 0xA8 ? 0x2028 : 0x2029);
    } else {
      out->append(s.substr(i, n));
    }
    i += n;
  }
  out->push_back('"');
}

std::string GoString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendGoString(&out, s);
  return out;
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

void JsonWriter::BeginObject() {
  BeforeValue();
  out_.push_back('{');
  first_.push_back(true);
}

void JsonWriter::EndObject() {
  KILN_CHECK(!first_.empty() && !after_key_, "JsonWriter: unbalanced EndObject");
  first_.pop_back();
  out_.push_back('}');
}

void JsonWriter::BeginArray() {
  BeforeValue();
  out_.push_back('[');
  first_.push_back(true);
}

void JsonWriter::EndArray() {
  KILN_CHECK(!first_.empty() && !after_key_, "JsonWriter: unbalanced EndArray");
  first_.pop_back();
  out_.push_back(']');
}

void JsonWriter::Key(std::string_view key) {
  KILN_CHECK(!after_key_, "JsonWriter: two keys in a row");
  BeforeValue();
  AppendGoString(&out_, key);
  out_.push_back(':');
  after_key_ = true;
}

void JsonWriter::String(std::string_view s) {
  BeforeValue();
  AppendGoString(&out_, s);
}

void JsonWriter::Int(int64_t v) {
  BeforeValue();
  out_.append(std::to_string(v));
}

void JsonWriter::Bool(bool v) {
  BeforeValue();
  out_.append(v ? "true" : "false");
}

void JsonWriter::Null() {
  BeforeValue();
  out_.append("null");
}

void JsonWriter::Raw(std::string_view json) {
  BeforeValue();
  out_.append(json);
}

std::string GoMarshal(const nlohmann::json& value) {
  std::string out;
  MarshalTo(&out, value, "", 0);
  return out;
}

std::string GoMarshalIndent(const nlohmann::json& value, std::string_view indent) {
  std::string out;
  MarshalTo(&out, value, indent, 0);
  return out;
}

Result<std::string> GoCompact(std::string_view json) {
  if (!nlohmann::json::accept(json.begin(), json.end())) {
    return Status::InvalidArgument("invalid JSON value");
  }
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        out.push_back(c);
        out.push_back(json[++i]);
        continue;
      }
      if (c == '"') in_string = false;
    } else if (IsJsonSpace(c)) {
      continue;
    } else if (c == '"') {
      in_string = true;
    }
    if (c == '<' || c == '>' || c == '&') {
      AppendUnicodeEscape(&out, static_cast<unsigned char>(c));
    } else if (static_cast<unsigned char>(c) == 0xE2 && i + 2 < json.size() &&
               static_cast<unsigned char>(json[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(json[i + 2]) & 0xFE) == 0xA8) {
      AppendUnicodeEscape(&out, static_cast<unsigned char>(json[i + 2]) == 0xA8 ? 0x2028 : 0x2029);
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::string> GoIndent(std::string_view json, std::string_view indent) {
  if (!nlohmann::json::accept(json.begin(), json.end())) {
    return Status::InvalidArgument("invalid JSON value");
  }
  std::string out;
  out.reserve(json.size() * 2);
  int depth = 0;
  bool need_indent = false;  // just opened a container: newline before first member
  auto newline = [&] {
    out.push_back('\n');
    for (int i = 0; i < depth; ++i) out.append(indent);
  };
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (IsJsonSpace(c)) continue;
    if (need_indent && c != '}' && c != ']') {
      need_indent = false;
      ++depth;
      newline();
    }
    if (c == '"') {
      const size_t end = SkipString(json, i);
      out.append(json.substr(i, end - i));
      i = end - 1;
    } else if (c == '{' || c == '[') {
      out.push_back(c);
      need_indent = true;
    } else if (c == '}' || c == ']') {
      if (need_indent) {
        need_indent = false;  // empty container stays "{}"
      } else {
        --depth;
        newline();
      }
      out.push_back(c);
    } else if (c == ',') {
      out.push_back(c);
      newline();
    } else if (c == ':') {
      out.append(": ");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace {

// nlohmann::json's message without its "[json.exception.parse_error.101] "
// tag, which names the library's exception class, not the input.
std::string JsonErrorText(const std::exception& e) {
  std::string_view text = e.what();
  if (text.starts_with("[json.exception.")) {
    if (const size_t end = text.find("] "); end != std::string_view::npos) {
      text.remove_prefix(end + 2);
    }
  }
  return std::string(text);
}

}  // namespace

Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument("invalid JSON in " + std::string(what) + " at byte " +
                                   std::to_string(e.byte) + ": " + JsonErrorText(e));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("invalid JSON in " + std::string(what) + ": " +
                                   JsonErrorText(e));
  }
}

Result<std::vector<RawMember>> SplitObject(std::string_view json, std::string_view what) {
  if (!nlohmann::json::accept(json.begin(), json.end())) {
    auto parsed = ParseJson(json, what);  // for the detailed message
    return parsed.ok() ? Status::InvalidArgument("invalid JSON in " + std::string(what))
                       : parsed.status();
  }
  size_t i = SkipSpace(json, 0);
  if (i >= json.size() || json[i] != '{') {
    return Status::InvalidArgument(std::string(what) + ": expected a JSON object");
  }
  std::vector<RawMember> members;
  i = SkipSpace(json, i + 1);
  while (i < json.size() && json[i] != '}') {
    const size_t key_end = SkipString(json, i);
    std::string key = nlohmann::json::parse(json.substr(i, key_end - i)).get<std::string>();
    i = SkipSpace(json, key_end);
    i = SkipSpace(json, i + 1);  // ':'
    const size_t value_end = SkipValue(json, i);
    KILN_ASSIGN_OR_RETURN(std::string value, GoCompact(json.substr(i, value_end - i)));
    bool replaced = false;
    for (auto& m : members) {
      if (m.key == key) {
        m.value = std::move(value);
        replaced = true;
        break;
      }
    }
    if (!replaced) members.push_back({std::move(key), std::move(value)});
    i = SkipSpace(json, value_end);
    if (i < json.size() && json[i] == ',') i = SkipSpace(json, i + 1);
  }
  return members;
}

}  // namespace kiln::util
