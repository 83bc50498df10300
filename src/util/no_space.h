// A full disk, said the same way wherever kiln meets it: store ingest,
// snapshots, layer unpacking, the databases, outputs. The message names the
// file and what kiln was doing, and what the user can do:
//
//   no space left on device: <path> (<doing>); free space or run kiln prune
//
// Callers: the errno helpers of content/, snapshot/, ops/, exporter/ and
// util/sqlite.h. Thread-safety: plain functions.
#pragma once

#include <string_view>

#include "util/status.h"

namespace kiln {

// ENOSPC or EDQUOT: the filesystem, or the user's quota on it, is full.
bool IsNoSpace(int err);

// The full-disk status (kResourceExhausted). `doing` says what kiln was
// doing ("storing a blob").
Status NoSpace(std::string_view path, std::string_view doing);

// NoSpace for the errno helpers of the modules, whose `what` reads "cannot
// <verb> ... [in|into|to|at|on|of|from]": `doing` becomes "<verb>ing ..."
// ("cannot create an ingest file in" -> "creating an ingest file").
Status NoSpaceFor(std::string_view what, std::string_view path);

}  // namespace kiln
