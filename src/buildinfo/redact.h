// Credential redaction for build sources (spec K8, which overrides R35).
//
// No credential may reach a record, a response, a metadata file or a log
// line. RedactUrl() masks, in one URL or scp-like git remote:
//   - URL userinfo: a non-empty user becomes "xxxxx", a password (even an
//     empty one) becomes "xxxxx" (`https://xxxxx:xxxxx@h/`, `https://:xxxxx@h/`);
//     an empty userinfo (`https://@h/`) is left alone, as in R35;
//   - scp-like remotes (`user@host:path`): the user `git` is kept, any other
//     user becomes "xxxxx";
//   - the values of query parameters whose names look like credentials
//     (token, access_token, sig, signature, password, secret, key, X-Amz-*,
//     X-Goog-*; case-insensitive, percent-decoded for the comparison)
//     become "xxxxx".
// Everything else is kept exactly as written: no URL library round trip, so
// no scheme lower-casing and no percent-encoding. Text that is neither a URL
// nor an scp-like remote is returned unchanged. Every function is idempotent.
//
// Called by the merge (source refs), attribute filtering and dependency
// decoding, the exporters, and anything that logs a user-given URL.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "buildinfo/buildinfo.h"

namespace kiln::buildinfo {

inline constexpr std::string_view kRedacted = "xxxxx";

// Redacts one URL or scp-like remote (the whole of `url`).
std::string RedactUrl(std::string_view url);

// Redacts every URL (`scheme://...`, up to the next whitespace or quote) and
// every whitespace-delimited scp-like remote inside free text, such as an
// attribute value (`http://user:pw@proxy:3128`, `--index-url=https://u:p@h/`).
std::string RedactText(std::string_view text);

// True for a query-parameter name that K8 treats as a credential.
bool IsCredentialParamName(std::string_view name);

// Applies K8 to a whole record: source refs, attribute values and, at any
// depth, the same inside deps. Idempotent.
void RedactRecord(BuildInfo* bi);

}  // namespace kiln::buildinfo
