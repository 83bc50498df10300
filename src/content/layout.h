// OCI image layouts and image archives on disk: reading and writing.
//
// Three on-disk forms carry images in and out of kiln:
//   - an OCI image layout directory: `oci-layout` ({"imageLayoutVersion":
//     "1.0.0"}), `index.json`, `blobs/<algorithm>/<hex>`;
//   - an OCI image archive: a tar (plain or compressed with anything
//     libarchive reads: gzip, zstd, xz, ...) of such a layout;
//   - a Docker image archive (`docker save`): `manifest.json`, an array of
//     {"Config", "RepoTags", "Layers"} naming files in the tar (configs as
//     `<hex>.json`, layers as `<id>/layer.tar`), and optional `repositories`.
//     Docker 25 and later also put an OCI layout in the same tar, with the
//     legacy paths as symlinks into `blobs/`.
//
// ImageArchive reads all three; it works at the level of raw JSON and blobs
// and knows no media types (image/ parses index.json and manifests). Every
// blob read by digest is verified: kDigestMismatch if the bytes do not hash
// to the digest that names them.
//
// How archives are read: OpenArchive() reads the tar once from start to end,
// validating every entry name (absolute names and `..` components are
// rejected: kInvalidArgument naming the entry), hashing every regular file
// with sha256, and keeping in memory the metadata files and small entries
// (each at most kCacheEntryLimit, kCacheTotalLimit in all). Anything else is
// read again on demand by re-opening the archive and skipping to the entry:
// cheap for a plain tar (libarchive seeks), a second decompression for a
// compressed one. Nothing is extracted to disk and large layers are never
// held in memory. The archive must be a regular file (not a pipe) and must
// not change while it is open (a changed file is detected on re-read and
// reported).
//
// Writing produces an OCI layout directory or an OCI archive from index.json
// and a set of blobs pulled from a BlobSource. Output is atomic (written
// under a temp name beside the destination, then renamed) and verified
// before the rename: the temp archive or directory is read back as a reader
// would read it (libarchive for a tar), and must hold exactly the top files
// written and every blob with its size and digest (kIOError "... does not
// read back as it was written: ..." otherwise; nothing is left). Archives are
// deterministic: entries in bytewise name order (or leading blobs first,
// see WriteOptions::leading_blobs), mtime 0, uid/gid 0, no user
// or group names, mode 0644 for files and 0755 for directories, so the same
// content always gives byte-identical tars.
//
// Callers: source/ (importing images from an archive or layout), exporter/
// (type=oci and type=docker outputs), cli/.
//
// Thread-safety: an ImageArchive is immutable after opening; its const
// methods may be called from several threads at once (each re-read opens the
// file anew). The write functions may run concurrently for different
// destinations; a BlobSource is called from the writing thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "content/store.h"
#include "util/cancel.h"
#include "util/digest.h"
#include "util/status.h"

namespace kiln::content {

enum class Format {
  kOciLayout,      // a directory
  kOciArchive,     // a tar of an OCI layout
  kDockerArchive,  // a tar with manifest.json (maybe also an OCI layout)
};
std::string_view FormatName(Format format);  // "OCI layout", ...

// Receives a blob's bytes in order, in chunks of any size. An error stops the
// transfer and is returned by the function that called the sink.
using ByteSink = std::function<Status(std::string_view chunk)>;

// ReadBlob()/ReadFile() refuse entries larger than this (kResourceExhausted);
// use StreamBlob()/StreamFile() for layers.
inline constexpr uint64_t kMaxInMemoryBlob = 64ull << 20;
// Archive entries up to this size are kept in memory while indexing, ...
inline constexpr uint64_t kCacheEntryLimit = 4ull << 20;
// ... as long as the kept entries total at most this.
inline constexpr uint64_t kCacheTotalLimit = 64ull << 20;

class ImageArchive {
 public:
  // Opens the OCI layout directory `dir`. Errors name the path: kNotFound
  // for a missing directory, `oci-layout` or `index.json`; kUnimplemented for
  // an imageLayoutVersion other than 1.0.0; kInvalidArgument for bad JSON.
  static Result<ImageArchive> OpenLayoutDir(const std::filesystem::path& dir);
  // Opens a tar archive (maybe compressed) and detects its format: a
  // `manifest.json` at the top makes it a Docker archive, otherwise it must
  // be an OCI archive (same checks as OpenLayoutDir, naming the entry).
  static Result<ImageArchive> OpenArchive(const std::filesystem::path& file);

  ImageArchive(ImageArchive&&) noexcept;
  ImageArchive& operator=(ImageArchive&&) noexcept;
  ~ImageArchive();

  Format format() const;
  // The directory or archive file this was opened from.
  const std::filesystem::path& path() const;
  // index.json as stored; empty for a Docker archive without an OCI layout.
  const std::string& index_json() const;
  // manifest.json of a Docker archive as stored; empty otherwise.
  const std::string& docker_manifest_json() const;
  // `repositories` of a Docker archive as stored; empty if absent.
  const std::string& docker_repositories_json() const;

  // Whether a blob named `digest` is present: `blobs/<alg>/<hex>`, in a
  // Docker archive also `<hex>.json`, and in any archive a regular file whose
  // sha256 is `digest` (a Docker layer.tar by its diff ID).
  bool HasBlob(const Digest& digest) const;
  // The blob's bytes, verified. kNotFound if absent, kDigestMismatch if
  // corrupted, kUnimplemented for digests other than sha256,
  // kResourceExhausted above kMaxInMemoryBlob.
  Result<std::string> ReadBlob(const Digest& digest) const;
  // Streams the blob into `sink`; the digest is checked at the end, after the
  // sink has seen every byte (so a sink that keeps bytes must be able to
  // discard them, as a content Writer does).
  Status StreamBlob(const Digest& digest, const ByteSink& sink) const;
  // Copies the blob into `store`, verified; no-op if the store has it.
  Status CopyBlobToStore(const Digest& digest, const Store& store) const;
  // Size in bytes; kNotFound if absent.
  Result<uint64_t> BlobSize(const Digest& digest) const;

  // Files by their path inside the layout or archive (`manifest.json`'s
  // "Config" and "Layers" name them), relative, '/'-separated; symlinks
  // inside an archive are followed. Paths that are absolute or contain `..`
  // are refused (kInvalidArgument). These reads are not verified: a path
  // does not claim a digest.
  Result<std::string> ReadFile(std::string_view path) const;
  Status StreamFile(std::string_view path, const ByteSink& sink) const;
  Result<uint64_t> FileSize(std::string_view path) const;
  // sha256 of the file: computed while indexing for archives (no re-read),
  // by hashing the file for a directory.
  Result<Digest> FileDigest(std::string_view path) const;

 private:
  struct Impl;
  explicit ImageArchive(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One blob to write, as its descriptor states it.
struct BlobRef {
  Digest digest;
  uint64_t size = 0;
};

// Streams the bytes of `digest` into `sink`. The writer checks the count and
// the digest; the source need not.
using BlobSource = std::function<Status(const Digest& digest, const ByteSink& sink)>;

// Blobs from a content store (verified as they are read). Copies the Store
// value; nothing to keep alive.
BlobSource StoreBlobSource(const Store& store);
// The store's file of each blob it has, for WriteOptions::blob_file.
std::function<std::filesystem::path(const Digest&)> StoreBlobFile(const Store& store);
// Blobs from an opened archive or layout, which must outlive the source.
BlobSource ArchiveBlobSource(const ImageArchive& archive);
// Blobs held in memory, keyed by digest; shares ownership of the map.
BlobSource MemoryBlobSource(std::shared_ptr<const std::map<Digest, std::string>> blobs);

// A file written at the top of the layout besides `oci-layout` and
// `index.json`, e.g. Docker's `manifest.json` and `repositories`, which make
// an OCI archive loadable by `docker load`.
struct ExtraFile {
  std::string name;  // one path component; not oci-layout, index.json or blobs
  std::string data;
};

struct WriteOptions {
  std::vector<ExtraFile> extra_files;
  // The source verifies every blob's digest itself (StoreBlobSource: the
  // store's reader fails a blob that does not hash to its name), so the
  // writer checks sizes only instead of hashing everything a second time.
  bool source_verifies = false;
  // Where a blob's bytes already are in a local file (StoreBlobFile: the
  // content store's): the body is copied file to file with copy_file_range
  // and the file hashed on another thread meanwhile (a mismatch fails the
  // write), instead of being streamed from the source. An empty path: the
  // source is used.
  std::function<std::filesystem::path(const Digest&)> blob_file;
  // Archives only: these blobs come first, right after the `blobs/`
  // directories and in this order (each once; all must be among the blobs
  // to write); the others follow in name order, then the top files. An
  // image output puts its layers here, base first, so that an archive
  // written while its layers were made (ArchiveWriter) and one written
  // afterwards are the same bytes.
  std::vector<Digest> leading_blobs;
  // Checked last, before the output is moved into place: a build cancelled
  // while the output was written (Ctrl-C) leaves nothing at the
  // destination and fails with kCancelled, never a success after the
  // signal. May be null.
  const util::Canceller* cancel = nullptr;
};

// Writes a complete OCI layout directory at `dir`: oci-layout, `index_json`
// as given (it must be a JSON object; every digest in its "manifests" must be
// among `blobs`), and each blob (duplicates written once). Blobs must be
// sha256 (kUnimplemented otherwise). A blob whose bytes from `source` do not
// match its BlobRef fails the write with kDigestMismatch and leaves `dir`
// untouched. An existing `dir` is replaced only if it is empty or an OCI
// layout (it contains `oci-layout`); anything else is kAlreadyExists.
Status WriteOciLayout(const std::filesystem::path& dir, std::string_view index_json,
                      const std::vector<BlobRef>& blobs, const BlobSource& source,
                      const WriteOptions& options = {});

// Writes the same content as an uncompressed tar at `file` (replacing it),
// via a temp file in the same directory, fsync and rename.
Status WriteOciArchive(const std::filesystem::path& file, std::string_view index_json,
                       const std::vector<BlobRef>& blobs, const BlobSource& source,
                       const WriteOptions& options = {});
// Streams the tar to `fd` (a pipe or stdout, say); `what` names it in
// errors. On error the bytes already written stay written.
Status WriteOciArchiveToFd(int fd, std::string_view what, std::string_view index_json,
                           const std::vector<BlobRef>& blobs, const BlobSource& source,
                           const WriteOptions& options = {});

// An OCI archive written entry by entry, so that blobs can go in while they
// are still being made: a blob streamed in pieces gets its tar header (name
// and size) when it ends, written back over a placeholder. Entries come in
// WriteOptions::leading_blobs order when the blobs added before Commit are
// those, in that order; Commit writes the rest exactly as WriteOciArchive
// would, so the archive is byte-identical to WriteOciArchive's with the
// same leading_blobs. The file appears at its destination only when
// Commit succeeds; an abandoned writer removes its temp file.
//
// Thread-safety: one thread at a time.
class ArchiveWriter {
 public:
  // A temp file beside `file` (in its directory, which must exist).
  static Result<std::unique_ptr<ArchiveWriter>> Create(const std::filesystem::path& file);
  ~ArchiveWriter();
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // True when blob `digest` is in the archive already.
  bool Has(const Digest& digest) const;
  // The next entry: `blob`, its body copied from the local file `path` and
  // verified against its digest (kDigestMismatch otherwise). A blob already
  // in the archive is not written again.
  Status AddBlobFile(const BlobRef& blob, const std::filesystem::path& path);
  // The next entry, its bytes given by WriteBlob calls and its name by
  // EndBlob: `blob` (the caller hashed the bytes; their count must be
  // blob.size). A blob already in the archive is dropped (the file is cut
  // back to where the entry began). AbortBlob drops it too.
  Status BeginBlob();
  Status WriteBlob(std::string_view data);
  Status EndBlob(const BlobRef& blob);
  void AbortBlob();
  // Writes the blobs not in yet (from `source`, or the local files of
  // options.blob_file), the top files, the end of the tar; fsyncs and moves
  // the file into place. Every blob already added must be among `blobs`.
  Status Commit(std::string_view index_json, const std::vector<BlobRef>& blobs,
                const BlobSource& source, const WriteOptions& options = {});
  // Removes the temp file (the destructor does too when not committed).
  void Abandon();

  struct State;

 private:
  explicit ArchiveWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace kiln::content
