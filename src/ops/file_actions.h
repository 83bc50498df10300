// File actions of a FileOp (COPY, ADD, WORKDIR's mkdir, heredoc files),
// applied to a writable filesystem, with BuildKit v0.10's copy semantics:
// sources may be wildcard patterns (filepath.Match) matched in the source
// tree; a directory source copies its contents (dir_copy_contents) into the
// destination; a destination ending in "/" or several sources make the
// destination a directory; missing destination parents are created
// (create_dest_path); symlinks among the sources are followed at the top
// level when follow_symlinks; ownership from --chown (resolved against the
// destination's /etc/passwd and /etc/group, util/userdb.h) or the source's
// uid/gid for images and 0:0 for the build context; --chmod modes;
// modification times kept; ADD of a local tar archive (gzip, bzip2, xz or
// plain) is unpacked (attempt_unpack) instead of copied. Every path on
// both sides is resolved inside its root (util/rootfs.h): nothing is read
// from outside the source tree nor written outside the destination.
//
// Errors name the action and the path: "failed to compute cache key: COPY
// foo: not found" style messages are the caller's; this layer says what is
// wrong ("copy app/: no source files were specified", "lstat /src/x: no such
// file or directory").
//
// Thread-safety: ApplyFileActions is reentrant.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"
#include "util/cancel.h"
#include "util/rootfs.h"
#include "util/status.h"

namespace kiln::ops {

// A tree a FileCopy reads from.
struct CopySource {
  const util::RootDir* root = nullptr;  // null: the input is scratch (empty)
  // Paths (relative, "/"-separated) hidden from the copy, e.g. .dockerignore
  // exclusions of the build context; null = nothing hidden. The answer for
  // a path is complete (an excluded parent is the callback's business, as
  // in source::IgnoreMatcher::Excluded), so a path below an excluded
  // directory can be included again (`!dir/keep`).
  std::function<bool(std::string_view path)> excluded;
  // Whether the excluded directory `dir` may hold an included path (e.g.
  // IgnoreMatcher::MayIncludeBelow); false lets the copy skip the subtree
  // unread. Null: every excluded directory is searched.
  std::function<bool(std::string_view dir)> may_include_below;
  // Whether copied files keep the source's uid/gid (images, stages) or
  // become 0:0 (the build context).
  bool keep_owner = true;
};

struct FileActionContext {
  // Relative destinations are resolved against this directory ("/" default).
  std::string cwd = "/";
  // The build's canceller, or null. Once cancelled, ApplyFileActions starts
  // no further action and a copy no further file: it returns kCancelled and
  // leaves `dest` part-way (the caller discards it).
  const util::Canceller* cancel = nullptr;
};

// Applies `actions` in order to `dest`. `sources[i]` is the tree of the
// op's input i (FileCopy::source_input indexes it).
Status ApplyFileActions(const util::RootDir& dest, const std::vector<graph::FileAction>& actions,
                        const std::vector<CopySource>& sources, const FileActionContext& context);

}  // namespace kiln::ops
