// Checks of what a kiln state root holds and what still uses it, for tests
// that stop kiln midway (tests/e2e/interrupt_test.cc): blobs that do not
// match their digest, processes and mounts left behind, temp files never
// collected. Each check returns one line per problem found (empty: none),
// for failure messages. They read the filesystem and /proc only and change
// nothing. Thread-safety: plain functions.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::testing {

// Every file under ROOT/content/blobs/<algorithm>/ whose name is not a
// digest of that algorithm (sha256 only) or whose bytes do not hash to its
// name: "blobs/sha256/<hex>: <what is wrong>".
std::vector<std::string> CorruptBlobs(const std::filesystem::path& root);

// How many blobs ROOT/content/blobs holds (for messages: a check of an empty
// store proves little).
size_t CountBlobs(const std::filesystem::path& root);

// Processes other than this one that still use the root: a command line
// naming a path under it (crun started with --root ROOT/executor/runtime, a
// tool working on a snapshot), or containing `marker` when it is not empty
// (a RUN step's shell), a working directory or a root directory under it,
// and the process of every container recorded in the runtime's state
// (ROOT/executor/runtime/<id>/status) that is still alive. Zombies are not
// counted, nor kernel threads (a runtime state written from another pid
// namespace may record a pid that is one here). "pid N (comm): why".
std::vector<std::string> ProcessesUsing(const std::filesystem::path& root,
                                        const std::string& marker = "");

// Mount points at or under the root in this process's mount namespace
// (/proc/self/mountinfo): "MOUNT_POINT (FSTYPE)".
std::vector<std::string> MountsUnder(const std::filesystem::path& root);

// Entries in the root's scratch directories, which hold only what a
// running build uses: content/ingest, snapshots/.tmp, snapshots/.mounts,
// executor/bundles, executor/runtime, git/tmp, tmp. "RELATIVE_PATH".
std::vector<std::string> TempEntries(const std::filesystem::path& root);

// "  " + each line, joined by newlines; "(none)" when empty.
std::string JoinLines(const std::vector<std::string>& lines);

}  // namespace kiln::testing
