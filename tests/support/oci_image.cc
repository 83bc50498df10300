#include "oci_image.h"

#include <archive.h>
#include <archive_entry.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// Every member of a tar (any compression) as path -> bytes, or calls `fn`.
template <typename Fn>
Status ForEachEntry(const std::string& bytes, Fn&& fn) {
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), bytes.data(), bytes.size()) != ARCHIVE_OK) {
    return Status::InvalidArgument(std::string("not a tar: ") + archive_error_string(a.get()));
  }
  archive_entry* e = nullptr;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) return Status::Ok();
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return Status::InvalidArgument(std::string("bad tar: ") + archive_error_string(a.get()));
    }
    std::string data;
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) data.append(buf, n);
    fn(e, data);
  }
}

std::string Clean(std::string p) {
  while (p.rfind("./", 0) == 0) p = p.substr(2);
  while (!p.empty() && p.front() == '/') p = p.substr(1);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

Result<std::vector<std::string>> TarPaths(const std::string& tar) {
  std::vector<std::string> out;
  Status st = ForEachEntry(
      tar, [&](archive_entry* e, const std::string&) { out.push_back(archive_entry_pathname(e)); });
  if (!st.ok()) return st;
  return out;
}

Result<OciImage> ReadOciImage(const fs::path& path) {
  OciImage img;
  std::map<std::string, std::string> files;  // member path -> bytes
  if (fs::is_directory(path)) {
    for (auto& e : fs::recursive_directory_iterator(path)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      files[fs::relative(e.path(), path).string()] = ss.str();
    }
  } else {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    Status st = ForEachEntry(ss.str(), [&](archive_entry* e, const std::string& data) {
      if (archive_entry_filetype(e) == AE_IFREG) files[Clean(archive_entry_pathname(e))] = data;
    });
    if (!st.ok()) return st;
  }
  for (auto& [p, data] : files) {
    if (p.rfind("blobs/sha256/", 0) == 0) img.blobs["sha256:" + p.substr(13)] = data;
  }
  if (!files.count("index.json")) return Status::NotFound("no index.json");
  img.index_json = files["index.json"];
  const json index = json::parse(img.index_json);
  img.manifest_digest = index["manifests"][0]["digest"];
  img.manifest_json = img.blobs[img.manifest_digest];
  const json manifest = json::parse(img.manifest_json);
  img.config_json = img.blobs[manifest["config"]["digest"].get<std::string>()];
  for (const json& l : manifest["layers"]) {
    const std::string d = l["digest"];
    img.layer_digests.push_back(d);
    std::string tar;
    // Decompress through libarchive's raw reader.
    std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_raw(a.get());
    const std::string& blob = img.blobs[d];
    if (archive_read_open_memory(a.get(), blob.data(), blob.size()) != ARCHIVE_OK) {
      return Status::InvalidArgument("layer " + d + " unreadable");
    }
    archive_entry* e;
    if (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
      char buf[65536];
      la_ssize_t n;
      while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) tar.append(buf, n);
    }
    img.layer_tars.push_back(tar);
    Status st = ForEachEntry(tar, [&](archive_entry* en, const std::string& data) {
      std::string p = Clean(archive_entry_pathname(en));
      const std::string base = p.substr(p.rfind('/') == std::string::npos ? 0 : p.rfind('/') + 1);
      const std::string dir = p.size() > base.size() ? p.substr(0, p.size() - base.size() - 1) : "";
      if (base == ".wh..wh..opq") {
        for (auto it = img.files.begin(); it != img.files.end();) {
          if (!dir.empty() && it->first.rfind(dir + "/", 0) == 0) {
            it = img.files.erase(it);
          } else {
            ++it;
          }
        }
        return;
      }
      if (base.rfind(".wh.", 0) == 0) {
        const std::string victim = (dir.empty() ? "" : dir + "/") + base.substr(4);
        for (auto it = img.files.begin(); it != img.files.end();) {
          if (it->first == victim || it->first.rfind(victim + "/", 0) == 0) {
            it = img.files.erase(it);
          } else {
            ++it;
          }
        }
        return;
      }
      FsEntry f;
      f.mode = archive_entry_perm(en);
      f.uid = archive_entry_uid(en);
      f.gid = archive_entry_gid(en);
      f.mtime = archive_entry_mtime(en);
      if (const char* hl = archive_entry_hardlink(en)) {
        f.type = 'h';
        f.data = Clean(hl);
        auto target = img.files.find(f.data);
        if (target != img.files.end()) {
          f = target->second;
        }
      } else {
        switch (archive_entry_filetype(en)) {
          case AE_IFDIR:
            f.type = 'd';
            break;
          case AE_IFLNK:
            f.type = 'l';
            f.data = archive_entry_symlink(en);
            break;
          case AE_IFCHR:
            f.type = 'c';
            break;
          case AE_IFBLK:
            f.type = 'b';
            break;
          case AE_IFIFO:
            f.type = 'p';
            break;
          default:
            f.type = 'f';
            f.data = data;
            break;
        }
      }
      if (f.type != 'd') {
        // A non-directory replaces whatever was there, subtree included.
        for (auto it = img.files.lower_bound(p + "/");
             it != img.files.end() && it->first.rfind(p + "/", 0) == 0;) {
          it = img.files.erase(it);
        }
      }
      img.files[p] = f;
    });
    if (!st.ok()) return st;
  }
  return img;
}

}  // namespace kiln::testing
