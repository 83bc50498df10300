#include "cli/image_location.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kDockerPrefix = "docker://";
constexpr std::string_view kLayoutPrefix = "oci-layout://";
constexpr std::string_view kArchivePrefix = "oci-archive://";

// Docker's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool word =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

Result<ImageLocation> ParseLocal(Transport transport, std::string_view text,
                                 std::string_view rest) {
  ImageLocation loc;
  loc.transport = transport;
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && IsTag(rest.substr(colon + 1))) {
    loc.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) {
    return Status::InvalidArgument("invalid image location \"" + std::string(text) +
                                   "\": the path is empty");
  }
  loc.path = std::filesystem::path(rest);
  return loc;
}

}  // namespace

std::string ImageLocation::String() const {
  switch (transport) {
    case Transport::kRegistry:
      return std::string(kDockerPrefix) + reference.String();
    case Transport::kOciLayout:
    case Transport::kOciArchive: {
      std::string s(transport == Transport::kOciLayout ? kLayoutPrefix : kArchivePrefix);
      s += path.string();
      if (!tag.empty()) s += ":" + tag;
      return s;
    }
  }
  return "";
}

Result<ImageLocation> ParseImageLocation(std::string_view text) {
  if (text.starts_with(kLayoutPrefix)) {
    return ParseLocal(Transport::kOciLayout, text, text.substr(kLayoutPrefix.size()));
  }
  if (text.starts_with(kArchivePrefix)) {
    return ParseLocal(Transport::kOciArchive, text, text.substr(kArchivePrefix.size()));
  }
  std::string_view ref = text;
  if (ref.starts_with(kDockerPrefix)) {
    ref.remove_prefix(kDockerPrefix.size());
  } else if (const size_t scheme = ref.find("://"); scheme != std::string_view::npos) {
    return Status::InvalidArgument("invalid image location \"" + std::string(text) +
                                   "\": unknown transport \"" + std::string(ref.substr(0, scheme)) +
                                   "\" (expected docker, oci-layout or oci-archive)");
  }
  KILN_ASSIGN_OR_RETURN(image::Reference parsed, image::ParseNormalizedNamed(ref));
  ImageLocation loc;
  loc.reference = image::TagNameOnly(std::move(parsed));
  return loc;
}

}  // namespace kiln::cli
