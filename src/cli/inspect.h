// `kiln buildinfo inspect`: finds the image configs in an OCI layout
// directory, an OCI or Docker image archive, or a raw image-config file, and
// reads the build-sources record of each.
//
// The record formatting (FormatJson, FormatPretty, WriteRecordsJson) is
// shared with `kiln inspect` (registry_commands.h), which prints the records
// of registry images the same way.
//
// Called by main.cc and registry_commands.cc. Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "buildinfo/buildinfo.h"
#include "util/json.h"
#include "util/status.h"

namespace kiln::cli {

// The record of each image found, keyed like the exporter response:
// `containerimage.buildinfo` when there is one image, otherwise
// `containerimage.buildinfo/<os>/<arch>[/<variant>]` (platform normalized).
// nullopt for an image whose config carries no record.
using RecordsByKey = std::map<std::string, std::optional<buildinfo::BuildInfo>>;

// Errors name the path and say what was wrong: a missing file, an archive in
// no known format, a blob whose bytes do not match its digest, a record that
// is not valid base64 JSON.
Result<RecordsByKey> CollectRecords(const std::filesystem::path& path);

// Writes `records` as one compact JSON object value into `w`: each key maps to
// its record in canonical member order, or null.
void WriteRecordsJson(util::JsonWriter& w, const RecordsByKey& records);

// `--format json`: an indented JSON object, records in their canonical member
// order; an image without a record maps to null.
std::string FormatJson(const RecordsByKey& records);
// `--format pretty`: a readable listing.
std::string FormatPretty(const RecordsByKey& records);

}  // namespace kiln::cli
