// Store: kiln's content-addressed blob store.
//
// Every blob kiln pulls, builds or exports (layers, configs, manifests,
// indexes) lives here once, named by its sha256 digest:
//
//   ROOT/blobs/sha256/<hex>   committed blobs, read-only (mode 0444)
//   ROOT/ingest/<pid>-XXXXXX  blobs being written; each is flock()ed by its
//                             writer, so a file nobody holds a lock on is
//                             left over from a process that died
//
// Ingest is streaming and verified: a Writer hashes bytes as they arrive and
// Commit() checks digest and size before the blob becomes visible (fsync the
// file, rename into place, fsync the directory). A failed or abandoned ingest
// leaves nothing behind. Anything under blobs/ was therefore verified when it
// was committed; Read() and BlobReader verify again, so a blob corrupted on
// disk later is reported (kDigestMismatch) rather than used.
//
// Callers: source/ (pulled images), exporter/ (built images), the OCI layout
// code in this module, and the cache. The store knows no media types: garbage
// collection asks the caller for a blob's children.
//
// Thread-safety: a Store is an immutable value (its root path); all const
// methods may be called from any number of threads and processes sharing the
// same root. Concurrent ingests of the same blob are safe: each writes its own
// temp file and rename() is atomic, so readers see either no blob or the whole
// verified blob. A Writer or BlobReader is used by one thread at a time.
// Gc() and Delete() are not coordinated with concurrent ingests: a blob that
// another process has just committed but not yet made reachable from `roots`
// may be collected. The caller must hold the root's lock (see DESIGN.md,
// "State") while collecting.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/digest.h"
#include "util/owner.h"
#include "util/status.h"

namespace kiln::content {

using util::Digest;

// Streams one blob into the store. Obtained from Store::NewWriter(). Write()
// any number of times, then Commit() exactly once; a Writer destroyed (or
// Abort()ed) without a successful Commit() removes its temp file.
class Writer {
 public:
  Writer(Writer&& other) noexcept;
  Writer& operator=(Writer&& other) noexcept;
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer();

  // Appends `data` to the blob and to its running hash. An I/O error is
  // sticky: later Write() and Commit() calls return it and Commit() removes
  // the temp file.
  Status Write(std::string_view data);
  Status Write(const void* data, size_t size) {
    return Write(std::string_view(static_cast<const char*>(data), size));
  }

  // Bytes written so far.
  uint64_t size() const { return hash_.size(); }

  // Verifies that the bytes written hash to `expected` and number
  // `expected_size` (kUnknownSize: the caller was told no size, so only the
  // digest is checked), then makes the blob visible under `expected`. On a
  // mismatch returns kDigestMismatch naming the expected digest and size
  // (the size only when one was stated) and the actual digest and size, and
  // removes the temp file. kUnimplemented if `expected` is not
  // sha256. If the blob is already in the store (another writer won the race)
  // the temp file is dropped and the call succeeds; "already in the store"
  // means a file of the right size under the digest's name, whose bytes were
  // verified when it was committed. The Writer is finished
  // afterwards whatever the outcome.
  static constexpr uint64_t kUnknownSize = ~uint64_t{0};
  Status Commit(const Digest& expected, uint64_t expected_size);
  // Commits the blob under the digest of what was written (for content kiln
  // produces itself, whose digest is not known in advance).
  Result<Digest> Commit();

  // Drops the blob being written. Idempotent; called by the destructor.
  void Abort();

 private:
  friend class Store;
  Writer(std::filesystem::path blobs_dir, std::filesystem::path temp, int fd);
  Status Flush();
  void StartWriteback(uint64_t just_written);
  // Flush(), or the pending write error; on any error the temp file is removed.
  Status FlushOrAbort();
  // Makes the verified temp file visible as blobs/sha256/<digest hex>.
  Status Finish(const Digest& digest);

  std::filesystem::path blobs_dir_;  // ROOT/blobs/sha256
  std::filesystem::path temp_;       // ROOT/ingest/<pid>-XXXXXX
  int fd_ = -1;                      // open on temp_, flock()ed; -1 when finished
  util::Sha256 hash_;                // of every byte passed to Write()
  std::string buffer_;               // written bytes not yet write()n to fd_
  Status error_;                     // first I/O error, sticky
  // O_DIRECT: bytes gather in an aligned buffer written out whole; the tail
  // (under one block) is written buffered at the end.
  Status WriteDirect(const char* data, size_t n);
  Status StopDirect();
  Status FlushDirect(bool final);
  struct FreeDeleter {
    void operator()(char* p) const;
  };
  bool direct_ = false;
  std::unique_ptr<char[], FreeDeleter> dbuf_;
  size_t dfill_ = 0;
};

// Reads a committed blob sequentially, verifying it: the Read() call that
// reaches the end checks the digest of everything read and returns
// kDigestMismatch if the file was corrupted. Verification only covers bytes
// read through Read() from the start; fd() gives unverified raw access.
class BlobReader {
 public:
  BlobReader(BlobReader&& other) noexcept;
  BlobReader& operator=(BlobReader&& other) noexcept;
  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;
  ~BlobReader();

  const Digest& digest() const { return digest_; }
  // The size of the file when it was opened.
  uint64_t size() const { return size_; }
  // Reads up to `capacity` bytes into `buf`; 0 at the end of a verified blob.
  Result<size_t> Read(void* buf, size_t capacity);
  // The open file descriptor, owned by this reader.
  int fd() const { return fd_; }

 private:
  friend class Store;
  BlobReader(Digest digest, std::filesystem::path path, int fd, uint64_t size);

  Digest digest_;
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  util::Sha256 hash_;
  bool verified_ = false;
};

// Returns the digests `blob` refers to (a manifest's config and layers, an
// index's manifests); empty for leaves. Called by Gc() only for blobs present
// in the store; it may Read() the blob. An error aborts the collection before
// anything is deleted.
using ReferencesFn = std::function<Result<std::vector<Digest>>(const Digest& blob)>;

struct GcOptions {
  // Ingest temp files no writer holds a lock on are removed once their last
  // modification is at least this old. The age only covers the instant
  // between a writer creating its file and locking it.
  std::chrono::seconds stale_ingest_age{60};
};

struct GcStats {
  uint64_t blobs_kept = 0;
  uint64_t blobs_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t ingests_removed = 0;  // stale temp files from dead writers
  std::vector<Digest> missing;   // reachable but not in the store (sorted)
};

class Store {
 public:
  // Opens (creating if needed) the store at `root`. kIOError naming the
  // directory if it cannot be created.
  static Result<Store> Open(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  // ROOT/blobs/<algorithm>/<hex>, whether or not the blob exists.
  std::filesystem::path BlobPath(const Digest& digest) const;

  // Starts an ingest. `direct`: the bytes bypass the page cache (O_DIRECT,
  // where the filesystem takes it; buffered otherwise), for large blobs
  // written once and not read back soon, such as a built layer: writing
  // them then costs no copy into (fresh) page-cache memory, and they reach
  // the disk as they are written rather than at the commit's fsync.
  Result<Writer> NewWriter(bool direct = false) const;

  // Stores `data`. With `expected`, verifies it first (kDigestMismatch).
  Result<Digest> Put(std::string_view data, const Digest* expected = nullptr) const;
  // Streams the file at `path` / the open descriptor `fd` (read from its
  // current offset to the end) into the store.
  Result<Digest> PutFile(const std::filesystem::path& path, const Digest* expected = nullptr) const;
  Result<Digest> PutFd(int fd, const Digest* expected = nullptr) const;

  bool Has(const Digest& digest) const;
  // kNotFound if absent.
  Result<uint64_t> Size(const Digest& digest) const;
  // The whole blob, verified: kDigestMismatch if the file no longer hashes
  // to `digest`, kNotFound if absent.
  Result<std::string> Read(const Digest& digest) const;
  Result<BlobReader> OpenReader(const Digest& digest) const;

  // kNotFound if absent.
  Status Delete(const Digest& digest) const;
  // Every committed blob, sorted. Files whose names are not digests are
  // ignored.
  Result<std::vector<Digest>> List() const;

  // Deletes every blob not reachable from `roots` through `refs`, and stale
  // ingest temp files. Roots absent from the store are reported in
  // GcStats::missing, not an error.
  Result<GcStats> Gc(const std::vector<Digest>& roots, const ReferencesFn& refs,
                     const GcOptions& options = {}) const;
  // Removes stale ingest temp files only; returns how many.
  Result<uint64_t> CleanIngest(std::chrono::seconds min_age) const;
  // Removes the ingest files no writer holds a lock on whose name `stale`
  // accepts (a killed process's, util/owner.h) or that are at least
  // `min_age` old.
  Result<util::ReapStats> ReapIngest(const util::StaleFn& stale,
                                     std::chrono::seconds min_age) const;

 private:
  explicit Store(std::filesystem::path root) : root_(std::move(root)) {}
  Status CheckSupported(const Digest& digest) const;

  std::filesystem::path root_;
};

}  // namespace kiln::content
