// Layer writer: a snapshot's changes as a normalized OCI layer tar.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "snapshot/internal.h"

namespace kiln::snapshot::internal {
namespace {

// One tar entry to write. `name` is the in-layer path without a trailing
// slash; it is also the sort key.
struct Item {
  enum Kind { kNode, kWhiteout, kOpaque } kind = kNode;
  std::string name;
  fs::path path;  // kNode: the file on disk
  struct stat st {};
};

// Collects the entries below `dir` (in-layer path `rel`). With
// `overlay_markers` (an overlay upper dir), a char device 0/0 is a whiteout
// and a directory with the opaque xattr gets an opaque marker; without (a
// copy driver's tree, which holds no overlay markers: its layers' deletions
// deleted), every entry is what it is on disk, a char device 0/0 included.
Status CollectUpper(const fs::path& dir, const std::string& rel, std::vector<Item>* items,
                    bool overlay_markers = true) {
  std::vector<std::string> names;
  for (const auto& de : fs::directory_iterator(dir)) names.push_back(de.path().filename());
  for (const std::string& name : names) {
    Item it;
    it.path = dir / name;
    if (::lstat(it.path.c_str(), &it.st) != 0) return ErrnoError("cannot stat", it.path);
    std::string child = rel.empty() ? name : rel + "/" + name;
    if (overlay_markers && IsWhiteout(it.st)) {
      it.kind = Item::kWhiteout;
      it.name = (rel.empty() ? "" : rel + "/") + std::string(kWhiteoutPrefix) + name;
      items->push_back(std::move(it));
      continue;
    }
    it.name = child;
    bool dir_entry = S_ISDIR(it.st.st_mode);
    fs::path path = it.path;
    items->push_back(std::move(it));
    if (dir_entry) {
      if (overlay_markers && IsOpaqueDir(path)) {
        Item op;
        op.kind = Item::kOpaque;
        op.name = child + "/" + std::string(kOpaqueMarker);
        items->push_back(std::move(op));
      }
      KILN_RETURN_IF_ERROR(CollectUpper(path, child, items, overlay_markers));
    }
  }
  return Status::Ok();
}

// Whether the entry changed between parent (`a`) and snapshot (`b`), both
// of the same file type. Times compared with nanoseconds.
Result<bool> MetaDiffers(const fs::path& pa, const struct stat& a, const fs::path& pb,
                         const struct stat& b) {
  if (a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid) return true;
  if (a.st_mtim.tv_sec != b.st_mtim.tv_sec || a.st_mtim.tv_nsec != b.st_mtim.tv_nsec) return true;
  if (S_ISREG(a.st_mode) && a.st_size != b.st_size) return true;
  if ((S_ISCHR(a.st_mode) || S_ISBLK(a.st_mode)) && a.st_rdev != b.st_rdev) return true;
  if (S_ISLNK(a.st_mode)) {
    KILN_ASSIGN_OR_RETURN(std::string ta, ReadLink(pa));
    KILN_ASSIGN_OR_RETURN(std::string tb, ReadLink(pb));
    if (ta != tb) return true;
  }
  KILN_ASSIGN_OR_RETURN(auto xa, LayerXattrs(pa));
  KILN_ASSIGN_OR_RETURN(auto xb, LayerXattrs(pb));
  return xa != xb;
}

// Collects everything below the snapshot directory `dir` as new. A char
// device 0/0 there is a device a layer or a RUN made (the layer apply and
// CollectCompare keep it as one): it is written as a device, not refused
// as an overlay marker. (Issue 15: the copy driver applied a layer with
// `dev/wh` as a char device 0/0 and then could not Diff the snapshot.)
Status CollectAll(const fs::path& dir, const std::string& rel, std::vector<Item>* items) {
  return CollectUpper(dir, rel, items, /*overlay_markers=*/false);
}

// Compares directory `rel` of the snapshot (`sdir`) with the parent's
// (`pdir`, a directory). Sets *changed when anything below differs.
Status CollectCompare(const fs::path& pdir, const fs::path& sdir, const std::string& rel,
                      std::vector<Item>* items, bool* changed) {
  std::vector<std::string> snames, pnames;
  for (const auto& de : fs::directory_iterator(sdir)) snames.push_back(de.path().filename());
  for (const auto& de : fs::directory_iterator(pdir)) pnames.push_back(de.path().filename());
  std::sort(snames.begin(), snames.end());
  std::sort(pnames.begin(), pnames.end());
  for (const std::string& name : pnames) {
    if (!std::binary_search(snames.begin(), snames.end(), name)) {
      Item wh;
      wh.kind = Item::kWhiteout;
      wh.name = (rel.empty() ? "" : rel + "/") + std::string(kWhiteoutPrefix) + name;
      items->push_back(std::move(wh));
      *changed = true;
    }
  }
  for (const std::string& name : snames) {
    Item it;
    it.path = sdir / name;
    it.name = rel.empty() ? name : rel + "/" + name;
    if (::lstat(it.path.c_str(), &it.st) != 0) return ErrnoError("cannot stat", it.path);
    fs::path ppath = pdir / name;
    struct stat pst;
    bool in_parent = ::lstat(ppath.c_str(), &pst) == 0;
    bool is_dir = S_ISDIR(it.st.st_mode);
    std::string child = it.name;
    fs::path spath = it.path;
    if (!in_parent || (pst.st_mode & S_IFMT) != (it.st.st_mode & S_IFMT)) {
      // New, or its type changed. A directory replacing a non-directory is
      // opaque, as overlayfs marks a directory made over a whiteout.
      items->push_back(std::move(it));
      if (is_dir) {
        if (in_parent) {
          Item op;
          op.kind = Item::kOpaque;
          op.name = child + "/" + std::string(kOpaqueMarker);
          items->push_back(std::move(op));
        }
        KILN_RETURN_IF_ERROR(CollectAll(spath, child, items));
      }
      *changed = true;
      continue;
    }
    KILN_ASSIGN_OR_RETURN(bool differs, MetaDiffers(ppath, pst, spath, it.st));
    if (is_dir) {
      bool below = false;
      std::vector<Item> sub;
      KILN_RETURN_IF_ERROR(CollectCompare(ppath, spath, child, &sub, &below));
      if (differs || below) {
        items->push_back(std::move(it));
        for (Item& s : sub) items->push_back(std::move(s));
        *changed = true;
      }
      continue;
    }
    if (differs) {
      items->push_back(std::move(it));
      *changed = true;
    }
  }
  return Status::Ok();
}

// Where libarchive's write callback sends the bytes. `failed` is set by the
// first error (of the sink, or of the writer giving up): from then on the
// callback refuses every write without calling the sink again.
struct WriteCtx {
  const util::ByteSink* sink;
  Status status;
  bool failed = false;
};

la_ssize_t WriteCb(struct archive*, void* data, const void* buf, size_t len) {
  auto* ctx = static_cast<WriteCtx*>(data);
  if (ctx->failed) return -1;
  Status s = (*ctx->sink)(std::string_view(static_cast<const char*>(buf), len));
  if (!s.ok()) {
    ctx->status = s;
    ctx->failed = true;
    return -1;
  }
  return static_cast<la_ssize_t>(len);
}

struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

// A libarchive write handle and the context its callback writes into, owned
// together so that the handle is always freed first: archive_write_free
// flushes what libarchive still buffers through WriteCb, which must find
// the context alive. A writer destroyed without a successful Close() (an
// error, a cancelled export) is abandoned: its buffered bytes are dropped,
// never handed to the sink, which belongs to a transfer that already
// failed. (Guards issue 15: a layer export stopped midway freed the handle
// after the context, and the flush wrote into a destroyed Status.)
class TarWriter {
 public:
  explicit TarWriter(const util::ByteSink& sink) : ctx_{&sink, Status::Ok()} {
    a_ = archive_write_new();
  }
  ~TarWriter() {
    if (a_ == nullptr) return;
    if (!closed_) ctx_.failed = true;  // abandoned: nothing more reaches the sink
    archive_write_free(a_);
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  struct archive* get() const {
    return a_;
  }

  Status Open() {
    if (a_ == nullptr) return Status::Internal("writing layer tar: archive_write_new failed");
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_format_option(a_, "pax", "xattrheader", "SCHILY");
    archive_write_add_filter_none(a_);
    archive_write_set_bytes_per_block(a_, 10240);
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open(a_, &ctx_, nullptr, WriteCb, nullptr) != ARCHIVE_OK) {
      return Error("open");
    }
    return Status::Ok();
  }

  // Writes the end of the tar and flushes it to the sink.
  Status Close() {
    if (archive_write_close(a_) != ARCHIVE_OK) return Error("close");
    closed_ = true;
    return Status::Ok();
  }

  // The error of the last libarchive call: the sink's own when it failed.
  Status Error(std::string_view what) const {
    if (!ctx_.status.ok()) return ctx_.status;
    const char* msg = archive_error_string(a_);
    return Status::IOError("writing layer tar: " + std::string(what) + ": " +
                           (msg ? msg : "unknown libarchive error"));
  }

 private:
  WriteCtx ctx_;  // declared before a_ and outliving it: see the destructor
  struct archive* a_ = nullptr;
  bool closed_ = false;
};

// Whether archive_write_header wrote the entry. ARCHIVE_WARN is a name
// (path, link target, user or group) that the locale's charset cannot
// translate to UTF-8: a Linux file name is bytes, and the pax writer has
// stored them as they are, marked hdrcharset=BINARY (BuildKit's Go writer
// too keeps such names as bytes). Anything worse is an error.
bool HeaderWritten(int r) { return r == ARCHIVE_OK || r == ARCHIVE_WARN; }

Status WriteItems(std::vector<Item> items, const util::ByteSink& sink, const DiffOptions& options) {
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.name < b.name; });
  TarWriter a(sink);
  KILN_RETURN_IF_ERROR(a.Open());
  // First path written for each multiply-linked inode.
  std::map<std::pair<dev_t, ino_t>, std::string> first_link;
  std::vector<char> buf(1 << 20);
  for (const Item& it : items) {
    std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (it.kind != Item::kNode) {
      archive_entry_set_pathname(e.get(), it.name.c_str());
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), 0);
      archive_entry_set_size(e.get(), 0);
      archive_entry_set_mtime(e.get(), 0, 0);
      if (!HeaderWritten(archive_write_header(a.get(), e.get()))) {
        return a.Error(it.name);
      }
      continue;
    }
    const struct stat& st = it.st;
    bool is_dir = S_ISDIR(st.st_mode);
    archive_entry_set_pathname(e.get(), (is_dir ? it.name + "/" : it.name).c_str());
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_mode(e.get(), st.st_mode);
    int64_t mtime = st.st_mtim.tv_sec;
    if (options.clamp_mtime && mtime > *options.clamp_mtime) mtime = *options.clamp_mtime;
    archive_entry_set_mtime(e.get(), mtime, 0);
    KILN_ASSIGN_OR_RETURN(auto xattrs, LayerXattrs(it.path));
    for (const auto& [name, value] : xattrs) {
      archive_entry_xattr_add_entry(e.get(), name.c_str(), value.data(), value.size());
    }
    bool data = false;
    if (S_ISREG(st.st_mode)) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto found = st.st_nlink > 1 ? first_link.find(key) : first_link.end();
      if (found != first_link.end()) {
        archive_entry_set_hardlink(e.get(), found->second.c_str());
        archive_entry_set_size(e.get(), 0);
      } else {
        if (st.st_nlink > 1) first_link[key] = it.name;
        archive_entry_set_size(e.get(), st.st_size);
        data = st.st_size > 0;
      }
    } else if (S_ISLNK(st.st_mode)) {
      KILN_ASSIGN_OR_RETURN(std::string target, ReadLink(it.path));
      archive_entry_set_symlink(e.get(), target.c_str());
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      archive_entry_set_rdevmajor(e.get(), major(st.st_rdev));
      archive_entry_set_rdevminor(e.get(), minor(st.st_rdev));
    } else if (S_ISSOCK(st.st_mode)) {
      continue;  // sockets cannot be stored in a tar; they belong to a process
    }
    if (!HeaderWritten(archive_write_header(a.get(), e.get()))) {
      return a.Error(it.name);
    }
    if (!data) continue;
    util::UniqueFd fd(::open(it.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("cannot open", it.path);
    off_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<off_t>(left, buf.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("cannot read", it.path);
      if (n == 0) {
        return Status::FailedPrecondition("file " + it.path.string() +
                                          " shrank while its layer was written");
      }
      if (archive_write_data(a.get(), buf.data(), static_cast<size_t>(n)) != n) {
        return a.Error(it.name);
      }
      left -= n;
    }
  }
  return a.Close();
}

}  // namespace

Status WriteUpperDiff(const fs::path& upper, const util::ByteSink& sink,
                      const DiffOptions& options) {
  std::vector<Item> items;
  try {
    KILN_RETURN_IF_ERROR(CollectUpper(upper, "", &items));
  } catch (const fs::filesystem_error& e) {
    return Status::IOError(std::string("reading snapshot: ") + e.what());
  }
  return WriteItems(std::move(items), sink, options);
}

Status WriteCompareDiff(const fs::path& parent, const fs::path& snapshot,
                        const util::ByteSink& sink, const DiffOptions& options) {
  std::vector<Item> items;
  try {
    if (parent.empty()) {
      KILN_RETURN_IF_ERROR(CollectAll(snapshot, "", &items));
    } else {
      bool changed = false;
      KILN_RETURN_IF_ERROR(CollectCompare(parent, snapshot, "", &items, &changed));
    }
  } catch (const fs::filesystem_error& e) {
    return Status::IOError(std::string("reading snapshot: ") + e.what());
  }
  return WriteItems(std::move(items), sink, options);
}

}  // namespace kiln::snapshot::internal
