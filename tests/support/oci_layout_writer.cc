#include "oci_layout_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "util/compress.h"
#include "util/digest.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t AppendToString(archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

Status WriteBlob(const fs::path& dir, const std::string& data, std::string* digest) {
  const util::Digest d = util::Sha256Of(data);
  *digest = d.str();
  const fs::path p = dir / "blobs" / "sha256" / std::string(d.hex());
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f || !(f << data) || !f.flush()) return Status::IOError("cannot write " + p.string());
  return Status::Ok();
}

}  // namespace

Result<std::string> MakeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  std::unique_ptr<archive, WriteFree> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &out, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    return Status::Internal(std::string("tar: ") + archive_error_string(a.get()));
  }
  for (const TarEntry& t : entries) {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_perm(e.get(), t.mode);
    archive_entry_set_mtime(e.get(), 1700000000, 0);
    switch (t.type) {
      case 'd':
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), t.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), t.data.c_str());
        break;
      case 'b': {
        archive_entry_set_filetype(e.get(), AE_IFBLK);
        const size_t colon = t.data.find(':');
        archive_entry_set_rdevmajor(e.get(), std::stoul(t.data.substr(0, colon)));
        archive_entry_set_rdevminor(e.get(), std::stoul(t.data.substr(colon + 1)));
        break;
      }
      default:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(t.data.size()));
        break;
    }
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
      return Status::Internal("tar header " + t.path + ": " + archive_error_string(a.get()));
    }
    if (t.type == 'f' && !t.data.empty() &&
        archive_write_data(a.get(), t.data.data(), t.data.size()) < 0) {
      return Status::Internal("tar data " + t.path + ": " + archive_error_string(a.get()));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return Status::Internal(std::string("tar close: ") + archive_error_string(a.get()));
  }
  return out;
}

Result<std::string> WriteOciLayout(const fs::path& dir, const std::string& tag,
                                   const std::vector<std::vector<TarEntry>>& layers) {
  json diff_ids = json::array();
  json history = json::array();
  json layer_descriptors = json::array();
  for (const std::vector<TarEntry>& entries : layers) {
    KILN_ASSIGN_OR_RETURN(std::string tar, MakeTar(entries));
    std::string gz;
    KILN_ASSIGN_OR_RETURN(
        std::unique_ptr<util::Compressor> c,
        util::NewCompressor(util::Compression::kGzip, [&gz](std::string_view chunk) {
          gz.append(chunk);
          return Status::Ok();
        }));
    KILN_RETURN_IF_ERROR(c->Write(tar));
    KILN_RETURN_IF_ERROR(c->Finish());
    std::string layer_digest;
    KILN_RETURN_IF_ERROR(WriteBlob(dir, gz, &layer_digest));
    diff_ids.push_back(util::Sha256Of(tar).str());
    history.push_back(json{{"created_by", "kiln test layer"}});
    layer_descriptors.push_back(json{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                     {"digest", layer_digest},
                                     {"size", gz.size()}});
  }
  std::string config_digest, manifest_digest;
  const json config = {{"architecture", "amd64"},
                       {"os", "linux"},
                       {"config", {{"Env", {"PATH=/bin"}}}},
                       {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                       {"history", history}};
  const std::string config_text = config.dump();
  KILN_RETURN_IF_ERROR(WriteBlob(dir, config_text, &config_digest));
  const json manifest = {{"schemaVersion", 2},
                         {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"config",
                          {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                           {"digest", config_digest},
                           {"size", config_text.size()}}},
                         {"layers", layer_descriptors}};
  const std::string manifest_text = manifest.dump();
  KILN_RETURN_IF_ERROR(WriteBlob(dir, manifest_text, &manifest_digest));
  const json index = {{"schemaVersion", 2},
                      {"mediaType", "application/vnd.oci.image.index.v1+json"},
                      {"manifests",
                       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", manifest_digest},
                         {"size", manifest_text.size()},
                         {"platform", {{"architecture", "amd64"}, {"os", "linux"}}},
                         {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
  std::ofstream(dir / "index.json", std::ios::binary | std::ios::trunc) << index.dump();
  std::ofstream(dir / "oci-layout", std::ios::binary | std::ios::trunc)
      << "{\"imageLayoutVersion\":\"1.0.0\"}";
  return manifest_digest;
}

}  // namespace kiln::testing
