#include "content/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "content/fs_internal.h"
#include "util/json.h"
#include "util/metrics.h"

namespace kiln::content {
namespace {

namespace fs = std::filesystem;
using internal::ErrnoStatus;
using internal::UniqueFd;

constexpr std::string_view kLayoutVersion = "1.0.0";
constexpr std::string_view kOciLayoutFile = "oci-layout";
constexpr std::string_view kIndexFile = "index.json";
constexpr std::string_view kDockerManifestFile = "manifest.json";
constexpr std::string_view kDockerRepositoriesFile = "repositories";
constexpr size_t kChunk = 256 << 10;
constexpr int kMaxLinkHops = 16;

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Splits `path` on '/', dropping empty and "." components. Refuses absolute
// paths and ".." components: inside a layout every name is relative to its
// top and may not climb out of it. Returns "" for the top itself.
Result<std::string> NormalizeName(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("empty path");
  if (path.front() == '/') {
    return Status::InvalidArgument("absolute path " + Quote(path) +
                                   " (names must be relative to the top of the layout)");
  }
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view part = path.substr(i, j - i);
    if (part == "..") {
      return Status::InvalidArgument("path " + Quote(path) +
                                     " contains \"..\" (path traversal is not allowed)");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out.push_back('/');
      out.append(part);
    }
    i = j + 1;
  }
  return out;
}

// Resolves the symlink target `target` of the entry `name` to a normalized
// name relative to the top. ".." may be used as long as it stays inside.
Result<std::string> ResolveLinkTarget(std::string_view name, std::string_view target) {
  if (target.empty() || target.front() == '/') {
    return Status::InvalidArgument("symlink " + Quote(name) + " -> " + Quote(target) +
                                   " points outside the archive");
  }
  std::vector<std::string_view> parts;
  const size_t slash = name.rfind('/');
  std::string combined =
      (slash == std::string_view::npos ? std::string() : std::string(name.substr(0, slash + 1))) +
      std::string(target);
  std::string_view rest = combined;
  while (!rest.empty()) {
    const size_t j = std::min(rest.find('/'), rest.size());
    const std::string_view part = rest.substr(0, j);
    rest.remove_prefix(std::min(j + 1, rest.size()));
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) {
        return Status::InvalidArgument("symlink " + Quote(name) + " -> " + Quote(target) +
                                       " points outside the archive");
      }
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view p : parts) {
    if (!out.empty()) out.push_back('/');
    out.append(p);
  }
  return out;
}

std::string BlobName(const Digest& d) {
  return "blobs/" + std::string(d.algorithm()) + "/" + std::string(d.hex());
}

Status CheckSha256(const Digest& d) {
  if (d.empty()) return Status::InvalidArgument("empty digest");
  if (d.algorithm() != "sha256") {
    return Status::Unimplemented("blob " + d.str() + ": kiln verifies sha256 blobs only");
  }
  return Status::Ok();
}

Status TooBig(std::string_view what, uint64_t size) {
  return Status::ResourceExhausted(
      std::string(what) + " is " + std::to_string(size) + " bytes, more than the " +
      std::to_string(kMaxInMemoryBlob >> 20) + " MiB read into memory; stream it instead");
}

// Checks the content of an `oci-layout` file; `where` names it.
Status CheckOciLayout(std::string_view text, const std::string& where) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json j, util::ParseJson(text, where));
  if (!j.is_object() || !j.contains("imageLayoutVersion") || !j["imageLayoutVersion"].is_string()) {
    return Status::InvalidArgument(where +
                                   ": expected a JSON object with a string "
                                   "\"imageLayoutVersion\", found " +
                                   std::string(text.substr(0, 200)));
  }
  const std::string version = j["imageLayoutVersion"].get<std::string>();
  if (version != kLayoutVersion) {
    return Status::Unimplemented(where + ": imageLayoutVersion is " + Quote(version) +
                                 "; kiln reads OCI image layout version " +
                                 std::string(kLayoutVersion));
  }
  return Status::Ok();
}

// Checks that `text` is a JSON object whose "manifests", if present, is an
// array; the image module interprets the rest.
Status CheckIndexJson(std::string_view text, const std::string& where) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json j, util::ParseJson(text, where));
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected a JSON object");
  if (j.contains("manifests") && !j["manifests"].is_array()) {
    return Status::InvalidArgument(where + ": \"manifests\" must be an array");
  }
  return Status::Ok();
}

std::string NotLayoutHint() {
  return "an OCI image layout has an oci-layout file (" +
         std::string("{\"imageLayoutVersion\":\"") + std::string(kLayoutVersion) +
         "\"}), index.json and blobs/";
}

// --- libarchive reading ----------------------------------------------------

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchiveReadPtr = std::unique_ptr<archive, ArchiveReadDeleter>;

Status ArchiveError(archive* a, const fs::path& file, std::string_view doing) {
  const int err = archive_errno(a);
  const char* text = archive_error_string(a);
  std::string msg = "cannot read archive " + file.string() + (doing.empty() ? "" : " (") +
                    std::string(doing) + (doing.empty() ? "" : ")") + ": " +
                    (text != nullptr ? text : "unknown libarchive error");
  if (err == ENOENT) return Status::NotFound(std::move(msg));
  // libarchive reports format errors as EILSEQ and misuse as EINVAL (its
  // private ARCHIVE_ERRNO_* values on POSIX); real errnos are I/O failures.
  if (err > 0 && err != EILSEQ && err != EINVAL) {
    return Status::IOError(std::move(msg));
  }
  return Status::InvalidArgument(std::move(msg));
}

Result<ArchiveReadPtr> OpenTar(const fs::path& file) {
  ArchiveReadPtr a(archive_read_new());
  if (!a) return Status::Internal("archive_read_new failed");
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), file.c_str(), 64 << 10) != ARCHIVE_OK) {
    return ArchiveError(a.get(), file, "");
  }
  return a;
}

// Reads the current entry's data into `sink`; returns the byte count.
Result<uint64_t> ReadEntryData(archive* a, const fs::path& file, std::string_view name,
                               const ByteSink& sink) {
  std::string buf(kChunk, '\0');
  uint64_t total = 0;
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) return ArchiveError(a, file, "entry " + Quote(name));
    total += static_cast<uint64_t>(n);
    KILN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
  return total;
}

// --- directory reading -----------------------------------------------------

// Opens `rel` (normalized) under `dirfd` without letting symlinks or ".."
// leave the directory (openat2 RESOLVE_BENEATH; plain openat on kernels
// older than 5.6 or behind a seccomp filter that does not know it).
int OpenBeneath(int dirfd, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
  // ENOSYS: kernel without openat2; EPERM: a seccomp filter that predates it.
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return static_cast<int>(fd);
  return ::openat(dirfd, rel.c_str(), O_RDONLY | O_CLOEXEC);
}

// The error for a failed OpenBeneath().
Status OpenBeneathError(const fs::path& path, int err) {
  if (err == EXDEV) {
    return Status::InvalidArgument(path.string() +
                                   ": a symlink leads outside the layout directory; kiln does "
                                   "not follow it");
  }
  return ErrnoStatus("cannot open", path, err);
}

// Streams an open file into `sink`; returns the byte count.
Result<uint64_t> StreamFd(int fd, const fs::path& path, const ByteSink& sink) {
  std::string buf(kChunk, '\0');
  uint64_t total = 0;
  for (;;) {
    KILN_ASSIGN_OR_RETURN(size_t n, internal::ReadSome(fd, buf.data(), buf.size(), path));
    if (n == 0) break;
    total += n;
    KILN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
  }
  return total;
}

}  // namespace

std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kOciLayout:
      return "OCI layout";
    case Format::kOciArchive:
      return "OCI archive";
    case Format::kDockerArchive:
      return "Docker archive";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// ImageArchive

struct ImageArchive::Impl {
  // One name in an archive. Regular files are hashed while indexing; links
  // (symlinks and hard links) hold the normalized name they point to.
  struct Entry {
    bool is_link = false;
    std::string link;      // is_link: target name, relative to the top
    uint64_t size = 0;     // regular file: bytes of data
    Digest sha256;         // regular file: digest of its data
    uint64_t ordinal = 0;  // position among the archive's headers (from 0)
    bool cached = false;   // `data` holds the file's bytes
    std::string data;
  };
  // A file found by name, links followed.
  struct Found {
    std::string name;  // of the regular file
    const Entry* entry = nullptr;
  };

  Format format = Format::kOciLayout;
  fs::path path;
  UniqueFd dirfd;  // kOciLayout: the layout directory
  std::string index_json;
  std::string docker_manifest_json;
  std::string docker_repositories_json;
  std::map<std::string, Entry> entries;      // archives: by normalized name
  std::map<Digest, std::string> by_content;  // archives: sha256 -> first file with it

  bool is_dir() const { return format == Format::kOciLayout; }
  std::string Where(std::string_view name) const {
    return is_dir() ? (path / std::string(name)).string()
                    : "archive " + path.string() + ", entry " + Quote(name);
  }

  Result<Found> FindEntry(std::string_view name) const {
    std::string current(name);
    for (int hop = 0; hop <= kMaxLinkHops; ++hop) {
      auto it = entries.find(current);
      if (it == entries.end()) {
        return Status::NotFound(path.string() + " has no file " + Quote(current) +
                                (current == name ? "" : " (reached through " + Quote(name) + ")"));
      }
      if (!it->second.is_link) return Found{current, &it->second};
      current = it->second.link;
    }
    return Status::InvalidArgument(Where(name) + ": more than " + std::to_string(kMaxLinkHops) +
                                   " links to follow");
  }

  // Streams the data of an archive entry, from memory or by re-reading.
  Status StreamEntry(const Found& f, const ByteSink& sink) const {
    if (f.entry->cached) return sink(f.entry->data);
    KILN_ASSIGN_OR_RETURN(ArchiveReadPtr a, OpenTar(path));
    archive_entry* e = nullptr;
    for (uint64_t ordinal = 0;; ++ordinal) {
      const int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return ArchiveError(a.get(), path, "looking for " + Quote(f.name));
      }
      if (ordinal != f.entry->ordinal) continue;
      const char* raw = archive_entry_pathname(e);
      Result<std::string> name = NormalizeName(raw != nullptr ? raw : "");
      if (!name.ok() || *name != f.name) break;
      KILN_ASSIGN_OR_RETURN(uint64_t n, ReadEntryData(a.get(), path, f.name, sink));
      if (n != f.entry->size) break;
      return Status::Ok();
    }
    return Status::FailedPrecondition("archive " + path.string() + " changed while kiln read it: " +
                                      Quote(f.name) + " is no longer where it was; open it again");
  }

  // Where the blob `d` lives (a name relative to the top), or kNotFound.
  Result<std::string> LocateBlob(const Digest& d) const {
    const std::string blob = BlobName(d);
    if (is_dir()) {
      struct stat st;
      if (::fstatat(dirfd.get(), blob.c_str(), &st, 0) == 0) return blob;
    } else {
      if (entries.count(blob) != 0) return blob;
      if (format == Format::kDockerArchive && d.algorithm() == "sha256") {
        std::string json = std::string(d.hex()) + ".json";
        if (entries.count(json) != 0) return json;
      }
      auto it = by_content.find(d);
      if (it != by_content.end()) return it->second;
    }
    return Status::NotFound("blob " + d.str() + " is not in " + std::string(FormatName(format)) +
                            " " + path.string());
  }

  // Streams the file `name` (normalized); if `verify` is set, checks that the
  // bytes hash to it. Returns the byte count.
  Result<uint64_t> Stream(const std::string& name, const ByteSink& sink,
                          const Digest* verify) const {
    util::Sha256 hash;
    uint64_t count = 0;
    ByteSink hashing = [&](std::string_view chunk) -> Status {
      hash.Update(chunk);
      count += chunk.size();
      return sink(chunk);
    };
    if (is_dir()) {
      UniqueFd fd(OpenBeneath(dirfd.get(), name));
      if (!fd.valid()) return OpenBeneathError(path / name, errno);
      KILN_RETURN_IF_ERROR(StreamFd(fd.get(), path / name, hashing).status());
    } else {
      KILN_ASSIGN_OR_RETURN(Found f, FindEntry(name));
      // The digest computed while indexing catches a corrupted blob before
      // any byte reaches the sink.
      if (verify != nullptr && f.entry->sha256 != *verify) {
        return Corrupt(*verify, f.entry->sha256, name);
      }
      KILN_RETURN_IF_ERROR(StreamEntry(f, hashing));
    }
    if (verify != nullptr) {
      const Digest got = hash.Finish();
      if (got != *verify) return Corrupt(*verify, got, name);
    }
    return count;
  }

  Result<std::string> ReadAll(const std::string& name, const Digest* verify) const {
    KILN_ASSIGN_OR_RETURN(uint64_t size, SizeOf(name));
    if (size > kMaxInMemoryBlob) return TooBig(Where(name), size);
    std::string out;
    out.reserve(size);
    const ByteSink append = [&](std::string_view chunk) -> Status {
      if (out.size() + chunk.size() > kMaxInMemoryBlob) return TooBig(Where(name), size);
      out.append(chunk);
      return Status::Ok();
    };
    KILN_RETURN_IF_ERROR(Stream(name, append, verify).status());
    return out;
  }

  Result<uint64_t> SizeOf(const std::string& name) const {
    if (is_dir()) {
      struct stat st;
      if (::fstatat(dirfd.get(), name.c_str(), &st, 0) != 0) {
        return ErrnoStatus("cannot stat", path / name, errno);
      }
      return static_cast<uint64_t>(st.st_size);
    }
    KILN_ASSIGN_OR_RETURN(Found f, FindEntry(name));
    return f.entry->size;
  }

  Status Corrupt(const Digest& want, const Digest& got, std::string_view name) const {
    return Status::DigestMismatch("blob " + want.str() + " is corrupted: " + Where(name) +
                                  " hashes to " + got.str());
  }

  // Reads an archive once: validates names, hashes files, caches small ones.
  Status Index() {
    KILN_ASSIGN_OR_RETURN(ArchiveReadPtr a, OpenTar(path));
    uint64_t cached_total = 0;
    archive_entry* e = nullptr;
    for (uint64_t ordinal = 0;; ++ordinal) {
      const int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return ArchiveError(a.get(), path, "");
      const char* raw = archive_entry_pathname(e);
      if (raw == nullptr) {
        return Status::InvalidArgument("archive " + path.string() + ": entry #" +
                                       std::to_string(ordinal) + " has no name");
      }
      Result<std::string> normalized = NormalizeName(raw);
      if (!normalized.ok()) {
        return Status::InvalidArgument("archive " + path.string() + ": refusing entry " +
                                       Quote(raw) + ": " + normalized.status().message());
      }
      std::string name = std::move(normalized).value();
      if (name.empty()) continue;  // "./"
      Entry entry;
      entry.ordinal = ordinal;
      if (const char* hardlink = archive_entry_hardlink(e); hardlink != nullptr) {
        Result<std::string> target = NormalizeName(hardlink);
        if (!target.ok()) {
          return Status::InvalidArgument("archive " + path.string() + ": refusing hard link " +
                                         Quote(raw) + ": " + target.status().message());
        }
        entry.is_link = true;
        entry.link = std::move(target).value();
        entries[name] = std::move(entry);
        continue;
      }
      const mode_t type = archive_entry_filetype(e);
      if (type == AE_IFLNK) {
        const char* target = archive_entry_symlink(e);
        Result<std::string> resolved = ResolveLinkTarget(name, target != nullptr ? target : "");
        if (!resolved.ok()) {
          return Status::InvalidArgument("archive " + path.string() +
                                         ": refusing entry: " + resolved.status().message());
        }
        entry.is_link = true;
        entry.link = std::move(resolved).value();
        entries[name] = std::move(entry);
        continue;
      }
      if (type != AE_IFREG) continue;  // directories, devices, fifos: not content
      const uint64_t declared =
          archive_entry_size_is_set(e) ? static_cast<uint64_t>(archive_entry_size(e)) : 0;
      const bool metadata = name == kOciLayoutFile || name == kIndexFile ||
                            name == kDockerManifestFile || name == kDockerRepositoriesFile;
      if (metadata && declared > kMaxInMemoryBlob) return TooBig(Where(name), declared);
      const bool keep =
          metadata || (declared <= kCacheEntryLimit && cached_total + declared <= kCacheTotalLimit);
      util::Sha256 hash;
      const ByteSink index_chunk = [&](std::string_view chunk) -> Status {
        hash.Update(chunk);
        if (keep) entry.data.append(chunk);
        return Status::Ok();
      };
      KILN_ASSIGN_OR_RETURN(entry.size, ReadEntryData(a.get(), path, name, index_chunk));
      if (archive_entry_size_is_set(e) && entry.size != declared) {
        return Status::InvalidArgument(Where(name) + ": header says " + std::to_string(declared) +
                                       " bytes, found " + std::to_string(entry.size) +
                                       " (truncated archive?)");
      }
      if (keep && entry.size <= kMaxInMemoryBlob) {
        entry.cached = true;
        if (!metadata) cached_total += entry.size;
      } else {
        entry.data.clear();
        entry.data.shrink_to_fit();
      }
      entry.sha256 = hash.Finish();
      entries[name] = std::move(entry);
    }
    for (const auto& [name, entry] : entries) {
      if (!entry.is_link) by_content.emplace(entry.sha256, name);
    }
    return Status::Ok();
  }

  // Reads a metadata file at the top, or "" with `*present` false.
  Result<std::string> ReadMetadata(std::string_view name, bool* present) const {
    *present = false;
    if (is_dir()) {
      UniqueFd fd(OpenBeneath(dirfd.get(), std::string(name)));
      if (!fd.valid()) {
        if (errno == ENOENT) return std::string();
        return OpenBeneathError(path / name, errno);
      }
      *present = true;
      std::string out;
      const ByteSink append = [&](std::string_view chunk) -> Status {
        if (out.size() + chunk.size() > kMaxInMemoryBlob) {
          return TooBig(Where(name), out.size() + chunk.size());
        }
        out.append(chunk);
        return Status::Ok();
      };
      KILN_RETURN_IF_ERROR(StreamFd(fd.get(), path / name, append).status());
      return out;
    }
    if (entries.count(std::string(name)) == 0) return std::string();
    *present = true;
    return ReadAll(std::string(name), nullptr);
  }

  // Loads and checks oci-layout and index.json.
  Status LoadOci() {
    bool present = false;
    KILN_ASSIGN_OR_RETURN(std::string layout, ReadMetadata(kOciLayoutFile, &present));
    if (!present) {
      return Status::NotFound(is_dir() ? Where(kOciLayoutFile) + ": not found: " + path.string() +
                                             " is not an OCI image layout (" + NotLayoutHint() + ")"
                                       : "archive " + path.string() +
                                             " has no oci-layout entry: not an OCI image "
                                             "archive (" +
                                             NotLayoutHint() + ")");
    }
    KILN_RETURN_IF_ERROR(CheckOciLayout(layout, Where(kOciLayoutFile)));
    KILN_ASSIGN_OR_RETURN(index_json, ReadMetadata(kIndexFile, &present));
    if (!present) {
      return Status::NotFound(Where(kIndexFile) + ": not found: the OCI image layout at " +
                              path.string() + " has no index.json");
    }
    return CheckIndexJson(index_json, Where(kIndexFile));
  }

  // Loads and checks manifest.json (and repositories, index.json if there).
  Status LoadDocker() {
    bool present = false;
    KILN_ASSIGN_OR_RETURN(docker_manifest_json, ReadMetadata(kDockerManifestFile, &present));
    const std::string where = Where(kDockerManifestFile);
    KILN_ASSIGN_OR_RETURN(nlohmann::json manifest, util::ParseJson(docker_manifest_json, where));
    if (!manifest.is_array()) {
      return Status::InvalidArgument(where +
                                     ": expected a JSON array of {\"Config\", \"RepoTags\", "
                                     "\"Layers\"} objects");
    }
    // Every file the manifest names must be in the archive.
    for (size_t i = 0; i < manifest.size(); ++i) {
      const nlohmann::json& m = manifest[i];
      const std::string item = where + ", image " + std::to_string(i);
      if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string()) {
        return Status::InvalidArgument(item + ": missing \"Config\" string");
      }
      std::vector<std::string> files = {m["Config"].get<std::string>()};
      if (m.contains("Layers")) {
        if (!m["Layers"].is_array()) {
          return Status::InvalidArgument(item + ": \"Layers\" must be an array of paths");
        }
        for (const nlohmann::json& l : m["Layers"]) {
          if (!l.is_string()) {
            return Status::InvalidArgument(item + ": \"Layers\" must be an array of paths");
          }
          files.push_back(l.get<std::string>());
        }
      }
      for (const std::string& f : files) {
        Result<std::string> name = NormalizeName(f);
        if (!name.ok()) return name.status().Annotate(item);
        Result<Found> found = FindEntry(*name);
        if (!found.ok()) return found.status().Annotate(item);
      }
    }
    KILN_ASSIGN_OR_RETURN(docker_repositories_json,
                          ReadMetadata(kDockerRepositoriesFile, &present));
    if (present) {
      KILN_RETURN_IF_ERROR(
          util::ParseJson(docker_repositories_json, Where(kDockerRepositoriesFile)).status());
    }
    // Docker 25+ also writes an OCI layout; keep its index when it is sound.
    KILN_ASSIGN_OR_RETURN(index_json, ReadMetadata(kIndexFile, &present));
    if (present) KILN_RETURN_IF_ERROR(CheckIndexJson(index_json, Where(kIndexFile)));
    return Status::Ok();
  }
};

ImageArchive::ImageArchive(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageArchive::ImageArchive(ImageArchive&&) noexcept = default;
ImageArchive& ImageArchive::operator=(ImageArchive&&) noexcept = default;
ImageArchive::~ImageArchive() = default;

Result<ImageArchive> ImageArchive::OpenLayoutDir(const fs::path& dir) {
  auto impl = std::make_unique<Impl>();
  impl->format = Format::kOciLayout;
  impl->path = dir;
  impl->dirfd.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!impl->dirfd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return Status::NotFound(dir.string() + ": no such directory (expected an OCI image layout)");
    }
    if (err == ENOTDIR) {
      return Status::InvalidArgument(dir.string() +
                                     " is not a directory (for an OCI or Docker archive "
                                     "file, open it as an archive)");
    }
    return ErrnoStatus("cannot open OCI layout directory", dir, err);
  }
  KILN_RETURN_IF_ERROR(impl->LoadOci());
  return ImageArchive(std::move(impl));
}

Result<ImageArchive> ImageArchive::OpenArchive(const fs::path& file) {
  auto impl = std::make_unique<Impl>();
  impl->path = file;
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return ErrnoStatus("cannot open image archive", file, errno);
  if (S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(file.string() +
                                   " is a directory; open it as an OCI layout directory");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(file.string() +
                                   " is not a regular file; kiln reads image archives more than "
                                   "once, so save the stream to a file first");
  }
  KILN_RETURN_IF_ERROR(impl->Index());
  const bool docker = impl->entries.count(std::string(kDockerManifestFile)) != 0;
  const bool oci = impl->entries.count(std::string(kOciLayoutFile)) != 0 ||
                   impl->entries.count(std::string(kIndexFile)) != 0;
  if (docker) {
    impl->format = Format::kDockerArchive;
    KILN_RETURN_IF_ERROR(impl->LoadDocker());
  } else if (oci) {
    impl->format = Format::kOciArchive;
    KILN_RETURN_IF_ERROR(impl->LoadOci());
  } else {
    return Status::InvalidArgument(
        "archive " + file.string() +
        " is neither an OCI image archive (no oci-layout or index.json at the top) nor a "
        "Docker image archive (no manifest.json at the top)");
  }
  return ImageArchive(std::move(impl));
}

Format ImageArchive::format() const { return impl_->format; }
const fs::path& ImageArchive::path() const { return impl_->path; }
const std::string& ImageArchive::index_json() const { return impl_->index_json; }
const std::string& ImageArchive::docker_manifest_json() const {
  return impl_->docker_manifest_json;
}
const std::string& ImageArchive::docker_repositories_json() const {
  return impl_->docker_repositories_json;
}

bool ImageArchive::HasBlob(const Digest& digest) const {
  return !digest.empty() && impl_->LocateBlob(digest).ok();
}

Result<std::string> ImageArchive::ReadBlob(const Digest& digest) const {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  KILN_ASSIGN_OR_RETURN(std::string name, impl_->LocateBlob(digest));
  return impl_->ReadAll(name, &digest);
}

Status ImageArchive::StreamBlob(const Digest& digest, const ByteSink& sink) const {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  KILN_ASSIGN_OR_RETURN(std::string name, impl_->LocateBlob(digest));
  return impl_->Stream(name, sink, &digest).status();
}

Status ImageArchive::CopyBlobToStore(const Digest& digest, const Store& store) const {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  if (store.Has(digest)) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(std::string name, impl_->LocateBlob(digest));
  KILN_ASSIGN_OR_RETURN(Writer w, store.NewWriter());
  const ByteSink write = [&](std::string_view chunk) { return w.Write(chunk); };
  KILN_RETURN_IF_ERROR(impl_->Stream(name, write, &digest).status());
  return w.Commit(digest, Writer::kUnknownSize);
}

Result<uint64_t> ImageArchive::BlobSize(const Digest& digest) const {
  KILN_ASSIGN_OR_RETURN(std::string name, impl_->LocateBlob(digest));
  return impl_->SizeOf(name);
}

Result<std::string> ImageArchive::ReadFile(std::string_view path) const {
  KILN_ASSIGN_OR_RETURN(std::string name, NormalizeName(path));
  return impl_->ReadAll(name, nullptr);
}

Status ImageArchive::StreamFile(std::string_view path, const ByteSink& sink) const {
  KILN_ASSIGN_OR_RETURN(std::string name, NormalizeName(path));
  return impl_->Stream(name, sink, nullptr).status();
}

Result<uint64_t> ImageArchive::FileSize(std::string_view path) const {
  KILN_ASSIGN_OR_RETURN(std::string name, NormalizeName(path));
  return impl_->SizeOf(name);
}

Result<Digest> ImageArchive::FileDigest(std::string_view path) const {
  KILN_ASSIGN_OR_RETURN(std::string name, NormalizeName(path));
  if (!impl_->is_dir()) {
    KILN_ASSIGN_OR_RETURN(Impl::Found f, impl_->FindEntry(name));
    return f.entry->sha256;
  }
  util::Sha256 hash;
  const ByteSink update = [&](std::string_view chunk) {
    hash.Update(chunk);
    return Status::Ok();
  };
  KILN_RETURN_IF_ERROR(impl_->Stream(name, update, nullptr).status());
  return hash.Finish();
}

// ---------------------------------------------------------------------------
// Blob sources

std::function<std::filesystem::path(const Digest&)> StoreBlobFile(const Store& store) {
  return [store](const Digest& digest) -> std::filesystem::path {
    if (!store.Has(digest)) return {};
    return store.BlobPath(digest);
  };
}

BlobSource StoreBlobSource(const Store& store) {
  return [store](const Digest& digest, const ByteSink& sink) -> Status {
    KILN_ASSIGN_OR_RETURN(BlobReader r, store.OpenReader(digest));
    std::string buf(kChunk, '\0');
    for (;;) {
      KILN_ASSIGN_OR_RETURN(size_t n, r.Read(buf.data(), buf.size()));
      if (n == 0) return Status::Ok();
      KILN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
    }
  };
}

BlobSource ArchiveBlobSource(const ImageArchive& archive) {
  return [&archive](const Digest& digest, const ByteSink& sink) {
    return archive.StreamBlob(digest, sink);
  };
}

BlobSource MemoryBlobSource(std::shared_ptr<const std::map<Digest, std::string>> blobs) {
  return [blobs = std::move(blobs)](const Digest& digest, const ByteSink& sink) -> Status {
    auto it = blobs->find(digest);
    if (it == blobs->end()) return Status::NotFound("blob " + digest.str() + " is not in memory");
    return sink(it->second);
  };
}

// ---------------------------------------------------------------------------
// Writing

namespace {

// What a layout holds, validated, in the order it is written.
struct Plan {
  std::vector<ExtraFile> top_files;  // oci-layout, index.json and extras, sorted by name
  std::vector<BlobRef> blobs;        // distinct, sorted by digest
  bool source_verifies = false;      // WriteOptions::source_verifies
  std::function<std::filesystem::path(const Digest&)> blob_file;  // WriteOptions::blob_file
  std::vector<Digest> leading;  // WriteOptions::leading_blobs, each once
};

Result<Plan> MakePlan(std::string_view index_json, const std::vector<BlobRef>& blobs,
                      const WriteOptions& options) {
  Plan plan;
  plan.source_verifies = options.source_verifies;
  plan.blob_file = options.blob_file;
  std::map<Digest, uint64_t> sizes;
  for (const BlobRef& b : blobs) {
    KILN_RETURN_IF_ERROR(CheckSha256(b.digest));
    auto [it, inserted] = sizes.emplace(b.digest, b.size);
    if (!inserted && it->second != b.size) {
      return Status::InvalidArgument("blob " + b.digest.str() + " is listed twice, as " +
                                     std::to_string(it->second) + " and " + std::to_string(b.size) +
                                     " bytes");
    }
  }
  for (const auto& [digest, size] : sizes) plan.blobs.push_back({digest, size});
  for (const Digest& d : options.leading_blobs) {
    if (sizes.count(d) == 0) {
      return Status::InvalidArgument("leading blob " + d.str() +
                                     " is not among the blobs to write");
    }
    if (std::find(plan.leading.begin(), plan.leading.end(), d) == plan.leading.end()) {
      plan.leading.push_back(d);
    }
  }

  KILN_ASSIGN_OR_RETURN(nlohmann::json index, util::ParseJson(index_json, "index.json to write"));
  if (!index.is_object()) {
    return Status::InvalidArgument("index.json to write: expected a JSON object");
  }
  if (index.contains("manifests")) {
    const nlohmann::json& manifests = index["manifests"];
    if (!manifests.is_array()) {
      return Status::InvalidArgument("index.json to write: \"manifests\" must be an array");
    }
    for (const nlohmann::json& m : manifests) {
      if (!m.is_object() || !m.contains("digest") || !m["digest"].is_string()) {
        return Status::InvalidArgument(
            "index.json to write: every \"manifests\" entry needs a \"digest\" string");
      }
      Result<Digest> d = Digest::Parse(m["digest"].get<std::string>());
      if (!d.ok()) return d.status().Annotate("index.json to write");
      if (sizes.count(*d) == 0) {
        return Status::InvalidArgument("index.json to write refers to " + d->str() +
                                       ", which is not among the blobs to write");
      }
    }
  }

  plan.top_files.push_back({std::string(kOciLayoutFile),
                            "{\"imageLayoutVersion\":\"" + std::string(kLayoutVersion) + "\"}"});
  plan.top_files.push_back({std::string(kIndexFile), std::string(index_json)});
  for (const ExtraFile& f : options.extra_files) {
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." ||
        f.name == ".." || f.name == kOciLayoutFile || f.name == kIndexFile || f.name == "blobs") {
      return Status::InvalidArgument("extra file name " + Quote(f.name) +
                                     " must be one path component other than oci-layout, "
                                     "index.json and blobs");
    }
    for (const ExtraFile& seen : plan.top_files) {
      if (seen.name == f.name) {
        return Status::InvalidArgument("extra file " + Quote(f.name) + " is given twice");
      }
    }
    plan.top_files.push_back(f);
  }
  std::sort(plan.top_files.begin(), plan.top_files.end(),
            [](const ExtraFile& a, const ExtraFile& b) { return a.name < b.name; });
  return plan;
}

// Pulls `blob` from `source` into `out`, checking its size and digest (the
// digest only when the source does not verify what it gives).
Status CopyBlob(const BlobRef& blob, const BlobSource& source, const ByteSink& out,
                bool source_verifies) {
  if (source_verifies) {
    uint64_t count = 0;
    Status st = source(blob.digest, [&](std::string_view chunk) -> Status {
      count += chunk.size();
      if (count > blob.size) {
        return Status::DigestMismatch("blob " + blob.digest.str() + ": the source gave more than " +
                                      std::to_string(blob.size) + " bytes, its size");
      }
      return out(chunk);
    });
    if (!st.ok()) return st.Annotate("writing blob " + blob.digest.str());
    if (count != blob.size) {
      return Status::DigestMismatch("blob " + blob.digest.str() + " (" + std::to_string(blob.size) +
                                    " bytes): the source gave " + std::to_string(count) + " bytes");
    }
    return Status::Ok();
  }
  util::Sha256 hash;
  uint64_t count = 0;
  Status st = source(blob.digest, [&](std::string_view chunk) -> Status {
    if (count + chunk.size() > blob.size) {
      return Status::DigestMismatch("blob " + blob.digest.str() + ": the source gave more than " +
                                    std::to_string(blob.size) + " bytes, its size");
    }
    hash.Update(chunk);
    count += chunk.size();
    return out(chunk);
  });
  if (!st.ok()) return st.Annotate("writing blob " + blob.digest.str());
  const Digest got = hash.Finish();
  if (count != blob.size || got != blob.digest) {
    return Status::DigestMismatch("blob " + blob.digest.str() + " (" + std::to_string(blob.size) +
                                  " bytes): the source gave " + std::to_string(count) +
                                  " bytes hashing to " + got.str());
  }
  return Status::Ok();
}

// Tar output. The archive is plain ustar written here rather than through
// libarchive, so that blob bodies can go from the store's file to the output
// with copy_file_range (no copy through user space; a reflink where the
// filesystem has them). Every member has fixed metadata: mode 0644 (0755 for
// directories), uid/gid 0, mtime 0, no user or group names.
class TarOut {
 public:
  TarOut(int fd, std::string_view what) : fd_(fd), what_(what) {}

  Status Header(const std::string& name, bool dir, uint64_t size) {
    char h[512] = {};
    KILN_RETURN_IF_ERROR(MakeHeader(name, dir, size, h));
    return Write(std::string_view(h, sizeof h));
  }

  // Writes the header of a regular file `name` of `size` bytes at `offset`
  // (over a placeholder written earlier), leaving the position as it is.
  Status HeaderAt(uint64_t offset, const std::string& name, uint64_t size) {
    char h[512] = {};
    KILN_RETURN_IF_ERROR(MakeHeader(name, false, size, h));
    const ssize_t n = ::pwrite(fd_, h, sizeof h, static_cast<off_t>(offset));
    if (n != static_cast<ssize_t>(sizeof h)) {
      return ErrnoStatus("cannot write a tar header into", what_, n < 0 ? errno : EIO);
    }
    return Status::Ok();
  }

  // Cuts the file back to `offset` (an entry boundary) and goes on from there.
  Status TruncateTo(uint64_t offset) {
    if (::ftruncate(fd_, static_cast<off_t>(offset)) != 0 ||
        ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
      return ErrnoStatus("cannot cut back", what_, errno);
    }
    written_ = offset;
    flushed_ = std::min(flushed_, offset);
    return Status::Ok();
  }

  uint64_t offset() const { return written_; }

 private:
  Status MakeHeader(const std::string& name, bool dir, uint64_t size, char* h) const {
    std::string_view n = name;
    if (n.size() > 100) {
      // ustar splits a long name at a '/' into prefix (155) and name (100).
      const size_t slash = n.substr(0, std::min<size_t>(n.size(), 156)).rfind('/');
      if (slash == std::string_view::npos || slash == 0 || n.size() - slash - 1 > 100 ||
          n.size() - slash - 1 == 0) {
        return Status::InvalidArgument("cannot write " + what_ + ": member name " + Quote(name) +
                                       " is too long for a tar header");
      }
      std::memcpy(h + 345, n.data(), slash);
      n.remove_prefix(slash + 1);
    }
    std::memcpy(h, n.data(), n.size());
    Octal(h + 100, 8, dir ? 0755 : 0644);
    Octal(h + 108, 8, 0);
    Octal(h + 116, 8, 0);
    if (size < (1ull << 33)) {
      Octal(h + 124, 12, size);
    } else {  // base-256, as GNU tar and every reader since take it
      h[124] = static_cast<char>(0x80);
      for (int i = 11; i >= 4; --i, size >>= 8) h[124 + i] = static_cast<char>(size & 0xff);
    }
    Octal(h + 136, 12, 0);
    h[156] = dir ? '5' : '0';
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) sum += static_cast<unsigned char>(h[i]);
    std::snprintf(h + 148, 8, "%06o", sum);  // six digits, NUL, then the space left above
    return Status::Ok();
  }

 public:
  Status Write(std::string_view data) {
    KILN_RETURN_IF_ERROR(internal::WriteAll(fd_, data, what_));
    Wrote(data.size());
    return Status::Ok();
  }

  // Copies `size` bytes of `in` from its start, in the kernel where it can
  // (copy_file_range), else through a buffer: across filesystems (EXDEV),
  // from a pipe, or where the filesystem pair has no support. Both ways
  // count every byte they write, since the headers written back later
  // (HeaderAt) and the cut-backs (TruncateTo) go by that count.
  Status CopyFrom(int in, uint64_t size, const std::string& source) {
    loff_t in_off = 0;
    bool kernel = true;
    std::vector<char> buf;
    while (static_cast<uint64_t>(in_off) < size) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(size - in_off, 64u << 20));
      ssize_t n;
      if (kernel) {
        n = ::copy_file_range(in, &in_off, fd_, nullptr, want, 0);
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                      errno == EBADF)) {
          kernel = false;  // a pipe, or a filesystem pair without support
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoStatus("cannot copy " + source + " into", what_, errno);
      } else {
        if (buf.empty()) buf.resize(1 << 20);
        n = ::pread(in, buf.data(), std::min(want, buf.size()), in_off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoStatus("cannot read", source, errno);
        if (n > 0) {
          KILN_RETURN_IF_ERROR(internal::WriteAll(fd_, std::string_view(buf.data(), n), what_));
          in_off += n;
        }
      }
      if (n == 0) {
        return Status::DigestMismatch(source + " ended after " + std::to_string(in_off) +
                                      " bytes; its size is " + std::to_string(size));
      }
      Wrote(static_cast<uint64_t>(n));
    }
    return Status::Ok();
  }

  // Pads the member just written to a 512-byte boundary.
  Status Pad(uint64_t size) {
    static const char zeros[512] = {};
    const size_t pad = (512 - size % 512) % 512;
    return pad == 0 ? Status::Ok() : Write(std::string_view(zeros, pad));
  }

  Status Close() {
    static const char zeros[1024] = {};
    return Write(std::string_view(zeros, sizeof zeros));
  }

 private:
  static void Octal(char* field, size_t width, uint64_t v) {
    std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                  static_cast<unsigned long long>(v));
  }

  // Starts writeback of every 32 MiB written, so the final fsync has little
  // left to do (a no-op on pipes).
  void Wrote(uint64_t n) {
    written_ += n;
    if (written_ - flushed_ >= (32u << 20)) {
      (void)::sync_file_range(fd_, static_cast<off64_t>(flushed_),
                              static_cast<off64_t>(written_ - flushed_), SYNC_FILE_RANGE_WRITE);
      flushed_ = written_;
    }
  }

  int fd_;
  std::string what_;
  uint64_t written_ = 0, flushed_ = 0;
};

// Copies a blob from a local file, hashing the same file on another thread
// meanwhile (both read the page cache): the output never holds a blob that
// does not match its digest, and the check costs no extra time.
Status CopyLocalBlob(TarOut& out, const BlobRef& blob, const fs::path& path) {
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return ErrnoStatus("cannot open", path, errno);
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return ErrnoStatus("cannot stat", path, errno);
  if (static_cast<uint64_t>(st.st_size) != blob.size) {
    return Status::DigestMismatch("blob " + blob.digest.str() + " is " +
                                  std::to_string(st.st_size) + " bytes in " + path.string() +
                                  ", not " + std::to_string(blob.size));
  }
  Result<Digest> hashed = Status::Internal("not hashed");
  std::thread hasher([&] { hashed = util::Sha256OfFile(path); });
  Status copied = out.CopyFrom(in.get(), blob.size, path.string());
  hasher.join();
  KILN_RETURN_IF_ERROR(copied);
  if (!hashed.ok()) return hashed.status();
  if (*hashed != blob.digest) {
    return Status::DigestMismatch("blob " + blob.digest.str() + " in " + path.string() +
                                  " hashes to " + hashed->str() + "; the store is damaged");
  }
  return Status::Ok();
}

// One blob entry: header and body (from its local file when there is one,
// else from `source`), padded.
Status WriteBlobEntry(TarOut& out, const Plan& plan, const BlobRef& blob,
                      const BlobSource& source) {
  KILN_RETURN_IF_ERROR(out.Header(BlobName(blob.digest), false, blob.size));
  const fs::path local = plan.blob_file ? plan.blob_file(blob.digest) : fs::path();
  if (!local.empty()) {
    Status st = CopyLocalBlob(out, blob, local);
    if (!st.ok()) return st.Annotate("writing blob " + blob.digest.str());
  } else {
    KILN_RETURN_IF_ERROR(CopyBlob(
        blob, source, [&](std::string_view chunk) { return out.Write(chunk); },
        plan.source_verifies));
  }
  return out.Pad(blob.size);
}

Status WriteTarDirs(TarOut& out) {
  KILN_RETURN_IF_ERROR(out.Header("blobs/", true, 0));
  return out.Header("blobs/sha256/", true, 0);
}

// Everything after the `blobs/` directories: the leading blobs in their
// order, the other blobs in name order (skipping those in `done`), the top
// files in name order, the end of the tar. With no leading blobs this is
// bytewise name order throughout ("blobs/..." sorts before every top file).
Status WriteTarRest(TarOut& out, const Plan& plan, const BlobSource& source,
                    const std::set<Digest>& done) {
  std::set<Digest> written = done;
  std::map<Digest, uint64_t> sizes;
  for (const BlobRef& b : plan.blobs) sizes.emplace(b.digest, b.size);
  for (const Digest& d : plan.leading) {
    if (!written.insert(d).second) continue;
    KILN_RETURN_IF_ERROR(WriteBlobEntry(out, plan, {d, sizes.at(d)}, source));
  }
  for (const BlobRef& b : plan.blobs) {  // sorted by digest, so by name
    if (!written.insert(b.digest).second) continue;
    KILN_RETURN_IF_ERROR(WriteBlobEntry(out, plan, b, source));
  }
  for (const ExtraFile& f : plan.top_files) {
    KILN_RETURN_IF_ERROR(out.Header(f.name, false, f.data.size()));
    KILN_RETURN_IF_ERROR(out.Write(f.data));
    KILN_RETURN_IF_ERROR(out.Pad(f.data.size()));
  }
  return out.Close();
}

Status WriteTar(int fd, std::string_view what, const Plan& plan, const BlobSource& source) {
  TarOut out(fd, what);
  KILN_RETURN_IF_ERROR(WriteTarDirs(out));
  return WriteTarRest(out, plan, source, {});
}

// Creates `path` and fills it with whatever `fill` writes to its fd, fsynced.
Status WriteNewFile(const fs::path& path, const std::function<Status(int fd)>& fill) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus("cannot create", path, errno);
  KILN_RETURN_IF_ERROR(fill(fd.get()));
  if (::fsync(fd.get()) != 0) return ErrnoStatus("cannot fsync", path, errno);
  if (::close(fd.release()) != 0) return ErrnoStatus("cannot close", path, errno);
  return Status::Ok();
}

// Writes the layout into the fresh directory `dir`.
Status FillLayoutDir(const fs::path& dir, const Plan& plan, const BlobSource& source) {
  const fs::path blobs = dir / "blobs" / "sha256";
  KILN_RETURN_IF_ERROR(internal::MakeDirs(blobs));
  for (const BlobRef& b : plan.blobs) {
    const fs::path path = blobs / std::string(b.digest.hex());
    const fs::path local = plan.blob_file ? plan.blob_file(b.digest) : fs::path();
    KILN_RETURN_IF_ERROR(WriteNewFile(path, [&](int fd) {
      if (!local.empty()) {
        TarOut out(fd, path.string());
        return CopyLocalBlob(out, b, local);
      }
      return CopyBlob(
          b, source, [&](std::string_view chunk) { return internal::WriteAll(fd, chunk, path); },
          plan.source_verifies);
    }));
  }
  for (const ExtraFile& f : plan.top_files) {
    const fs::path path = dir / f.name;
    KILN_RETURN_IF_ERROR(
        WriteNewFile(path, [&](int fd) { return internal::WriteAll(fd, f.data, path); }));
  }
  KILN_RETURN_IF_ERROR(internal::FsyncDir(blobs));
  KILN_RETURN_IF_ERROR(internal::FsyncDir(dir / "blobs"));
  return internal::FsyncDir(dir);
}

// Checks what was just written, read back as its readers read it (the
// archive through libarchive, every entry hashed once while it is indexed;
// a layout directory file by file): `oci-layout`, `index.json` and the
// extra files hold exactly the bytes of the plan, and every blob of the
// plan is there with its size and digest. `written` names the output in
// the error. Costs one sequential read of the output (it was just written,
// so usually from the page cache) and one sha256 pass over it.
Status VerifyWritten(const Result<ImageArchive>& opened, const Plan& plan,
                     const std::string& written) {
  auto fail = [&](const std::string& what) {
    return Status::IOError(written + " does not read back as it was written: " + what +
                           "; it was not kept");
  };
  if (!opened.ok()) return fail(opened.status().message());
  const ImageArchive& got = *opened;
  for (const ExtraFile& f : plan.top_files) {
    Result<std::string> data = got.ReadFile(f.name);
    if (!data.ok()) return fail(data.status().message());
    if (*data != f.data) {
      return fail(Quote(f.name) + " holds " + std::to_string(data->size()) +
                  " bytes other than the " + std::to_string(f.data.size()) + " written");
    }
  }
  for (const BlobRef& b : plan.blobs) {
    const std::string name = BlobName(b.digest);
    Result<uint64_t> size = got.FileSize(name);
    if (!size.ok()) return fail(size.status().message());
    if (*size != b.size) {
      return fail("blob " + b.digest.str() + " is " + std::to_string(*size) +
                  " bytes, its descriptor states " + std::to_string(b.size));
    }
    Result<Digest> digest = got.FileDigest(name);
    if (!digest.ok()) return fail(digest.status().message());
    if (*digest != b.digest) {
      return fail("blob " + b.digest.str() + " (" + std::to_string(b.size) + " bytes) hashes to " +
                  digest->str());
    }
  }
  return Status::Ok();
}

// The archive `temp`, just written with `expected_bytes` bytes, checked as
// VerifyWritten says; also its length, so no stray entry hides at the end.
Status VerifyArchiveFile(const std::string& temp, uint64_t expected_bytes, const Plan& plan,
                         const fs::path& dest) {
  KILN_METRIC("    verify OCI archive");
  const std::string written = "the archive written for " + dest.string();
  struct stat st;
  if (::stat(temp.c_str(), &st) != 0) return ErrnoStatus("cannot stat", temp, errno);
  if (static_cast<uint64_t>(st.st_size) != expected_bytes) {
    return Status::IOError(written + " is " + std::to_string(st.st_size) + " bytes, but " +
                           std::to_string(expected_bytes) + " were written; it was not kept");
  }
  return VerifyWritten(ImageArchive::OpenArchive(temp), plan, written);
}

fs::path ParentOf(const fs::path& p) {
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// "out/" and "out/." name "out": the temp name is built from the last
// component, which must not be empty.
fs::path Destination(const fs::path& p) {
  fs::path d = p.lexically_normal();
  if (!d.has_filename() && d.has_parent_path()) d = d.parent_path();
  return d;
}

// Moves the finished layout `temp` to `dir`, replacing an empty directory or
// an existing layout.
Status ReplaceDir(const fs::path& temp, const fs::path& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus("cannot stat", dir, errno);
    if (::rename(temp.c_str(), dir.c_str()) != 0) {
      return ErrnoStatus("cannot move the new layout into place at", dir, errno);
    }
    return Status::Ok();
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::AlreadyExists(dir.string() +
                                 " exists and is not a directory; refusing to replace it with "
                                 "an OCI layout");
  }
  if (::rename(temp.c_str(), dir.c_str()) == 0) return Status::Ok();  // was empty
  if (errno != ENOTEMPTY && errno != EEXIST) {
    return ErrnoStatus("cannot move the new layout into place at", dir, errno);
  }
  if (::access((dir / std::string(kOciLayoutFile)).c_str(), F_OK) != 0) {
    return Status::AlreadyExists(dir.string() +
                                 " exists, is not empty and is not an OCI layout (no oci-layout "
                                 "file); refusing to replace it");
  }
  // Swap atomically, then delete the old layout, now at `temp`.
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    return internal::RemoveAll(temp);
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return ErrnoStatus("cannot swap the new layout into place at", dir, errno);
  }
  // No RENAME_EXCHANGE on this filesystem: two renames, briefly no layout.
  const fs::path old = temp.string() + ".old";
  if (::rename(dir.c_str(), old.c_str()) != 0) {
    return ErrnoStatus("cannot move the old layout away from", dir, errno);
  }
  if (::rename(temp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    (void)::rename(old.c_str(), dir.c_str());
    return ErrnoStatus("cannot move the new layout into place at", dir, err);
  }
  return internal::RemoveAll(old);
}

}  // namespace

Status WriteOciLayout(const fs::path& dest, std::string_view index_json,
                      const std::vector<BlobRef>& blobs, const BlobSource& source,
                      const WriteOptions& options) {
  KILN_ASSIGN_OR_RETURN(Plan plan, MakePlan(index_json, blobs, options));
  const fs::path dir = Destination(dest);
  if (dir.filename().empty() || dir.filename() == "." || dir.filename() == "..") {
    return Status::InvalidArgument("cannot write an OCI layout at " + dest.string() +
                                   ": name the directory itself");
  }
  const fs::path parent = ParentOf(dir);
  KILN_RETURN_IF_ERROR(internal::MakeDirs(parent));
  std::string temp = (parent / ("." + dir.filename().string() + ".tmp-XXXXXX")).string();
  if (::mkdtemp(temp.data()) == nullptr) {
    return ErrnoStatus("cannot create a temporary directory in", parent, errno);
  }
  Status st;
  if (::chmod(temp.c_str(), 0755) != 0) st = ErrnoStatus("cannot chmod", temp, errno);
  if (st.ok()) st = FillLayoutDir(temp, plan, source);
  if (st.ok()) {
    KILN_METRIC("    verify OCI layout");
    st = VerifyWritten(ImageArchive::OpenLayoutDir(temp), plan,
                       "the OCI layout written for " + dir.string());
  }
  if (st.ok() && options.cancel != nullptr) st = options.cancel->Check();
  if (st.ok()) st = ReplaceDir(temp, dir);
  if (st.ok()) st = internal::FsyncDir(parent);
  if (!st.ok()) {
    (void)internal::RemoveAll(temp);
    return st.Annotate("writing OCI layout " + dir.string());
  }
  return Status::Ok();
}

Status WriteOciArchiveToFd(int fd, std::string_view what, std::string_view index_json,
                           const std::vector<BlobRef>& blobs, const BlobSource& source,
                           const WriteOptions& options) {
  KILN_ASSIGN_OR_RETURN(Plan plan, MakePlan(index_json, blobs, options));
  return WriteTar(fd, what, plan, source);
}

Status WriteOciArchive(const fs::path& file, std::string_view index_json,
                       const std::vector<BlobRef>& blobs, const BlobSource& source,
                       const WriteOptions& options) {
  // Commit checks the content; on an error the writer removes its temp file.
  Result<std::unique_ptr<ArchiveWriter>> w = ArchiveWriter::Create(file);
  if (!w.ok()) return w.status().Annotate("writing OCI archive " + file.string());
  return (*w)->Commit(index_json, blobs, source, options);
}

// ---------------------------------------------------------------------------
// ArchiveWriter

struct ArchiveWriter::State {
  fs::path file;
  std::string temp;
  UniqueFd fd;
  std::unique_ptr<TarOut> out;
  std::vector<BlobRef> added;  // in archive order
  bool streaming = false;
  uint64_t stream_start = 0;  // offset of the streamed entry's header
  uint64_t stream_bytes = 0;
  bool committed = false;
};

ArchiveWriter::ArchiveWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

ArchiveWriter::~ArchiveWriter() { Abandon(); }

Result<std::unique_ptr<ArchiveWriter>> ArchiveWriter::Create(const fs::path& file) {
  auto st = std::make_unique<State>();
  st->file = file;
  const fs::path parent = ParentOf(file);
  st->temp = (parent / ("." + file.filename().string() + ".tmp-XXXXXX")).string();
  st->fd = UniqueFd(::mkostemp(st->temp.data(), O_CLOEXEC));
  if (!st->fd.valid()) return ErrnoStatus("cannot create a temporary file in", parent, errno);
  std::unique_ptr<ArchiveWriter> w(new ArchiveWriter(std::move(st)));
  State& s = *w->state_;
  if (::fchmod(s.fd.get(), 0644) != 0) return ErrnoStatus("cannot chmod", s.temp, errno);
  s.out = std::make_unique<TarOut>(s.fd.get(), s.temp);
  KILN_RETURN_IF_ERROR(WriteTarDirs(*s.out));
  return w;
}

bool ArchiveWriter::Has(const Digest& digest) const {
  for (const BlobRef& b : state_->added) {
    if (b.digest == digest) return true;
  }
  return false;
}

Status ArchiveWriter::AddBlobFile(const BlobRef& blob, const fs::path& path) {
  State& s = *state_;
  if (!s.out || s.streaming) {
    return Status::FailedPrecondition("ArchiveWriter::AddBlobFile while a blob is streamed");
  }
  KILN_RETURN_IF_ERROR(CheckSha256(blob.digest));
  if (Has(blob.digest)) return Status::Ok();
  // A failed entry is cut back, so the writer stays usable and the
  // archive never holds a stray header or a partial body.
  const uint64_t start = s.out->offset();
  Status st = s.out->Header(BlobName(blob.digest), false, blob.size);
  if (st.ok()) st = CopyLocalBlob(*s.out, blob, path);
  if (st.ok()) st = s.out->Pad(blob.size);
  if (!st.ok()) {
    (void)s.out->TruncateTo(start);
    return st.Annotate("writing blob " + blob.digest.str());
  }
  s.added.push_back(blob);
  return Status::Ok();
}

Status ArchiveWriter::BeginBlob() {
  State& s = *state_;
  if (!s.out || s.streaming) {
    return Status::FailedPrecondition("ArchiveWriter::BeginBlob while a blob is streamed");
  }
  static const char placeholder[512] = {};
  s.stream_start = s.out->offset();
  s.stream_bytes = 0;
  s.streaming = true;
  return s.out->Write(std::string_view(placeholder, sizeof placeholder));
}

Status ArchiveWriter::WriteBlob(std::string_view data) {
  State& s = *state_;
  if (!s.streaming) return Status::FailedPrecondition("ArchiveWriter::WriteBlob without BeginBlob");
  s.stream_bytes += data.size();
  return s.out->Write(data);
}

Status ArchiveWriter::EndBlob(const BlobRef& blob) {
  State& s = *state_;
  if (!s.streaming) return Status::FailedPrecondition("ArchiveWriter::EndBlob without BeginBlob");
  Status st = CheckSha256(blob.digest);
  if (st.ok() && blob.size != s.stream_bytes) {
    st = Status::DigestMismatch("blob " + blob.digest.str() + " is " + std::to_string(blob.size) +
                                " bytes, but " + std::to_string(s.stream_bytes) + " were written");
  }
  if (!st.ok() || Has(blob.digest)) {
    AbortBlob();
    return st;
  }
  s.streaming = false;
  KILN_RETURN_IF_ERROR(s.out->HeaderAt(s.stream_start, BlobName(blob.digest), blob.size));
  KILN_RETURN_IF_ERROR(s.out->Pad(blob.size));
  s.added.push_back(blob);
  return Status::Ok();
}

void ArchiveWriter::AbortBlob() {
  State& s = *state_;
  if (!s.streaming) return;
  s.streaming = false;
  (void)s.out->TruncateTo(s.stream_start);
}

Status ArchiveWriter::Commit(std::string_view index_json, const std::vector<BlobRef>& blobs,
                             const BlobSource& source, const WriteOptions& options) {
  State& s = *state_;
  if (!s.out || s.streaming || s.committed) {
    return Status::FailedPrecondition(
        "ArchiveWriter::Commit while a blob is streamed or after Commit");
  }
  KILN_METRIC("  write OCI archive");
  KILN_ASSIGN_OR_RETURN(Plan plan, MakePlan(index_json, blobs, options));
  std::set<Digest> done;
  for (const BlobRef& b : s.added) {
    auto it = std::find_if(plan.blobs.begin(), plan.blobs.end(),
                           [&](const BlobRef& p) { return p.digest == b.digest; });
    if (it == plan.blobs.end() || it->size != b.size) {
      return Status::InvalidArgument("archive " + s.file.string() + ": blob " + b.digest.str() +
                                     " was written but is not among the blobs to commit");
    }
    done.insert(b.digest);
  }
  Status st = WriteTarRest(*s.out, plan, source, done);
  if (st.ok()) {
    KILN_METRIC("    fsync OCI archive");
    if (::fsync(s.fd.get()) != 0) st = ErrnoStatus("cannot fsync", s.temp, errno);
  }
  // Nothing reaches the destination unless it reads back as written.
  if (st.ok()) st = VerifyArchiveFile(s.temp, s.out->offset(), plan, s.file);
  if (st.ok() && options.cancel != nullptr) st = options.cancel->Check();
  if (st.ok() && ::close(s.fd.release()) != 0) st = ErrnoStatus("cannot close", s.temp, errno);
  if (st.ok() && ::rename(s.temp.c_str(), s.file.c_str()) != 0) {
    st = ErrnoStatus("cannot move the archive into place at", s.file, errno);
  }
  if (st.ok()) st = internal::FsyncDir(ParentOf(s.file));
  if (!st.ok()) return st.Annotate("writing OCI archive " + s.file.string());
  s.committed = true;
  s.out.reset();
  return Status::Ok();
}

void ArchiveWriter::Abandon() {
  State& s = *state_;
  if (s.committed || s.temp.empty()) return;
  s.out.reset();
  s.fd = UniqueFd();
  ::unlink(s.temp.c_str());
  s.temp.clear();
}

}  // namespace kiln::content
