#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace kiln::util {

namespace fs = std::filesystem;

namespace {

constexpr size_t kTagHex = 12;

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

std::string MakeTag() {
  unsigned char raw[kTagHex / 2];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    KILN_CHECK(n > 0 || errno == EINTR, "getrandom failed");
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string tag = "k";
  for (unsigned char c : raw) {
    tag += kHex[c >> 4];
    tag += kHex[c & 15];
  }
  return tag;
}

bool ValidTag(std::string_view s) {
  if (s.size() != kTagHex + 1 || s[0] != 'k') return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (!IsHex(s[i])) return false;
  }
  return true;
}

}  // namespace

const std::string& OwnerTag() {
  // Made again in a forked child (one that does not exec is another owner).
  static std::mutex mu;
  static std::string tag;
  static std::atomic<pid_t> made_in{0};
  const pid_t self = ::getpid();
  if (made_in.load() != self) {
    std::lock_guard<std::mutex> lock(mu);
    if (made_in.load() != self) {
      tag = MakeTag();
      made_in.store(self);
    }
  }
  return tag;
}

std::optional<std::string_view> TagOf(std::string_view name) {
  if (name.size() < kTagHex + 2 || name[kTagHex + 1] != '-') return std::nullopt;
  std::string_view tag = name.substr(0, kTagHex + 1);
  if (!ValidTag(tag)) return std::nullopt;
  return tag;
}

OwnerRegistration::~OwnerRegistration() {
  if (fd_.valid()) ::unlink(path_.c_str());
}

Result<OwnerRegistration> OwnerRegistration::Register(const fs::path& root) {
  const fs::path dir = root / "owners";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::IOError("cannot create " + dir.string() + ": " + std::strerror(errno));
  // Locked under a name reapers skip, then renamed into place: a reaper
  // never sees this owner's file unlocked.
  const fs::path tmp = dir / ("." + OwnerTag());
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid())
    return Status::IOError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  if (::flock(fd.get(), LOCK_EX) != 0)
    return Status::IOError("cannot lock " + tmp.string() + ": " + std::strerror(errno));
  OwnerRegistration r;
  r.path_ = dir / OwnerTag();
  if (::rename(tmp.c_str(), r.path_.c_str()) != 0)
    return Status::IOError("cannot create " + r.path_.string() + ": " + std::strerror(errno));
  r.fd_ = std::move(fd);
  return r;
}

Result<StaleOwners> StaleOwners::Find(const fs::path& root) {
  StaleOwners s;
  s.dir_ = root / "owners";
  std::error_code ec;
  fs::directory_iterator it(s.dir_, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return s;
    return Status::IOError("cannot list " + s.dir_.string() + ": " + ec.message());
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename();
    if (!ValidTag(name)) continue;  // ".<tag>": being registered
    if (name == OwnerTag()) {
      s.live_[name] = true;
      continue;
    }
    UniqueFd fd(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) continue;  // reaped meanwhile
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      s.live_[name] = true;  // its process, or another reaper, holds it
      continue;
    }
    // Still the owner file we locked (not removed and re-made meanwhile)?
    struct stat a, b;
    if (::fstat(fd.get(), &a) != 0 || ::lstat(it->path().c_str(), &b) != 0 ||
        a.st_ino != b.st_ino) {
      continue;
    }
    s.live_[name] = false;
    s.dead_.emplace(name, std::move(fd));
  }
  if (ec) return Status::IOError("cannot list " + s.dir_.string() + ": " + ec.message());
  return s;
}

StaleOwners::~StaleOwners() {
  for (const auto& [tag, fd] : dead_) ::unlink((dir_ / tag).c_str());
}

bool StaleOwners::IsLive(std::string_view tag) const {
  auto it = live_.find(tag);
  return it != live_.end() && it->second;
}

bool StaleOwners::IsStale(std::string_view name, bool untagged_stale) const {
  std::optional<std::string_view> tag = TagOf(name);
  if (!tag) return untagged_stale;
  return !IsLive(*tag);
}

}  // namespace kiln::util
