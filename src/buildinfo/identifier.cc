#include "buildinfo/identifier.h"

#include <vector>

#include "buildinfo/buildinfo.h"
#include "buildinfo/redact.h"
#include "image/reference.h"
#include "util/json.h"

namespace kiln::buildinfo {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool HasExplicitTransport(std::string_view remote) {
  return StartsWith(remote, "http://") || StartsWith(remote, "https://") ||
         StartsWith(remote, "git://") || StartsWith(remote, "ssh://");
}

Status BadIdentifier(std::string_view id, std::string_view why) {
  return Status::InvalidArgument("invalid source identifier " + util::GoString(RedactText(id)) +
                                 ": " + std::string(why));
}

}  // namespace

bool IsScpLikeRemote(std::string_view s) {
  size_t at = 0;
  auto user_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  };
  while (at < s.size() && user_char(s[at])) ++at;
  if (at == 0 || at >= s.size() || s[at] != '@') return false;
  size_t colon = at + 1;
  while (colon < s.size() && (user_char(s[colon]) || s[colon] == '.') && s[colon] != '_') ++colon;
  return colon > at + 1 && colon < s.size() && s[colon] == ':';
}

std::string CleanPath(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view part = path.substr(i, j - i);
    if (part.empty() || part == ".") {
      // skip
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
    } else {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out = rooted ? "/" : "";
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out.push_back('/');
    out.append(parts[k]);
  }
  return out.empty() ? "." : out;
}

Result<Identifier> ParseIdentifier(std::string_view id) {
  const size_t sep = id.find("://");
  if (sep == std::string_view::npos) return BadIdentifier(id, "expected scheme://…");
  const std::string_view scheme = id.substr(0, sep);
  const std::string_view rest = id.substr(sep + 3);
  Identifier out;
  out.text = std::string(id);
  if (scheme == "docker-image") {
    out.kind = SourceKind::kDockerImage;
    // Lenient, like containerd's parser: the reported text is kept as is
    // (R15), so only what cannot be a reference at all is refused.
    if (rest.empty()) return BadIdentifier(id, "empty image reference");
    for (char c : rest) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        return BadIdentifier(id, "whitespace in image reference");
      }
    }
    if (rest.find("://") != std::string_view::npos || rest[0] == '/' || rest[0] == ':' ||
        rest[0] == '@') {
      return BadIdentifier(id, "invalid image reference");
    }
    out.image_ref = std::string(rest);
  } else if (scheme == "git") {
    out.kind = SourceKind::kGit;
    const size_t hash = rest.find('#');
    std::string_view remote = rest.substr(0, hash);
    if (remote.empty()) return BadIdentifier(id, "empty git remote");
    if (HasExplicitTransport(remote) || IsScpLikeRemote(remote)) {
      out.git.remote = std::string(remote);
    } else {
      out.git.remote = "https://" + std::string(remote);
    }
    if (hash != std::string_view::npos) {
      const std::string_view fragment = rest.substr(hash + 1);
      const size_t colon = fragment.find(':');
      out.git.ref = std::string(fragment.substr(0, colon));
      if (colon != std::string_view::npos) {
        const std::string_view subdir = fragment.substr(colon + 1);
        const std::string cleaned = CleanPath(subdir);
        if (!subdir.empty() && cleaned != "/" && cleaned != ".")
          out.git.subdir = std::string(subdir);
      }
    }
  } else if (scheme == "http" || scheme == "https") {
    out.kind = SourceKind::kHttp;
    out.url = std::string(id);
  } else if (scheme == "local") {
    out.kind = SourceKind::kLocal;
  } else {
    return BadIdentifier(id, "unknown source scheme " + util::GoString(scheme));
  }
  return out;
}

std::string ReportedRef(const Identifier& id) {
  switch (id.kind) {
    case SourceKind::kDockerImage:
      return id.image_ref;
    case SourceKind::kGit: {
      std::string ref = id.git.remote;
      if (!id.git.ref.empty()) ref += "#" + id.git.ref;
      if (!id.git.subdir.empty()) ref += ":" + id.git.subdir;
      return RedactUrl(ref);
    }
    case SourceKind::kHttp:
      return RedactUrl(id.url);
    case SourceKind::kLocal:
      break;
  }
  return "";
}

std::string_view SourceTypeOf(SourceKind kind) {
  switch (kind) {
    case SourceKind::kDockerImage:
      return kTypeDockerImage;
    case SourceKind::kGit:
      return kTypeGit;
    case SourceKind::kHttp:
      return kTypeHttp;
    case SourceKind::kLocal:
      break;
  }
  return "";
}

GitSourceSpec MakeGitIdentifier(std::string_view remote, std::string_view ref) {
  GitSourceSpec spec;
  std::string_view canonical = remote;
  if (StartsWith(remote, "https://") && !IsScpLikeRemote(remote.substr(8)) &&
      !HasExplicitTransport(remote.substr(8))) {
    canonical = remote.substr(8);
  }
  spec.identifier = "git://" + std::string(canonical);
  if (!ref.empty()) spec.identifier += "#" + std::string(ref);
  spec.full_url = HasExplicitTransport(remote) || IsScpLikeRemote(remote)
                      ? std::string(remote)
                      : "https://" + std::string(remote);
  return spec;
}

std::string MakeHttpIdentifier(std::string_view url) { return std::string(url); }

Result<std::string> NormalizeImageRef(std::string_view ref) {
  KILN_ASSIGN_OR_RETURN(image::Reference r, image::ParseNormalizedNamed(ref));
  return image::TagNameOnly(std::move(r)).String();
}

Result<std::string> MakeImageIdentifier(std::string_view ref) {
  KILN_ASSIGN_OR_RETURN(std::string n, NormalizeImageRef(ref));
  return "docker-image://" + n;
}

}  // namespace kiln::buildinfo
