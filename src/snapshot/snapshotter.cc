// The overlay and copy snapshotters. On-disk layout of DIR (see
// docs/snapshots.md):
//   DIR/.driver            "overlay" or "copy": the driver that owns DIR
//   DIR/<id>/fs            overlay: the snapshot's upper dir (its changes);
//                          copy: the snapshot's full filesystem
//   DIR/<id>/meta.json     {"parent": "...", "labels": {...}}
//   DIR/.tmp/<tag>-<id>/   a snapshot being built (Active or Apply); renamed
//                          to DIR/<id> when committed (<tag>: the owner tag
//                          of the process, util/owner.h)
//   DIR/.flat/<id>/        overlay: the full filesystem of <id>, made once
//                          when a chain is too deep for one mount
//   DIR/.mounts/<tag>-<random>/  mount points of Actives and Views
//   DIR/.empty/            an empty directory (the lowerdir on "")
// Names starting with "." are never snapshot ids.
#include "snapshot/snapshotter.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "snapshot/internal.h"

namespace kiln::snapshot {

namespace fs = std::filesystem;
using internal::ErrnoError;
using internal::RandomHex;

namespace {

constexpr size_t kMaxMountOptions = 3500;  // below the kernel's one-page limit
constexpr std::string_view kOverlayFeatures = "redirect_dir=off,metacopy=off";

// The name of a temporary entry in .tmp or .mounts: this process's owner
// tag first (util/owner.h), so a later process can tell a killed one's
// leftovers from a live one's entries.
std::string TempName(const std::string& rest) { return util::OwnerTag() + "-" + rest; }

Status ValidId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') {
    return Status::InvalidArgument("invalid snapshot id \"" + std::string(id) +
                                   "\": expected 1-128 characters [A-Za-z0-9._-], not starting "
                                   "with '.'");
  }
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("invalid snapshot id \"" + std::string(id) +
                                     "\": expected 1-128 characters [A-Za-z0-9._-], not "
                                     "starting with '.'");
    }
  }
  return Status::Ok();
}

// EBUSY is retried for up to ~2 s: a process this one forks (an OCI runtime
// for a parallel step) briefly holds whatever descriptors were open at the
// fork until it execs, which may include one inside this mount.
Status Unmount(const fs::path& target) {
  int delay_ms = 1;
  for (int waited_ms = 0;;) {
    if (::umount2(target.c_str(), 0) == 0) return Status::Ok();
    if (errno == EINVAL || errno == ENOENT) return Status::Ok();  // not mounted
    if (errno != EBUSY || waited_ms >= 2000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    waited_ms += delay_ms;
    delay_ms = std::min(delay_ms * 2, 100);
  }
  if (errno == EBUSY) {
    return Status::FailedPrecondition("cannot unmount " + target.string() +
                                      ": a process still uses it (stop it first)");
  }
  return ErrnoError("cannot unmount", target);
}

Status BindReadOnly(const fs::path& src, const fs::path& target) {
  if (::mount(src.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return ErrnoError("cannot bind mount " + src.string() + " on", target);
  }
  if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
    Status s = ErrnoError("cannot make read-only", target);
    (void)Unmount(target);
    return s;
  }
  return Status::Ok();
}

Status WriteFileAtomic(const fs::path& path, const std::string& data) {
  fs::path tmp = path.string() + ".tmp-" + RandomHex(8);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << data;
    f.close();
    if (!f) {
      // errno is the failed write's or close's (ENOSPC on a full disk).
      Status s = ErrnoError("cannot write", tmp);
      ::unlink(tmp.c_str());
      return s;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = ErrnoError("cannot rename into place", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return Status::Ok();
}

std::string MetaJson(const std::string& parent, const std::map<std::string, std::string>& labels) {
  nlohmann::json j;
  j["parent"] = parent;
  j["labels"] = labels;
  return j.dump();
}

}  // namespace

class SnapshotterImpl;

// ---------------------------------------------------------------------------
// Active and View

struct Active::Impl {
  std::shared_ptr<SnapshotterImpl> owner;
  std::string id;
  std::string parent;
  fs::path tmp;   // DIR/.tmp/<id>
  fs::path path;  // the mount point (overlay) or tmp/fs (copy)
  bool mounted = false;
  bool done = false;
  ~Impl();
};

struct View::Impl {
  fs::path path;
  bool mounted = false;
  ~Impl() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
    ::rmdir(path.c_str());
  }
};

Active::Active(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Active::Active(Active&&) noexcept = default;
Active& Active::operator=(Active&&) noexcept = default;
Active::~Active() = default;
const fs::path& Active::path() const { return impl_->path; }
const std::string& Active::parent() const { return impl_->parent; }

View::View(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
View::View(View&&) noexcept = default;
View& View::operator=(View&&) noexcept = default;
View::~View() = default;
const fs::path& View::path() const { return impl_->path; }

class SnapshotterImpl : public Snapshotter, public std::enable_shared_from_this<SnapshotterImpl> {
 public:
  SnapshotterImpl(fs::path dir, Options options, bool overlay)
      : dir_(std::move(dir)), options_(options), overlay_(overlay) {}

  std::string_view driver() const override { return overlay_ ? "overlay" : "copy"; }

  Result<Active> Prepare(std::string_view parent) override {
    if (!parent.empty()) KILN_RETURN_IF_ERROR(Stat(parent).status());
    auto impl = std::make_unique<Active::Impl>();
    impl->owner = shared_from_this();
    impl->id = RandomHex(12);
    impl->parent = std::string(parent);
    impl->tmp = dir_ / ".tmp" / TempName(impl->id);
    if (::mkdir(impl->tmp.c_str(), 0700) != 0) return ErrnoError("cannot create", impl->tmp);
    if (!overlay_) {
      impl->path = impl->tmp / "fs";
      if (parent.empty()) {
        if (::mkdir(impl->path.c_str(), 0755) != 0) return ErrnoError("cannot create", impl->path);
      } else {
        KILN_RETURN_IF_ERROR(internal::CopyTree(FsDir(parent), impl->path));
      }
      return Active(std::move(impl));
    }
    fs::path upper = impl->tmp / "fs", work = impl->tmp / "work";
    if (::mkdir(upper.c_str(), 0755) != 0) return ErrnoError("cannot create", upper);
    if (::mkdir(work.c_str(), 0700) != 0) return ErrnoError("cannot create", work);
    std::vector<fs::path> lower;
    if (parent.empty()) {
      lower.push_back(dir_ / ".empty");
    } else {
      KILN_ASSIGN_OR_RETURN(lower, LowerDirs(parent));
    }
    impl->path = dir_ / ".mounts" / TempName(impl->id);
    if (::mkdir(impl->path.c_str(), 0755) != 0) return ErrnoError("cannot create", impl->path);
    std::string opts = "lowerdir=" + JoinLower(lower) + ",upperdir=" + upper.string() +
                       ",workdir=" + work.string() + "," + std::string(kOverlayFeatures);
    if (::mount("overlay", impl->path.c_str(), "overlay", 0, opts.c_str()) != 0) {
      return ErrnoError("cannot mount overlay for a snapshot on \"" + std::string(parent) + "\" at",
                        impl->path);
    }
    impl->mounted = true;
    return Active(std::move(impl));
  }

  Result<View> Mount(std::string_view id) override {
    auto impl = std::make_unique<View::Impl>();
    impl->path = dir_ / ".mounts" / TempName("v" + RandomHex(12));
    std::vector<fs::path> lower;
    if (id.empty()) {
      lower.push_back(dir_ / ".empty");
    } else if (!overlay_) {
      KILN_RETURN_IF_ERROR(Stat(id).status());
      lower.push_back(FsDir(id));
    } else {
      KILN_RETURN_IF_ERROR(Stat(id).status());
      KILN_ASSIGN_OR_RETURN(lower, LowerDirs(id));
    }
    if (::mkdir(impl->path.c_str(), 0755) != 0) return ErrnoError("cannot create", impl->path);
    if (lower.size() == 1) {
      // overlayfs needs two lowerdirs when it has no upper.
      KILN_RETURN_IF_ERROR(BindReadOnly(lower[0], impl->path));
    } else {
      std::string opts = "lowerdir=" + JoinLower(lower) + "," + std::string(kOverlayFeatures);
      if (::mount("overlay", impl->path.c_str(), "overlay", MS_RDONLY, opts.c_str()) != 0) {
        return ErrnoError("cannot mount a read-only view of \"" + std::string(id) + "\" at",
                          impl->path);
      }
    }
    impl->mounted = true;
    return View(std::move(impl));
  }

  Result<Info> Stat(std::string_view id) override {
    KILN_RETURN_IF_ERROR(ValidId(id));
    fs::path meta = dir_ / std::string(id) / "meta.json";
    std::ifstream f(meta, std::ios::binary);
    if (!f) {
      return Status::NotFound("snapshot \"" + std::string(id) + "\" not found in " + dir_.string());
    }
    std::stringstream ss;
    ss << f.rdbuf();
    Info info;
    info.id = std::string(id);
    try {
      auto j = nlohmann::json::parse(ss.str());
      info.parent = j.at("parent").get<std::string>();
      info.labels = j.at("labels").get<std::map<std::string, std::string>>();
    } catch (const nlohmann::json::exception& e) {
      return Status::IOError("snapshot metadata " + meta.string() + " is corrupt: " + e.what());
    }
    return info;
  }

  Status SetLabel(std::string_view id, std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_ASSIGN_OR_RETURN(Info info, Stat(id));
    info.labels[std::string(key)] = std::string(value);
    return WriteFileAtomic(dir_ / info.id / "meta.json", MetaJson(info.parent, info.labels));
  }

  Result<std::vector<Info>> List() override {
    std::vector<Info> out;
    std::vector<std::string> ids;
    try {
      for (const auto& de : fs::directory_iterator(dir_)) {
        std::string name = de.path().filename();
        if (!name.starts_with(".") && ValidId(name).ok()) ids.push_back(name);
      }
    } catch (const fs::filesystem_error& e) {
      return Status::IOError(std::string("listing snapshots: ") + e.what());
    }
    std::sort(ids.begin(), ids.end());
    for (const std::string& id : ids) {
      auto info = Stat(id);
      if (info.status().code() == StatusCode::kNotFound) continue;  // removed meanwhile
      if (!info.ok()) return info.status();
      out.push_back(std::move(*info));
    }
    return out;
  }

  Status Remove(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_RETURN_IF_ERROR(Stat(id).status());
    KILN_ASSIGN_OR_RETURN(auto all, List());
    for (const Info& info : all) {
      if (info.parent == id) {
        return Status::FailedPrecondition("cannot remove snapshot \"" + std::string(id) +
                                          "\": it is the parent of \"" + info.id +
                                          "\" (remove that first)");
      }
    }
    // Rename away first so the snapshot vanishes at once for every process.
    fs::path gone = dir_ / ".tmp" / TempName("rm-" + RandomHex(12));
    if (::rename((dir_ / std::string(id)).c_str(), gone.c_str()) != 0) {
      return ErrnoError("cannot remove snapshot", dir_ / std::string(id));
    }
    KILN_RETURN_IF_ERROR(internal::RemoveTree(gone));
    return internal::RemoveTree(dir_ / ".flat" / std::string(id));
  }

  Result<std::vector<Info>> Usage() override {
    KILN_ASSIGN_OR_RETURN(auto all, List());
    for (Info& info : all) {
      info.disk_bytes =
          internal::DiskUsage(dir_ / info.id) + internal::DiskUsage(dir_ / ".flat" / info.id);
    }
    return all;
  }

  Status Diff(std::string_view id, const util::ByteSink& sink,
              const DiffOptions& options) override {
    KILN_ASSIGN_OR_RETURN(Info info, Stat(id));
    if (overlay_) return internal::WriteUpperDiff(FsDir(id), sink, options);
    return internal::WriteCompareDiff(info.parent.empty() ? fs::path() : FsDir(info.parent),
                                      FsDir(id), sink, options);
  }

  Status Export(std::string_view id, const util::ByteSink& sink,
                const DiffOptions& options) override {
    // The merged view holds no whiteouts; against the empty filesystem
    // every entry is new.
    KILN_ASSIGN_OR_RETURN(View view, Mount(id));
    return internal::WriteCompareDiff(fs::path(), view.path(), sink, options);
  }

  Result<std::string> Apply(std::string_view parent, std::string_view name,
                            const util::ByteSource& source,
                            std::map<std::string, std::string> labels) override {
    KILN_RETURN_IF_ERROR(ValidId(name));
    if (Stat(name).ok()) return std::string(name);
    if (!parent.empty()) KILN_RETURN_IF_ERROR(Stat(parent).status());
    fs::path tmp = dir_ / ".tmp" / TempName(std::string(name) + "-" + RandomHex(8));
    if (::mkdir(tmp.c_str(), 0700) != 0) return ErrnoError("cannot create", tmp);
    Status s = ApplyInto(tmp, parent, name, source, labels);
    if (!s.ok()) {
      (void)internal::RemoveTree(tmp);
      return s.Annotate("applying layer \"" + std::string(name) + "\"");
    }
    return std::string(name);
  }

  // Commit of an Active (see Active::Commit).
  Result<std::string> Commit(Active::Impl* a, std::map<std::string, std::string> labels) {
    if (a->done) return Status::FailedPrecondition("snapshot " + a->id + " was already committed");
    if (a->mounted) {
      KILN_RETURN_IF_ERROR(Unmount(a->path));
      a->mounted = false;
      ::rmdir(a->path.c_str());
      KILN_RETURN_IF_ERROR(internal::RemoveTree(a->tmp / "work"));
    }
    KILN_RETURN_IF_ERROR(WriteFileAtomic(a->tmp / "meta.json", MetaJson(a->parent, labels)));
    fs::path final_dir = dir_ / a->id;
    if (::rename(a->tmp.c_str(), final_dir.c_str()) != 0) {
      return ErrnoError("cannot commit snapshot into", final_dir);
    }
    a->done = true;
    return a->id;
  }

  void Discard(Active::Impl* a) {
    if (a->done) return;
    if (a->mounted) ::umount2(a->path.c_str(), MNT_DETACH);
    if (overlay_) ::rmdir(a->path.c_str());
    (void)internal::RemoveTree(a->tmp);
  }

 private:
  fs::path FsDir(std::string_view id) const { return dir_ / std::string(id) / "fs"; }

  static std::string JoinLower(const std::vector<fs::path>& dirs) {
    std::string s;
    for (const fs::path& d : dirs) {
      if (!s.empty()) s += ':';
      s += d.string();
    }
    return s;
  }

  // The lowerdirs (top first) that show `id`'s full filesystem, flattening
  // the chain when it is too deep for one mount.
  Result<std::vector<fs::path>> LowerDirs(std::string_view id) {
    std::vector<fs::path> dirs;
    std::string cur(id);
    size_t length = 0;
    bool too_deep = false;
    while (!cur.empty()) {
      fs::path flat = dir_ / ".flat" / cur;
      if (::access(flat.c_str(), F_OK) == 0) {
        dirs.push_back(flat);
        break;
      }
      dirs.push_back(FsDir(cur));
      length += dirs.back().string().size() + 1;
      if (static_cast<int>(dirs.size()) > options_.max_depth || length > kMaxMountOptions) {
        too_deep = true;
        break;
      }
      KILN_ASSIGN_OR_RETURN(Info info, Stat(cur));
      cur = info.parent;
    }
    if (!too_deep) return dirs;
    KILN_ASSIGN_OR_RETURN(fs::path flat, Flatten(id));
    return std::vector<fs::path>{flat};
  }

  // Makes (once) DIR/.flat/<id>, the full filesystem of `id`.
  Result<fs::path> Flatten(std::string_view id) {
    fs::path flat = dir_ / ".flat" / std::string(id);
    if (::access(flat.c_str(), F_OK) == 0) return flat;
    // The chain from `id` down to the nearest flattened ancestor.
    std::vector<std::string> chain;
    fs::path base;
    for (std::string cur(id); !cur.empty();) {
      fs::path f = dir_ / ".flat" / cur;
      if (cur != id && ::access(f.c_str(), F_OK) == 0) {
        base = f;
        break;
      }
      chain.push_back(cur);
      KILN_ASSIGN_OR_RETURN(Info info, Stat(cur));
      cur = info.parent;
    }
    fs::path tmp = dir_ / ".tmp" / TempName("flat-" + RandomHex(12));
    Status s = base.empty() ? (::mkdir(tmp.c_str(), 0755) == 0 ? Status::Ok()
                                                               : ErrnoError("cannot create", tmp))
                            : internal::CopyTree(base, tmp);
    for (auto it = chain.rbegin(); s.ok() && it != chain.rend(); ++it) {
      s = internal::MergeUpper(FsDir(*it), tmp);
    }
    if (s.ok() && ::rename(tmp.c_str(), flat.c_str()) != 0 && errno != EEXIST &&
        errno != ENOTEMPTY) {
      s = ErrnoError("cannot store flattened snapshot", flat);
    }
    (void)internal::RemoveTree(tmp);  // gone after a successful rename
    if (!s.ok()) return s.Annotate("flattening snapshot \"" + std::string(id) + "\"");
    return flat;
  }

  Status ApplyInto(const fs::path& tmp, std::string_view parent, std::string_view name,
                   const util::ByteSource& source,
                   const std::map<std::string, std::string>& labels) {
    fs::path root = tmp / "fs";
    if (overlay_ || parent.empty()) {
      if (::mkdir(root.c_str(), 0755) != 0) return ErrnoError("cannot create", root);
    } else {
      KILN_RETURN_IF_ERROR(internal::CopyTree(FsDir(parent), root));
    }
    if (overlay_) {
      // The parent's filesystem, for the whiteouts: overlay's empty upper
      // dir does not show what they would hide.
      // Mounted at the first whiteout only; unmounted when this returns.
      std::optional<View> lower;
      internal::LowerView lower_view = [&]() -> Result<fs::path> {
        if (!lower) {
          KILN_ASSIGN_OR_RETURN(View v, Mount(parent));
          lower.emplace(std::move(v));
        }
        return lower->path();
      };
      KILN_RETURN_IF_ERROR(internal::ApplyLayer(root, internal::ApplyMode::kOverlay, source,
                                                parent.empty() ? nullptr : lower_view));
    } else {
      KILN_RETURN_IF_ERROR(internal::ApplyLayer(root, internal::ApplyMode::kCopy, source));
    }
    KILN_RETURN_IF_ERROR(WriteFileAtomic(tmp / "meta.json", MetaJson(std::string(parent), labels)));
    fs::path final_dir = dir_ / std::string(name);
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      if (errno == EEXIST || errno == ENOTEMPTY) {
        // Another process applied the same layer first: use theirs.
        return internal::RemoveTree(tmp);
      }
      return ErrnoError("cannot commit snapshot into", final_dir);
    }
    return Status::Ok();
  }

  fs::path dir_;
  Options options_;
  bool overlay_;
  std::mutex mu_;  // serializes metadata rewrites and removals
};

namespace {

bool ProbeOverlay(const fs::path& dir) {
  fs::path probe = dir / ".tmp" / TempName("probe-" + RandomHex(8));
  bool ok = false;
  if (::mkdir(probe.c_str(), 0700) == 0) {
    for (const char* sub : {"l1", "l2", "u", "w", "m"}) ::mkdir((probe / sub).c_str(), 0755);
    std::string opts = "lowerdir=" + (probe / "l1").string() + ":" + (probe / "l2").string() +
                       ",upperdir=" + (probe / "u").string() +
                       ",workdir=" + (probe / "w").string() + "," + std::string(kOverlayFeatures);
    if (::mount("overlay", (probe / "m").c_str(), "overlay", 0, opts.c_str()) == 0) {
      // Whiteouts must work in the upper dir too.
      ok = ::mknod((probe / "u" / "wh").c_str(), S_IFCHR, 0) == 0 &&
           ::setxattr((probe / "u").c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0;
      ::umount2((probe / "m").c_str(), MNT_DETACH);
    }
  }
  (void)internal::RemoveTree(probe);
  return ok;
}

}  // namespace

Active::Impl::~Impl() {
  if (owner) owner->Discard(this);
}

Result<std::string> Active::Commit(std::map<std::string, std::string> labels) {
  return impl_->owner->Commit(impl_.get(), std::move(labels));
}

Result<std::shared_ptr<Snapshotter>> Snapshotter::Open(const fs::path& dir, Options options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create snapshot directory " + dir.string() + ": " +
                           ec.message());
  fs::path abs = fs::absolute(dir, ec).lexically_normal();
  if (ec) return Status::IOError("cannot resolve " + dir.string() + ": " + ec.message());
  if (abs.string().size() > 1 && abs.string().back() == '/') abs = abs.parent_path();
  for (const char* sub : {".tmp", ".flat", ".mounts", ".empty"}) {
    fs::create_directories(abs / sub, ec);
    if (ec) return Status::IOError("cannot create " + (abs / sub).string() + ": " + ec.message());
  }
  if (options.max_depth < 1) {
    return Status::InvalidArgument("snapshot max_depth must be at least 1, got " +
                                   std::to_string(options.max_depth));
  }
  // overlayfs splits its options on ',' and ':'; such paths need the copy driver.
  bool plain_path = abs.string().find_first_of(",:\\") == std::string::npos;
  fs::path marker = abs / ".driver";
  std::ifstream f(marker);
  std::string have;
  if (f) std::getline(f, have);
  // A directory that already holds overlay snapshots was probed when it was
  // made: probing again (a mount and an unmount) would cost every build.
  bool overlay = !options.force_copy && plain_path &&
                 (have == "overlay" ? true : have.empty() && ProbeOverlay(abs));
  std::string want = overlay ? "overlay" : "copy";
  if (have.empty()) {
    KILN_RETURN_IF_ERROR(WriteFileAtomic(marker, want + "\n"));
  } else if (have != want) {
    return Status::FailedPrecondition(
        "snapshot directory " + abs.string() + " holds " + have + " snapshots but the " + want +
        " driver was chosen" +
        (have == "overlay" ? " (overlayfs is not usable here or force_copy is set)" : "") +
        "; use another directory or remove this one");
  }
  return std::shared_ptr<Snapshotter>(std::make_shared<SnapshotterImpl>(abs, options, overlay));
}

Result<util::ReapStats> ReapTemp(const fs::path& dir, const util::StaleFn& stale) {
  util::ReapStats stats;
  for (const char* sub : {".tmp", ".mounts"}) {
    const fs::path parent = dir / sub;
    std::error_code ec;
    fs::directory_iterator it(parent, ec);
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) continue;
      return Status::IOError("cannot list " + parent.string() + ": " + ec.message());
    }
    std::vector<fs::path> found;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (stale(it->path().filename().string())) found.push_back(it->path());
    }
    for (const fs::path& p : found) {
      if (std::string_view(sub) == ".mounts") {
        // A mount point: unmounted if this namespace still has it, then
        // removed only when empty (never recursed into: it could show a
        // snapshot).
        (void)::umount2(p.c_str(), MNT_DETACH);
        if (::rmdir(p.c_str()) == 0) ++stats.items;
        continue;
      }
      const uint64_t bytes = internal::DiskUsage(p);
      if (internal::RemoveTree(p).ok()) {
        ++stats.items;
        stats.bytes += bytes;
      }
    }
  }
  return stats;
}

Status ExtractTar(const std::filesystem::path& dir, const util::ByteSource& source) {
  return internal::ApplyLayer(dir, internal::ApplyMode::kCopy, source);
}

Status EnterPrivateMountNamespace() {
  static std::atomic<bool> entered{false};
  if (entered.load()) return Status::Ok();
  if (::unshare(CLONE_NEWNS) != 0) {
    return Status::IOError(std::string("cannot unshare the mount namespace: ") +
                           std::strerror(errno) + " (kiln needs CAP_SYS_ADMIN)");
  }
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Status::IOError(std::string("cannot make mounts private: ") + std::strerror(errno));
  }
  entered.store(true);
  return Status::Ok();
}

}  // namespace kiln::snapshot
