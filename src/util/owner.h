// Ownership of temporary files under a kiln state root, so that what a
// killed kiln left can be told from what a live one is using.
//
// Every process has a tag (OwnerTag(): "k" and 12 hex digits, random, made
// once). Temporary entries a process makes under the root (content/ingest
// files, snapshots/.tmp and .mounts entries, executor bundles and runtime
// state, i.e. container ids) are named "<tag>-...". A process that works on
// a root registers with OwnerRegistry::Register(ROOT): ROOT/owners/<tag> is
// created and locked (flock LOCK_EX) for the life of the returned object,
// before the process makes any entry; the kernel drops the lock however the
// process dies. An entry is stale when its tag's owner file exists and is
// not locked, or when no owner file has that tag (the owner is gone and its
// file was already reaped).
//
// Thread-safety: OwnerTag() and TagOf() are safe from any thread; an
// OwnerRegistry and a StaleOwners are used by one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "util/io.h"
#include "util/status.h"

namespace kiln::util {

// This process's tag (a forked child gets a new one on its first call).
const std::string& OwnerTag();

// What a module's reaper removed.
struct ReapStats {
  uint64_t items = 0;
  uint64_t bytes = 0;
  void Add(const ReapStats& o) {
    items += o.items;
    bytes += o.bytes;
  }
};

// Whether the temporary entry called `name` belongs to no live process.
using StaleFn = std::function<bool(std::string_view name)>;

// The tag an entry name starts with ("k" + 12 hex digits, then '-'), or
// nullopt for a name made without one (an older kiln's).
std::optional<std::string_view> TagOf(std::string_view name);

// This process's claim on ROOT: holds ROOT/owners/<tag> locked until
// destroyed (or the process dies), then removes it.
class OwnerRegistration {
 public:
  OwnerRegistration() = default;
  OwnerRegistration(OwnerRegistration&&) noexcept = default;
  OwnerRegistration& operator=(OwnerRegistration&&) noexcept = default;
  ~OwnerRegistration();

  static Result<OwnerRegistration> Register(const std::filesystem::path& root);

 private:
  std::filesystem::path path_;
  UniqueFd fd_;
};

// The verdict on the owners of ROOT's temporary entries, taken once: for
// each owner file, whether its process is alive. The owners found dead stay
// locked by this object until it is destroyed, which then removes their
// files, so two processes never reap the same owner at once and a reaper
// sees an owner being reaped as alive.
class StaleOwners {
 public:
  static Result<StaleOwners> Find(const std::filesystem::path& root);
  StaleOwners(StaleOwners&&) noexcept = default;
  ~StaleOwners();

  // True when an entry named `name` belongs to no live process: its tag is
  // one of a dead owner's, or no owner file has it. A name without a tag
  // is stale only when `untagged_stale` (the caller holds the root
  // exclusively, so no other kiln can be using it).
  bool IsStale(std::string_view name, bool untagged_stale) const;
  // True when `tag` has an owner file that is locked by a live process.
  bool IsLive(std::string_view tag) const;

 private:
  StaleOwners() = default;
  std::filesystem::path dir_;
  std::map<std::string, UniqueFd, std::less<>> dead_;  // held locks
  std::map<std::string, bool, std::less<>> live_;
};

}  // namespace kiln::util
