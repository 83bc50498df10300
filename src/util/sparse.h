// Sparse files: copying and writing that keep holes. Build filesystems hold
// files with holes (a 64 GiB sparse file costs a few blocks); a copy made
// byte by byte fills the disk. Used by the snapshot drivers (copies, layer
// apply) and by the file ops (COPY, ADD of an archive).
//
// Errors are kIOError with the errno's text, for the caller to annotate
// with the path; a full disk (ENOSPC, EDQUOT) is kResourceExhausted, for the
// caller to report with util/no_space.h's NoSpace. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace kiln::util {

// Copies the regular file `in` into `out` (new and empty) from offset 0 to
// `in`'s size, keeping holes: only the data regions SEEK_DATA/SEEK_HOLE
// report are copied (copy_file_range, else read and write), the rest is
// left unwritten and `out` is sized to `in`'s length at the end. Where the
// filesystem reports no holes, the whole file is copied. Uses explicit
// offsets: neither descriptor's file offset is used or moved.
Status CopySparse(int in, int out);

// Writes `data` at `offset` of the regular file `out`, skipping the zeros
// of every 4 KiB block of the file (from `offset`, aligned to the file's
// blocks) that `data` covers with zeros only (left as a hole). The range
// must read as zeros already (a new file); the caller sizes the file
// (ftruncate) when it ends, so a trailing run of zeros is a hole too.
Status WriteSparse(int out, std::string_view data, int64_t offset);

}  // namespace kiln::util
