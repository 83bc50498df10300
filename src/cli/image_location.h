// ImageLocation: where `kiln inspect` and `kiln copy` find or put an image,
// as given on the command line:
//
//   docker://REF  or a bare REF      an image in a registry
//   oci-layout://PATH[:TAG]          an OCI image layout directory
//   oci-archive://FILE[:TAG]         an OCI image archive (a tar)
//
// TAG selects (or, when writing, names) the index.json entry whose
// `org.opencontainers.image.ref.name` annotation is TAG. A PATH whose last
// ':' is followed by something that is not a valid tag (it contains '/', say)
// is taken whole, so "oci-layout:///a:b/c" is the directory "/a:b/c".
//
// Called by registry_commands.cc. Thread-safety: value types, pure functions.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "image/reference.h"
#include "util/status.h"

namespace kiln::cli {

enum class Transport {
  kRegistry,    // docker://
  kOciLayout,   // oci-layout://
  kOciArchive,  // oci-archive://
};

struct ImageLocation {
  Transport transport = Transport::kRegistry;
  // kRegistry: the normalized reference ("latest" added when it has neither
  // tag nor digest).
  image::Reference reference;
  // kOciLayout, kOciArchive: the directory or file, and the tag ("" = none).
  std::filesystem::path path;
  std::string tag;

  bool is_registry() const { return transport == Transport::kRegistry; }
  // "docker://docker.io/library/busybox:latest", "oci-layout:///tmp/x:v1".
  std::string String() const;
};

// Parses one location. kInvalidArgument naming the input: an unknown
// transport ("foo://..."), an empty path, a malformed reference (the message
// of image::ParseNormalizedNamed).
Result<ImageLocation> ParseImageLocation(std::string_view text);

}  // namespace kiln::cli
