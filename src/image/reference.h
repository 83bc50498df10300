// Image references: parsing and normalization of names such as "alpine",
// "ghcr.io/org/app:1.0" or "alpine:3.15@sha256:<hex>".
//
// The grammar and normalization are those of Docker's reference package
// (github.com/docker/distribution/reference v2.8.1, which BuildKit v0.10
// vendors): ParseNormalizedNamed() accepts exactly the strings Docker accepts
// and normalizes them the same way, so the names kiln records in build sources
// ("docker-image://docker.io/library/alpine:latest") are byte-identical to
// BuildKit's. Error messages are kiln's own: they quote the input and say
// what is wrong with it rather than Docker's bare "invalid reference format".
//
// Called by the Dockerfile frontend (FROM, COPY --from, named contexts), the
// image source, the registry client and the exporters.
//
// Thread-safety: pure functions over value types.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::image {

// A parsed, normalized image reference (Docker's reference grammar).
struct Reference {
  std::string domain;  // "docker.io", "ghcr.io", "localhost:5000"
  std::string path;    // "library/alpine", "user/app"
  std::string tag;     // "" when none
  std::string digest;  // "" when none, else "sha256:<hex>" (validated by util::Digest)

  // domain + "/" + path; just path in the degenerate case where Docker's
  // grammar yields no domain (see ParseNormalizedNamed).
  std::string Name() const;
  // Name() [":" tag] ["@" digest]: "docker.io/library/alpine:3.15".
  std::string String() const;
  // Docker's familiar form: "alpine:3.15", "user/app", "ghcr.io/x/y:1". Drops
  // the "docker.io/" domain and, for official images, "library/".
  std::string FamiliarString() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// Docker's ParseNormalizedNamed: "alpine" -> docker.io/library/alpine;
// "user/x" -> docker.io/user/x; a first component containing '.' or ':' or
// equal to "localhost" is the registry; "index.docker.io" -> docker.io. A tag
// and a digest may both be present and both are kept. No tag is added (see
// TagNameOnly).
//
// Errors (kInvalidArgument; the message quotes the input and says why): empty
// input, an upper-case repository ("repository name must be lowercase"), a
// bad tag, a bad or unsupported digest (kiln supports sha256 and sha512;
// Docker would also take sha384), a name that is 64 hex digits only, invalid
// characters or separators, a name longer than 255 characters.
//
// One Docker quirk is kept on purpose: a first component that contains '.' or
// ':' but is not a valid host name ("a_b.c/x") is read as part of the path
// when the whole name is a valid path; the result then has an empty domain.
Result<Reference> ParseNormalizedNamed(std::string_view s);

// Docker's TagNameOnly: adds tag "latest" when there is neither tag nor digest.
Reference TagNameOnly(Reference r);

}  // namespace kiln::image
