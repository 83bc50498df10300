// Internals of the snapshot module shared by the drivers (snapshotter.cc),
// the layer writer (layer_diff.cc) and the layer reader (layer_apply.cc).
// Not part of the module's interface.
//
// All tree walks here use lstat and never follow a symlink: the trees hold
// build results and pulled layers, which may carry hostile links.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "snapshot/snapshotter.h"
#include "util/io.h"
#include "util/status.h"

namespace kiln::snapshot::internal {

namespace fs = std::filesystem;

inline constexpr std::string_view kOpaqueXattr = "trusted.overlay.opaque";
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// "<what> <path>: <strerror(errno)>" as an IOError (captures errno).
Status ErrnoError(std::string_view what, const fs::path& path);
// Random lowercase hex of `n` characters.
std::string RandomHex(size_t n);

// An overlay whiteout: a character device 0/0.
inline bool IsWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }

// Extended attributes of `path` (not followed) that kiln keeps in layers:
// user.* and security.capability, sorted by name.
Result<std::vector<std::pair<std::string, std::string>>> LayerXattrs(const fs::path& path);
// Whether `path` (a directory) carries trusted.overlay.opaque=y.
bool IsOpaqueDir(const fs::path& path);
// Reads the target of the symlink `path`.
Result<std::string> ReadLink(const fs::path& path);

// Removes `path` and everything below it; absent is OK. Never follows links.
Status RemoveTree(const fs::path& path);
// Removes `name` in the directory `dirfd` (recursively for a directory).
Status RemoveTreeAt(int dirfd, const std::string& name, const fs::path& shown);

// Copies the tree at `src` to `dst` (which must not exist) keeping types,
// owners, modes (setuid included), times, layer xattrs and hard links inside
// the tree. Overlay whiteouts are copied as they are.
Status CopyTree(const fs::path& src, const fs::path& dst);
// Merges the overlay upper dir `upper` into the full tree `dst`: whiteouts
// delete, opaque directories hide what `dst` held below them, everything
// else replaces what is in `dst`. The result holds no overlay markers.
Status MergeUpper(const fs::path& upper, const fs::path& dst);

// Bytes on disk under `path`, each inode counted once.
uint64_t DiskUsage(const fs::path& path);

// Layer tar writers (layer_diff.cc). Both write the normalized OCI layer
// described in snapshotter.h.
// `upper` is an overlay upper dir: its whiteouts and opaque dirs map to
// `.wh.` entries.
Status WriteUpperDiff(const fs::path& upper, const util::ByteSink& sink,
                      const DiffOptions& options);
// Compares the full tree `snapshot` with the full tree `parent` ("" = the
// empty filesystem); see docs/snapshots.md for the change rule.
Status WriteCompareDiff(const fs::path& parent, const fs::path& snapshot,
                        const util::ByteSink& sink, const DiffOptions& options);

// Layer reader (layer_apply.cc): extracts the uncompressed tar from `source`
// into `root` without ever writing outside it.
enum class ApplyMode {
  kOverlay,  // `root` is an empty upper dir: deletions become whiteouts
  kCopy,     // `root` holds the parent's full tree: deletions delete
};
// `lower` (overlay mode; null for a layer on the empty filesystem) gives a
// read-only view of the parent's full filesystem, asked for at the first
// whiteout: whiteouts are made only for paths it holds.
using LowerView = std::function<Result<fs::path>()>;
Status ApplyLayer(const fs::path& root, ApplyMode mode, const util::ByteSource& source,
                  const LowerView& lower = nullptr);

}  // namespace kiln::snapshot::internal
