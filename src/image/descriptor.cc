#include "image/descriptor.h"

#include "image/json_object.h"
#include "image/model_json.h"

namespace kiln::image {
namespace internal {

Status Require(const MemberLayout& layout, const std::string& path, std::string_view key) {
  const MemberLayout::Entry* e = layout.Find(key);
  if (e == nullptr || e->empty_literal == "null") {
    return Status::InvalidArgument(Member(path, key) + ": required member is missing");
  }
  return Status::Ok();
}

Status ReadPlatform(std::string_view raw, const std::string& path, Platform* out,
                    MemberLayout* layout) {
  Platform p;
  KILN_RETURN_IF_ERROR(ReadObject(
      raw, path,
      {
          {"architecture",
           [&](std::string_view v, const std::string& at) {
             return ReadString(v, at, &p.architecture);
           }},
          {"os",
           [&](std::string_view v, const std::string& at) { return ReadString(v, at, &p.os); }},
          {"os.version", [&](std::string_view v,
                             const std::string& at) { return ReadString(v, at, &p.os_version); }},
          {"os.features",
           [&](std::string_view v, const std::string& at) {
             return ReadStringList(v, at, &p.os_features);
           }},
          {"variant", [&](std::string_view v,
                          const std::string& at) { return ReadString(v, at, &p.variant); }},
      },
      layout));
  KILN_RETURN_IF_ERROR(Require(*layout, path, "architecture"));
  KILN_RETURN_IF_ERROR(Require(*layout, path, "os"));
  *out = std::move(p);
  return Status::Ok();
}

void WritePlatform(util::JsonWriter& w, const Platform& p, const MemberLayout& layout) {
  const FieldOut fields[] = {
      {"architecture", false, WhenEmpty::kWrite,
       [&](util::JsonWriter& o) { o.String(p.architecture); }},
      {"os", false, WhenEmpty::kWrite, [&](util::JsonWriter& o) { o.String(p.os); }},
      {"os.version", p.os_version.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(p.os_version); }},
      {"os.features", p.os_features.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { WriteStringList(o, p.os_features); }},
      {"variant", p.variant.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(p.variant); }},
  };
  WriteObject(w, layout, fields);
}

Status ReadDescriptor(std::string_view raw, const std::string& path, Descriptor* out) {
  Descriptor d;
  KILN_RETURN_IF_ERROR(ReadObject(
      raw, path,
      {
          {"mediaType", [&](std::string_view v,
                            const std::string& at) { return ReadString(v, at, &d.media_type); }},
          {"digest",
           [&](std::string_view v, const std::string& at) { return ReadDigest(v, at, &d.digest); }},
          {"size",
           [&](std::string_view v, const std::string& at) -> Status {
             KILN_RETURN_IF_ERROR(ReadInt64(v, at, &d.size));
             if (d.size < 0) {
               return Status::InvalidArgument(at + ": must not be negative, found " +
                                              std::to_string(d.size));
             }
             return Status::Ok();
           }},
          {"urls", [&](std::string_view v,
                       const std::string& at) { return ReadStringList(v, at, &d.urls); }},
          {"annotations",
           [&](std::string_view v, const std::string& at) {
             return ReadStringMap(v, at, &d.annotations);
           }},
          {"platform",
           [&](std::string_view v, const std::string& at) -> Status {
             if (v == "null") return Status::Ok();
             Platform p;
             KILN_RETURN_IF_ERROR(ReadPlatform(v, at, &p, &d.platform_layout));
             d.platform = std::move(p);
             return Status::Ok();
           }},
          {"artifactType",
           [&](std::string_view v, const std::string& at) {
             return ReadString(v, at, &d.artifact_type);
           }},
      },
      &d.layout));
  KILN_RETURN_IF_ERROR(Require(d.layout, path, "mediaType"));
  KILN_RETURN_IF_ERROR(Require(d.layout, path, "digest"));
  KILN_RETURN_IF_ERROR(Require(d.layout, path, "size"));
  if (d.media_type.empty()) {
    return Status::InvalidArgument(Member(path, "mediaType") + ": must not be empty");
  }
  *out = std::move(d);
  return Status::Ok();
}

}  // namespace internal

void Descriptor::WriteJson(util::JsonWriter& w) const {
  using internal::FieldOut;
  using internal::WhenEmpty;
  const FieldOut fields[] = {
      {"mediaType", media_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(media_type); }},
      {"digest", false, WhenEmpty::kWrite, [&](util::JsonWriter& o) { o.String(digest.str()); }},
      {"size", false, WhenEmpty::kWrite, [&](util::JsonWriter& o) { o.Int(size); }},
      {"urls", urls.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { internal::WriteStringList(o, urls); }},
      {"annotations", annotations.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { internal::WriteStringMap(o, annotations); }},
      {"platform", !platform.has_value(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { internal::WritePlatform(o, *platform, platform_layout); }},
      {"artifactType", artifact_type.empty(), WhenEmpty::kOmit,
       [&](util::JsonWriter& o) { o.String(artifact_type); }},
  };
  internal::WriteObject(w, layout, fields);
}

std::string Descriptor::ToJson() const {
  util::JsonWriter w;
  WriteJson(w);
  return w.Take();
}

Result<Descriptor> ParseDescriptor(std::string_view json) {
  Descriptor d;
  Status s = internal::ReadDescriptor(json, "", &d);
  if (!s.ok()) return s.Annotate("invalid descriptor");
  return d;
}

}  // namespace kiln::image
