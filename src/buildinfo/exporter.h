// Where records leave a build: exporter options (K11, R37, R43), the image
// config member (K1, R38, R39), the exporter response (R40, R41) and
// buildctl's --metadata-file (R42).
//
// kiln differs from BuildKit on purpose in the options: values are exactly
// true, false, 1 or 0 (empty means the default, for both options alike), any
// other value is an error naming the option and the value, and an unknown
// exporter option is an error naming it (ValidateExporterOptions), so an
// option can never overwrite build metadata (W9). The config member is
// always written as `.v1`; a stale legacy `.v0` is removed whenever the
// member is set or removed, and both are read.
//
// Called by the exporters (image, oci, docker, local, tar), the CLI and the
// response/metadata writers.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "buildinfo/buildinfo.h"
#include "util/status.h"

namespace kiln::buildinfo {

using ExporterAttrs = std::map<std::string, std::string>;

inline constexpr std::string_view kOptBuildInfo = "buildinfo";
inline constexpr std::string_view kOptBuildInfoAttrs = "buildinfo-attrs";

// What the record options of an exporter say.
struct ExportOptions {
  bool buildinfo = true;         // write the config member at all
  bool buildinfo_attrs = false;  // keep attrs and deps in the config member
};

// Reads `buildinfo` and `buildinfo-attrs` from an exporter's options (others
// are ignored). kInvalidArgument: `exporter option "buildinfo": invalid value
// "maybe" (expected true, false, 1 or 0)`.
Result<ExportOptions> ParseExportOptions(const ExporterAttrs& attrs);

// kInvalidArgument naming the first option (in sorted order) that `known`
// does not contain: `unknown option "foo" for exporter "image"`.
Status ValidateExporterOptions(std::string_view exporter, const ExporterAttrs& attrs,
                               const std::set<std::string, std::less<>>& known);

// R43, the client side: the export options kiln's CLI sends for one export,
// given the build args: for `image`, `oci` and `docker` exports the value of
// the BUILDKIT_INLINE_BUILDINFO_ATTRS build arg is copied into
// `buildinfo-attrs` (unless that option was given explicitly).
ExporterAttrs MapClientExportAttrs(std::string_view export_type, ExporterAttrs export_attrs,
                                   const std::map<std::string, std::string>& build_args);

// Patches an image config: with opts.buildinfo and a `record` (the result
// has one, even an empty one, which gives "e30="), sets kImageConfigField to
// base64(Encode(Format(record, !opts.buildinfo_attrs))); otherwise (option
// off, or no record for the result: nullptr) removes it. The legacy .v0 member is always removed.
// With `inline_cache`, sets kInlineCacheField to its base64. Other members keep their values
// (compacted); members are written in sorted order (R39). Errors: `config` is not a JSON object;
// the record breaks the size limit.
Result<std::string> PatchImageConfig(std::string_view config, const BuildInfo* record,
                                     const ExportOptions& opts,
                                     const std::optional<std::string>& inline_cache = std::nullopt);

// The record embedded in an image config (.v1, else legacy .v0; K1), or
// nullopt when there is none. Errors: bad JSON, a member that is not a
// base64 string of a record.
Result<std::optional<BuildInfo>> ExtractFromImageConfig(std::string_view config);

// kMetadataKey, or kMetadataKey + "/" + platform for a multi-platform result.
std::string ResponseKey(std::string_view platform);

// R40/R41: for every key starting with kMetadataKey, the same key with the
// base64 of the full record (attrs and deps included; redacted, K8).
// kResourceExhausted when a record breaks the size limit (K12).
Result<std::map<std::string, std::string>> ExporterResponse(
    const std::map<std::string, BuildInfo>& records);

// R42: the --metadata-file content for an exporter response, as buildctl
// writes it: an indented JSON object where each value that base64-decodes to
// a non-empty JSON object is inlined as that object, and every other value
// stays a string.
std::string MetadataFileContent(const std::map<std::string, std::string>& response);

}  // namespace kiln::buildinfo
