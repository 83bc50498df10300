#include "util/userdb.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace kiln::util {
namespace {

// Docker and runc accept ids up to 2^31-1 (32-bit compatibility).
constexpr unsigned long long kMaxId = (1ull << 31) - 1;
// /etc/passwd and /etc/group larger than this are refused rather than read.
constexpr size_t kMaxFileSize = 16u << 20;

struct PasswdEntry {
  std::string name;
  unsigned uid = 0;
  unsigned gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  unsigned gid = 0;
  std::vector<std::string> members;
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Calls `fn` with each non-blank, non-comment line, trimmed.
template <typename Fn>
void ForEachLine(std::string_view text, Fn fn) {
  for (std::string_view line : Split(text, '\n')) {
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    fn(line);
  }
}

// Lenient number parse for file fields: a malformed field reads as 0, as the
// C library and Docker's parser do.
unsigned FieldNumber(std::string_view s) {
  unsigned long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > kMaxId) return 0;
  }
  return static_cast<unsigned>(v);
}

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  ForEachLine(text, [&](std::string_view line) {
    // name:password:uid:gid:gecos:home:shell
    std::vector<std::string_view> f = Split(line, ':');
    PasswdEntry e;
    e.name = std::string(f[0]);
    if (f.size() > 2) e.uid = FieldNumber(f[2]);
    if (f.size() > 3) e.gid = FieldNumber(f[3]);
    if (f.size() > 5) e.home = std::string(f[5]);
    out.push_back(std::move(e));
  });
  return out;
}

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> out;
  ForEachLine(text, [&](std::string_view line) {
    // name:password:gid:member,member
    std::vector<std::string_view> f = Split(line, ':');
    GroupEntry e;
    e.name = std::string(f[0]);
    if (f.size() > 2) e.gid = FieldNumber(f[2]);
    if (f.size() > 3 && !f[3].empty()) {
      for (std::string_view m : Split(f[3], ',')) e.members.emplace_back(Trim(m));
    }
    out.push_back(std::move(e));
  });
  return out;
}

// One side of "user:group": a name, or an id when it is all digits.
struct IdArg {
  std::string name;
  std::optional<unsigned> id;
};

Result<IdArg> ParseIdArg(std::string_view s, std::string_view what) {
  IdArg arg;
  arg.name = std::string(s);
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return arg;
  }
  unsigned long long v = 0;
  for (char c : s) {
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > kMaxId) {
      return Status::InvalidArgument(std::string(what) + " " + std::string(s) +
                                     " is out of range: uids and gids must be in range 0-" +
                                     std::to_string(kMaxId));
    }
  }
  arg.id = static_cast<unsigned>(v);
  return arg;
}

// Reads `path` (relative to the root) resolved inside the root; "" when it
// does not exist.
Result<std::string> ReadInRoot(const RootDir& root, const char* path) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  // O_NONBLOCK: a FIFO planted at the path must not hang the build.
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(syscall(SYS_openat2, root.fd(), path, &how, sizeof how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::string();
    return Status::IOError("cannot open /" + std::string(path) + " in " + root.path().string() +
                           ": " + std::strerror(errno));
  }
  UniqueFd owned(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return Status::IOError("cannot stat /" + std::string(path) + " in " + root.path().string() +
                           ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition(
        "/" + std::string(path) + " in " + root.path().string() +
        " is not a regular file; replace it with a passwd/group file");
  }
  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("cannot read /" + std::string(path) + " in " + root.path().string() +
                             ": " + std::strerror(errno));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxFileSize) {
      return Status::ResourceExhausted("/" + std::string(path) + " in " + root.path().string() +
                                       " is larger than " + std::to_string(kMaxFileSize) +
                                       " bytes");
    }
  }
  return data;
}

}  // namespace

Result<Identity> ResolveUserFrom(std::string_view passwd, std::string_view group,
                                 std::string_view spec) {
  std::string_view user_part = spec;
  std::string_view group_part;
  bool has_group = false;
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    user_part = spec.substr(0, colon);
    group_part = spec.substr(colon + 1);
    has_group = !group_part.empty();
  }
  KILN_ASSIGN_OR_RETURN(IdArg user_arg, ParseIdArg(user_part, "user"));
  IdArg group_arg;
  if (has_group) {
    KILN_ASSIGN_OR_RETURN(group_arg, ParseIdArg(group_part, "group"));
  }

  Identity id;
  // The user: "" is uid 0; a number matches by uid only, a name by name.
  const PasswdEntry* matched = nullptr;
  std::vector<PasswdEntry> users = ParsePasswd(passwd);
  for (const PasswdEntry& u : users) {
    bool hit = user_part.empty() ? u.uid == 0
               : user_arg.id     ? u.uid == *user_arg.id
                                 : u.name == user_arg.name;
    if (hit) {
      matched = &u;  // first match wins
      break;
    }
  }
  if (matched) {
    id.uid = matched->uid;
    id.gid = matched->gid;
    if (!matched->home.empty()) id.home = matched->home;
  } else if (!user_part.empty()) {
    if (!user_arg.id) {
      return Status::NotFound("unable to find user " + user_arg.name +
                              ": no matching entries in /etc/passwd");
    }
    id.uid = *user_arg.id;  // a numeric user need not be listed; gid stays 0
  }

  std::vector<GroupEntry> groups = ParseGroup(group);
  if (has_group) {
    // An explicit group replaces the primary group, and (as in runc and
    // BuildKit) no supplementary groups are added.
    const GroupEntry* g = nullptr;
    for (const GroupEntry& e : groups) {
      if (group_arg.id ? e.gid == *group_arg.id : e.name == group_arg.name) {
        g = &e;
        break;
      }
    }
    if (g) {
      id.gid = g->gid;
    } else if (group_arg.id) {
      id.gid = *group_arg.id;
    } else {
      return Status::NotFound("unable to find group " + group_arg.name +
                              ": no matching entries in /etc/group");
    }
  } else if (matched) {
    // Supplementary groups: every group that lists the user by name.
    for (const GroupEntry& e : groups) {
      if (std::find(e.members.begin(), e.members.end(), matched->name) != e.members.end() &&
          e.gid != id.gid) {
        id.additional_gids.push_back(e.gid);
      }
    }
    std::sort(id.additional_gids.begin(), id.additional_gids.end());
    id.additional_gids.erase(std::unique(id.additional_gids.begin(), id.additional_gids.end()),
                             id.additional_gids.end());
  }
  return id;
}

Result<Identity> ResolveUser(const RootDir& root, std::string_view spec) {
  KILN_ASSIGN_OR_RETURN(std::string passwd, ReadInRoot(root, "etc/passwd"));
  KILN_ASSIGN_OR_RETURN(std::string group, ReadInRoot(root, "etc/group"));
  return ResolveUserFrom(passwd, group, spec);
}

}  // namespace kiln::util
