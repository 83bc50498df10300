// Internal to kiln::image: JSON reading and writing of the models that are
// nested inside others (Platform, Descriptor). Included by .cc files only.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/descriptor.h"
#include "image/member_layout.h"
#include "image/platform.h"
#include "util/json.h"
#include "util/status.h"

namespace kiln::image::internal {

// An OCI platform object. architecture and os are required.
Status ReadPlatform(std::string_view raw, const std::string& path, Platform* out,
                    MemberLayout* layout);
void WritePlatform(util::JsonWriter& w, const Platform& p, const MemberLayout& layout);

// A descriptor object; mediaType, digest and size are required.
Status ReadDescriptor(std::string_view raw, const std::string& path, Descriptor* out);

// An optional descriptor such as "subject": null reads as none.
Status ReadOptionalDescriptor(std::string_view raw, const std::string& path,
                              std::optional<Descriptor>* out);

// A JSON array of descriptors (null reads as none); elements are named
// "<path>[i]" in errors.
Status ReadDescriptorList(std::string_view raw, const std::string& path,
                          std::vector<Descriptor>* out);
void WriteDescriptorList(util::JsonWriter& w, const std::vector<Descriptor>& list);

// schemaVersion must be present and 2.
Status CheckSchemaVersion(const MemberLayout& layout, int64_t version);

// Checks that a required member was present in the parsed object.
Status Require(const MemberLayout& layout, const std::string& path, std::string_view key);

}  // namespace kiln::image::internal
