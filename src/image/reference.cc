#include "image/reference.h"

#include <vector>

#include "util/digest.h"
#include "util/json.h"

namespace kiln::image {
namespace {

constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kOfficialRepoPrefix = "library/";
constexpr size_t kNameTotalLengthMax = 255;
constexpr size_t kTagLengthMax = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool HasUpper(std::string_view s) {
  for (char c : s) {
    if (IsUpper(c)) return true;
  }
  return false;
}

// One path component: [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
// That is: lowercase alphanumeric runs joined by a single '.', a single '_',
// "__", or any number of '-'; starting and ending with an alphanumeric.
bool IsPathComponent(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsLowerAlnum(s[j])) ++j;
    std::string_view sep = s.substr(i, j - i);
    const bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// One host label: [a-zA-Z0-9] or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9].
bool IsDomainLabel(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

// label(.label)*(:[0-9]+)? -- distribution v2.8.1 has no IPv6 literals.
bool IsDomain(std::string_view s) {
  const size_t colon = s.find(':');
  std::string_view host = s.substr(0, colon);
  if (colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty()) return false;
    for (char c : port) {
      if (!IsDigit(c)) return false;
    }
  }
  size_t start = 0;
  while (true) {
    const size_t dot = host.find('.', start);
    if (!IsDomainLabel(host.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// [\w][\w.-]{0,127}
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > kTagLengthMax || !IsWordChar(s.front())) return false;
  for (char c : s) {
    if (!IsWordChar(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// The digest syntax of the reference grammar:
// [A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}
bool IsDigestSyntax(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view algo = s.substr(0, colon);
  std::string_view hex = s.substr(colon + 1);
  bool component_start = true;
  for (char c : algo) {
    if (component_start) {
      if (!((c >= 'a' && c <= 'z') || IsUpper(c))) return false;
      component_start = false;
    } else if (c == '-' || c == '_' || c == '+' || c == '.') {
      component_start = true;
    } else if (!IsAlnum(c)) {
      return false;
    }
  }
  if (algo.empty() || component_start) return false;
  if (hex.size() < 32) return false;
  for (char c : hex) {
    if (!IsHexDigit(c)) return false;
  }
  return true;
}

bool IsAnchoredIdentifier(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!(IsDigit(c) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status Invalid(std::string_view input, std::string_view why) {
  return Status::InvalidArgument("invalid image reference " + util::GoString(input) + ": " +
                                 std::string(why));
}

std::vector<std::string_view> SplitSlash(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

std::string Reference::Name() const {
  if (domain.empty()) return path;
  return domain + "/" + path;
}

std::string Reference::String() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string Reference::FamiliarString() const {
  std::string s;
  if (domain == kDefaultDomain) {
    std::string_view p = path;
    if (p.starts_with(kOfficialRepoPrefix) &&
        p.substr(kOfficialRepoPrefix.size()).find('/') == std::string_view::npos) {
      p.remove_prefix(kOfficialRepoPrefix.size());
    }
    s = std::string(p);
  } else {
    s = Name();
  }
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Result<Reference> ParseNormalizedNamed(std::string_view s) {
  if (s.empty()) return Invalid(s, "reference is empty");
  if (IsAnchoredIdentifier(s)) {
    return Invalid(s, "a name cannot be 64 hexadecimal digits (that looks like an image ID)");
  }

  // Split off the registry the way Docker does, before any validation.
  std::string domain;
  std::string_view remainder;
  const size_t first_slash = s.find('/');
  std::string_view first = s.substr(0, first_slash);
  if (first_slash == std::string_view::npos ||
      (first.find_first_of(".:") == std::string_view::npos && first != "localhost")) {
    domain = kDefaultDomain;
    remainder = s;
  } else {
    domain = first;
    remainder = s.substr(first_slash + 1);
  }
  if (domain == kLegacyDefaultDomain) domain = kDefaultDomain;
  std::string rest(remainder);
  if (domain == kDefaultDomain && remainder.find('/') == std::string_view::npos) {
    rest = std::string(kOfficialRepoPrefix) + rest;
  }
  if (HasUpper(remainder.substr(0, remainder.find(':')))) {
    return Invalid(s, "repository name must be lowercase");
  }

  // Parse domain + "/" + rest with the reference grammar:
  //   name [":" tag] ["@" digest]
  const std::string full = domain + "/" + rest;
  std::string_view name_tag = full;
  std::string_view digest;
  bool has_digest = false;
  if (const size_t at = name_tag.find('@'); at != std::string_view::npos) {
    digest = name_tag.substr(at + 1);
    name_tag = name_tag.substr(0, at);
    has_digest = true;
  }
  // A tag cannot hold '/' or ':', and the name holds ':' only in a port that
  // is followed by '/', so a ':' after the last '/' starts the tag.
  std::string_view name = name_tag;
  std::string_view tag;
  bool has_tag = false;
  const size_t last_slash = name_tag.rfind('/');
  if (const size_t colon = name_tag.rfind(':');
      colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    name = name_tag.substr(0, colon);
    tag = name_tag.substr(colon + 1);
    has_tag = true;
  }

  std::vector<std::string_view> parts = SplitSlash(name);
  Reference ref;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!IsPathComponent(parts[i])) {
      const std::string_view bad = parts[i];
      if (bad.empty()) return Invalid(s, "repository name has an empty path component");
      if (HasUpper(bad)) return Invalid(s, "repository name must be lowercase");
      return Invalid(s, "invalid repository name component " + util::GoString(bad) +
                            ": use lowercase letters and digits, separated by '.', '_', '__' "
                            "or dashes, starting and ending with a letter or digit");
    }
  }
  if (parts.size() >= 2 && IsDomain(parts[0])) {
    ref.domain = std::string(parts[0]);
    ref.path = std::string(name.substr(parts[0].size() + 1));
  } else if (IsPathComponent(parts[0])) {
    ref.path = std::string(name);  // Docker's grammar reads it as path only.
  } else {
    return Invalid(s, "invalid registry host " + util::GoString(parts[0]));
  }
  if (name.size() > kNameTotalLengthMax) {
    return Invalid(s, "repository name must not be more than 255 characters (found " +
                          std::to_string(name.size()) + ")");
  }
  if (has_tag) {
    if (!IsTag(tag)) {
      return Invalid(s, "invalid tag " + util::GoString(tag) +
                            ": a tag is 1 to 128 letters, digits, '_', '.' or '-', and does "
                            "not start with '.' or '-'");
    }
    ref.tag = std::string(tag);
  }
  if (has_digest) {
    if (!IsDigestSyntax(digest)) {
      return Invalid(s, "invalid digest " + util::GoString(digest) +
                            ": expected \"algorithm:hex\", e.g. sha256:<64 hex digits>");
    }
    const std::string_view algo = digest.substr(0, digest.find(':'));
    if (algo != "sha256" && algo != "sha512") {
      return Invalid(s, "unsupported digest algorithm " + util::GoString(algo) +
                            " (kiln supports sha256 and sha512)");
    }
    auto parsed = util::Digest::Parse(digest);
    if (!parsed.ok()) return Invalid(s, parsed.status().message());
    ref.digest = parsed->str();
  }
  return ref;
}

Reference TagNameOnly(Reference r) {
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  return r;
}

}  // namespace kiln::image
