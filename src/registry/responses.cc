// Readers for parts of registry responses (see responses.h).
#include "registry/responses.h"

#include <charconv>

#include "image/media_types.h"
#include "util/json.h"

namespace kiln::registry {

std::string RegistryErrorDetail(const std::string& body) {
  if (body.empty()) return "";
  auto json = util::ParseJson(body, "error body");
  if (!json.ok() || !json->is_object()) return "";
  auto errs = json->find("errors");
  if (errs == json->end() || !errs->is_array() || errs->empty()) return "";
  const auto& e = (*errs)[0];
  if (!e.is_object()) return "";
  std::string out;
  if (auto c = e.find("code"); c != e.end() && c->is_string()) out = c->get<std::string>();
  if (auto m = e.find("message"); m != e.end() && m->is_string()) {
    if (!out.empty()) out += ": ";
    out += m->get<std::string>();
  }
  if (out.size() > 300) out.resize(300);
  return out;
}

std::string ManifestMediaType(std::string_view bytes, const std::string& content_type) {
  auto json = util::ParseJson(bytes, "manifest");
  if (json.ok() && json->is_object()) {
    auto mt = json->find("mediaType");
    if (mt != json->end() && mt->is_string() && !mt->get<std::string>().empty()) {
      return mt->get<std::string>();
    }
    if (!content_type.empty() && content_type != "application/json" &&
        content_type != "text/plain" && content_type != "application/octet-stream") {
      return content_type;
    }
    auto sv = json->find("schemaVersion");
    if (sv != json->end() && sv->is_number_integer() && sv->get<int64_t>() == 1) {
      return std::string(image::kMediaTypeDockerManifestSchema1);
    }
    if (json->contains("manifests")) return std::string(image::kMediaTypeOciIndex);
    if (json->contains("config")) return std::string(image::kMediaTypeOciManifest);
  }
  return content_type;
}

std::optional<uint64_t> ContentRangeStart(std::string_view v) {
  if (!v.starts_with("bytes ")) return std::nullopt;
  v.remove_prefix(6);
  uint64_t start = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), start);
  if (ec != std::errc() || p == v.data() + v.size() || *p != '-') return std::nullopt;
  return start;
}

}  // namespace kiln::registry
