// Platforms: which OS and CPU an image is for ("linux/amd64",
// "linux/arm/v7"), their parsing, normalization, formatting and matching.
//
// Follows containerd's `platforms` package (as vendored by BuildKit v0.10),
// so `--platform` values, index entries and image configs are understood the
// way BuildKit understands them. Called by the CLI (--platform), the
// Dockerfile frontend (FROM --platform, TARGETPLATFORM), the image source
// (picking a manifest from an index, see index.h) and the exporters.
//
// Matching is deliberately strict: two platforms match when they are equal
// after Normalize(). That already makes arm64 and arm64/v8, arm and arm/v7,
// aarch64 and arm64, x86_64 and amd64 equal. kiln does NOT apply containerd
// Only()'s fallbacks (arm/v7 accepting v6 or v5 images, amd64 accepting 386):
// an image built for another variant is never picked silently.
//
// Thread-safety: pure functions over value types; DefaultPlatform() reads
// uname(2) once and caches the result (thread-safe static).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kiln::image {

struct Platform {
  std::string os;                        // "linux", "windows"
  std::string architecture;              // Go's GOARCH: "amd64", "arm64", "arm", "386", "ppc64le"
  std::string variant;                   // "v7", "v8"; "" when none
  std::string os_version;                // "os.version" in OCI; Windows only in practice
  std::vector<std::string> os_features;  // "os.features" in OCI

  friend bool operator==(const Platform&, const Platform&) = default;
};

// Parses a platform specifier as containerd's platforms.Parse does:
//   "os/arch[/variant]"  e.g. "linux/amd64", "linux/arm64/v8", "linux/arm/v7";
//   "arch"               a known architecture alone: OS is "linux" (the
//                        only OS kiln builds for), e.g. "amd64", "arm64";
//   "os"                 a known OS alone: the host's architecture.
// Components are case-insensitive and normalized as Normalize() does, with
// containerd's two exceptions: "os/arm" (and "armhf") parse with an empty
// variant, and an explicit "arm64/v8" keeps its variant. Normalize() turns
// them into arm/v7 and plain arm64.
// Errors (kInvalidArgument, naming the input): empty, more than three
// components, characters other than [A-Za-z0-9_-], wildcards, an unknown OS
// or architecture given alone.
Result<Platform> ParsePlatform(std::string_view specifier);

// containerd's platforms.Normalize (v1.6): lower-case OS and architecture,
// an empty OS -> "linux", "macos" -> "darwin"; i386 -> 386; x86_64/x86-64 ->
// amd64 (variant dropped); aarch64 -> arm64; arm64 variant 8/v8 dropped;
// armhf -> arm/v7; armel -> arm/v6; arm with no variant or "7" -> v7,
// "5"/"6"/"8" -> "v5"/"v6"/"v8". Unlike containerd, os_version and
// os_features are kept, not cleared.
Platform Normalize(Platform p);

// "os/architecture[/variant]", e.g. "linux/arm/v7"; "unknown" when the OS is
// empty (containerd's Format). os_version and os_features are not shown.
std::string Format(const Platform& p);

// The host platform, normalized: "linux" and the architecture of uname(2)'s
// machine field (x86_64 -> amd64, aarch64 -> arm64, armv7l -> arm/v7, ...).
Platform DefaultPlatform();

// Whether an image for `have` satisfies a request for `want`: equal OS,
// architecture and variant after Normalize(), and, when `want` names an
// os_version, equal os_version.
bool Matches(const Platform& want, const Platform& have);

}  // namespace kiln::image
