#include "buildinfo/merge.h"

#include <algorithm>
#include <utility>

#include "buildinfo/identifier.h"
#include "buildinfo/redact.h"

namespace kiln::buildinfo {
namespace {

// Merge entries live in one map keyed by (type, key text) (K3).
using EntryKey = std::pair<std::string, std::string>;

struct ReportedImage {
  std::string ref;  // R: the reference text after "docker-image://"
  std::string pin;
  bool matched = false;
};

bool IsImage(const Source& s) { return s.type == kTypeDockerImage; }

// Does reported image R (with pin p) belong to frontend source f by name?
// Fresh frontend entries carry the alias the frontend built the image op
// from (R23); finalized entries (no alias) match by their own ref, or by the
// ref with the pin appended (":latest" optional), as their alias would have
// been.
bool MatchesByName(const Source& f, const std::string& r, const std::string& pin) {
  if (!f.alias.empty()) return f.alias == r;
  if (f.pin != pin) return false;
  if (f.ref == r) return true;
  if (f.ref.find('@') != std::string::npos) return false;
  if (r == f.ref + "@" + pin) return true;
  constexpr std::string_view kLatest = ":latest";
  if (f.ref.size() > kLatest.size() &&
      std::string_view(f.ref).substr(f.ref.size() - kLatest.size()) == kLatest) {
    return r == f.ref.substr(0, f.ref.size() - kLatest.size()) + "@" + pin;
  }
  return false;
}

// The ref a consumed or leftover frontend image source reports.
Result<std::string> FrontendImageRef(const Source& f) {
  if (f.alias.empty()) return f.ref;  // already final
  auto n = NormalizeImageRef(f.ref);
  if (!n.ok()) return n.status().Annotate("build sources: frontend image source");
  return n;
}

void CollectDepSources(const std::map<std::string, BuildInfo>& deps, std::vector<Source>* out) {
  for (const auto& [name, dep] : deps) {
    out->insert(out->end(), dep.sources.begin(), dep.sources.end());
    CollectDepSources(dep.deps, out);
  }
}

void SortUnique(std::vector<Source>* sources) {
  SortSources(sources);
  sources->erase(std::unique(sources->begin(), sources->end()), sources->end());
}

}  // namespace

Result<std::vector<Source>> MergeSources(const SourcePins& reported,
                                         const std::vector<Source>& frontend) {
  std::map<EntryKey, Source> entries;
  std::vector<ReportedImage> images;
  for (const auto& [id, pin] : reported) {
    KILN_ASSIGN_OR_RETURN(Identifier ident, ParseIdentifier(id));
    switch (ident.kind) {
      case SourceKind::kDockerImage:
        images.push_back({ident.image_ref, pin});
        break;
      case SourceKind::kGit:
      case SourceKind::kHttp: {
        const std::string type(SourceTypeOf(ident.kind));
        entries[{type, id}] = Source{type, ReportedRef(ident), "", pin};
        break;
      }
      case SourceKind::kLocal:
        break;  // R10: local sources are never recorded
    }
  }

  std::vector<bool> consumed(frontend.size(), false);
  auto consume = [&](size_t i, const ReportedImage& img) -> Status {
    consumed[i] = true;
    const Source& f = frontend[i];
    KILN_ASSIGN_OR_RETURN(std::string ref, FrontendImageRef(f));
    const std::string key = f.alias.empty() ? img.ref : f.alias;
    entries[{std::string(kTypeDockerImage), key}] =
        Source{std::string(kTypeDockerImage), std::move(ref), "", img.pin};
    return Status::Ok();
  };
  // Pass 1: by name (alias). Pass 2: by pin, for images nothing claimed.
  for (ReportedImage& img : images) {
    for (size_t i = 0; i < frontend.size(); ++i) {
      if (consumed[i] || !IsImage(frontend[i]) || !MatchesByName(frontend[i], img.ref, img.pin))
        continue;
      KILN_RETURN_IF_ERROR(consume(i, img));
      img.matched = true;
      break;
    }
  }
  for (ReportedImage& img : images) {
    if (img.matched) continue;
    for (size_t i = 0; i < frontend.size(); ++i) {
      if (consumed[i] || !IsImage(frontend[i]) || frontend[i].pin != img.pin) continue;
      KILN_RETURN_IF_ERROR(consume(i, img));
      img.matched = true;
      break;
    }
  }
  // R16: every reported image has an entry under its own reference.
  for (const ReportedImage& img : images) {
    entries.try_emplace({std::string(kTypeDockerImage), img.ref},
                        Source{std::string(kTypeDockerImage), img.ref, "", img.pin});
  }
  // R17: leftovers.
  for (size_t i = 0; i < frontend.size(); ++i) {
    if (consumed[i]) continue;
    const Source& f = frontend[i];
    if (IsImage(f)) {
      KILN_ASSIGN_OR_RETURN(std::string ref, FrontendImageRef(f));
      entries.try_emplace({f.type, f.alias.empty() ? f.ref : f.alias},
                          Source{f.type, std::move(ref), "", f.pin});
    } else if (f.alias.empty()) {
      // An entry of an already finalized record: kept (idempotence).
      entries.try_emplace({f.type, "ref:" + f.ref}, Source{f.type, f.ref, "", f.pin});
    }
  }

  std::vector<Source> out;
  out.reserve(entries.size());
  for (auto& [key, s] : entries) out.push_back(std::move(s));
  SortSources(&out);
  return out;
}

std::vector<Source> DedupAgainstDeps(std::vector<Source> sources,
                                     const std::map<std::string, BuildInfo>& deps) {
  std::vector<Source> dep_sources;
  CollectDepSources(deps, &dep_sources);
  auto covered = [&](const Source& s) {
    for (const Source& d : dep_sources) {
      if (s == d) return true;
      if (IsImage(s) && IsImage(d) && s.ref.find('@') != std::string::npos && s.pin == d.pin) {
        return true;
      }
    }
    return false;
  };
  sources.erase(std::remove_if(sources.begin(), sources.end(), covered), sources.end());
  SortUnique(&sources);
  return sources;
}

Result<BuildInfo> Finalize(const BuildInfo& metadata, const SourcePins& reported) {
  BuildInfo bi = metadata;
  RedactRecord(&bi);
  KILN_ASSIGN_OR_RETURN(std::vector<Source> merged, MergeSources(reported, bi.sources));
  bi.sources = DedupAgainstDeps(std::move(merged), bi.deps);
  KILN_RETURN_IF_ERROR(CheckSize(bi));
  return bi;
}

BuildInfo Format(BuildInfo bi, bool remove_attrs) {
  RedactRecord(&bi);
  if (!remove_attrs) return bi;
  bi.attrs.clear();
  if (!bi.deps.empty()) {
    CollectDepSources(bi.deps, &bi.sources);
    SortUnique(&bi.sources);
    bi.deps.clear();
  }
  return bi;
}

Result<std::string> FormatJson(std::string_view json, bool remove_attrs) {
  if (json.empty()) return std::string();
  KILN_ASSIGN_OR_RETURN(BuildInfo bi, Decode(json));
  return EncodeChecked(Format(std::move(bi), remove_attrs));
}

}  // namespace kiln::buildinfo
