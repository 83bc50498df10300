#include "image/index.h"

#include "image/json_object.h"
#include "image/media_types.h"
#include "image/model_json.h"

namespace kiln::image {
namespace {

Status ReadIndex(std::string_view json, Index* x) {
  using namespace internal;
  KILN_RETURN_IF_ERROR(ReadObject(
      json, "",
      {
          {"schemaVersion",
           [&](std::string_view v, const std::string& at) {
             return ReadInt64(v, at, &x->schema_version);
           }},
          {"mediaType", [&](std::string_view v,
                            const std::string& at) { return ReadString(v, at, &x->media_type); }},
          {"artifactType",
           [&](std::string_view v, const std::string& at) {
             return ReadString(v, at, &x->artifact_type);
           }},
          {"manifests",
           [&](std::string_view v, const std::string& at) {
             return ReadDescriptorList(v, at, &x->manifests);
           }},
          {"subject",
           [&](std::string_view v, const std::string& at) {
             return ReadOptionalDescriptor(v, at, &x->subject);
           }},
          {"annotations",
           [&](std::string_view v, const std::string& at) {
             return ReadStringMap(v, at, &x->annotations);
           }},
      },
      &x->layout));
  KILN_RETURN_IF_ERROR(CheckSchemaVersion(x->layout, x->schema_version));
  if (!x->media_type.empty() && !IsIndex(x->media_type)) {
    return Status::InvalidArgument(
        "mediaType: " + util::GoString(x->media_type) +
        (IsManifest(x->media_type) ? " is a manifest, not an index" : " is not an index type"));
  }
  return Status::Ok();
}

}  // namespace

std::string Index::ToJson() const {
  using internal::FieldOut;
  using internal::WhenEmpty;
  const FieldOut fields[] = {
      {"schemaVersion", false, WhenEmpty::kWrite,
       [&](util::JsonWriter& o) { o.Int(schema_version); }},
      {"mediaType", media_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(media_type); }},
      {"artifactType", artifact_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(artifact_type); }},
      {"manifests", manifests.empty(), WhenEmpty::kNull,
       [&](util::JsonWriter& o) { internal::WriteDescriptorList(o, manifests); }},
      {"subject", !subject.has_value(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { subject->WriteJson(o); }},
      {"annotations", annotations.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { internal::WriteStringMap(o, annotations); }},
  };
  util::JsonWriter w;
  internal::WriteObject(w, layout, fields);
  return w.Take();
}

Result<Index> ParseIndex(std::string_view json) {
  Index x;
  Status s = ReadIndex(json, &x);
  if (!s.ok()) return s.Annotate("invalid image index");
  return x;
}

Result<Descriptor> PickManifest(const Index& index, const Platform& want) {
  std::string available;
  for (const Descriptor& d : index.manifests) {
    if (!IsManifest(d.media_type) || !d.platform.has_value()) continue;
    if (Matches(want, *d.platform)) return d;
    if (!available.empty()) available += ", ";
    available += Format(*d.platform);
  }
  return Status::NotFound("no manifest for " + Format(Normalize(want)) + " in the index (" +
                          (available.empty() ? std::string("it has no platform-specific manifests")
                                             : "it has " + available) +
                          ")");
}

}  // namespace kiln::image
