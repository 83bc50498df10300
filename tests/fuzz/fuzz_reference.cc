// libFuzzer entry point for references a user or a Dockerfile hands kiln:
// image references (image/reference.h: FROM, COPY --from, named contexts,
// -t) and git URLs (source/git.h: ADD <git url>, remote and named build
// contexts). Each line of the input is tried as both. Besides crashes and
// sanitizer findings it checks:
//   image: String() and FamiliarString() parse back to the same reference
//          (but for Docker's docker.io/<host-like>/x quirk);
//          TagNameOnly adds "latest" only when there is no tag or digest;
//   git:   http(s) remotes never keep user-info (credentials go to
//          username/password); the subdir is relative and never climbs out;
//          the ref cannot be read as a git option; Redacted() parses back
//          to the same transport, host, ref and subdir; a URL that parses
//          without assume_git also parses with it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/reference.h"
#include "source/git.h"
#include "util/status.h"

namespace image = kiln::image;
namespace src = kiln::source;

namespace {

void CheckImage(std::string_view s) {
  auto r = image::ParseNormalizedNamed(s);
  if (!r.ok()) {
    KILN_CHECK(r.status().code() == kiln::StatusCode::kInvalidArgument, "error code");
    return;
  }
  const std::string full = r->String();
  auto again = image::ParseNormalizedNamed(full);
  KILN_CHECK(again.ok() && *again == *r, "String() does not parse back: " + full);
  // Docker's familiar form of docker.io/<host-like>/x drops "docker.io/"
  // and so names another registry ("docker.io/a.b/x" -> "a.b/x"); kiln
  // keeps that quirk (reference.h), so only other names must parse back.
  const std::string familiar = r->FamiliarString();
  const std::string first = r->path.substr(0, r->path.find('/'));
  const bool ambiguous = r->domain == "docker.io" && r->path.find('/') != std::string::npos &&
                         (first.find_first_of(".:") != std::string::npos || first == "localhost");
  auto fam = image::ParseNormalizedNamed(familiar);
  KILN_CHECK(ambiguous || (fam.ok() && *fam == *r),
             "FamiliarString() does not parse back: \"" + familiar + "\" from \"" + full + "\"");
  const image::Reference tagged = image::TagNameOnly(*r);
  KILN_CHECK(tagged.tag == (r->tag.empty() && r->digest.empty() ? "latest" : r->tag),
             "TagNameOnly");
}

void CheckGit(std::string_view s) {
  for (bool assume : {false, true}) {
    src::GitParseOptions o;
    o.assume_git = assume;
    auto r = src::ParseGitRef(s, o);
    if (!r.ok()) {
      KILN_CHECK(r.status().code() == kiln::StatusCode::kInvalidArgument, "error code");
      continue;
    }
    if (!assume) {
      KILN_CHECK(src::ParseGitRef(s, {true}).ok(),
                 "parses without assume_git only: " + std::string(s));
    }
    if (r->transport == src::GitTransport::kHttp || r->transport == src::GitTransport::kHttps) {
      const std::string& remote = r->remote;
      const size_t scheme = remote.find("://");
      const size_t slash = remote.find('/', scheme == std::string::npos ? 0 : scheme + 3);
      KILN_CHECK(remote.substr(0, slash).find('@') == std::string::npos,
                 "an http(s) remote keeps user-info");
    }
    KILN_CHECK(!r->subdir.starts_with("/") && r->subdir != ".." && !r->subdir.starts_with("../"),
               "subdir climbs out: " + r->subdir);
    KILN_CHECK(!r->ref.starts_with("-"), "a ref read as an option: " + r->ref);
    const std::string redacted = r->Redacted();
    auto again = src::ParseGitRef(redacted, {true});
    KILN_CHECK(again.ok(),
               "Redacted() does not parse: \"" + redacted + "\": " + again.status().ToString());
    KILN_CHECK(again->transport == r->transport && again->host == r->host && again->ref == r->ref &&
                   again->subdir == r->subdir,
               "Redacted() parses differently: " + redacted);
  }
  (void)src::LooksLikeGitUrl(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  int n = 0;
  while (n++ < 16) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    CheckImage(line);
    CheckGit(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return 0;
}
