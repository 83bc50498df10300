// libFuzzer entry point for applying a pulled layer with both snapshot
// drivers. The input is a layer blob as a registry serves it: a tar, or a
// gzip or zstd stream of one (util::Decompress detects which, as the image
// source does). Each run:
//   1. applies it with Snapshotter::Apply, driver overlay and driver copy, on
//      a fixed hostile parent snapshot (absolute and relative symlinks that
//      point at a canary directory outside the snapshots, a symlink to "/",
//      a loop, a hard-linked file, a directory to hide with an opaque
//      marker);
//   2. when the apply succeeded: writes the snapshot's layer back with
//      Diff() and applies that to the parent again (kiln must be able to
//      read every layer it writes); for overlay, merges the upper dir onto a
//      copy of the parent as a flattened chain does (internal::MergeUpper);
//      then removes the snapshots;
//   3. checks containment: every file outside the snapshots being made (the
//      canary, the parent snapshot, the snapshotter's own files) is as it
//      was, nothing new appeared next to them, and a failed apply left
//      nothing behind.
// With KILN_FUZZ_LAYER_AGREE=1 it also requires both drivers to give the same
// verdict and the same filesystem (overlay's upper merged onto the parent
// must equal the copy driver's tree). KILN_FUZZ_VERBOSE=1 prints each
// driver's verdict and Diff() status.
//
// What is not covered: the overlay mount itself (the kernel merges lower and
// upper dirs; a mount per run would cost more than the apply) and Export()
// through a mount. Scratch: a private tmpfs of 256 MiB mounted on a fresh
// directory under $KILN_FUZZ_SCRATCH (default /dev/shm) in a private mount
// namespace, so nothing survives the process; needs root. Decompressed
// layers are cut at 32 MiB (a zstd bomb would otherwise fill the scratch).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "snapshot/internal.h"
#include "snapshot/snapshotter.h"
#include "util/compress.h"
#include "util/io.h"
#include "util/status.h"

namespace fs = std::filesystem;
namespace snap = kiln::snapshot;
using kiln::Result;
using kiln::Status;

namespace {

constexpr size_t kMaxLayerBytes = 32u << 20;
constexpr size_t kMaxDiffBytes = 64u << 20;

// What a path looks like, for "nothing changed" checks. Directory mtimes are
// left out (creating and removing a snapshot touches its parent directory).
std::string Describe(const fs::path& p, const struct stat& st) {
  std::ostringstream o;
  o << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
  if (!S_ISDIR(st.st_mode)) {
    o << " n" << st.st_nlink << " s" << st.st_size << " t" << st.st_mtim.tv_sec << "."
      << st.st_mtim.tv_nsec;
  }
  if (S_ISREG(st.st_mode) && st.st_size < (1 << 20)) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream data;
    data << in.rdbuf();
    o << " data=" << std::hash<std::string>{}(data.str());
  }
  if (S_ISLNK(st.st_mode)) {
    auto target = snap::internal::ReadLink(p);
    o << " -> " << (target.ok() ? *target : "?");
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    o << " dev=" << major(st.st_rdev) << "," << minor(st.st_rdev);
  }
  char names[4096];
  ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    char value[256];
    ssize_t v = ::lgetxattr(p.c_str(), name.c_str(), value, sizeof value);
    o << " x:" << name << "=" << std::string(value, v > 0 ? static_cast<size_t>(v) : 0);
  }
  return o.str();
}

// Every path below `root` (not followed), relative, with its description.
// Paths in `skip` (relative) are left out with everything below them.
void Walk(const fs::path& root, const fs::path& rel, const std::vector<fs::path>& skip,
          std::map<std::string, std::string>* out) {
  const fs::path p = rel.empty() ? root : root / rel;
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return;
  (*out)[rel.string()] = Describe(p, st);
  if (!S_ISDIR(st.st_mode)) return;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p, ec)) {
    fs::path child = rel / e.path().filename();
    if (std::find(skip.begin(), skip.end(), child) != skip.end()) continue;
    Walk(root, child, skip, out);
  }
}

std::map<std::string, std::string> Tree(const fs::path& root,
                                        const std::vector<fs::path>& skip = {}) {
  std::map<std::string, std::string> out;
  Walk(root, fs::path(), skip, &out);
  return out;
}

// The first difference between two trees, "" when equal.
std::string TreeDiff(const std::map<std::string, std::string>& want,
                     const std::map<std::string, std::string>& have) {
  for (const auto& [path, what] : want) {
    auto it = have.find(path);
    if (it == have.end()) return "\"" + path + "\" is gone (was " + what + ")";
    if (it->second != what) return "\"" + path + "\" changed: " + what + " -> " + it->second;
  }
  for (const auto& [path, what] : have) {
    if (!want.count(path)) return "\"" + path + "\" appeared: " + what;
  }
  return "";
}

kiln::util::ByteSource MemorySource(std::string_view data) {
  auto pos = std::make_shared<size_t>(0);
  return [data, pos](char* buf, size_t capacity) -> Result<size_t> {
    size_t n = std::min(capacity, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

// `upstream` decompressed, cut at kMaxLayerBytes.
kiln::util::ByteSource LayerSource(std::string_view data) {
  auto total = std::make_shared<size_t>(0);
  auto inner = std::make_shared<kiln::util::ByteSource>(kiln::util::Decompress(MemorySource(data)));
  return [inner, total](char* buf, size_t capacity) -> Result<size_t> {
    Result<size_t> n = (*inner)(buf, capacity);
    if (n.ok()) {
      *total += *n;
      if (*total > kMaxLayerBytes) return Status::ResourceExhausted("fuzz: layer cut at 32 MiB");
    }
    return n;
  };
}

void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz_layer_apply: %s\n", what.c_str());
  std::abort();
}

void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

// A tar built in code: the hostile parent snapshot.
struct TarWriter {
  std::string out;
  void Header(const std::string& name, char type, const std::string& link, size_t size, int mode) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", name.c_str());
    std::snprintf(h + 100, 8, "%07o", mode);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011zo", size);
    std::snprintf(h + 136, 12, "%011o", 1600000000);
    std::memset(h + 148, ' ', 8);
    h[156] = type;
    std::snprintf(h + 157, 100, "%s", link.c_str());
    std::memcpy(h + 257,
                "ustar\0"
                "00",
                8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, 512);
  }
  void Dir(const std::string& name) { Header(name, '5', "", 0, 0755); }
  void File(const std::string& name, const std::string& data, int mode = 0644) {
    Header(name, '0', "", data.size(), mode);
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  void Symlink(const std::string& name, const std::string& target) {
    Header(name, '2', target, 0, 0777);
  }
  void HardLink(const std::string& name, const std::string& target) {
    Header(name, '1', target, 0, 0644);
  }
  std::string Finish() { return out + std::string(1024, '\0'); }
};

struct Driver {
  std::string name;
  fs::path dir;
  std::shared_ptr<snap::Snapshotter> snaps;
};

struct World {
  fs::path base;    // the private tmpfs
  fs::path canary;  // files a layer must never reach
  fs::path work;    // scratch for MergeUpper
  Driver drivers[2];
  std::map<std::string, std::string> before;  // Tree(base) after setup
  bool agree = false;
  bool verbose = false;  // KILN_FUZZ_VERBOSE: print each driver's verdict
  uint64_t runs = 0;
};

World* world = nullptr;

void Cleanup() {
  if (!world) return;
  ::umount2(world->base.c_str(), MNT_DETACH);
  ::rmdir(world->base.c_str());
}

std::vector<fs::path> Skips() { return {"work"}; }

void Setup() {
  world = new World;
  World& w = *world;
  Must(snap::EnterPrivateMountNamespace(), "private mount namespace (run as root)");
  const char* scratch = std::getenv("KILN_FUZZ_SCRATCH");
  std::string tmpl = std::string(scratch ? scratch : "/dev/shm") + "/kiln-fuzz-layer-XXXXXX";
  if (!::mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  w.base = tmpl;
  if (::mount("kiln-fuzz", w.base.c_str(), "tmpfs", 0, "size=256m,mode=0755") != 0) {
    Die("mount tmpfs on " + w.base.string() + ": " + std::strerror(errno));
  }
  std::atexit(Cleanup);
  w.agree = std::getenv("KILN_FUZZ_LAYER_AGREE") != nullptr;
  w.verbose = std::getenv("KILN_FUZZ_VERBOSE") != nullptr;

  // The canary: a file (with an xattr), a directory and a symlink.
  w.canary = w.base / "canary";
  fs::create_directories(w.canary / "dir");
  std::ofstream(w.canary / "secret") << "canary\n";
  std::ofstream(w.canary / "dir" / "file") << "canary file\n";
  ::chmod((w.canary / "secret").c_str(), 0600);
  ::setxattr((w.canary / "secret").c_str(), "user.canary", "1", 1, 0);
  fs::create_symlink("secret", w.canary / "link");
  w.work = w.base / "work";
  fs::create_directories(w.work);

  // The parent: symlinks that reach the canary when followed on the host.
  // A snapshot being applied lives at DIR/.tmp/<id>/fs and a committed one
  // at DIR/<id>/fs, DIR = base/s/<driver>: 5 and 4 levels below base.
  TarWriter t;
  t.Dir("etc/");
  t.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  t.Symlink("abs", w.canary.string());
  t.Symlink("absfile", (w.canary / "secret").string());
  t.Symlink("rel5", "../../../../../canary");
  t.Symlink("rel4", "../../../../canary");
  t.Symlink("relfile", "../../../../../canary/secret");
  t.Symlink("root", "/");
  t.Symlink("dot", ".");
  t.Symlink("loop", "loop");
  t.Dir("d/");
  t.File("d/f", "data\n", 04755);
  t.HardLink("d/h", "etc/passwd");
  t.Dir("o/");
  t.File("o/hidden", "below an opaque marker\n");
  t.Dir("o/sub/");
  t.Symlink("o/sub/up", "../../abs");
  const std::string parent = t.Finish();

  const char* names[2] = {"overlay", "copy"};
  for (int i = 0; i < 2; ++i) {
    Driver& d = w.drivers[i];
    d.name = names[i];
    d.dir = w.base / "s" / d.name;
    snap::Options o;
    o.force_copy = i == 1;
    auto s = snap::Snapshotter::Open(d.dir, o);
    if (!s.ok()) Die("open " + d.name + ": " + s.status().ToString());
    d.snaps = *s;
    if (d.snaps->driver() != d.name) {
      Die("driver " + d.name + " wanted, got " + std::string(d.snaps->driver()) +
          " (overlayfs on tmpfs is not usable here)");
    }
    auto r = d.snaps->Apply("", "parent", MemorySource(parent));
    if (!r.ok()) Die("applying the parent layer: " + r.status().ToString());
  }
  w.before = Tree(w.base, Skips());
}

// Diff of `id`, applied again on "parent": kiln reads what it writes.
void RoundTrip(Driver& d, const std::string& id) {
  std::string layer;
  Status s = d.snaps->Diff(id, [&](std::string_view chunk) -> Status {
    if (layer.size() + chunk.size() > kMaxDiffBytes) {
      return Status::ResourceExhausted("fuzz: diff cut at 64 MiB");
    }
    layer.append(chunk);
    return Status::Ok();
  });
  if (world->verbose) std::fprintf(stderr, "%s diff: %s\n", d.name.c_str(), s.ToString().c_str());
  if (!s.ok()) {
    // Reading a tree this process just wrote may only fail on resources
    // (ENOSPC on the scratch is an IOError).
    if (s.code() != kiln::StatusCode::kResourceExhausted &&
        s.code() != kiln::StatusCode::kIOError) {
      Die(d.name + ": Diff of an applied layer failed: " + s.ToString());
    }
    return;
  }
  const std::string again = id + "-rt";
  auto r = d.snaps->Apply("parent", again, MemorySource(layer));
  if (!r.ok()) {
    if (r.status().code() == kiln::StatusCode::kIOError) return;  // ENOSPC and the like
    Die(d.name + ": the layer Diff() wrote does not apply: " + r.status().ToString());
  }
  Must(d.snaps->Remove(again), d.name + ": removing " + again);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = *world;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string id = "f" + std::to_string(++w.runs);
  Status verdict[2];
  for (int i = 0; i < 2; ++i) {
    Driver& d = w.drivers[i];
    auto r = d.snaps->Apply("parent", id, LayerSource(input));
    verdict[i] = r.status();
    if (w.verbose) std::fprintf(stderr, "%s: %s\n", d.name.c_str(), r.status().ToString().c_str());
    if (!r.ok()) {
      if (d.snaps->Stat(id).ok()) Die(d.name + ": a failed apply left snapshot " + id);
      continue;
    }
    RoundTrip(d, id);
  }

  // Overlay: the upper dir merged onto the parent, as Flatten() does.
  const fs::path merged = w.work / "merged";
  bool have_merged = false;
  if (verdict[0].ok()) {
    Must(snap::internal::CopyTree(w.drivers[0].dir / "parent" / "fs", merged), "copying parent");
    Status s = snap::internal::MergeUpper(w.drivers[0].dir / id / "fs", merged);
    if (!s.ok() && s.code() != kiln::StatusCode::kIOError) {
      Die("overlay: merging an applied upper dir failed: " + s.ToString());
    }
    have_merged = s.ok();
  }
  if (w.agree) {
    if (verdict[0].ok() != verdict[1].ok()) {
      Die("the drivers disagree: overlay says \"" + verdict[0].ToString() + "\", copy says \"" +
          verdict[1].ToString() + "\"");
    }
    if (have_merged && verdict[1].ok()) {
      std::string diff = TreeDiff(Tree(w.drivers[1].dir / id / "fs"), Tree(merged));
      if (!diff.empty()) Die("overlay merged onto the parent differs from copy: " + diff);
    }
  }
  (void)snap::internal::RemoveTree(merged);
  for (int i = 0; i < 2; ++i) {
    if (verdict[i].ok()) Must(w.drivers[i].snaps->Remove(id), w.drivers[i].name + ": remove");
  }

  // Containment: everything outside the snapshots made by this run is as
  // it was after setup, and nothing appeared next to it.
  std::string diff = TreeDiff(w.before, Tree(w.base, Skips()));
  if (!diff.empty()) Die("containment broken: " + diff);
  return 0;
}
