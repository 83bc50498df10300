// libFuzzer entry point for what the registry client reads off the network
// besides image documents (fuzz_image has those): WWW-Authenticate
// challenges and token server answers (registry/auth.h), distribution error
// bodies, the media type of a fetched manifest, Content-Range and
// Retry-After values (registry/responses.h, http.h) and the URLs a registry
// sends back (Location: endpoint.h, UrlOrigin). The whole input is offered
// to each reader; the first line also serves as a header value. Besides
// crashes it checks: challenge schemes and parameter names are lower-case,
// and formatting the parsed challenges and parsing again gives the same
// challenges; a token is never empty and never expires in the past; an error
// detail is at most 300 bytes; a Retry-After is never negative; an origin
// never keeps user-info.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "registry/auth.h"
#include "registry/endpoint.h"
#include "registry/http.h"
#include "registry/responses.h"
#include "util/status.h"

namespace reg = kiln::registry;

namespace {

std::string Format(const std::vector<reg::Challenge>& challenges) {
  std::string out;
  for (const reg::Challenge& c : challenges) {
    if (!out.empty()) out += ", ";
    out += c.scheme;
    bool first = true;
    for (const auto& [name, value] : c.params) {
      out += first ? " " : ", ";
      first = false;
      out += name + "=\"";
      for (char ch : value) {
        if (ch == '"' || ch == '\\') out += '\\';
        out += ch;
      }
      out += '"';
    }
  }
  return out;
}

bool IsLower(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string_view first = std::string_view(text).substr(0, text.find('\n'));
  const std::string_view rest =
      first.size() < text.size() ? std::string_view(text).substr(first.size() + 1) : "";

  for (std::string_view header : {std::string_view(text), first}) {
    auto challenges = reg::ParseWwwAuthenticate(header);
    if (!challenges.ok()) {
      KILN_CHECK(challenges.status().code() == kiln::StatusCode::kInvalidArgument, "error code");
      continue;
    }
    for (const reg::Challenge& c : *challenges) {
      KILN_CHECK(!c.scheme.empty() && IsLower(c.scheme), "scheme \"" + c.scheme + "\"");
      for (const auto& [name, value] : c.params) {
        KILN_CHECK(!name.empty() && IsLower(name), "parameter name \"" + name + "\"");
      }
      (void)c.Param("realm");
    }
    const std::string formatted = Format(*challenges);
    auto again = reg::ParseWwwAuthenticate(formatted);
    KILN_CHECK(again.ok(), "formatted challenges do not parse: " + formatted + ": " +
                               again.status().ToString());
    KILN_CHECK(*again == *challenges, "formatted challenges parse differently: " + formatted);
  }

  const auto now = std::chrono::steady_clock::now();
  if (auto token = reg::ParseTokenResponse(text, now); token.ok()) {
    KILN_CHECK(!token->value.empty(), "an empty token");
    KILN_CHECK(token->expires > now, "a token that has expired already");
  }

  KILN_CHECK(reg::RegistryErrorDetail(text).size() <= 300, "error detail too long");
  (void)reg::ManifestMediaType(rest, std::string(first));
  (void)reg::ManifestMediaType(text, "");
  if (auto start = reg::ContentRangeStart(first)) {
    KILN_CHECK(first.starts_with("bytes "), "Content-Range without its unit");
  }
  if (auto wait = reg::ParseRetryAfter(first, std::chrono::system_clock::now())) {
    KILN_CHECK(wait->count() >= 0, "a negative Retry-After");
  }

  const std::string origin = reg::UrlOrigin(first);
  KILN_CHECK(origin.find('@') == std::string::npos || origin.find('@') < origin.find("://"),
             "origin keeps user-info: " + origin);
  (void)reg::ResolveLocation(first, rest.substr(0, rest.find('\n')));
  (void)reg::IsLoopbackHost(first);
  (void)reg::ApiBase(first, {"insecure.example:5000", "other.example"});
  (void)reg::AddQuery(std::string(first), "scope", rest);
  (void)reg::QueryEscape(rest);
  (void)reg::FindHeader({{"Content-Type", std::string(first)}}, rest);
  return 0;
}
