#include "registry/http.h"

#include <curl/curl.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstring>
#include <mutex>

namespace kiln::registry {
namespace {

constexpr size_t kErrorBodyLimit = 64 << 10;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Per-transfer state shared with the curl callbacks.
struct Exchange {
  const Request* request = nullptr;
  Response* response = nullptr;
  const util::Canceller* cancel = nullptr;
  bool headers_done = false;  // the final response's headers are complete
  Status abort;               // set by a callback that stopped the transfer
  bool deadline_exceeded = false;
  uint64_t moved = 0;  // bytes received and sent so far, as curl last reported

  bool Is2xx() const { return response->status >= 200 && response->status < 300; }
};

size_t HeaderCallback(char* data, size_t size, size_t nitems, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t n = size * nitems;
  std::string_view line(data, n);
  Response& r = *ex->response;
  if (line.starts_with("HTTP/")) {
    // A new response (after a 1xx, or the only one): start over.
    r.headers.clear();
    r.status = 0;
    ex->headers_done = false;
    auto sp = line.find(' ');
    if (sp != std::string_view::npos) {
      std::string_view code = line.substr(sp + 1, 3);
      std::from_chars(code.data(), code.data() + code.size(), r.status);
    }
    return n;
  }
  std::string_view t = Trim(line);
  if (t.empty()) {
    if (r.status >= 100 && r.status < 200) return n;  // interim response
    ex->headers_done = true;
    if (ex->Is2xx()) {
      const Request& req = *ex->request;
      if (!req.sink && req.method != "HEAD") {
        if (auto cl = r.Header("Content-Length")) {
          uint64_t len = 0;
          auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), len);
          if (ec == std::errc() && len > req.max_body) {
            ex->abort = Status::ResourceExhausted(
                req.method + " " + ShownUrl(req.url) + ": response of " + std::to_string(len) +
                " bytes exceeds the limit of " + std::to_string(req.max_body) + " bytes");
            return 0;
          }
        }
      }
      if (req.on_headers) {
        Status st = req.on_headers(r);
        if (!st.ok()) {
          ex->abort = std::move(st);
          return 0;
        }
      }
    }
    return n;
  }
  auto colon = t.find(':');
  if (colon != std::string_view::npos) {
    r.headers.emplace_back(std::string(Trim(t.substr(0, colon))),
                           std::string(Trim(t.substr(colon + 1))));
  }
  return n;
}

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t n = size * nmemb;
  std::string_view chunk(data, n);
  Response& r = *ex->response;
  const Request& req = *ex->request;
  if (!ex->Is2xx()) {
    size_t room = kErrorBodyLimit - std::min(kErrorBodyLimit, r.body.size());
    r.body.append(chunk.substr(0, room));
    return n;
  }
  if (req.sink) {
    Status st = req.sink(chunk);
    if (!st.ok()) {
      ex->abort = std::move(st);
      return 0;
    }
    return n;
  }
  if (r.body.size() + n > req.max_body) {
    ex->abort = Status::ResourceExhausted(req.method + " " + ShownUrl(req.url) +
                                          ": response exceeds the limit of " +
                                          std::to_string(req.max_body) + " bytes");
    return 0;
  }
  r.body.append(chunk);
  return n;
}

// Called by libcurl about once a second while idle and often while bytes
// move: stops the transfer on cancellation, when the caller no longer wants
// it, or when the operation's deadline has passed.
int ProgressCallback(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* ex = static_cast<Exchange*>(user);
  const Request& req = *ex->request;
  const uint64_t now = static_cast<uint64_t>(std::max<curl_off_t>(0, dlnow)) +
                       static_cast<uint64_t>(std::max<curl_off_t>(0, ulnow));
  if (now > ex->moved) {
    if (req.deadline != nullptr) req.deadline->Moved(now - ex->moved);
    ex->moved = now;
  }
  if (ex->cancel != nullptr && ex->cancel->cancelled()) {
    ex->abort = ex->cancel->Check();
    return 1;
  }
  if (req.stop != nullptr && req.stop->load()) {
    ex->abort = Status::Cancelled(req.method + " " + ShownUrl(req.url) +
                                  ": stopped (another transfer failed)");
    return 1;
  }
  if (req.deadline != nullptr && req.deadline->Expired()) {
    ex->deadline_exceeded = true;
    return 1;
  }
  return 0;
}

struct Upload {
  const Request* request = nullptr;
  Exchange* exchange = nullptr;
  size_t offset = 0;  // into request->body
};

size_t ReadCallback(char* buf, size_t size, size_t nitems, void* user) {
  auto* up = static_cast<Upload*>(user);
  const size_t cap = size * nitems;
  const Request& req = *up->request;
  if (req.body_reader) {
    Result<size_t> got = req.body_reader(buf, cap);
    if (!got.ok()) {
      up->exchange->abort = got.status();
      return CURL_READFUNC_ABORT;
    }
    return *got;
  }
  size_t n = std::min(cap, req.body.size() - up->offset);
  std::memcpy(buf, req.body.data() + up->offset, n);
  up->offset += n;
  return n;
}

// Whether another try may succeed: network trouble yes; a malformed URL, a
// host name that does not resolve, a certificate that does not verify or an
// abort by kiln's own callbacks no.
bool IsRetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:  // a typo in the registry name stays a typo
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:  // a sink or on_headers refused the data
    case CURLE_READ_ERROR:   // the body reader failed
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_LOGIN_DENIED:
    case CURLE_UNKNOWN_OPTION:
      return false;
    default:
      return true;
  }
}

}  // namespace

std::optional<std::string> FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

namespace {
// One mutex per kind of data the CURLSH share holds.
struct ShareLocks {
  std::array<std::mutex, CURL_LOCK_DATA_LAST> mu;
};
void ShareLock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  auto* locks = static_cast<ShareLocks*>(user);
  locks->mu[static_cast<size_t>(data) % locks->mu.size()].lock();
}
void ShareUnlock(CURL*, curl_lock_data data, void* user) {
  auto* locks = static_cast<ShareLocks*>(user);
  locks->mu[static_cast<size_t>(data) % locks->mu.size()].unlock();
}
}  // namespace

struct Transport::Impl {
  TransportOptions options;
  CURLSH* share = nullptr;
  ShareLocks share_locks;
  std::mutex pool_mu;
  std::vector<CURL*> idle;  // easy handles not in use, guarded by pool_mu
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> connections{0};

  ~Impl() {
    for (CURL* h : idle) curl_easy_cleanup(h);
    if (share != nullptr) curl_share_cleanup(share);
  }

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!idle.empty()) {
        CURL* h = idle.back();
        idle.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void Release(CURL* h) {
    curl_easy_reset(h);
    std::lock_guard<std::mutex> lock(pool_mu);
    idle.push_back(h);
  }
};

namespace {
std::once_flag g_curl_init;
CURLcode g_curl_init_code = CURLE_OK;
}  // namespace

Transport::Transport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::~Transport() = default;

Result<std::unique_ptr<Transport>> Transport::Create(TransportOptions options) {
  std::call_once(g_curl_init, [] { g_curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (g_curl_init_code != CURLE_OK) {
    return Status::Internal(std::string("curl_global_init: ") +
                            curl_easy_strerror(g_curl_init_code));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->share = curl_share_init();
  if (impl->share == nullptr) return Status::Internal("curl_share_init failed");
  curl_share_setopt(impl->share, CURLSHOPT_LOCKFUNC, ShareLock);
  curl_share_setopt(impl->share, CURLSHOPT_UNLOCKFUNC, ShareUnlock);
  curl_share_setopt(impl->share, CURLSHOPT_USERDATA, &impl->share_locks);
  curl_share_setopt(impl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(impl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(impl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return std::unique_ptr<Transport>(new Transport(std::move(impl)));
}

Response Transport::Do(const Request& request) {
  Response response;
  CURL* h = impl_->Acquire();
  if (h == nullptr) {
    response.error = Status::Internal("curl_easy_init failed");
    return response;
  }
  const TransportOptions& opt = impl_->options;
  Exchange ex;
  ex.request = &request;
  ex.response = &response;
  ex.cancel = opt.cancel;
  // Nothing to wait for when the operation is already over.
  if (opt.cancel != nullptr && opt.cancel->cancelled()) {
    impl_->Release(h);
    response.error = opt.cancel->Check();
    return response;
  }
  if (request.deadline != nullptr && request.deadline->Expired()) {
    impl_->Release(h);
    response.error =
        Status::IOError(request.method + " " + ShownUrl(request.url) + ": deadline passed");
    response.deadline_exceeded = true;
    return response;
  }
  Upload up;
  up.request = &request;
  up.exchange = &ex;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(h, CURLOPT_SHARE, impl_->share);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>((opt.low_speed_time.count() + 999) / 1000)));
  curl_easy_setopt(h, CURLOPT_USERAGENT, opt.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, HeaderCallback);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, ProgressCallback);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ex);
  // Larger buffers: fewer callbacks (and Writer::Write calls) per layer.
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L << 10);
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
  if (!opt.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, opt.ca_file.c_str());
  // Loopback registries are never reached through an environment proxy.
  curl_easy_setopt(h, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");

  const bool has_body = request.body_reader || !request.body.empty() || request.method == "PUT" ||
                        request.method == "POST" || request.method == "PATCH";
  if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    const uint64_t size = request.body_reader ? request.body_size : request.body.size();
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadCallback);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
  } else if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* headers = nullptr;
  for (const std::string& hdr : request.headers) headers = curl_slist_append(headers, hdr.c_str());
  // No "Expect: 100-continue" round trip before uploads.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(h);
  ++impl_->requests;
  long connects = 0;
  if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0) {
    impl_->connections += static_cast<uint64_t>(connects);
  }
  if (response.status >= 300 && response.status < 400) {
    char* loc = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != nullptr) {
      response.redirect_url = loc;
    }
  }
  curl_slist_free_all(headers);
  impl_->Release(h);

  if (!ex.abort.ok()) {
    response.error = std::move(ex.abort);
  } else if (ex.deadline_exceeded) {
    response.error =
        Status::IOError(request.method + " " + ShownUrl(request.url) + ": deadline passed");
    response.deadline_exceeded = true;
  } else if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    response.error = Status::IOError(request.method + " " + ShownUrl(request.url) + ": " + detail);
    response.retryable = IsRetryableCurlError(rc);
  } else if (!ex.headers_done) {
    response.error =
        Status::IOError(request.method + " " + ShownUrl(request.url) + ": incomplete response");
    response.retryable = true;
  }
  return response;
}

TransportStats Transport::stats() const {
  return TransportStats{impl_->requests.load(), impl_->connections.load()};
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now) {
  std::string_view v = Trim(value);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int64_t secs = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
    if (ec != std::errc()) return std::nullopt;
    return std::chrono::seconds(secs);
  }
  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
  std::string s(v);
  struct tm tm {};
  const char* end = ::strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  // In whole seconds (time_t), never in the clock's nanoseconds: a date
  // after 2262 would overflow them. `when` is whole, so `when - floor(now)`
  // is the delay rounded up.
  const time_t when = ::timegm(&tm);
  const time_t at =
      std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(now));
  if (when <= at) return std::chrono::seconds(0);
  return std::chrono::seconds(when - at);
}

std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UrlOrigin(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  auto host_end = url.find_first_of("/?#", scheme_end + 3);
  std::string_view authority =
      url.substr(scheme_end + 3, host_end == std::string_view::npos ? std::string_view::npos
                                                                    : host_end - scheme_end - 3);
  // Never keep userinfo: origins appear in error messages.
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string out = std::string(url.substr(0, scheme_end + 3)) + std::string(authority);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string ShownUrl(std::string_view url) {
  std::string out(url.substr(0, url.find('#')));
  const size_t q = out.find('?');
  if (q != std::string::npos) out = out.substr(0, q) + "?...";
  const size_t scheme_end = out.find("://");
  if (scheme_end == std::string::npos) return out;
  const size_t host_start = scheme_end + 3;
  const size_t host_end = out.find_first_of("/?", host_start);
  const size_t at = out.rfind('@', host_end == std::string::npos ? out.npos : host_end);
  if (at != std::string::npos && at >= host_start) out.erase(host_start, at + 1 - host_start);
  return out;
}

}  // namespace kiln::registry
