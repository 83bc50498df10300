// Helpers for content_test only: temp directories, file I/O, and building
// tar archives with libarchive the way `docker save` or a hostile producer
// would. Aborts the test (via gtest ADD_FAILURE / abort) on setup errors.
//
// Thread-safety: not a concern; tests call these from one thread.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace kiln::content::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kiln-content-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    // Committed blobs are read-only; make them removable first.
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add, ec);
    }
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Names in `dir`, sorted; empty if it does not exist.
inline std::vector<std::string> ListDir(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(rng() & 0xff);
  return out;
}

inline void WriteFile(const std::filesystem::path& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) ADD_FAILURE() << "cannot write " << path;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

struct TarEntry {
  enum class Type { kFile, kDir, kSymlink, kHardlink };
  std::string name;
  std::string data;  // kFile
  Type type = Type::kFile;
  std::string link;  // kSymlink / kHardlink target
};

inline TarEntry File(std::string name, std::string data) {
  return {std::move(name), std::move(data), TarEntry::Type::kFile, ""};
}
inline TarEntry Dir(std::string name) { return {std::move(name), "", TarEntry::Type::kDir, ""}; }
inline TarEntry Symlink(std::string name, std::string target) {
  return {std::move(name), "", TarEntry::Type::kSymlink, std::move(target)};
}

// Writes `entries` in the given order as a tar (gzip-compressed if asked).
inline void WriteTar(const std::filesystem::path& path, const std::vector<TarEntry>& entries,
                     bool gzip = false) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const TarEntry& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (t.type) {
      case TarEntry::Type::kFile:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
        break;
      case TarEntry::Type::kDir:
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        break;
      case TarEntry::Type::kSymlink:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, t.link.c_str());
        break;
      case TarEntry::Type::kHardlink:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_hardlink(e, t.link.c_str());
        archive_entry_set_size(e, 0);
        break;
    }
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (t.type == TarEntry::Type::kFile && !t.data.empty()) {
      ASSERT_EQ(archive_write_data(a, t.data.data(), t.data.size()),
                static_cast<la_ssize_t>(t.data.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

// One entry's metadata as read back from a tar.
struct TarHeader {
  std::string name;
  mode_t mode = 0;  // type and permission bits
  int64_t mtime = -1;
  int64_t uid = -1;
  int64_t gid = -1;
  int64_t size = -1;
  std::string uname;
};

inline std::vector<TarHeader> ReadTarHeaders(const std::filesystem::path& path) {
  std::vector<TarHeader> out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, path.c_str(), 10240) != ARCHIVE_OK) {
    ADD_FAILURE() << archive_error_string(a);
    archive_read_free(a);
    return out;
  }
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarHeader h;
    h.name = archive_entry_pathname(e);
    h.mode = archive_entry_mode(e);
    h.mtime = archive_entry_mtime(e);
    h.uid = archive_entry_uid(e);
    h.gid = archive_entry_gid(e);
    h.size = archive_entry_size(e);
    const char* uname = archive_entry_uname(e);
    h.uname = uname != nullptr ? uname : "";
    out.push_back(h);
  }
  archive_read_free(a);
  return out;
}

}  // namespace kiln::content::test
