#include "buildinfo/attrs.h"

#include <array>
#include <vector>

#include "buildinfo/redact.h"
#include "util/base64.h"
#include "util/json.h"

namespace kiln::buildinfo {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

constexpr std::array<std::string_view, 6> kKeptKeys = {"context",  "filename", "source",
                                                       "shm-size", "target",   "ulimit"};

// A context:* attribute waiting for collision resolution.
struct ContextCandidate {
  std::string key;        // the key as given
  std::string value;      // redacted, suffix stripped
  std::string raw_value;  // redacted, as given
  bool exact_platform;    // suffix equal to the key's platform
};

Attrs ToAttrs(const RequestAttrs& m) {
  Attrs out;
  for (const auto& [k, v] : m) out.emplace(k, v);
  return out;
}

}  // namespace

bool IsControlArg(std::string_view key) {
  static constexpr std::array<std::string_view, 7> kControl = {
      "BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_INLINE_BUILDINFO_ATTRS",
      "BUILDKIT_INLINE_CACHE",   "BUILDKIT_MULTI_PLATFORM",       "BUILDKIT_SANDBOX_HOSTNAME",
      "BUILDKIT_SYNTAX"};
  constexpr std::string_view kPrefix = "build-arg:";
  if (!StartsWith(key, kPrefix)) return false;
  const std::string_view name = key.substr(kPrefix.size());
  for (std::string_view c : kControl) {
    if (StartsWith(name, c)) return true;
  }
  return false;
}

std::string_view PlatformOfKey(std::string_view key) {
  const size_t slash = key.find('/');
  return slash == std::string_view::npos ? std::string_view() : key.substr(slash + 1);
}

Attrs FilterAttrs(std::string_view key, const Attrs& attrs) {
  const std::string_view platform = PlatformOfKey(key);
  Attrs out;
  std::map<std::string, std::vector<ContextCandidate>> contexts;  // by name
  for (const auto& [k, v] : attrs) {
    if (!v) continue;
    if (IsControlArg(k)) continue;
    if (StartsWith(k, "build-arg:") || StartsWith(k, "label:") || k == "platform") {
      out[k] = RedactText(*v);
      continue;
    }
    if (StartsWith(k, "context:")) {
      const std::string_view rest = std::string_view(k).substr(8);
      const size_t sep = rest.find("::");
      const std::string value = RedactText(*v);
      if (sep != std::string_view::npos) {
        const std::string_view name = rest.substr(0, sep);
        const std::string_view q = rest.substr(sep + 2);
        if (!platform.empty() && q != platform) continue;
        std::string stripped = value;
        const std::string suffix = "::" + std::string(q);
        if (EndsWith(stripped, suffix)) stripped.resize(stripped.size() - suffix.size());
        contexts[std::string(name)].push_back({k, stripped, value, true});
      } else {
        std::string stripped = value;
        if (!platform.empty()) {
          const std::string suffix = "::" + std::string(platform);
          if (EndsWith(stripped, suffix)) stripped.resize(stripped.size() - suffix.size());
        }
        contexts[std::string(rest)].push_back({k, stripped, value, false});
      }
      continue;
    }
    for (std::string_view kept : kKeptKeys) {
      if (k == kept) {
        out[k] = RedactText(*v);
        break;
      }
    }
  }
  for (const auto& [name, cands] : contexts) {
    if (cands.size() == 1) {
      out["context:" + name] = cands[0].value;
    } else if (!platform.empty()) {
      // Under a platform key at most one suffixed variant survives, and the
      // frontend looks it up before the plain name: it wins.
      for (const auto& c : cands) {
        if (c.exact_platform) out["context:" + name] = c.value;
      }
    } else {
      // Several variants collapse onto one name: keep each under its own key.
      for (const auto& c : cands) out[c.key] = c.raw_value;
    }
  }
  return out;
}

RequestAttrs OverlayAttrs(const RequestAttrs& request, const Attrs& decoded) {
  RequestAttrs out = request;
  for (const auto& [k, v] : decoded) {
    if (v) out[k] = *v;
  }
  return out;
}

Result<std::map<std::string, BuildInfo>> DecodeDeps(std::string_view key, const Attrs& attrs) {
  constexpr std::string_view kPrefix = "input-metadata:";
  const std::string_view platform = PlatformOfKey(key);
  std::map<std::string, BuildInfo> deps;
  for (const auto& [k, v] : attrs) {
    if (!StartsWith(k, kPrefix) || !v) continue;
    const std::string_view input = std::string_view(k).substr(kPrefix.size());
    const size_t sep = input.find("::");
    if (platform.empty() ? sep != std::string_view::npos
                         : (sep == std::string_view::npos || input.substr(sep + 2) != platform)) {
      continue;
    }
    const std::string what = "build sources: attribute " + util::GoString(k);
    KILN_ASSIGN_OR_RETURN(nlohmann::json meta, util::ParseJson(*v, what));
    if (!meta.is_object()) {
      return Status::InvalidArgument(what + ": expected a JSON object of strings");
    }
    const auto it = meta.find(std::string(kMetadataKey));
    for (const auto& [mk, mv] : meta.items()) {
      if (!mv.is_string() && !mv.is_null()) {  // null reads as "" (Go)
        return Status::InvalidArgument(what + ": member " + util::GoString(mk) +
                                       " is not a string");
      }
    }
    if (it == meta.end()) continue;
    auto raw = util::Base64Decode(it->is_string() ? it->get<std::string>() : std::string());
    if (!raw.ok()) return raw.status().Annotate(what + ": bad base64");
    auto dep = Decode(*raw);
    if (!dep.ok()) return dep.status().Annotate(what);
    RedactRecord(&*dep);
    deps[std::string(input.substr(0, sep))] = std::move(*dep);
  }
  return deps;
}

Result<BuildInfo> BridgeMerge(std::string_view key, std::string_view frontend,
                              const RequestAttrs& request, const std::optional<BuildInfo>& metadata,
                              bool deps_from_request) {
  BuildInfo bi;
  std::map<std::string, BuildInfo> deps;
  if (metadata) {
    bi = *metadata;
    if (!frontend.empty()) bi.frontend = std::string(frontend);
    const Attrs combined = ToAttrs(OverlayAttrs(request, bi.attrs));
    if (deps_from_request) {
      KILN_ASSIGN_OR_RETURN(deps, DecodeDeps(key, combined));
    }
    for (auto& [name, dep] : bi.deps) deps[name] = std::move(dep);
    bi.attrs = FilterAttrs(key, combined);
  } else {
    bi.frontend = std::string(frontend);
    const Attrs req = ToAttrs(request);
    bi.attrs = FilterAttrs(key, req);
    if (deps_from_request) {
      KILN_ASSIGN_OR_RETURN(deps, DecodeDeps(key, req));
    }
  }
  bi.deps = std::move(deps);
  for (auto& [name, dep] : bi.deps) RedactRecord(&dep);
  return bi;
}

}  // namespace kiln::buildinfo
