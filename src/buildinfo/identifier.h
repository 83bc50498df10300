// Source identifiers: the strings by which source ops report what they
// fetched ("docker-image://docker.io/library/alpine:3.15@sha256:…",
// "git://github.com/moby/buildkit.git#v0.10.6", "https://host/file"), and the
// `ref` a build-sources entry records for each (R10, R22, R33, R36; kiln's
// K5-K8).
//
// The client-side builders (MakeGitIdentifier, MakeHttpIdentifier,
// MakeImageIdentifier) are what kiln's frontend and source ops use to name a
// source; ParseIdentifier() is what the merge uses to read them back.
// A git identifier keeps the remote as the user wrote it (K6): only an
// "https://" transport is left implicit (the identifier grammar adds it back),
// every other transport, the scp-like user, the host, the port and the path
// stay, so the reported ref shows the remote kiln really fetched from.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::buildinfo {

enum class SourceKind { kDockerImage, kGit, kHttp, kLocal };

// A parsed git identifier: git://<remote>[#<ref>[:<subdir>]].
struct GitIdentifier {
  std::string remote;  // with its transport ("https://" added when implicit), credentials kept
  std::string ref;     // branch, tag or commit; "" for the default branch
  std::string subdir;  // as written; "" when none or when it cleans to "/" or "."
};

struct Identifier {
  SourceKind kind = SourceKind::kLocal;
  std::string text;       // the identifier as reported
  std::string image_ref;  // kDockerImage: the reference after "docker-image://", as written
  GitIdentifier git;      // kGit
  std::string url;        // kHttp: the whole URL, scheme included
};

// Parses `scheme://rest` for the schemes docker-image, git, http, https and
// local. kInvalidArgument for a missing "://", an unknown scheme (naming it,
// e.g. "oci-layout"), an image reference that is empty or cannot be one
// (whitespace, a nested "://"; otherwise image references are read leniently
// and kept as written, R15), or an empty git remote. Credentials in `id` never appear in the
// message.
Result<Identifier> ParseIdentifier(std::string_view id);

// The `ref` recorded for a git or HTTP identifier, redacted (K8): for git,
// remote + ("#" + ref if ref is set) + (":" + subdir if set), where an empty
// ref with a subdir gives "remote:subdir" as in BuildKit (R33); for HTTP the
// URL as written. For an image identifier, its reference as written.
std::string ReportedRef(const Identifier& id);

// Which source type an identifier produces ("" for local).
std::string_view SourceTypeOf(SourceKind kind);

// What a git source op is identified by, for a remote and a ref (which may
// carry ":subdir"), and the URL the fetch uses.
struct GitSourceSpec {
  std::string identifier;  // "git://" + remote (implicit https stripped) [+ "#" + ref]
  std::string full_url;    // the remote, "https://" added when it has no transport
};
GitSourceSpec MakeGitIdentifier(std::string_view remote, std::string_view ref);
// The identifier of an HTTP source is its URL, exactly as written.
std::string MakeHttpIdentifier(std::string_view url);

// R22: Docker normalization plus ":latest" when there is neither tag nor
// digest ("alpine" -> "docker.io/library/alpine:latest"). kInvalidArgument
// from the reference parser otherwise.
Result<std::string> NormalizeImageRef(std::string_view ref);
// "docker-image://" + NormalizeImageRef(ref).
Result<std::string> MakeImageIdentifier(std::string_view ref);

// True for an scp-like git remote: user@host:path, user in [A-Za-z0-9_-].
bool IsScpLikeRemote(std::string_view remote);

// Go's path.Clean.
std::string CleanPath(std::string_view path);

}  // namespace kiln::buildinfo
