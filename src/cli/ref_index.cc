#include "cli/ref_index.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/json.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kFileName[] = "refs.json";

Status ErrnoError(const std::string& what, const fs::path& path) {
  return Status::IOError(what + " " + path.string() + ": " + std::strerror(errno));
}

// An open file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<std::map<std::string, util::Digest>> ReadFile(const fs::path& path) {
  std::map<std::string, util::Digest> refs;
  std::error_code ec;
  if (!fs::exists(path, ec) && !ec) return refs;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  KILN_ASSIGN_OR_RETURN(nlohmann::json doc, util::ParseJson(ss.str(), path.string()));
  if (!doc.is_object()) return Status::InvalidArgument(path.string() + ": expected a JSON object");
  for (const auto& [name, value] : doc.items()) {
    if (!value.is_string()) {
      return Status::InvalidArgument(path.string() + ": \"" + name +
                                     "\": expected a digest string");
    }
    auto digest = util::Digest::Parse(value.get<std::string>());
    if (!digest.ok()) return digest.status().Annotate(path.string() + ": \"" + name + "\"");
    refs.emplace(name, std::move(*digest));
  }
  return refs;
}

Status WriteAtomically(const fs::path& path, const std::string& data) {
  std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
  const int raw = ::mkstemp(tmpl.data());
  if (raw < 0) return ErrnoError("cannot create a temp file beside", path);
  Fd fd(raw);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = ErrnoError("cannot write", tmpl);
      ::unlink(tmpl.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0 ||
      ::rename(tmpl.c_str(), path.c_str()) != 0) {
    Status st = ErrnoError("cannot replace", path);
    ::unlink(tmpl.c_str());
    return st;
  }
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::Ok();
}

}  // namespace

Result<std::map<std::string, util::Digest>> ReadReferences(const fs::path& root) {
  return ReadFile(root / kFileName);
}

Status RecordReference(const fs::path& root, const std::string& name, const util::Digest& digest) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status::IOError("cannot create " + root.string() + ": " + ec.message());
  const fs::path lock_path = root / (std::string(kFileName) + ".lock");
  Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (lock.get() < 0) return ErrnoError("cannot open", lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError("cannot lock", lock_path);
  }
  const fs::path path = root / kFileName;
  KILN_ASSIGN_OR_RETURN(auto refs, ReadFile(path));
  refs[name] = digest;
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& [n, d] : refs) doc[n] = d.str();
  return WriteAtomically(path, util::GoMarshalIndent(doc) + "\n");
}  // the lock is released when `lock` closes

}  // namespace kiln::cli
