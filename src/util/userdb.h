// Users and groups of an image's filesystem: resolves a Dockerfile USER or
// --chown value ("app", "1000", "app:staff", "1000:50") against the
// image's /etc/passwd and /etc/group, read inside the root (util/rootfs.h),
// as Docker does: a numeric user that /etc/passwd does not list is taken
// as is with gid 0 (or the given group); a name that is not listed is an
// error naming it and the file; supplementary groups are the groups of
// /etc/group that list the user by name.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/rootfs.h"
#include "util/status.h"

namespace kiln::util {

struct Identity {
  unsigned uid = 0;
  unsigned gid = 0;
  std::vector<unsigned> additional_gids;  // sorted, without gid
  std::string home = "/";                 // from /etc/passwd, "/" when unknown
};

// `spec` is "user[:group]"; "" is root. Missing files count as empty.
Result<Identity> ResolveUser(const RootDir& root, std::string_view spec);
// The same from file contents (for tests and callers holding the files).
Result<Identity> ResolveUserFrom(std::string_view passwd, std::string_view group,
                                 std::string_view spec);

}  // namespace kiln::util
