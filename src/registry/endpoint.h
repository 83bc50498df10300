// Endpoints: how a registry domain from an image reference becomes the base
// URL of its distribution API, and the URLs of its resources.
//
// Rules (as the Docker daemon applies them): "docker.io" is served by
// "registry-1.docker.io"; loopback registries (127.0.0.0/8, "localhost",
// "[::1]", any port) and those listed as insecure are spoken to over plain
// HTTP, every other one over HTTPS.
//
// Called by client.cc; exposed for unit tests.
//
// Thread-safety: pure functions over value types.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::registry {

// Whether `host` ("host", "host:port", "[v6]:port") names the local machine:
// localhost, 127.0.0.0/8 or ::1.
bool IsLoopbackHost(std::string_view host);

// The host the API of `domain` is served from: "registry-1.docker.io" for
// docker.io (and index.docker.io), `domain` otherwise.
std::string ApiHost(std::string_view domain);

// "http" for loopback hosts and for domains in `insecure` (compared as
// "host[:port]", case-insensitively; an entry without a port covers every
// port of that host); "https" otherwise.
std::string SchemeFor(std::string_view domain, const std::vector<std::string>& insecure);

// Base URL of the API: "https://registry-1.docker.io/v2/".
std::string ApiBase(std::string_view domain, const std::vector<std::string>& insecure);

// <base><path>/manifests/<tag or digest>, <base><path>/blobs/<digest>,
// <base><path>/blobs/uploads/.
std::string ManifestUrl(std::string_view base, std::string_view path, std::string_view reference);
std::string BlobUrl(std::string_view base, std::string_view path, std::string_view digest);
std::string UploadUrl(std::string_view base, std::string_view path);

// Resolves a Location header against the URL of the request it answered:
// absolute URLs are kept, "/v2/..." takes the origin of `request_url`.
std::string ResolveLocation(std::string_view request_url, std::string_view location);

// Appends "name=value" (value query-escaped) with '?' or '&' as needed.
std::string AddQuery(std::string url, std::string_view name, std::string_view value);

}  // namespace kiln::registry
