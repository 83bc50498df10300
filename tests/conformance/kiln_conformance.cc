// kiln-conformance: runs a conformance case file against kiln.
//
//   kiln-conformance buildinfo FILE [--deviations FILE] [--print ID]
//
// FILE is a case file in the format of spec/buildinfo.md §12 (a JSON array of
// cases). Every case is run; a case whose id is listed in the deviation file
// (tests/conformance/deviations.md by default) is checked against kiln's own
// expectation given there (a K rule of the spec wins over BuildKit's
// behaviour), never skipped. `dockerfile` cases run the Dockerfile frontend
// with a table-driven image resolver and walk the graph it makes. Prints one line per failing case,
// then the counts, and exits non-zero when a case failed or the files are unusable.
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "buildinfo/attrs.h"
#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "buildinfo/identifier.h"
#include "buildinfo/merge.h"
#include "buildinfo/redact.h"
#include "buildinfo/walk.h"
#include "frontend/dockerfile/convert.h"
#include "graph/graph.h"
#include "image/reference.h"
#include "util/json.h"
#include "util/status.h"

#ifndef KILN_DEVIATIONS_FILE
#define KILN_DEVIATIONS_FILE "deviations.md"
#endif

namespace bi = kiln::buildinfo;
using nlohmann::json;

namespace {

// What running a case produced: a JSON object of named outputs, or an error.
struct Outcome {
  bool error = false;
  std::string message;
  json got = json::object();
};

Outcome Error(const kiln::Status& s) { return {true, s.ToString(), json::object()}; }

// Case-input helpers. A JSON null or a missing member means "absent".
const json& Member(const json& in, const char* name) {
  static const json kNull;
  const auto it = in.find(name);
  return it == in.end() ? kNull : *it;
}

std::string Str(const json& in, const char* name, const std::string& def = "") {
  const json& v = Member(in, name);
  return v.is_string() ? v.get<std::string>() : def;
}

bool Bool(const json& in, const char* name, bool def) {
  const json& v = Member(in, name);
  return v.is_boolean() ? v.get<bool>() : def;
}

std::map<std::string, std::string> StringMap(const json& v) {
  std::map<std::string, std::string> out;
  if (!v.is_object()) return out;
  for (const auto& [k, x] : v.items()) {
    if (x.is_string()) out[k] = x.get<std::string>();
  }
  return out;
}

bi::Attrs AttrsOf(const json& v) {
  bi::Attrs out;
  if (!v.is_object()) return out;
  for (const auto& [k, x] : v.items()) {
    out[k] = x.is_string() ? std::optional<std::string>(x.get<std::string>()) : std::nullopt;
  }
  return out;
}

// A record given as JSON in a case: read through kiln's own decoder.
kiln::Result<bi::BuildInfo> RecordOf(const json& v) {
  if (v.is_null()) return bi::BuildInfo{};
  return bi::Decode(v.dump());
}

json RecordJson(const bi::BuildInfo& r) { return json::parse(bi::Encode(r)); }

json SourcesJson(const std::vector<bi::Source>& sources) {
  std::string s = "[";
  for (size_t i = 0; i < sources.size(); ++i) {
    if (i) s += ",";
    bi::AppendSourceJson(&s, sources[i]);
  }
  return json::parse(s + "]");
}

json AttrsJson(const bi::Attrs& attrs) {
  json out = json::object();
  for (const auto& [k, v] : attrs) out[k] = v ? json(*v) : json(nullptr);
  return out;
}

// ---- kinds ----

Outcome RunMerge(const json& in, const std::string& subkind) {
  const bi::SourcePins pins = StringMap(Member(in, "llb_sources"));
  Outcome o;
  if (subkind == "merge-raw") {
    auto fe = RecordOf(json{{"sources", Member(in, "frontend_sources")}});
    if (!fe.ok()) return Error(fe.status());
    auto merged = bi::MergeSources(pins, fe->sources);
    if (!merged.ok()) return Error(merged.status());
    o.got["sources"] = SourcesJson(*merged);
    return o;
  }
  auto meta = RecordOf(Member(in, "metadata"));
  if (!meta.ok()) return Error(meta.status());
  bi::BuildInfo start = *meta;
  if (Bool(in, "encode_twice", false)) {  // R20: first without reported sources
    auto first = bi::Finalize(start, {});
    if (!first.ok()) return Error(first.status());
    start = *first;
  }
  auto fin = bi::Finalize(start, pins);
  if (!fin.ok()) return Error(fin.status());
  o.got["buildinfo"] = RecordJson(*fin);
  o.got["json"] = bi::Encode(*fin);
  return o;
}

Outcome RunDedup(const json& in) {
  auto r = RecordOf(json{{"sources", Member(in, "sources")}, {"deps", Member(in, "deps")}});
  if (!r.ok()) return Error(r.status());
  Outcome o;
  o.got["sources"] = SourcesJson(bi::DedupAgainstDeps(r->sources, r->deps));
  return o;
}

// The ref kiln's merge records for one identifier.
kiln::Result<std::string> MergedRef(const std::string& identifier) {
  KILN_ASSIGN_OR_RETURN(auto merged, bi::MergeSources({{identifier, "sha256:0"}}, {}));
  if (merged.size() != 1) return kiln::Status::Internal("no entry for " + identifier);
  return merged[0].ref;
}

Outcome RunLlbGit(const json& in) {
  const bi::GitSourceSpec spec = bi::MakeGitIdentifier(Str(in, "remote"), Str(in, "ref"));
  auto ref = MergedRef(spec.identifier);
  if (!ref.ok()) return Error(ref.status());
  Outcome o;
  o.got = {{"identifier", spec.identifier}, {"fullurl", spec.full_url}, {"buildinfo_ref", *ref}};
  return o;
}

Outcome RunLlbHttp(const json& in) {
  const std::string id = bi::MakeHttpIdentifier(Str(in, "url"));
  auto ref = MergedRef(id);
  if (!ref.ok()) return Error(ref.status());
  Outcome o;
  o.got = {{"identifier", id}, {"buildinfo_ref", *ref}};
  return o;
}

Outcome RunImageRef(const json& in) {
  auto n = bi::NormalizeImageRef(Str(in, "ref"));
  if (!n.ok()) return Error(n.status());
  auto id = bi::MakeImageIdentifier(Str(in, "ref"));
  if (!id.ok()) return Error(id.status());
  Outcome o;
  o.got = {{"tag_name_only", *n}, {"llb_identifier", *id}};
  return o;
}

Outcome RunDecodeDeps(const json& in) {
  auto deps =
      bi::DecodeDeps(Str(in, "key", std::string(bi::kMetadataKey)), AttrsOf(Member(in, "attrs")));
  if (!deps.ok()) return Error(deps.status());
  Outcome o;
  if (deps->empty()) {
    o.got["deps"] = nullptr;
  } else {
    bi::BuildInfo holder;
    holder.deps = *deps;
    o.got["deps"] = RecordJson(holder)["deps"];
  }
  return o;
}

Outcome RunDecode(const json& in) {
  auto r = bi::DecodeBase64(Str(in, "base64"));
  if (!r.ok()) return Error(r.status());
  Outcome o;
  o.got = {{"buildinfo", RecordJson(*r)},
           {"attrs_count", r->attrs.size()},
           {"sources_count", r->sources.size()}};
  return o;
}

Outcome RunFormat(const json& in) {
  const json& rec = Member(in, "buildinfo");
  auto s = bi::FormatJson(rec.is_null() ? "" : rec.dump(), Bool(in, "remove_attrs", false));
  if (!s.ok()) return Error(s.status());
  Outcome o;
  o.got["json"] = *s;
  if (!s->empty()) o.got["buildinfo"] = json::parse(*s);
  return o;
}

Outcome RunGetMetadata(const json& in) {
  std::optional<bi::BuildInfo> meta;
  if (!Member(in, "metadata").is_null()) {
    auto m = RecordOf(Member(in, "metadata"));
    if (!m.ok()) return Error(m.status());
    meta = *m;
  }
  auto r = bi::BridgeMerge(Str(in, "key", std::string(bi::kMetadataKey)), Str(in, "frontend"),
                           StringMap(Member(in, "req_attrs")), meta);
  if (!r.ok()) return Error(r.status());
  Outcome o;
  o.got = {{"buildinfo", RecordJson(*r)}, {"json", bi::Encode(*r)}};
  return o;
}

Outcome RunReduceMap(const json& in) {
  Outcome o;
  json result = json::object();
  for (const auto& [k, v] :
       bi::OverlayAttrs(StringMap(Member(in, "m1")), AttrsOf(Member(in, "m2")))) {
    result[k] = v;
  }
  o.got["result"] = result;
  return o;
}

// The options each exporter accepts (the exporters own the real lists).
const std::set<std::string, std::less<>>& KnownExporterOptions(const std::string& exporter) {
  static const std::set<std::string, std::less<>> kImage = {"name",
                                                            "push",
                                                            "push-by-digest",
                                                            "insecure",
                                                            "unpack",
                                                            "dangling-name-prefix",
                                                            "name-canonical",
                                                            "store",
                                                            "oci-mediatypes",
                                                            "compression",
                                                            "compression-level",
                                                            "force-compression",
                                                            "buildinfo",
                                                            "buildinfo-attrs"};
  static const std::set<std::string, std::less<>> kOci = {"name",
                                                          "dest",
                                                          "oci-mediatypes",
                                                          "compression",
                                                          "compression-level",
                                                          "force-compression",
                                                          "buildinfo",
                                                          "buildinfo-attrs"};
  return exporter == "image" ? kImage : kOci;
}

Outcome RunExporterOpts(const json& in) {
  const std::string exporter = Str(in, "exporter", "image");
  const auto attrs = StringMap(Member(in, "attrs"));
  kiln::Status valid = bi::ValidateExporterOptions(exporter, attrs, KnownExporterOptions(exporter));
  if (!valid.ok()) return Error(valid);
  auto opts = bi::ParseExportOptions(attrs);
  if (!opts.ok()) return Error(opts.status());
  Outcome o;
  o.got = {{"buildinfo", opts->buildinfo}, {"buildinfo_attrs", opts->buildinfo_attrs}};
  return o;
}

Outcome RunImageConfig(const json& in) {
  const json& rec = Member(in, "buildinfo");
  std::optional<bi::BuildInfo> record;
  if (!rec.is_null()) {
    auto r = RecordOf(rec);
    if (!r.ok()) return Error(r.status());
    record = *r;
  }
  bi::ExportOptions opts;
  opts.buildinfo = Bool(in, "buildinfo_enabled", true);
  opts.buildinfo_attrs = Bool(in, "buildinfo_attrs", false);
  std::optional<std::string> cache;
  if (Member(in, "inline_cache").is_string()) cache = Str(in, "inline_cache");
  auto cfg =
      bi::PatchImageConfig(Member(in, "config").dump(), record ? &*record : nullptr, opts, cache);
  if (!cfg.ok()) return Error(cfg.status());
  const json patched = json::parse(*cfg);
  const std::string v1(bi::kImageConfigField), cache_key(bi::kInlineCacheField);
  Outcome o;
  o.got["buildinfo_key_present"] = patched.contains(v1);
  if (patched.contains(v1)) {
    o.got[v1] = patched[v1];
    auto extracted = bi::ExtractFromImageConfig(*cfg);
    if (!extracted.ok()) return Error(extracted.status());
    if (*extracted) o.got["decoded_buildinfo"] = RecordJson(**extracted);
  }
  if (patched.contains(cache_key)) o.got[cache_key] = patched[cache_key];
  return o;
}

Outcome RunResponse(const json& in) {
  std::map<std::string, bi::BuildInfo> records;
  for (const auto& [k, v] : Member(in, "metadata").items()) {
    auto r = RecordOf(v);
    if (!r.ok()) return Error(r.status());
    records[k] = *r;
  }
  auto resp = bi::ExporterResponse(records);
  if (!resp.ok()) return Error(resp.status());
  Outcome o;
  o.got["exporter_response"] = *resp;
  return o;
}

Outcome RunMetadataFile(const json& in) {
  Outcome o;
  o.got["metadata_file"] =
      json::parse(bi::MetadataFileContent(StringMap(Member(in, "exporter_response"))));
  return o;
}

// llb-walk: BuildKit's named LLB scenarios, as small graphs of kiln vertices.
struct ToyVertex {
  std::string identifier;  // "" for a non-source op (exec, file, merge)
  std::vector<int> inputs;
};

std::optional<std::vector<ToyVertex>> Scenario(const std::string& name) {
  const std::string busybox = "docker-image://docker.io/library/busybox:latest";
  const std::string alpine = "docker-image://docker.io/library/alpine:latest";
  // The result vertex is always the last one.
  if (name == "image-run")
    return std::vector<ToyVertex>{{busybox, {}}, {"", {0}}};  // exec on busybox
  if (name == "http-root") {
    return std::vector<ToyVertex>{
        {"https://raw.githubusercontent.com/moby/moby/master/README.md", {}}};
  }
  if (name == "local-copy")
    return std::vector<ToyVertex>{{"local://context", {}}, {"", {0}}};  // copy
  if (name == "merge") return std::vector<ToyVertex>{{alpine, {}}, {busybox, {}}, {"", {0, 1}}};
  if (name == "run-output-mount") {
    // exec with busybox as rootfs and a scratch mount whose output is exported
    return std::vector<ToyVertex>{{busybox, {}}, {"", {0}}};
  }
  return std::nullopt;
}

Outcome RunLlbWalk(const json& in) {
  const std::string name = Str(in, "scenario");
  auto graph = Scenario(name);
  if (!graph) return {true, "unknown llb-walk scenario \"" + name + "\"", json::object()};
  const json& registry = Member(in, "registry");
  const auto pins_table = StringMap(Member(in, "pins"));
  std::string missing;
  auto report = [&](int v) -> std::optional<std::pair<std::string, std::string>> {
    const std::string& id = (*graph)[v].identifier;
    if (id.empty() || id.rfind("local://", 0) == 0) return std::nullopt;  // R10
    constexpr std::string_view kImage = "docker-image://";
    if (id.rfind(kImage, 0) == 0) {
      const json& entry = Member(registry, id.substr(kImage.size()).c_str());
      if (entry.is_object() && entry.contains("digest"))
        return {{id, entry["digest"].get<std::string>()}};
    } else if (auto it = pins_table.find(id); it != pins_table.end()) {
      return {{id, it->second}};
    }
    missing = id;
    return std::nullopt;
  };
  auto inputs = [&](int v) { return (*graph)[v].inputs; };
  const bi::SourcePins pins =
      bi::CollectSources(static_cast<int>(graph->size()) - 1, inputs, report);
  if (!missing.empty())
    return {true, "scenario " + name + ": no pin for " + missing, json::object()};
  auto fin = bi::Finalize({}, pins);
  if (!fin.ok()) return Error(fin.status());
  Outcome o;
  o.got = {{"llb_sources", pins}, {"buildinfo", RecordJson(*fin)}};
  return o;
}

Outcome RunClientMapping(const json& in) {
  const auto build_args = StringMap(Member(in, "build_args"));
  const json& exp = Member(in, "export");
  bi::RequestAttrs frontend_attrs;
  for (const auto& [k, v] : build_args) frontend_attrs["build-arg:" + k] = v;
  bi::Attrs as_attrs;
  for (const auto& [k, v] : frontend_attrs) as_attrs[k] = v;
  const bi::Attrs recorded = bi::FilterAttrs(bi::kMetadataKey, as_attrs);
  Outcome o;
  o.got["export_attrs_sent"] =
      bi::MapClientExportAttrs(Str(exp, "type"), StringMap(Member(exp, "attrs")), build_args);
  o.got["frontend_attrs_sent_contains"] = frontend_attrs;
  o.got["recorded_in_buildinfo_attrs"] =
      recorded.count("build-arg:BUILDKIT_INLINE_BUILDINFO_ATTRS") > 0;
  return o;
}

// ---- dockerfile: the frontend, the walk, the bridge, the exporter ----

// The case's registry table: every platform resolves to the table's digest,
// as a real index would; an "empty" image has a config without layers.
class TableResolver : public kiln::dockerfile::ImageResolver {
 public:
  explicit TableResolver(const json& registry) : registry_(registry) {}
  kiln::Result<kiln::dockerfile::ResolvedImage> ResolveImage(
      const std::string& ref, const kiln::image::Platform& platform) override {
    kiln::dockerfile::ResolvedImage r;
    auto parsed = kiln::image::ParseNormalizedNamed(ref);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->digest.empty()) {
      r.digest = parsed->digest;
    } else {
      const json& entry = Member(registry_, ref.c_str());
      if (!entry.is_object()) return kiln::Status::NotFound(ref + ": not in the case's registry");
      r.digest = Str(entry, "digest");
    }
    r.config.architecture = platform.architecture;
    r.config.os = platform.os;
    return r;
  }

 private:
  const json& registry_;
};

struct PlatformBuild {
  std::string key;  // result key
  kiln::dockerfile::ConvertResult converted;
  bi::SourcePins pins;
  bi::BuildInfo final_record;
};

// One build (main or base) per platform: convert, walk, bridge, Encode.
kiln::Result<std::vector<PlatformBuild>> BuildDockerfile(
    const json& registry, const json& pins_table, const std::string& dockerfile,
    bi::RequestAttrs attrs, bool gateway_client,
    const std::map<std::string, std::vector<PlatformBuild>>& inputs) {
  namespace df = kiln::dockerfile;
  TableResolver resolver(registry);
  df::ConvertOptions opt;
  opt.resolver = &resolver;
  opt.build_platform = kiln::image::Platform{"linux", "amd64", "", "", {}};
  std::vector<std::string> platforms;
  for (const auto& [k, v] : attrs) {
    if (k.rfind("build-arg:", 0) == 0) opt.build_args[k.substr(10)] = v;
    if (k.rfind("label:", 0) == 0) opt.labels[k.substr(6)] = v;
    if (k.rfind("context:", 0) == 0) opt.named_contexts[k.substr(8)] = v;
    if (k == "target") opt.target = v;
    if (k == "context") opt.context = v;
    if (k == "filename") opt.filename = v;
    if (k == "platform") {
      std::stringstream ss(v);
      for (std::string p; std::getline(ss, p, ',');) platforms.push_back(p);
    }
  }
  const bool multi = platforms.size() > 1;
  if (platforms.empty()) platforms.push_back("linux/amd64");
  std::vector<PlatformBuild> out;
  for (const std::string& p : platforms) {
    auto platform = kiln::image::ParsePlatform(p);
    if (!platform.ok()) return platform.status();
    opt.target_platform = kiln::image::Normalize(*platform);
    const std::string pstr = kiln::image::Format(opt.target_platform);
    opt.inputs.clear();
    for (const auto& [name, builds] : inputs) {
      for (const PlatformBuild& b : builds) {
        if (builds.size() > 1 && bi::PlatformOfKey(b.key) != pstr) continue;
        df::InputContext in;
        in.state = b.converted.root;
        in.config = b.converted.config;
        in.buildinfo = b.final_record;
        opt.inputs[name] = in;
      }
    }
    PlatformBuild pb;
    pb.key = multi ? std::string(bi::kMetadataKey) + "/" + pstr : std::string(bi::kMetadataKey);
    KILN_ASSIGN_OR_RETURN(pb.converted, df::ConvertToGraph(dockerfile, opt));
    std::string missing;
    auto report =
        [&](const kiln::graph::VertexPtr& v) -> std::optional<std::pair<std::string, std::string>> {
      const auto* src = std::get_if<kiln::graph::SourceOp>(&v->op);
      if (!src || src->identifier.rfind("local://", 0) == 0) return std::nullopt;  // R10
      const std::string& id = src->identifier;
      constexpr std::string_view kImage = "docker-image://";
      if (id.rfind(kImage, 0) == 0) {
        const std::string ref = id.substr(kImage.size());
        if (const size_t at = ref.find('@'); at != std::string::npos) {
          return {{id, ref.substr(at + 1)}};
        }
        const json& entry = Member(registry, ref.c_str());
        if (entry.is_object()) return {{id, Str(entry, "digest")}};
      } else if (const json& pin = Member(pins_table, id.c_str()); pin.is_string()) {
        return {{id, pin.get<std::string>()}};
      }
      missing = id;
      return std::nullopt;
    };
    auto inputs_of = [](const kiln::graph::VertexPtr& v) {
      std::vector<kiln::graph::VertexPtr> in;
      for (const auto& o : v->inputs) {
        if (!o.scratch()) in.push_back(o.vertex);
      }
      return in;
    };
    if (!pb.converted.root.scratch()) {
      pb.pins = bi::CollectSources(pb.converted.root.vertex, inputs_of, report);
    }
    if (!missing.empty()) return kiln::Status::NotFound("no pin in the case for " + missing);
    KILN_ASSIGN_OR_RETURN(bi::BuildInfo bridged,
                          bi::BridgeMerge(pb.key, "dockerfile.v0", attrs, pb.converted.sources,
                                          /*deps_from_request=*/false));
    if (gateway_client) {
      KILN_ASSIGN_OR_RETURN(bridged, bi::Finalize(bridged, {}));
    }
    KILN_ASSIGN_OR_RETURN(pb.final_record, bi::Finalize(bridged, pb.pins));
    out.push_back(std::move(pb));
  }
  return out;
}

json FrontendRecordJson(const bi::BuildInfo& r) {
  // The frontend's own record keeps aliases, which Encode never writes.
  json j = json::object();
  if (!r.sources.empty()) {
    json list = json::array();
    for (const bi::Source& s : r.sources) {
      json e = {{"type", s.type}, {"ref", s.ref}, {"pin", s.pin}};
      if (!s.alias.empty()) e["alias"] = s.alias;
      list.push_back(e);
    }
    j["sources"] = list;
  }
  if (!r.deps.empty()) j["deps"] = RecordJson(bi::BuildInfo{"", {}, {}, r.deps})["deps"];
  return j;
}

Outcome RunDockerfile(const json& in) {
  const json& registry = Member(in, "registry");
  const json& pins_table = Member(in, "pins");
  const json& main = Member(in, "main");
  bi::RequestAttrs attrs = StringMap(Member(main, "frontend_attrs"));
  std::map<std::string, std::vector<PlatformBuild>> inputs;
  Outcome o;
  if (const json& base = Member(in, "base"); base.is_object()) {
    // A dependency build whose result is passed as input `base`, with its
    // record in input-metadata:base, as BuildKit's deps tests do (R20: the
    // gateway encodes it before evaluation, so with no walked sources).
    auto built = BuildDockerfile(registry, pins_table, Str(base, "dockerfile"),
                                 StringMap(Member(base, "frontend_attrs")), false, {});
    if (!built.ok()) return Error(built.status());
    json passed = json::object();
    json metadata = json::object();
    for (PlatformBuild& b : *built) {
      auto bridged =
          bi::BridgeMerge(b.key, "dockerfile.v0", StringMap(Member(base, "frontend_attrs")),
                          b.converted.sources, false);
      if (!bridged.ok()) return Error(bridged.status());
      auto early = bi::Finalize(*bridged, {});
      if (!early.ok()) return Error(early.status());
      b.final_record = *early;
      passed[b.key] = RecordJson(*early);
      metadata[b.key] = bi::EncodeBase64(*early);
    }
    o.got["base_buildinfo_passed_as_input_metadata"] = passed;
    attrs["context:base"] = "input:base";
    if (built->size() == 1) {
      attrs["input-metadata:base"] = metadata.dump();
    } else {
      for (const PlatformBuild& b : *built) {
        json one = {{std::string(bi::kMetadataKey), metadata[b.key]}};
        attrs["input-metadata:base::" + std::string(bi::PlatformOfKey(b.key))] = one.dump();
      }
    }
    inputs["base"] = std::move(*built);
  }
  auto built = BuildDockerfile(registry, pins_table, Str(main, "dockerfile"), attrs,
                               Bool(main, "gateway_client", false), inputs);
  if (!built.ok()) return Error(built.status());
  const bool config_enabled = Bool(in, "exporter_buildinfo", true);
  const bool config_attrs = Bool(in, "exporter_buildinfo_attrs", false);
  json frontend = json::object(), llb = json::object(), response = json::object(),
       config = json::object();
  for (const PlatformBuild& b : *built) {
    frontend[b.key] = FrontendRecordJson(b.converted.sources);
    llb[b.key] = b.pins;
    response[b.key] = RecordJson(b.final_record);
    if (config_enabled) config[b.key] = RecordJson(bi::Format(b.final_record, !config_attrs));
  }
  o.got["frontend_metadata"] = frontend;
  o.got["llb_sources"] = llb;
  o.got["exporter_response_buildinfo"] = response;
  o.got["image_config_buildinfo"] = config;
  return o;
}

Outcome RunCase(const std::string& kind, const std::string& subkind, const json& in) {
  if (kind == "merge") return RunMerge(in, subkind);
  if (kind == "dedup") return RunDedup(in);
  if (kind == "redact") {
    Outcome o;
    o.got["result"] = bi::RedactUrl(Str(in, "url"));
    return o;
  }
  if (kind == "llb-git") return RunLlbGit(in);
  if (kind == "llb-http") return RunLlbHttp(in);
  if (kind == "image-ref") return RunImageRef(in);
  if (kind == "control-arg") {
    Outcome o;
    o.got["is_control_arg"] = bi::IsControlArg(Str(in, "attr"));
    return o;
  }
  if (kind == "filter-attrs") {
    Outcome o;
    o.got["attrs"] = AttrsJson(bi::FilterAttrs(Str(in, "key", std::string(bi::kMetadataKey)),
                                               AttrsOf(Member(in, "attrs"))));
    return o;
  }
  if (kind == "decode-deps") return RunDecodeDeps(in);
  if (kind == "decode") return RunDecode(in);
  if (kind == "format") return RunFormat(in);
  if (kind == "get-metadata") return RunGetMetadata(in);
  if (kind == "reduce-map") return RunReduceMap(in);
  if (kind == "exporter-opts") return RunExporterOpts(in);
  if (kind == "image-config") return RunImageConfig(in);
  if (kind == "response") return RunResponse(in);
  if (kind == "metadata-file") return RunMetadataFile(in);
  if (kind == "llb-walk") return RunLlbWalk(in);
  if (kind == "client-mapping") return RunClientMapping(in);
  if (kind == "dockerfile") return RunDockerfile(in);
  return {true, "unknown case kind \"" + kind + "\"", json::object()};
}

// ---- expectations ----

// The expectation(s) a case is checked against: kiln's own for a listed
// deviation; otherwise v0.10.1-v0.10.6 behaviour, and for nondeterministic
// BuildKit output the recommended one (else any observed one).
std::vector<json> Expectations(const json& expected) {
  if (expected.is_object() && expected.contains("v0_10_1_to_v0_10_6")) {
    return Expectations(expected["v0_10_1_to_v0_10_6"]);
  }
  if (expected.is_object() && Bool(expected, "nondeterministic_in_buildkit", false)) {
    if (expected.contains("recommended")) return {expected["recommended"]};
    std::vector<json> all;
    for (const auto& e : Member(expected, "one_of")) all.push_back(e);
    return all;
  }
  return {expected};
}

bool IsErrorExpectation(const json& e) {
  return e.is_object() && (Bool(e, "error", false) || Bool(e, "crash", false));
}

bool Subset(const json& want, const json& have) {
  if (!want.is_object() || !have.is_object()) return want == have;
  for (const auto& [k, v] : want.items()) {
    if (!have.contains(k) || have[k] != v) return false;
  }
  return true;
}

// "" when `o` meets `e`, else a one-line difference.
std::string Diff(const json& e, const Outcome& o) {
  if (IsErrorExpectation(e)) {
    return o.error ? "" : "expected an error, got " + o.got.dump();
  }
  if (o.error) return "expected " + e.dump() + ", got error: " + o.message;
  if (!e.is_object()) return "bad expectation " + e.dump();
  std::string diff;
  for (const auto& [k, want] : e.items()) {
    const json have = o.got.contains(k) ? o.got[k] : json();
    const bool contains = k.size() > 9 && k.substr(k.size() - 9) == "_contains";
    if (k == "req_attrs_after") continue;  // BuildKit's side effect, not copied (R27)
    if (contains ? Subset(want, have) : want == have) continue;
    diff += (diff.empty() ? "" : "; ") + k + ": expected " + want.dump() + " got " +
            (o.got.contains(k) ? have.dump() : std::string("(nothing)"));
  }
  return diff;
}

// deviations.md: "## <case id>" headings, each followed (before the next
// heading) by one ```json block holding kiln's expectation for the case.
bool LoadDeviations(const std::string& path, std::map<std::string, json>* out, std::string* err) {
  std::ifstream f(path);
  if (!f) {
    *err = "cannot open deviation list " + path;
    return false;
  }
  std::string line, id, block;
  bool in_block = false;
  std::set<std::string> need_block;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (in_block) {
      if (line.rfind("```", 0) == 0) {
        in_block = false;
        try {
          (*out)[id] = json::parse(block);
        } catch (const std::exception& e) {
          *err = path + ": the json block of " + id + " does not parse: " + e.what();
          return false;
        }
        need_block.erase(id);
      } else {
        block += line + "\n";
      }
      continue;
    }
    if (line.rfind("## ", 0) == 0) {
      std::istringstream ss(line.substr(3));
      ss >> id;
      if (out->count(id) || need_block.count(id)) {
        *err = path + ":" + std::to_string(lineno) + ": " + id + " is listed twice";
        return false;
      }
      need_block.insert(id);
    } else if (line.rfind("```json", 0) == 0 && !id.empty() && need_block.count(id)) {
      in_block = true;
      block.clear();
    }
  }
  if (!need_block.empty()) {
    *err = path + ": " + *need_block.begin() + " has no ```json block";
    return false;
  }
  return true;
}

int Usage() {
  std::cerr << "usage: kiln-conformance buildinfo CASES.json [--deviations FILE] [--print ID]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "buildinfo") return Usage();
  const std::string cases_path = argv[2];
  std::string deviations_path = KILN_DEVIATIONS_FILE;
  std::string print_id;  // --print ID: show what kiln produced for one case
  for (int i = 3; i < argc; ++i) {
    if (std::string(argv[i]) == "--deviations" && i + 1 < argc) {
      deviations_path = argv[++i];
    } else if (std::string(argv[i]) == "--print" && i + 1 < argc) {
      print_id = argv[++i];
    } else {
      return Usage();
    }
  }

  std::ifstream f(cases_path);
  if (!f) {
    std::cerr << "kiln-conformance: cannot open case file " << cases_path
              << " (the in-repo copy under tests/conformance/data)\n";
    return 2;
  }
  json cases;
  try {
    cases = json::parse(f);
  } catch (const std::exception& e) {
    std::cerr << "kiln-conformance: " << cases_path << " is not valid JSON: " << e.what() << "\n";
    return 2;
  }
  if (cases.is_object() && cases.contains("cases")) cases = cases["cases"];
  if (!cases.is_array()) {
    std::cerr << "kiln-conformance: " << cases_path << ": expected a JSON array of cases\n";
    return 2;
  }
  std::map<std::string, json> deviations;
  std::string err;
  if (!LoadDeviations(deviations_path, &deviations, &err)) {
    std::cerr << "kiln-conformance: " << err << "\n";
    return 2;
  }

  int passed = 0, failed = 0, deviated = 0;
  for (const json& c : cases) {
    const std::string id = c.is_object() ? Str(c, "id", "(no id)") : "(not an object)";
    const std::string kind = c.is_object() ? Str(c, "kind") : "";
    std::string diff;
    try {
      const auto dev = deviations.find(id);
      const std::vector<json> wants = dev != deviations.end() ? std::vector<json>{dev->second}
                                                              : Expectations(Member(c, "expected"));
      const Outcome o = RunCase(kind, Str(c, "subkind"), Member(c, "input"));
      if (id == print_id) {
        std::cout << (o.error ? "error: " + o.message : o.got.dump(1)) << "\n";
      }
      diff = wants.empty() ? "no expectation" : "";
      for (const json& w : wants) {
        diff = Diff(w, o);
        if (diff.empty()) break;
      }
      if (diff.empty() && dev != deviations.end()) ++deviated;
    } catch (const std::exception& e) {
      diff = std::string("bad case: ") + e.what();
    }
    if (diff.empty()) {
      ++passed;
    } else {
      ++failed;
      std::cout << "FAIL " << id << " [" << kind << "]: " << diff << "\n";
    }
  }
  std::cout << deviated << " cases matched kiln's expectation as listed deviations\n";
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
