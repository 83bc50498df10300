// `kiln buildinfo inspect`: finds the image configs in an OCI layout
// directory, an OCI or Docker image archive, or a raw image-config file, and
// reads the build-sources record of each.
//
// Called by main.cc only. Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "buildinfo/buildinfo.h"
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

// `--format json`: an indented JSON object, records in their canonical member
// order; an image without a record maps to null.
std::string FormatJson(const RecordsByKey& records);
// `--format pretty`: a readable listing.
std::string FormatPretty(const RecordsByKey& records);

}  // namespace kiln::cli
