#include "image/manifest.h"

#include "image/json_object.h"
#include "image/media_types.h"
#include "image/model_json.h"

namespace kiln::image {
namespace internal {

// Shared by ParseManifest and ParseIndex.
Status ReadDescriptorList(std::string_view raw, const std::string& path,
                          std::vector<Descriptor>* out) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> elements, SplitArray(raw, path));
  std::vector<Descriptor> list(elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    KILN_RETURN_IF_ERROR(ReadDescriptor(elements[i], Element(path, i), &list[i]));
  }
  *out = std::move(list);
  return Status::Ok();
}

Status ReadOptionalDescriptor(std::string_view raw, const std::string& path,
                              std::optional<Descriptor>* out) {
  if (raw == "null") {
    out->reset();
    return Status::Ok();
  }
  Descriptor d;
  KILN_RETURN_IF_ERROR(ReadDescriptor(raw, path, &d));
  *out = std::move(d);
  return Status::Ok();
}

void WriteDescriptorList(util::JsonWriter& w, const std::vector<Descriptor>& list) {
  w.BeginArray();
  for (const auto& d : list) d.WriteJson(w);
  w.EndArray();
}

Status CheckSchemaVersion(const MemberLayout& layout, int64_t version) {
  KILN_RETURN_IF_ERROR(Require(layout, "", "schemaVersion"));
  if (version != 2) {
    return Status::InvalidArgument("schemaVersion: expected 2, found " + std::to_string(version));
  }
  return Status::Ok();
}

}  // namespace internal

namespace {

Status ReadManifest(std::string_view json, Manifest* m) {
  using namespace internal;
  std::vector<Descriptor> layers;
  KILN_RETURN_IF_ERROR(ReadObject(
      json, "",
      {
          {"schemaVersion",
           [&](std::string_view v, const std::string& at) {
             return ReadInt64(v, at, &m->schema_version);
           }},
          {"mediaType", [&](std::string_view v,
                            const std::string& at) { return ReadString(v, at, &m->media_type); }},
          {"artifactType",
           [&](std::string_view v, const std::string& at) {
             return ReadString(v, at, &m->artifact_type);
           }},
          {"config",
           [&](std::string_view v, const std::string& at) -> Status {
             if (v == "null") return Status::Ok();  // reported as missing below
             return ReadDescriptor(v, at, &m->config);
           }},
          {"layers", [&](std::string_view v,
                         const std::string& at) { return ReadDescriptorList(v, at, &m->layers); }},
          {"subject",
           [&](std::string_view v, const std::string& at) {
             return ReadOptionalDescriptor(v, at, &m->subject);
           }},
          {"annotations",
           [&](std::string_view v, const std::string& at) {
             return ReadStringMap(v, at, &m->annotations);
           }},
      },
      &m->layout));
  KILN_RETURN_IF_ERROR(CheckSchemaVersion(m->layout, m->schema_version));
  if (!m->media_type.empty() && !IsManifest(m->media_type)) {
    return Status::InvalidArgument(
        "mediaType: " + util::GoString(m->media_type) +
        (IsIndex(m->media_type) ? " is an index, not a manifest" : " is not a manifest type"));
  }
  KILN_RETURN_IF_ERROR(Require(m->layout, "", "config"));
  return Status::Ok();
}

}  // namespace

std::string Manifest::ToJson() const {
  using internal::FieldOut;
  using internal::WhenEmpty;
  const FieldOut fields[] = {
      {"schemaVersion", false, WhenEmpty::kWrite,
       [&](util::JsonWriter& o) { o.Int(schema_version); }},
      {"mediaType", media_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(media_type); }},
      {"artifactType", artifact_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(artifact_type); }},
      {"config", false, WhenEmpty::kWrite, [&](util::JsonWriter& o) { config.WriteJson(o); }},
      {"layers", layers.empty(), WhenEmpty::kNull,
       [&](util::JsonWriter& o) { internal::WriteDescriptorList(o, layers); }},
      {"subject", !subject.has_value(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { subject->WriteJson(o); }},
      {"annotations", annotations.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { internal::WriteStringMap(o, annotations); }},
  };
  util::JsonWriter w;
  internal::WriteObject(w, layout, fields);
  return w.Take();
}

Result<Manifest> ParseManifest(std::string_view json) {
  Manifest m;
  Status s = ReadManifest(json, &m);
  if (!s.ok()) return s.Annotate("invalid image manifest");
  return m;
}

}  // namespace kiln::image
