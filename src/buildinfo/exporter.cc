#include "buildinfo/exporter.h"

#include <vector>

#include "buildinfo/merge.h"
#include "buildinfo/redact.h"
#include "util/base64.h"
#include "util/json.h"

namespace kiln::buildinfo {
namespace {

Status ParseBoolOption(const ExporterAttrs& attrs, std::string_view name, bool* out) {
  const auto it = attrs.find(std::string(name));
  if (it == attrs.end() || it->second.empty()) return Status::Ok();
  const std::string& v = it->second;
  if (v == "true" || v == "1") {
    *out = true;
  } else if (v == "false" || v == "0") {
    *out = false;
  } else {
    return Status::InvalidArgument("exporter option " + util::GoString(name) + ": invalid value " +
                                   util::GoString(RedactText(v)) +
                                   " (expected true, false, 1 or 0)");
  }
  return Status::Ok();
}

}  // namespace

Result<ExportOptions> ParseExportOptions(const ExporterAttrs& attrs) {
  ExportOptions opts;
  KILN_RETURN_IF_ERROR(ParseBoolOption(attrs, kOptBuildInfo, &opts.buildinfo));
  KILN_RETURN_IF_ERROR(ParseBoolOption(attrs, kOptBuildInfoAttrs, &opts.buildinfo_attrs));
  return opts;
}

Status ValidateExporterOptions(std::string_view exporter, const ExporterAttrs& attrs,
                               const std::set<std::string, std::less<>>& known) {
  for (const auto& [k, v] : attrs) {
    if (known.find(k) == known.end()) {
      return Status::InvalidArgument("unknown option " + util::GoString(k) + " for exporter " +
                                     util::GoString(exporter));
    }
  }
  return Status::Ok();
}

ExporterAttrs MapClientExportAttrs(std::string_view export_type, ExporterAttrs export_attrs,
                                   const std::map<std::string, std::string>& build_args) {
  if (export_type != "image" && export_type != "oci" && export_type != "docker")
    return export_attrs;
  const auto it = build_args.find("BUILDKIT_INLINE_BUILDINFO_ATTRS");
  if (it != build_args.end()) export_attrs.try_emplace(std::string(kOptBuildInfoAttrs), it->second);
  return export_attrs;
}

Result<std::string> PatchImageConfig(std::string_view config, const BuildInfo* record,
                                     const ExportOptions& opts,
                                     const std::optional<std::string>& inline_cache) {
  KILN_ASSIGN_OR_RETURN(std::vector<util::RawMember> members,
                        util::SplitObject(config, "image config"));
  std::map<std::string, std::string> out;  // sorted, as Go re-marshals a map
  for (auto& m : members) out[std::move(m.key)] = std::move(m.value);
  out.erase(std::string(kImageConfigField));
  out.erase(std::string(kImageConfigFieldLegacy));
  if (opts.buildinfo && record != nullptr) {
    KILN_ASSIGN_OR_RETURN(std::string json, EncodeChecked(Format(*record, !opts.buildinfo_attrs)));
    out[std::string(kImageConfigField)] = util::GoString(util::Base64Encode(json));
  }
  if (inline_cache) {
    out[std::string(kInlineCacheField)] = util::GoString(util::Base64Encode(*inline_cache));
  }
  std::string result = "{";
  bool first = true;
  for (const auto& [k, v] : out) {
    if (!first) result.push_back(',');
    first = false;
    util::AppendGoString(&result, k);
    result.push_back(':');
    result.append(v);
  }
  result.push_back('}');
  return result;
}

Result<std::optional<BuildInfo>> ExtractFromImageConfig(std::string_view config) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json v, util::ParseJson(config, "image config"));
  if (!v.is_object()) return Status::InvalidArgument("image config: expected a JSON object");
  for (std::string_view field : {kImageConfigField, kImageConfigFieldLegacy}) {
    const auto it = v.find(std::string(field));
    if (it == v.end() || it->is_null()) continue;
    if (!it->is_string()) {
      return Status::InvalidArgument("image config: member " + util::GoString(field) +
                                     " is not a string");
    }
    auto bi = DecodeBase64(it->get<std::string>());
    if (!bi.ok()) return bi.status().Annotate("image config member " + util::GoString(field));
    return std::optional<BuildInfo>(std::move(*bi));
  }
  return std::optional<BuildInfo>();
}

std::string ResponseKey(std::string_view platform) {
  std::string key(kMetadataKey);
  if (!platform.empty()) key += "/" + std::string(platform);
  return key;
}

Result<std::map<std::string, std::string>> ExporterResponse(
    const std::map<std::string, BuildInfo>& records) {
  std::map<std::string, std::string> out;
  for (const auto& [key, record] : records) {
    if (key.rfind(kMetadataKey, 0) != 0) continue;
    BuildInfo bi = record;
    RedactRecord(&bi);
    auto json = EncodeChecked(bi);
    if (!json.ok()) return json.status().Annotate(key);
    out[key] = util::Base64Encode(*json);
  }
  return out;
}

std::string MetadataFileContent(const std::map<std::string, std::string>& response) {
  nlohmann::json file = nlohmann::json::object();
  for (const auto& [k, v] : response) {
    file[k] = v;
    auto raw = util::Base64Decode(v);
    if (!raw.ok()) continue;
    auto parsed = util::ParseJson(*raw, "response value");
    if (parsed.ok() && parsed->is_object() && !parsed->empty()) file[k] = std::move(*parsed);
  }
  return util::GoMarshalIndent(file, "  ");
}

}  // namespace kiln::buildinfo
