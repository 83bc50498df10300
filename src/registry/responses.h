// Readers for the small pieces of a registry's answers that the client acts
// on besides the documents themselves (image/ parses those): the detail of a
// distribution error body, the media type of a fetched manifest and the
// start of a Content-Range. They read bytes straight off the network, so
// they accept anything and never fail: what they cannot read gives an empty
// answer.
//
// Called by client.cc; exposed for unit tests and the fuzzers.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::registry {

// "CODE: message" of the first entry of a distribution error body
// ({"errors":[{"code":..,"message":..}]}), cut at 300 bytes; "" when the
// body is not such a document.
std::string RegistryErrorDetail(const std::string& body);

// The media type a manifest document declares, else `content_type` (what the
// registry said) unless that is a generic JSON or text type, else what its
// shape says (schemaVersion 1, "manifests", "config"); else `content_type`.
std::string ManifestMediaType(std::string_view bytes, const std::string& content_type);

// Parses "bytes START-END/TOTAL"; returns START or nullopt.
std::optional<uint64_t> ContentRangeStart(std::string_view v);

}  // namespace kiln::registry
