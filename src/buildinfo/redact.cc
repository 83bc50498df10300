#include "buildinfo/redact.h"

#include "util/strings.h"

namespace kiln::buildinfo {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSchemeChar(char c) { return IsAlpha(c) || IsDigit(c) || c == '+' || c == '-' || c == '.'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsQuote(char c) { return c == '"' || c == '\'' || c == '`' || c == '<' || c == '>'; }

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// `user@host:path` with user in [A-Za-z0-9_-] and host in [A-Za-z0-9.-], as
// git reads scp-like remotes. "name@sha256:<hex>" is an image digest, not a
// remote. Returns the length of the user, or 0 when `s` is not scp-like.
size_t ScpLikeUserLength(std::string_view s) {
  size_t at = 0;
  while (at < s.size() && (IsAlpha(s[at]) || IsDigit(s[at]) || s[at] == '_' || s[at] == '-')) ++at;
  if (at == 0 || at >= s.size() || s[at] != '@') return 0;
  size_t colon = at + 1;
  while (colon < s.size() &&
         (IsAlpha(s[colon]) || IsDigit(s[colon]) || s[colon] == '.' || s[colon] == '-')) {
    ++colon;
  }
  if (colon == at + 1 || colon >= s.size() || s[colon] != ':') return 0;
  const std::string_view host = s.substr(at + 1, colon - at - 1);
  if (host == "sha256" || host == "sha384" || host == "sha512") return 0;
  return at;
}

// Schemes whose "@" is not userinfo (image references).
bool SchemeHasNoUserinfo(std::string_view scheme) {
  const std::string s = util::AsciiLower(scheme);
  return s == "docker-image" || s == "oci-layout";
}

std::string RedactQuery(std::string_view query) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t amp = query.find('&', start);
    const std::string_view param =
        query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && eq + 1 < param.size() &&
        IsCredentialParamName(PercentDecode(param.substr(0, eq)))) {
      out.append(param.substr(0, eq + 1));
      out.append(kRedacted);
    } else {
      out.append(param);
    }
    if (amp == std::string_view::npos) break;
    out.push_back('&');
    start = amp + 1;
  }
  return out;
}

}  // namespace

bool IsCredentialParamName(std::string_view name) {
  const std::string n = util::AsciiLower(name);
  return n == "token" || n == "access_token" || n == "sig" || n == "signature" || n == "password" ||
         n == "secret" || n == "key" || n.rfind("x-amz-", 0) == 0 || n.rfind("x-goog-", 0) == 0;
}

std::string RedactUrl(std::string_view url) {
  if (const size_t user = ScpLikeUserLength(url); user != 0) {
    if (url.substr(0, user) == "git") return std::string(url);
    return std::string(kRedacted) + std::string(url.substr(user));
  }
  // scheme ":" ...
  size_t colon = 0;
  if (url.empty() || !IsAlpha(url[0])) return std::string(url);
  while (colon < url.size() && IsSchemeChar(url[colon])) ++colon;
  if (colon >= url.size() || url[colon] != ':') return std::string(url);
  const std::string_view scheme = url.substr(0, colon);

  // Go's order: the fragment goes first, then the query, then the authority.
  const size_t hash = url.find('#', colon);
  const std::string_view before_frag = url.substr(0, hash);
  const std::string_view fragment = hash == std::string_view::npos ? "" : url.substr(hash);
  const size_t qmark = before_frag.find('?', colon);
  const std::string_view hier = before_frag.substr(0, qmark);
  const bool has_query = qmark != std::string_view::npos;
  const std::string_view query = has_query ? before_frag.substr(qmark + 1) : "";

  std::string out;
  if (hier.substr(colon + 1, 2) == "//" && !SchemeHasNoUserinfo(scheme)) {
    const size_t auth_start = colon + 3;
    const size_t slash = hier.find('/', auth_start);
    const std::string_view authority = hier.substr(
        auth_start, slash == std::string_view::npos ? std::string_view::npos : slash - auth_start);
    const size_t at = authority.rfind('@');
    if (at != std::string_view::npos && at > 0) {
      const std::string_view userinfo = authority.substr(0, at);
      const size_t pw = userinfo.find(':');
      const std::string_view user = userinfo.substr(0, pw);
      out.append(hier.substr(0, auth_start));
      if (!user.empty()) out.append(kRedacted);
      if (pw != std::string_view::npos) {
        out.push_back(':');
        out.append(kRedacted);
      }
      out.append(hier.substr(auth_start + at));
    } else {
      out.append(hier);
    }
  } else {
    out.append(hier);
  }
  if (has_query) {
    out.push_back('?');
    out.append(RedactQuery(query));
  }
  out.append(fragment);
  return out;
}

std::string RedactText(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (IsSpace(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && !IsSpace(text[end])) ++end;
    const std::string_view token = text.substr(i, end - i);
    if (token.find("://") != std::string_view::npos) {
      // Each "scheme://..." inside the token, up to the next quote.
      size_t pos = 0;
      while (pos < token.size()) {
        const size_t sep = token.find("://", pos);
        if (sep == std::string_view::npos) {
          out.append(token.substr(pos));
          break;
        }
        size_t s = sep;
        while (s > pos && IsSchemeChar(token[s - 1])) --s;
        while (s < sep && !IsAlpha(token[s])) ++s;
        size_t e = sep + 3;
        while (e < token.size() && !IsQuote(token[e])) ++e;
        // A list of URLs ("http://a:b@h1,http://c:d@h2"): stop at the next one.
        if (const size_t next = token.find("://", sep + 3);
            next != std::string_view::npos && next < e) {
          size_t s2 = next;
          while (s2 > sep + 3 && IsSchemeChar(token[s2 - 1])) --s2;
          while (s2 < next && !IsAlpha(token[s2])) ++s2;
          if (s2 < next) e = s2;
        }
        out.append(token.substr(pos, s - pos));
        out.append(s < sep ? RedactUrl(token.substr(s, e - s))
                           : std::string(token.substr(s, e - s)));
        pos = e;
      }
    } else if (ScpLikeUserLength(token) != 0) {
      out.append(RedactUrl(token));
    } else if (const size_t eq = token.find('=');
               eq != std::string_view::npos && ScpLikeUserLength(token.substr(eq + 1)) != 0) {
      out.append(token.substr(0, eq + 1));
      out.append(RedactUrl(token.substr(eq + 1)));
    } else {
      out.append(token);
    }
    i = end;
  }
  return out;
}

void RedactRecord(BuildInfo* bi) {
  for (Source& s : bi->sources) {
    if (s.type != kTypeDockerImage) s.ref = RedactUrl(s.ref);
  }
  for (auto& [k, v] : bi->attrs) {
    if (v) *v = RedactText(*v);
  }
  for (auto& [name, dep] : bi->deps) RedactRecord(&dep);
}

}  // namespace kiln::buildinfo
