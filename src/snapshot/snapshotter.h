// Snapshots: the filesystems a build reads and writes, stored under
// ROOT/snapshots. A committed snapshot is immutable and names its parent; its
// content is the parent's filesystem with its own changes on top (one layer).
// An Active snapshot is a writable filesystem being built on a parent.
//
// Two drivers, chosen at Open():
//   overlay  each snapshot stores only its changes (`fs/`, an overlayfs upper
//            dir: deletions are whiteouts, char device 0/0, and replaced
//            directories carry trusted.overlay.opaque=y); an Active is an
//            overlay mount of the parent chain (lowerdirs) with a fresh upper.
//            Chains too deep for one mount (option string or depth limit) are
//            flattened: a flat copy of the parent's full filesystem is made
//            once, cached, and used as the single lowerdir.
//   copy     where overlay cannot be mounted: an Active is a full copy of the
//            parent (reflink/hardlink-free real copy), the change set is
//            found by comparing with the parent at Diff().
//
// Mounts are made in the calling process's mount namespace. `kiln build`
// enters a private one first (EnterPrivateMountNamespace), so a killed
// process leaves no mount behind.
//
// Layers: Diff() writes a snapshot's changes against its parent as an OCI
// layer tar (uncompressed): entries sorted by path bytes, parents before
// children, headers normalized (numeric uid/gid, no uname/gname, no
// atime/ctime, mtime kept, PAX only where ustar cannot hold a value),
// whiteouts as `.wh.NAME`, opaque directories as `DIR/.wh..wh..opq`, hard
// links inside the layer as hard-link entries. Apply() is the inverse for a
// pulled layer: it never writes outside the snapshot (util/rootfs.h), rejects
// entries that would (`..`, absolute or escaping link targets for hard links,
// paths through symlinks) with kInvalidArgument naming the entry, and follows
// the policy stated in docs/snapshots.md for device nodes, setuid/setgid
// bits and xattrs.
//
// Several processes may share ROOT/snapshots: a snapshot becomes visible by
// an atomic rename of a finished directory, and a named snapshot that
// another process created first is reused.
//
// Thread-safety: a Snapshotter may be used from several threads; an Active
// or a View by one thread at a time.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/io.h"
#include "util/owner.h"
#include "util/status.h"

namespace kiln::snapshot {

struct Options {
  bool force_copy = false;  // use the copy driver even where overlay works
  int max_depth = 64;       // lowerdirs per mount before a chain is flattened
};

// How Diff() and Export() write a tar.
struct DiffOptions {
  // SOURCE_DATE_EPOCH: an mtime later than this (seconds since the epoch) is
  // written as this; earlier ones are kept.
  std::optional<int64_t> clamp_mtime;
};

struct Info {
  std::string id;
  std::string parent;  // "" = on the empty filesystem
  std::map<std::string, std::string> labels;
  uint64_t disk_bytes = 0;  // Usage() only
};

class Snapshotter;

// A writable filesystem on a parent. Destroying it without Commit() removes
// everything it wrote.
class Active {
 public:
  Active(Active&&) noexcept;
  Active& operator=(Active&&) noexcept;
  ~Active();

  // The full filesystem, writable: the overlay mount point or the copy.
  const std::filesystem::path& path() const;
  const std::string& parent() const;
  // Unmounts and makes the snapshot immutable; returns its id.
  Result<std::string> Commit(std::map<std::string, std::string> labels = {});

  struct Impl;
  explicit Active(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// A read-only view of a committed snapshot's full filesystem (a read-only
// overlay or bind mount), unmounted when destroyed.
class View {
 public:
  View(View&&) noexcept;
  View& operator=(View&&) noexcept;
  ~View();
  const std::filesystem::path& path() const;

  struct Impl;
  explicit View(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

class Snapshotter {
 public:
  // Opens (creating) `dir` and picks the driver: overlay when a probe mount
  // in `dir` succeeds and !options.force_copy, else copy.
  static Result<std::shared_ptr<Snapshotter>> Open(const std::filesystem::path& dir,
                                                   Options options = {});
  virtual ~Snapshotter() = default;

  virtual std::string_view driver() const = 0;  // "overlay" or "copy"

  // A new writable filesystem on `parent` ("" = empty).
  virtual Result<Active> Prepare(std::string_view parent) = 0;
  // A read-only view of `id` ("" = an empty directory).
  virtual Result<View> Mount(std::string_view id) = 0;

  virtual Result<Info> Stat(std::string_view id) = 0;  // kNotFound when absent
  virtual Status SetLabel(std::string_view id, std::string_view key, std::string_view value) = 0;
  virtual Result<std::vector<Info>> List() = 0;
  // Removes `id`; kFailedPrecondition while another snapshot has it as parent.
  virtual Status Remove(std::string_view id) = 0;
  // Bytes on disk per snapshot (for `kiln du`).
  virtual Result<std::vector<Info>> Usage() = 0;

  // Writes `id`'s changes against its parent as an uncompressed layer tar.
  virtual Status Diff(std::string_view id, const util::ByteSink& sink,
                      const DiffOptions& options = {}) = 0;
  // Writes `id`'s whole filesystem ("" = empty) as one uncompressed tar,
  // normalized as Diff() writes layers, with no whiteouts (type=tar and
  // type=local outputs).
  virtual Status Export(std::string_view id, const util::ByteSink& sink,
                        const DiffOptions& options = {}) = 0;
  // Applies an uncompressed layer tar read from `source` on `parent` and
  // commits the result under the id `name` (e.g. "layer-<chain id hex>").
  // If `name` already exists (another build applied it) returns at once
  // without reading `source`.
  virtual Result<std::string> Apply(std::string_view parent, std::string_view name,
                                    const util::ByteSource& source,
                                    std::map<std::string, std::string> labels = {}) = 0;
};

// Extracts an uncompressed tar (as Export() writes one) into the existing
// directory `dir`, as a layer is applied on a full tree: every path is
// resolved inside `dir` (a symlink in `dir` or in the tar never leads
// outside), existing entries are replaced, whiteouts delete; modes, owners,
// times, symlinks and hard links are kept, devices and xattrs as
// docs/snapshots.md says. For type=local outputs.
Status ExtractTar(const std::filesystem::path& dir, const util::ByteSource& source);

// Removes the entries of DIR/.tmp and DIR/.mounts (a snapshotter's
// directory) whose names `stale` accepts: what a killed process left
// (util/owner.h). Mount points are unmounted if still mounted here and
// removed only when empty.
Result<util::ReapStats> ReapTemp(const std::filesystem::path& dir, const util::StaleFn& stale);

// Unshares the mount namespace of the calling process and makes every mount
// private, so mounts made afterwards vanish when the process exits. Must be
// called before the process starts a second thread. Idempotent.
Status EnterPrivateMountNamespace();

}  // namespace kiln::snapshot
