#include "registry/endpoint.h"

#include <arpa/inet.h>

#include "registry/http.h"
#include "util/strings.h"

namespace kiln::registry {
namespace {

// "host:port" -> "host"; "[::1]:5000" -> "::1"; "host" -> "host".
std::string StripPort(std::string_view host) {
  if (host.starts_with("[")) {
    auto close = host.find(']');
    if (close == std::string_view::npos) return std::string(host);
    return std::string(host.substr(1, close - 1));
  }
  auto colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    return std::string(host.substr(0, colon));
  }
  return std::string(host);  // bare host, or a bare IPv6 address
}

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  const std::string h = util::AsciiLower(StripPort(host));
  if (h == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    static const in6_addr kLoopback = IN6ADDR_LOOPBACK_INIT;
    return IN6_ARE_ADDR_EQUAL(&v6, &kLoopback);
  }
  return false;
}

std::string ApiHost(std::string_view domain) {
  const std::string d = util::AsciiLower(domain);
  if (d == "docker.io" || d == "index.docker.io") return "registry-1.docker.io";
  return std::string(domain);
}

std::string SchemeFor(std::string_view domain, const std::vector<std::string>& insecure) {
  if (IsLoopbackHost(domain)) return "http";
  const std::string d = util::AsciiLower(domain);
  const std::string host = StripPort(d);
  for (const std::string& entry : insecure) {
    const std::string e = util::AsciiLower(entry);
    if (e == d) return "http";
    // An entry without a port covers every port of its host.
    if (StripPort(e) == e && e == host) return "http";
  }
  return "https";
}

std::string ApiBase(std::string_view domain, const std::vector<std::string>& insecure) {
  return SchemeFor(domain, insecure) + "://" + ApiHost(domain) + "/v2/";
}

std::string ManifestUrl(std::string_view base, std::string_view path, std::string_view reference) {
  return std::string(base) + std::string(path) + "/manifests/" + std::string(reference);
}

std::string BlobUrl(std::string_view base, std::string_view path, std::string_view digest) {
  return std::string(base) + std::string(path) + "/blobs/" + std::string(digest);
}

std::string UploadUrl(std::string_view base, std::string_view path) {
  return std::string(base) + std::string(path) + "/blobs/uploads/";
}

std::string ResolveLocation(std::string_view request_url, std::string_view location) {
  if (location.find("://") != std::string_view::npos) return std::string(location);
  if (location.starts_with("/")) return UrlOrigin(request_url) + std::string(location);
  // Relative to the request's directory (rare for registries).
  std::string_view base = request_url.substr(0, request_url.find('?'));
  auto slash = base.rfind('/');
  return std::string(base.substr(0, slash + 1)) + std::string(location);
}

std::string AddQuery(std::string url, std::string_view name, std::string_view value) {
  url.push_back(url.find('?') == std::string::npos ? '?' : '&');
  url.append(name);
  url.push_back('=');
  url.append(QueryEscape(value));
  return url;
}

}  // namespace kiln::registry
