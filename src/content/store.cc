#include "content/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>
#include <system_error>
#include <utility>

#include "content/fs_internal.h"

namespace kiln::content {
namespace {

using internal::ErrnoStatus;
using internal::UniqueFd;
namespace fs = std::filesystem;

// Writes smaller than this are gathered before reaching write(2).
constexpr size_t kWriteBuffer = 256 << 10;
// O_DIRECT writes: the buffer (and every write but the last) is a multiple
// of this, aligned to it.
constexpr size_t kDirectAlign = 4096;
constexpr size_t kDirectBuffer = 1 << 20;
// Read granularity for PutFd and Read.
constexpr size_t kReadChunk = 1 << 20;

std::string SizeText(uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

// The message of a blob whose bytes are not the ones its descriptor states:
// the digest and size expected (the size only when the caller knew one) and
// the digest and size received. Guards issue 15: a caller that knew no size
// passed the received one, so the message stated it as the expected size.
Status Mismatch(const Digest& expected, uint64_t expected_size, const Digest& got,
                uint64_t got_size) {
  return Status::DigestMismatch(
      "blob content does not match its descriptor: expected " + expected.str() +
      (expected_size == Writer::kUnknownSize ? "" : " (" + SizeText(expected_size) + ")") +
      ", received " + got.str() + " (" + SizeText(got_size) + "); nothing was stored");
}

Status CorruptBlob(const Digest& want, const Digest& got, const fs::path& path) {
  return Status::DigestMismatch(
      "blob " + want.str() + " in the content store is corrupted: " + path.string() +
      " hashes to " + got.str() + "; delete the file and fetch the blob again");
}

}  // namespace

// ---------------------------------------------------------------------------
// Writer

Writer::Writer(fs::path blobs_dir, fs::path temp, int fd)
    : blobs_dir_(std::move(blobs_dir)), temp_(std::move(temp)), fd_(fd) {}

Writer::Writer(Writer&& o) noexcept
    : blobs_dir_(std::move(o.blobs_dir_)),
      temp_(std::move(o.temp_)),
      fd_(std::exchange(o.fd_, -1)),
      hash_(std::move(o.hash_)),
      buffer_(std::move(o.buffer_)),
      error_(std::move(o.error_)),
      direct_(o.direct_),
      dbuf_(std::move(o.dbuf_)),
      dfill_(std::exchange(o.dfill_, 0)) {}

Writer& Writer::operator=(Writer&& o) noexcept {
  if (this != &o) {
    Abort();
    blobs_dir_ = std::move(o.blobs_dir_);
    temp_ = std::move(o.temp_);
    fd_ = std::exchange(o.fd_, -1);
    hash_ = std::move(o.hash_);
    buffer_ = std::move(o.buffer_);
    error_ = std::move(o.error_);
    direct_ = o.direct_;
    dbuf_ = std::move(o.dbuf_);
    dfill_ = std::exchange(o.dfill_, 0);
  }
  return *this;
}

void Writer::FreeDeleter::operator()(char* p) const { std::free(p); }

// Clears O_DIRECT: the rest of the blob is written buffered.
Status Writer::StopDirect() {
  direct_ = false;
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
    return ErrnoStatus("cannot write", temp_, errno);
  }
  return Status::Ok();
}

// Writes `n` bytes at the current offset with O_DIRECT; where the kernel
// refuses (EINVAL: a filesystem or a length it cannot do directly) the
// descriptor goes back to buffered writes for the rest of the blob.
Status Writer::WriteDirect(const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && direct_) {
      KILN_RETURN_IF_ERROR(StopDirect());
      continue;
    }
    if (w < 0) return ErrnoStatus("cannot write", temp_, errno);
    if (w == 0) return ErrnoStatus("cannot write", temp_, EIO);
    data += w;
    n -= static_cast<size_t>(w);
    if (direct_ && (w % kDirectAlign) != 0) {
      // A short direct write leaves the offset unaligned: finish buffered.
      KILN_RETURN_IF_ERROR(StopDirect());
    }
  }
  return Status::Ok();
}

// Writes the whole blocks of the direct buffer; `final`: the tail too,
// buffered (it is under one block).
Status Writer::FlushDirect(bool final) {
  const size_t whole = direct_ ? dfill_ - dfill_ % kDirectAlign : dfill_;
  Status st = WriteDirect(dbuf_.get(), whole);
  if (st.ok() && whole < dfill_) {
    if (!final) {
      std::memmove(dbuf_.get(), dbuf_.get() + whole, dfill_ - whole);
      dfill_ -= whole;
      return Status::Ok();
    }
    if (direct_) st = StopDirect();
    if (st.ok()) st = WriteDirect(dbuf_.get() + whole, dfill_ - whole);
  }
  dfill_ = 0;
  if (!st.ok()) error_ = st;
  return st;
}

Writer::~Writer() { Abort(); }

void Writer::Abort() {
  if (fd_ < 0) return;
  // Unlink before close: the flock is held until the name is gone, so
  // CleanIngest() in another process never races with us on this name.
  ::unlink(temp_.c_str());
  ::close(fd_);
  fd_ = -1;
  buffer_.clear();
  buffer_.shrink_to_fit();
}

Status Writer::Flush() {
  if (dbuf_) return FlushDirect(true);
  if (buffer_.empty()) return Status::Ok();
  Status st = internal::WriteAll(fd_, buffer_, temp_);
  const uint64_t n = buffer_.size();
  buffer_.clear();
  StartWriteback(n);
  if (!st.ok()) error_ = st;
  return st;
}

// Every 32 MiB, starts writeback of what is written so far (asynchronous),
// so that the fsync of Commit() finds little left to write.
void Writer::StartWriteback(uint64_t just_written) {
  const uint64_t written = hash_.size() - buffer_.size();
  const uint64_t before = written - just_written;
  if ((before >> 25) != (written >> 25)) (void)::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
}

Status Writer::Write(std::string_view data) {
  if (fd_ < 0) return Status::FailedPrecondition("Writer::Write after Commit or Abort");
  if (!error_.ok()) return error_;
  hash_.Update(data);
  if (dbuf_) {
    while (!data.empty()) {
      const size_t take = std::min(data.size(), kDirectBuffer - dfill_);
      std::memcpy(dbuf_.get() + dfill_, data.data(), take);
      dfill_ += take;
      data.remove_prefix(take);
      if (dfill_ == kDirectBuffer) KILN_RETURN_IF_ERROR(FlushDirect(false));
    }
    return Status::Ok();
  }
  if (buffer_.size() + data.size() <= kWriteBuffer) {
    if (buffer_.capacity() < kWriteBuffer) buffer_.reserve(kWriteBuffer);
    buffer_.append(data);
    return Status::Ok();
  }
  KILN_RETURN_IF_ERROR(Flush());
  if (data.size() >= kWriteBuffer) {
    Status st = internal::WriteAll(fd_, data, temp_);
    if (!st.ok()) error_ = st;
    StartWriteback(data.size());
    return st;
  }
  buffer_.append(data);
  return Status::Ok();
}

Status Writer::Commit(const Digest& expected, uint64_t expected_size) {
  if (fd_ < 0) return Status::FailedPrecondition("Writer::Commit after Commit or Abort");
  if (expected.empty()) {
    Abort();
    return Status::InvalidArgument("Writer::Commit: empty expected digest");
  }
  if (expected.algorithm() != "sha256") {
    Abort();
    return Status::Unimplemented("cannot store blob " + expected.str() +
                                 ": the content store holds sha256 blobs only");
  }
  KILN_RETURN_IF_ERROR(FlushOrAbort());
  const uint64_t got_size = hash_.size();
  const Digest got = hash_.Finish();
  if (got != expected || (expected_size != kUnknownSize && got_size != expected_size)) {
    Abort();
    return Mismatch(expected, expected_size, got, got_size);
  }
  return Finish(got);
}

Result<Digest> Writer::Commit() {
  if (fd_ < 0) return Status::FailedPrecondition("Writer::Commit after Commit or Abort");
  KILN_RETURN_IF_ERROR(FlushOrAbort());
  const Digest got = hash_.Finish();
  KILN_RETURN_IF_ERROR(Finish(got));
  return got;
}

Status Writer::FlushOrAbort() {
  Status st = error_.ok() ? Flush() : error_;
  if (!st.ok()) Abort();
  return st;
}

Status Writer::Finish(const Digest& digest) {
  const fs::path target = blobs_dir_ / std::string(digest.hex());
  const uint64_t size = hash_.size();
  struct stat st;
  if (::stat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) == size) {
    // Already committed (by an earlier ingest or a concurrent one). Its bytes
    // were verified when it was committed; Read() verifies again.
    Abort();
    return Status::Ok();
  }
  Status result;
  if (::fchmod(fd_, 0444) != 0) {
    result = ErrnoStatus("cannot chmod", temp_, errno);
  } else if (::fsync(fd_) != 0) {
    result = ErrnoStatus("cannot fsync", temp_, errno);
  } else if (::rename(temp_.c_str(), target.c_str()) != 0) {
    const int err = errno;
    result = Status::IOError("cannot move " + temp_.string() + " to " + target.string() + ": " +
                             std::strerror(err));
  }
  if (!result.ok()) {
    Abort();
    return result;
  }
  ::close(fd_);  // releases the flock; the temp name no longer exists
  fd_ = -1;
  return internal::FsyncDir(blobs_dir_);
}

// ---------------------------------------------------------------------------
// BlobReader

BlobReader::BlobReader(Digest digest, fs::path path, int fd, uint64_t size)
    : digest_(std::move(digest)), path_(std::move(path)), fd_(fd), size_(size) {}

BlobReader::BlobReader(BlobReader&& o) noexcept
    : digest_(std::move(o.digest_)),
      path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      size_(o.size_),
      hash_(std::move(o.hash_)),
      verified_(o.verified_) {}

BlobReader& BlobReader::operator=(BlobReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    digest_ = std::move(o.digest_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    hash_ = std::move(o.hash_);
    verified_ = o.verified_;
  }
  return *this;
}

BlobReader::~BlobReader() {
  if (fd_ >= 0) ::close(fd_);
}

Result<size_t> BlobReader::Read(void* buf, size_t capacity) {
  if (fd_ < 0) return Status::FailedPrecondition("BlobReader::Read on a moved-from reader");
  if (verified_) return 0;
  KILN_ASSIGN_OR_RETURN(size_t n, internal::ReadSome(fd_, buf, capacity, path_));
  if (n > 0) {
    hash_.Update(buf, n);
    return n;
  }
  const Digest got = hash_.Finish();
  if (got != digest_) return CorruptBlob(digest_, got, path_);
  verified_ = true;
  return 0;
}

// ---------------------------------------------------------------------------
// Store

Result<Store> Store::Open(fs::path root) {
  if (root.empty()) return Status::InvalidArgument("content store root is empty");
  KILN_RETURN_IF_ERROR(internal::MakeDirs(root / "blobs" / "sha256"));
  KILN_RETURN_IF_ERROR(internal::MakeDirs(root / "ingest"));
  return Store(std::move(root));
}

fs::path Store::BlobPath(const Digest& digest) const {
  return root_ / "blobs" / std::string(digest.algorithm()) / std::string(digest.hex());
}

Status Store::CheckSupported(const Digest& digest) const {
  if (digest.empty()) return Status::InvalidArgument("empty digest");
  if (digest.algorithm() != "sha256") {
    return Status::Unimplemented("blob " + digest.str() +
                                 ": the content store holds sha256 blobs only");
  }
  return Status::Ok();
}

Result<Writer> Store::NewWriter(bool direct) const {
  const fs::path ingest = root_ / "ingest";
  std::string name = (ingest / (util::OwnerTag() + "-XXXXXX")).string();
  UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot create an ingest file in", ingest, errno);
  if (::flock(fd.get(), LOCK_EX) != 0) {
    const int err = errno;
    ::unlink(name.c_str());
    return ErrnoStatus("cannot lock", name, err);
  }
  Writer w(root_ / "blobs" / "sha256", fs::path(name), fd.release());
  if (direct) {
    void* mem = nullptr;
    const int flags = ::fcntl(w.fd_, F_GETFL);
    if (flags >= 0 && ::fcntl(w.fd_, F_SETFL, flags | O_DIRECT) == 0 &&
        ::posix_memalign(&mem, kDirectAlign, kDirectBuffer) == 0) {
      w.direct_ = true;
      w.dbuf_.reset(static_cast<char*>(mem));
    } else if (flags >= 0) {
      (void)::fcntl(w.fd_, F_SETFL, flags);  // the filesystem has no O_DIRECT: buffered
    }
  }
  return w;
}

Result<Digest> Store::Put(std::string_view data, const Digest* expected) const {
  if (expected != nullptr) {
    KILN_RETURN_IF_ERROR(CheckSupported(*expected));
    if (Has(*expected)) {  // avoid the write: hashing alone proves the bytes
      const Digest got = util::Sha256Of(data);
      if (got != *expected) return Mismatch(*expected, Writer::kUnknownSize, got, data.size());
      return got;
    }
  }
  KILN_ASSIGN_OR_RETURN(Writer w, NewWriter());
  KILN_RETURN_IF_ERROR(w.Write(data));
  if (expected != nullptr) {
    KILN_RETURN_IF_ERROR(w.Commit(*expected, Writer::kUnknownSize));
    return *expected;
  }
  return w.Commit();
}

Result<Digest> Store::PutFd(int fd, const Digest* expected) const {
  if (expected != nullptr) KILN_RETURN_IF_ERROR(CheckSupported(*expected));
  KILN_ASSIGN_OR_RETURN(Writer w, NewWriter());
  std::string buf(kReadChunk, '\0');
  const fs::path what = "/proc/self/fd/" + std::to_string(fd);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(size_t n, internal::ReadSome(fd, buf.data(), buf.size(), what));
    if (n == 0) break;
    KILN_RETURN_IF_ERROR(w.Write(std::string_view(buf.data(), n)));
  }
  if (expected != nullptr) {
    KILN_RETURN_IF_ERROR(w.Commit(*expected, Writer::kUnknownSize));
    return *expected;
  }
  return w.Commit();
}

Result<Digest> Store::PutFile(const fs::path& path, const Digest* expected) const {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot open", path, errno);
  Result<Digest> r = PutFd(fd.get(), expected);
  if (!r.ok()) return r.status().Annotate("storing " + path.string());
  return r;
}

bool Store::Has(const Digest& digest) const {
  if (!CheckSupported(digest).ok()) return false;
  struct stat st;
  return ::stat(BlobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<uint64_t> Store::Size(const Digest& digest) const {
  KILN_RETURN_IF_ERROR(CheckSupported(digest));
  const fs::path path = BlobPath(digest);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return Status::NotFound("blob " + digest.str() + " is not in the content store at " +
                              root_.string());
    }
    return ErrnoStatus("cannot stat", path, errno);
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<BlobReader> Store::OpenReader(const Digest& digest) const {
  KILN_RETURN_IF_ERROR(CheckSupported(digest));
  const fs::path path = BlobPath(digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return Status::NotFound("blob " + digest.str() + " is not in the content store at " +
                              root_.string());
    }
    return ErrnoStatus("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("cannot stat", path, errno);
  return BlobReader(digest, path, fd.release(), static_cast<uint64_t>(st.st_size));
}

Result<std::string> Store::Read(const Digest& digest) const {
  KILN_ASSIGN_OR_RETURN(BlobReader r, OpenReader(digest));
  std::string out;
  out.resize(r.size());
  size_t len = 0;
  for (;;) {
    if (len == out.size()) out.resize(std::max<size_t>(out.size() * 2, 4096));
    KILN_ASSIGN_OR_RETURN(size_t n, r.Read(out.data() + len, out.size() - len));
    if (n == 0) break;
    len += n;
  }
  out.resize(len);
  return out;
}

Status Store::Delete(const Digest& digest) const {
  KILN_RETURN_IF_ERROR(CheckSupported(digest));
  const fs::path path = BlobPath(digest);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) {
      return Status::NotFound("blob " + digest.str() + " is not in the content store at " +
                              root_.string());
    }
    return ErrnoStatus("cannot delete", path, errno);
  }
  return Status::Ok();
}

Result<std::vector<Digest>> Store::List() const {
  const fs::path dir = root_ / "blobs" / "sha256";
  std::vector<Digest> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    Result<Digest> d = Digest::Parse("sha256:" + it->path().filename().string());
    if (d.ok()) out.push_back(std::move(d).value());
  }
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<GcStats> Store::Gc(const std::vector<Digest>& roots, const ReferencesFn& refs,
                          const GcOptions& options) const {
  GcStats stats;
  // Mark: everything reachable from the roots. Nothing is deleted until the
  // whole graph is walked, so an error from `refs` leaves the store intact.
  std::set<Digest> reachable;
  std::set<Digest> missing;
  std::deque<Digest> queue(roots.begin(), roots.end());
  while (!queue.empty()) {
    Digest d = std::move(queue.front());
    queue.pop_front();
    if (d.empty() || reachable.count(d) != 0 || missing.count(d) != 0) continue;
    if (!Has(d)) {
      missing.insert(d);
      continue;
    }
    reachable.insert(d);
    Result<std::vector<Digest>> children = refs(d);
    if (!children.ok()) {
      return children.status().Annotate("garbage collection: finding the blobs " + d.str() +
                                        " refers to (nothing was deleted)");
    }
    for (Digest& c : *children) queue.push_back(std::move(c));
  }
  stats.missing.assign(missing.begin(), missing.end());

  // Sweep.
  KILN_ASSIGN_OR_RETURN(std::vector<Digest> all, List());
  for (const Digest& d : all) {
    if (reachable.count(d) != 0) {
      ++stats.blobs_kept;
      continue;
    }
    Result<uint64_t> size = Size(d);
    Status st = Delete(d);
    if (st.code() == StatusCode::kNotFound) continue;  // deleted concurrently
    KILN_RETURN_IF_ERROR(st);
    ++stats.blobs_removed;
    if (size.ok()) stats.bytes_removed += *size;
  }
  KILN_ASSIGN_OR_RETURN(stats.ingests_removed, CleanIngest(options.stale_ingest_age));
  return stats;
}

Result<util::ReapStats> Store::ReapIngest(const util::StaleFn& stale,
                                          std::chrono::seconds min_age) const {
  const fs::path dir = root_ / "ingest";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  const auto now = std::chrono::system_clock::now();
  util::ReapStats stats;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path path = it->path();
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const auto mtime = std::chrono::system_clock::time_point(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
    if (!stale(path.filename().string()) && now - mtime < min_age) continue;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) continue;                                // committed or removed meanwhile
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a live writer holds it
    // Unlink only the file we locked, not one that took its name since.
    struct stat locked;
    if (::fstat(fd.get(), &locked) != 0 || ::lstat(path.c_str(), &st) != 0 ||
        locked.st_ino != st.st_ino || locked.st_dev != st.st_dev) {
      continue;
    }
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus("cannot remove stale ingest file", path, errno);
    }
    ++stats.items;
    stats.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  return stats;
}

Result<uint64_t> Store::CleanIngest(std::chrono::seconds min_age) const {
  // Age alone decides: no owner is taken for stale.
  KILN_ASSIGN_OR_RETURN(util::ReapStats stats,
                        ReapIngest([](std::string_view) { return false; }, min_age));
  return stats.items;
}

}  // namespace kiln::content
