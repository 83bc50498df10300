#include "buildinfo/buildinfo.h"

#include <strings.h>

#include <algorithm>
#include <tuple>

#include "util/base64.h"
#include "util/json.h"

namespace kiln::buildinfo {
namespace {

using nlohmann::json;

void AppendJson(std::string* out, const BuildInfo& bi);

void AppendAttrs(std::string* out, const Attrs& attrs) {
  out->push_back('{');
  bool first = true;
  for (const auto& [k, v] : attrs) {
    if (!first) out->push_back(',');
    first = false;
    util::AppendGoString(out, k);
    out->push_back(':');
    if (v) {
      util::AppendGoString(out, *v);
    } else {
      out->append("null");
    }
  }
  out->push_back('}');
}

void AppendJson(std::string* out, const BuildInfo& bi) {
  out->push_back('{');
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out->push_back(',');
    first = false;
    util::AppendGoString(out, k);
    out->push_back(':');
  };
  if (!bi.frontend.empty()) {
    key("frontend");
    util::AppendGoString(out, bi.frontend);
  }
  if (!bi.attrs.empty()) {
    key("attrs");
    AppendAttrs(out, bi.attrs);
  }
  if (!bi.sources.empty()) {
    key("sources");
    out->push_back('[');
    for (size_t i = 0; i < bi.sources.size(); ++i) {
      if (i) out->push_back(',');
      AppendSourceJson(out, bi.sources[i]);
    }
    out->push_back(']');
  }
  if (!bi.deps.empty()) {
    key("deps");
    out->push_back('{');
    bool first_dep = true;
    for (const auto& [name, dep] : bi.deps) {
      if (!first_dep) out->push_back(',');
      first_dep = false;
      util::AppendGoString(out, name);
      out->push_back(':');
      AppendJson(out, dep);
    }
    out->push_back('}');
  }
  out->push_back('}');
}

std::string_view TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    case json::value_t::binary:
      return "binary";
    case json::value_t::discarded:
      return "nothing";
    default:
      return "number";
  }
}

// `path` is the member's dotted path; "" for the top level.
Status WrongType(std::string_view path, std::string_view want, const json& v) {
  const std::string where = path.empty() ? "top level" : "member " + util::GoString(path);
  return Status::InvalidArgument("build sources: " + where + ": expected " + std::string(want) +
                                 ", found " + std::string(TypeName(v)));
}

// Go matches member names to struct fields case-insensitively; returns the
// canonical field name or "" for an unknown member.
std::string_view MatchField(std::string_view key, std::initializer_list<std::string_view> fields) {
  for (std::string_view f : fields) {
    if (key == f) return f;
  }
  for (std::string_view f : fields) {
    if (key.size() == f.size() && strncasecmp(key.data(), f.data(), f.size()) == 0) return f;
  }
  return {};
}

// Go leaves a string field untouched when the JSON value is null.
Status ReadString(const json& v, std::string_view path, std::string* out) {
  if (v.is_null()) return Status::Ok();
  if (!v.is_string()) return WrongType(path, "a string", v);
  *out = v.get<std::string>();
  return Status::Ok();
}

Status ReadSource(const json& v, const std::string& path, Source* out) {
  if (v.is_null()) return Status::Ok();
  if (!v.is_object()) return WrongType(path, "an object", v);
  for (const auto& [k, m] : v.items()) {
    std::string_view f = MatchField(k, {"type", "ref", "alias", "pin"});
    const std::string p = path + "." + std::string(f);
    if (f == "type") KILN_RETURN_IF_ERROR(ReadString(m, p, &out->type));
    if (f == "ref") KILN_RETURN_IF_ERROR(ReadString(m, p, &out->ref));
    if (f == "alias") KILN_RETURN_IF_ERROR(ReadString(m, p, &out->alias));
    if (f == "pin") KILN_RETURN_IF_ERROR(ReadString(m, p, &out->pin));
  }
  return Status::Ok();
}

Status ReadBuildInfo(const json& v, const std::string& path, BuildInfo* out, int depth = 0) {
  if (depth > kMaxDepsDepth) {
    return Status::InvalidArgument("build sources: deps nested deeper than " +
                                   std::to_string(kMaxDepsDepth) + " levels");
  }
  if (v.is_null()) return Status::Ok();
  if (!v.is_object()) return WrongType(path, "an object", v);
  const std::string prefix = path.empty() ? "" : path + ".";
  for (const auto& [k, m] : v.items()) {
    std::string_view f = MatchField(k, {"frontend", "attrs", "sources", "deps"});
    const std::string p = prefix + std::string(f);
    if (f == "frontend") {
      KILN_RETURN_IF_ERROR(ReadString(m, p, &out->frontend));
    } else if (f == "attrs") {
      if (m.is_null()) continue;
      if (!m.is_object()) return WrongType(p, "an object", m);
      out->attrs.clear();
      for (const auto& [ak, av] : m.items()) {
        if (av.is_null()) {
          out->attrs[ak] = std::nullopt;
        } else if (av.is_string()) {
          out->attrs[ak] = av.get<std::string>();
        } else {
          return WrongType(prefix + "attrs." + ak, "a string or null", av);
        }
      }
    } else if (f == "sources") {
      if (m.is_null()) {
        out->sources.clear();
        continue;
      }
      if (!m.is_array()) return WrongType(p, "an array", m);
      out->sources.assign(m.size(), Source{});
      for (size_t i = 0; i < m.size(); ++i) {
        KILN_RETURN_IF_ERROR(
            ReadSource(m[i], prefix + "sources[" + std::to_string(i) + "]", &out->sources[i]));
      }
    } else if (f == "deps") {
      if (m.is_null()) {
        out->deps.clear();
        continue;
      }
      if (!m.is_object()) return WrongType(p, "an object", m);
      out->deps.clear();
      for (const auto& [name, dv] : m.items()) {
        BuildInfo dep;
        KILN_RETURN_IF_ERROR(ReadBuildInfo(dv, prefix + "deps." + name, &dep, depth + 1));
        out->deps.emplace(name, std::move(dep));
      }
    }
  }
  return Status::Ok();
}

struct Contributor {
  std::string what;
  size_t size;
};

}  // namespace

bool SourceLess(const Source& a, const Source& b) {
  return std::tie(a.ref, a.type, a.pin, a.alias) < std::tie(b.ref, b.type, b.pin, b.alias);
}

void SortSources(std::vector<Source>* sources) {
  std::sort(sources->begin(), sources->end(), SourceLess);
}

void AppendSourceJson(std::string* out, const Source& s) {
  out->push_back('{');
  bool first = true;
  auto field = [&](std::string_view k, const std::string& v) {
    if (v.empty()) return;
    if (!first) out->push_back(',');
    first = false;
    util::AppendGoString(out, k);
    out->push_back(':');
    util::AppendGoString(out, v);
  };
  field("type", s.type);
  field("ref", s.ref);
  field("alias", s.alias);
  field("pin", s.pin);
  out->push_back('}');
}

std::string Encode(const BuildInfo& bi) {
  std::string out;
  AppendJson(&out, bi);
  return out;
}

Result<BuildInfo> Decode(std::string_view text) {
  std::string sanitized;
  KILN_ASSIGN_OR_RETURN(
      json v, util::ParseJson(util::ReplaceInvalidUtf8(text, &sanitized), "build sources"));
  BuildInfo bi;
  KILN_RETURN_IF_ERROR(ReadBuildInfo(v, "", &bi));
  return bi;
}

std::string EncodeBase64(const BuildInfo& bi) { return util::Base64Encode(Encode(bi)); }

Result<BuildInfo> DecodeBase64(std::string_view text) {
  auto raw = util::Base64Decode(text);
  if (!raw.ok()) return raw.status().Annotate("build sources: bad base64");
  return Decode(*raw);
}

Status CheckSize(const BuildInfo& bi, size_t limit) {
  const size_t total = Encode(bi).size();
  if (total <= limit) return Status::Ok();
  std::vector<Contributor> parts;
  for (const auto& [k, v] : bi.attrs) {
    std::string one;
    util::AppendGoString(&one, k);
    util::AppendGoString(&one, v.value_or(""));
    parts.push_back({"attrs[" + util::GoString(k) + "]", one.size() + 1});
  }
  for (size_t i = 0; i < bi.sources.size(); ++i) {
    std::string one;
    AppendSourceJson(&one, bi.sources[i]);
    std::string ref = bi.sources[i].ref.substr(0, 80);
    parts.push_back({"sources[" + std::to_string(i) + "] (" + bi.sources[i].type + " " +
                         util::GoString(ref) + ")",
                     one.size()});
  }
  for (const auto& [name, dep] : bi.deps) {
    parts.push_back({"deps[" + util::GoString(name) + "]", Encode(dep).size()});
  }
  if (!bi.frontend.empty()) parts.push_back({"frontend", util::GoString(bi.frontend).size()});
  std::stable_sort(parts.begin(), parts.end(),
                   [](const Contributor& a, const Contributor& b) { return a.size > b.size; });
  // Totals per section first: many small entries can be the problem as much
  // as one large one.
  std::vector<Contributor> sections;
  auto section = [&](std::string_view name, size_t count, std::string_view prefix) {
    if (count == 0) return;
    size_t bytes = 0;
    for (const auto& p : parts) {
      if (p.what.starts_with(prefix)) bytes += p.size;
    }
    sections.push_back(
        {std::string(name) + " (" + std::to_string(count) + (count == 1 ? " entry)" : " entries)"),
         bytes});
  };
  section("sources", bi.sources.size(), "sources[");
  section("attrs", bi.attrs.size(), "attrs[");
  section("deps", bi.deps.size(), "deps[");
  std::stable_sort(sections.begin(), sections.end(),
                   [](const Contributor& a, const Contributor& b) { return a.size > b.size; });
  std::string msg = "build sources record is " + std::to_string(total) +
                    " bytes after encoding, over the limit of " + std::to_string(limit) +
                    " bytes; by part:";
  for (size_t i = 0; i < sections.size(); ++i) {
    msg += (i ? ", " : " ") + sections[i].what + " " + std::to_string(sections[i].size) + " bytes";
  }
  msg += "; largest parts:";
  for (size_t i = 0; i < parts.size() && i < 3; ++i) {
    msg += (i ? ", " : " ") + parts[i].what + " " + std::to_string(parts[i].size) + " bytes";
  }
  return Status::ResourceExhausted(std::move(msg));
}

Result<std::string> EncodeChecked(const BuildInfo& bi, size_t limit) {
  KILN_RETURN_IF_ERROR(CheckSize(bi, limit));
  return Encode(bi);
}

}  // namespace kiln::buildinfo
