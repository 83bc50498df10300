// HTTP transport for the registry client: one request/response exchange over
// libcurl, with connection reuse, timeouts and streaming bodies.
//
// Transport owns a pool of curl easy handles and a CURLSH share holding the
// DNS cache, the connection pool and TLS sessions, so consecutive requests to
// a registry reuse one connection whichever thread makes them. It takes
// http:// and https:// URLs only and never follows redirects itself (the
// client does, so it can drop the Authorization header when the host
// changes). It never adds or logs credentials: they travel only in headers
// the caller passes, and URLs, which do appear in error messages, must not
// contain any. Environment proxies (http_proxy, ...) apply, except to
// loopback addresses.
//
// Used by client.cc; callers outside the registry module use
// registry::Client.
//
// Thread-safety: a Transport may be used by any number of threads at once.
// A Request's callbacks run on the calling thread, inside Do().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/cancel.h"
#include "util/network.h"
#include "util/status.h"

namespace kiln::registry {

// Response headers in arrival order; names as the server spelled them.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The first header named `name` (case-insensitive), without surrounding
// whitespace; nullopt if absent.
std::optional<std::string> FindHeader(const HeaderList& headers, std::string_view name);

struct Response {
  // A non-OK `error` means no complete response was received: the transport
  // failed (kIOError: connection refused or cut, timeout, TLS failure) or a
  // callback aborted the transfer (its Status). `status` and `headers` may
  // still describe what had arrived by then.
  Status error;
  // Whether trying again may help: set for transport failures (not for
  // aborts by a callback, cancellation or an expired deadline).
  bool retryable = false;
  // The request's Deadline passed before the response was complete; `error`
  // is kIOError and callers say which operation ran out of time.
  bool deadline_exceeded = false;

  long status = 0;  // HTTP status of the final response; 0 if none arrived
  HeaderList headers;
  // The body, when it was not given to a sink: at most Request::max_body
  // bytes of a 2xx response (more is kResourceExhausted), and the first 64
  // KiB of any other response (kept for error messages).
  std::string body;
  // For a 3xx with a Location: the absolute URL it points to.
  std::string redirect_url;

  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

struct Request {
  std::string method = "GET";        // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;                   // http:// or https://; must carry no credentials
  std::vector<std::string> headers;  // "Name: value"

  // Request body: `body` when `body_reader` is empty. `body_reader` fills a
  // buffer and returns the count (0 at the end); it must produce exactly
  // `body_size` bytes. An error aborts the transfer.
  std::string body;
  std::function<Result<size_t>(char* buf, size_t capacity)> body_reader;
  uint64_t body_size = 0;

  // Called once when the headers of a final 2xx response are in, before any
  // of its body; a non-OK Status aborts the transfer.
  std::function<Status(const Response&)> on_headers;
  // Receives the body of a 2xx response in chunks; when empty the body is
  // collected into Response::body. A non-OK Status aborts the transfer.
  std::function<Status(std::string_view chunk)> sink;
  // Limit on a collected 2xx body, checked against Content-Length before any
  // byte is read and again as bytes arrive.
  uint64_t max_body = 1 << 20;

  // The operation's deadline (null: none). Bytes moved are added to it; the
  // transfer is abandoned (Response::deadline_exceeded) within about a second
  // of its passing. Must outlive Do().
  util::Deadline* deadline = nullptr;
  // When it becomes true the transfer is abandoned (kCancelled): a sibling
  // transfer failed and this one's result is no longer wanted. May be null.
  const std::atomic<bool>* stop = nullptr;
};

struct TransportOptions {
  std::chrono::milliseconds connect_timeout{30'000};
  // A transfer slower than 1 byte/s for this long is abandoned (retryable).
  std::chrono::milliseconds low_speed_time{30'000};
  std::string user_agent = "kiln";
  // PEM bundle of extra trusted CAs; empty: the system's.
  std::filesystem::path ca_file;
  // The build's canceller: every transfer ends (kCancelled, not retryable)
  // within about a second of its cancellation. May be null; must outlive
  // the Transport.
  const util::Canceller* cancel = nullptr;
};

struct TransportStats {
  uint64_t requests = 0;     // exchanges performed
  uint64_t connections = 0;  // new connections opened for them
};

class Transport {
 public:
  // kInternal if libcurl cannot be initialized.
  static Result<std::unique_ptr<Transport>> Create(TransportOptions options);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Performs one exchange. Never follows redirects. See Response for errors.
  Response Do(const Request& request);

  // Counters since creation; requests exceeding connections shows reuse.
  TransportStats stats() const;

 private:
  struct Impl;
  explicit Transport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, relative to
// `now`. nullopt when absent or unparsable; a date in the past gives 0.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now);

// Percent-encodes everything but RFC 3986 unreserved characters, for query
// values (scopes, digests, repository names).
std::string QueryEscape(std::string_view s);

// "scheme://host[:port]" of an absolute URL, lower-cased and without any
// userinfo; "" if `url` is not absolute. Used to decide whether a redirect leaves the registry's
// origin.
std::string UrlOrigin(std::string_view url);

// `url` as error messages show it: without userinfo, and with a query string
// shown as "?..." (presigned blob URLs carry signatures there).
std::string ShownUrl(std::string_view url);

}  // namespace kiln::registry
