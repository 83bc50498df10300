// The names of pulled images: ROOT/refs.json, a JSON object mapping each
// normalized reference kiln pulled ("docker.io/library/busybox:latest") to
// the digest it resolved to (the index for a multi-platform image), so that
// the image can be found in ROOT/content later.
//
// STOPGAP: this file stands in for the image metadata of the build issue's
// SQLite database (DESIGN.md, "State"); it goes away when that lands. It is
// deliberately simple: the whole file is rewritten on every update.
//
// Several kiln processes may share one root: updates are serialized with an
// flock() on ROOT/refs.json.lock, and the file is replaced atomically (temp
// file, fsync, rename), so readers see the old or the new map, never a mix.
//
// Called by registry_commands.cc (`kiln pull`). Thread-safety: plain
// functions; concurrent callers are serialized by the file lock.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "util/digest.h"
#include "util/status.h"

namespace kiln::cli {

// Sets `name` -> `digest` in ROOT/refs.json (creating it). kIOError naming
// the file; kInvalidArgument if the existing file is not such a map.
Status RecordReference(const std::filesystem::path& root, const std::string& name,
                       const util::Digest& digest);

// The whole map; empty when the file does not exist yet.
Result<std::map<std::string, util::Digest>> ReadReferences(const std::filesystem::path& root);

}  // namespace kiln::cli
