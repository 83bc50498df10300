// RUN --mount: parsing and validation, after BuildKit v0.10's
// commands_runmount.go (keys, defaults and error texts) plus the checks its
// converter makes at dispatch (secret ids and targets, ssh sources).

#include <string>
#include <string_view>
#include <vector>

#include "frontend/dockerfile/instructions/instructions.h"
#include "frontend/dockerfile/instructions/internal.h"
#include "util/strings.h"

namespace kiln::dockerfile {

namespace {

using internal::ParseGoBool;
using internal::ParseGoUint32;
using internal::WithSuggestion;

std::string_view MountTypeName(MountType type) {
  switch (type) {
    case MountType::kBind:
      return "bind";
    case MountType::kCache:
      return "cache";
    case MountType::kTmpfs:
      return "tmpfs";
    case MountType::kSecret:
      return "secret";
    case MountType::kSsh:
      return "ssh";
  }
  return "bind";
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return ".";
  if (path == "/") return "/";
  const size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

Status Invalid(std::string message) { return Status::InvalidArgument(std::move(message)); }

Result<Mount> ParseMountImpl(std::string_view value, const WordExpander* expand) {
  auto fields = internal::ReadCsvRecord(value);
  if (!fields.ok()) return fields.status().Annotate("failed to parse csv mounts");

  Mount m;
  bool read_only_auto = true;
  std::optional<std::string> sharing;
  std::string id;

  for (const std::string& field : *fields) {
    const size_t eq = field.find('=');
    const std::string key = util::AsciiLower(std::string_view(field).substr(0, eq));
    const std::string type_name(MountTypeName(m.type));
    const bool secret_or_ssh = m.type == MountType::kSecret || m.type == MountType::kSsh;
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro") {
        m.read_only = true;
        read_only_auto = false;
        continue;
      }
      if (key == "readwrite" || key == "rw") {
        m.read_only = false;
        read_only_auto = false;
        continue;
      }
      if (key == "required") {
        if (!secret_or_ssh) {
          return Invalid("unexpected key '" + key + "' for mount type '" + type_name + "'");
        }
        m.required = true;
        continue;
      }
      return Invalid("invalid field '" + field + "' must be a key=value pair");
    }

    std::string val = field.substr(eq + 1);
    if (expand != nullptr) {
      auto expanded = (*expand)(val);
      if (!expanded.ok()) return expanded.status();
      val = std::move(expanded).value();
    }

    if (key == "type") {
      const std::string lower = util::AsciiLower(val);
      if (lower == "bind") {
        m.type = MountType::kBind;
      } else if (lower == "cache") {
        m.type = MountType::kCache;
      } else if (lower == "tmpfs") {
        m.type = MountType::kTmpfs;
      } else if (lower == "secret") {
        m.type = MountType::kSecret;
      } else if (lower == "ssh") {
        m.type = MountType::kSsh;
      } else {
        return Invalid(WithSuggestion("unsupported mount type " + GoQuote(val), val,
                                      {"bind", "cache", "tmpfs", "secret", "ssh"}, true));
      }
    } else if (key == "from") {
      m.from = val;
    } else if (key == "source" || key == "src") {
      m.source = val;
    } else if (key == "target" || key == "dst" || key == "destination") {
      m.target = val;
    } else if (key == "readonly" || key == "ro" || key == "readwrite" || key == "rw") {
      const std::optional<bool> b = ParseGoBool(val);
      if (!b) return Invalid("invalid value for " + key + ": " + val);
      m.read_only = (key == "readonly" || key == "ro") ? *b : !*b;
      read_only_auto = false;
    } else if (key == "required") {
      if (!secret_or_ssh) {
        return Invalid("unexpected key '" + key + "' for mount type '" + type_name + "'");
      }
      const std::optional<bool> b = ParseGoBool(val);
      if (!b) return Invalid("invalid value for " + key + ": " + val);
      m.required = *b;
    } else if (key == "size") {
      if (m.type != MountType::kTmpfs) {
        return Invalid("unexpected key '" + key + "' for mount type '" + type_name + "'");
      }
      auto bytes = internal::RamInBytes(val);
      if (!bytes.ok()) return Invalid("invalid value for " + key + ": " + val);
      m.size_bytes = *bytes;
    } else if (key == "id") {
      id = val;
    } else if (key == "sharing") {
      const std::string lower = util::AsciiLower(val);
      if (lower != "shared" && lower != "private" && lower != "locked") {
        return Invalid(WithSuggestion("unsupported sharing value " + GoQuote(val), val,
                                      {"shared", "private", "locked"}, true));
      }
      sharing = lower;
    } else if (key == "mode") {
      const std::optional<std::uint64_t> mode = ParseGoUint32(val, 8);
      if (!mode) return Invalid("invalid value " + val + " for mode");
      m.mode = static_cast<unsigned>(*mode);
    } else if (key == "uid" || key == "gid") {
      const std::optional<std::uint64_t> n = ParseGoUint32(val, 10);
      if (!n) return Invalid("invalid value " + val + " for " + key);
      (key == "uid" ? m.uid : m.gid) = static_cast<unsigned>(*n);
    } else {
      return Invalid(
          WithSuggestion("unexpected key '" + key + "' in '" + field + "'", key,
                         {"type", "from", "source", "target", "readonly", "id", "sharing",
                          "required", "mode", "uid", "gid", "src", "dst", "ro", "rw", "readwrite"},
                         true));
    }
  }

  const std::string type_q = GoQuote(MountTypeName(m.type));
  const bool file_info_allowed =
      m.type == MountType::kSecret || m.type == MountType::kSsh || m.type == MountType::kCache;
  if (!file_info_allowed) {
    if (m.mode) return Invalid("mode not allowed for " + type_q + " type mounts");
    if (m.uid) return Invalid("uid not allowed for " + type_q + " type mounts");
    if (m.gid) return Invalid("gid not allowed for " + type_q + " type mounts");
  }
  if (read_only_auto) {
    m.read_only = !(m.type == MountType::kCache || m.type == MountType::kTmpfs);
  }
  if (m.type == MountType::kSecret) {
    if (!m.from.empty()) return Invalid("secret mount should not have a from");
    if (sharing) return Invalid("secret mount should not define sharing");
  }
  if (sharing && m.type != MountType::kCache) {
    return Invalid("invalid cache sharing set for " + std::string(MountTypeName(m.type)) +
                   " mount");
  }
  if (sharing == "private") m.sharing = CacheSharing::kPrivate;
  if (sharing == "locked") m.sharing = CacheSharing::kLocked;

  // Defaults BuildKit's converter fills in at dispatch.
  switch (m.type) {
    case MountType::kSecret:
      // The secret's id is source=, else id=, else the target's base name;
      // the target defaults to /run/secrets/<id>.
      m.secret_or_ssh_id = !m.source.empty() ? m.source : id;
      if (m.secret_or_ssh_id.empty()) {
        if (m.target.empty()) return Invalid("one of source, target required");
        m.secret_or_ssh_id = BaseName(m.target);
      }
      if (m.target.empty()) m.target = "/run/secrets/" + BaseName(m.secret_or_ssh_id);
      break;
    case MountType::kSsh:
      // The target stays empty when not given: the converter numbers the
      // agent sockets (/run/buildkit/ssh_agent.<n>).
      if (!m.source.empty()) return Invalid("ssh does not support source");
      m.secret_or_ssh_id = id.empty() ? "default" : id;
      break;
    case MountType::kCache:
      m.cache_id = id.empty() ? m.target : id;
      [[fallthrough]];
    case MountType::kBind:
    case MountType::kTmpfs:
      if (m.target.empty()) {
        return Invalid("mount type " + type_q + " requires a target (target=<path>)");
      }
      break;
  }
  return m;
}

}  // namespace

Result<Mount> ParseMount(std::string_view value) { return ParseMountImpl(value, nullptr); }

Result<Mount> ParseMount(std::string_view value, const WordExpander& expand_value) {
  return ParseMountImpl(value, &expand_value);
}

Status ExpandMounts(RunCommand& run, const WordExpander& expand_word) {
  std::vector<Mount> mounts;
  mounts.reserve(run.mount_flags.size());
  for (const std::string& flag : run.mount_flags) {
    auto mount = ParseMount(flag, expand_word);
    if (!mount.ok()) return mount.status();
    mounts.push_back(std::move(mount).value());
  }
  run.mounts = std::move(mounts);
  return Status::Ok();
}

namespace internal {

// The check BuildKit makes while parsing, before variables are known: the
// value is CSV, fields without '=' are flags, and `from` takes no variables
// (the stage graph is built before expansion).
Status CheckMountSyntax(std::string_view value) {
  auto fields = ReadCsvRecord(value);
  if (!fields.ok()) return fields.status().Annotate("failed to parse csv mounts");
  for (const std::string& field : *fields) {
    const size_t eq = field.find('=');
    const std::string key = util::AsciiLower(std::string_view(field).substr(0, eq));
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro" || key == "readwrite" || key == "rw" ||
          key == "required") {
        continue;
      }
      return Status::InvalidArgument("invalid field '" + field + "' must be a key=value pair");
    }
    if (key == "from") {
      const std::string_view val = std::string_view(field).substr(eq + 1);
      const size_t dollar = val.find('$');
      if (dollar != std::string_view::npos && dollar + 1 < val.size()) {
        return Status::InvalidArgument(
            "'from' doesn't support variable expansion, define alias stage instead");
      }
    }
  }
  return Status::Ok();
}

}  // namespace internal

}  // namespace kiln::dockerfile
