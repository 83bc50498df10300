#include "source/http.h"

#include <curl/curl.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "util/sqlite.h"
#include "util/strings.h"

namespace kiln::source {
namespace {

constexpr size_t kMaxRedirects = 10;

// The parts of a URL this module looks at.
struct UrlParts {
  std::string scheme;    // lower-case
  size_t authority = 0;  // offset of the authority (after "://")
  size_t authority_end = 0;
  size_t userinfo_end = std::string::npos;  // offset of '@' inside the authority
  std::string path;                         // raw path, without query or fragment
};

std::optional<UrlParts> SplitUrl(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  UrlParts u;
  u.scheme = util::AsciiLower(url.substr(0, sep));
  u.authority = sep + 3;
  u.authority_end = url.find_first_of("/?#", u.authority);
  if (u.authority_end == std::string_view::npos) u.authority_end = url.size();
  std::string_view authority = url.substr(u.authority, u.authority_end - u.authority);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) u.userinfo_end = u.authority + at;
  size_t path_end = url.find_first_of("?#", u.authority_end);
  if (path_end == std::string_view::npos) path_end = url.size();
  u.path = std::string(url.substr(u.authority_end, path_end - u.authority_end));
  return u;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string BaseName(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (base == "." || base == "..") return "";
  return std::string(base);
}

// The filename parameter of a Content-Disposition value ("attachment;
// filename="a.tar.gz""), reduced to its last path component; "" if none.
std::string DispositionFilename(std::string_view value) {
  size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name = util::AsciiLower(value.substr(i, eq - i));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    size_t v = eq + 1;
    while (v < value.size() && (value[v] == ' ' || value[v] == '\t')) ++v;
    std::string param;
    size_t next;
    if (v < value.size() && value[v] == '"') {
      size_t k = v + 1;
      while (k < value.size() && value[k] != '"') {
        if (value[k] == '\\' && k + 1 < value.size()) ++k;
        param += value[k];
        ++k;
      }
      next = value.find(';', k);
    } else {
      next = value.find(';', v);
      param =
          std::string(value.substr(v, (next == std::string_view::npos ? value.size() : next) - v));
      while (!param.empty() && (param.back() == ' ' || param.back() == '\t')) param.pop_back();
    }
    if (name == "filename") {
      for (char& c : param) {
        if (c == '\\') c = '/';
      }
      return BaseName(param);
    }
    i = next;
  }
  return "";
}

std::once_flag g_curl_init;

// State of one transfer, shared with libcurl's callbacks.
struct Transfer {
  CURL* curl = nullptr;
  content::Writer* writer = nullptr;
  util::Sha256* hash = nullptr;
  util::Canceller* cancel = nullptr;
  util::Deadline* deadline = nullptr;
  bool deadline_exceeded = false;
  uint64_t received = 0;                                     // as curl last reported
  std::vector<std::pair<std::string, std::string>> headers;  // of the last response
  std::string status_line;
  Status write_error;
  bool success_body = false;  // the body belongs to a 2xx response
  bool checked_status = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {
    t->headers.clear();
    t->status_line = std::string(line);
    t->checked_status = false;
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    t->headers.emplace_back(util::AsciiLower(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->checked_status) {
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    t->success_body = code >= 200 && code < 300;
    t->checked_status = true;
  }
  if (!t->success_body) return size * n;  // an error page: not kept
  std::string_view chunk(data, size * n);
  Status st = t->writer->Write(chunk);
  if (!st.ok()) {
    t->write_error = st;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->hash->Update(chunk);
  return size * n;
}

// Called about once a second while idle, often while bytes move: stops the
// transfer on cancellation or once the fetch's deadline has passed.
int OnProgress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (dlnow > 0 && static_cast<uint64_t>(dlnow) > t->received) {
    t->deadline->Moved(static_cast<uint64_t>(dlnow) - t->received);
    t->received = static_cast<uint64_t>(dlnow);
  }
  if (t->cancel != nullptr && t->cancel->cancelled()) return 1;
  if (t->deadline->Expired()) {
    t->deadline_exceeded = true;
    return 1;
  }
  return 0;
}

std::string ReasonPhrase(const std::string& status_line) {
  // "HTTP/1.1 404 Not Found" -> "Not Found"
  size_t sp1 = status_line.find(' ');
  if (sp1 == std::string::npos) return "";
  size_t sp2 = status_line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return "";
  return status_line.substr(sp2 + 1);
}

std::optional<std::string> FindHeader(const Transfer& t, std::string_view name) {
  for (const auto& [k, v] : t.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// One row of the HTTP cache.
struct CacheRow {
  std::string etag;
  std::string last_modified;
  HttpFile file;
};

}  // namespace

std::string RedactUrl(std::string_view url) {
  auto u = SplitUrl(url);
  if (!u || u->userinfo_end == std::string::npos) return std::string(url);
  std::string_view userinfo = url.substr(u->authority, u->userinfo_end - u->authority);
  std::string out(url.substr(0, u->authority));
  out += userinfo.find(':') != std::string_view::npos ? "xxxxx:xxxxx" : "xxxxx";
  out += url.substr(u->userinfo_end);
  return out;
}

struct HttpSource::Impl {
  explicit Impl(content::Store s) : store(std::move(s)) {}
  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  content::Store store;
  std::filesystem::path cache_db;
  util::NetworkOptions network;
  sqlite3* db = nullptr;
  std::mutex mu;  // serializes use of db

  Status DbError(std::string_view what) {
    if (auto full = util::SqliteNoSpace(db, cache_db, "using the HTTP cache")) {
      return *full;
    }
    return Status::IOError("HTTP cache " + cache_db.string() + ": " + std::string(what) + ": " +
                           (db ? sqlite3_errmsg(db) : "cannot open") +
                           " (the file is a cache: delete it to start afresh)");
  }

  // The cache key: the URL as given may carry credentials, so only its
  // digest is stored, next to the redacted URL.
  static std::string Key(const std::string& url) { return util::Sha256Of(url).str(); }

  Result<std::optional<CacheRow>> Lookup(const std::string& url) {
    std::lock_guard<std::mutex> lock(mu);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db,
                           "SELECT etag, last_modified, digest, size, filename, last_modified_unix "
                           "FROM http_cache WHERE key = ?",
                           -1, &stmt, nullptr) != SQLITE_OK) {
      return DbError("read");
    }
    std::string key = Key(url);
    sqlite3_bind_text(stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    std::optional<CacheRow> row;
    int rc = sqlite3_step(stmt);
    auto text = [&](int col) {
      const unsigned char* p = sqlite3_column_text(stmt, col);
      return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt, col))
               : std::string();
    };
    if (rc == SQLITE_ROW) {
      auto digest = util::Digest::Parse(text(2));
      if (digest.ok()) {
        row.emplace();
        row->etag = text(0);
        row->last_modified = text(1);
        row->file.digest = *digest;
        row->file.size = static_cast<uint64_t>(sqlite3_column_int64(stmt, 3));
        row->file.filename = text(4);
        row->file.last_modified_unix = sqlite3_column_int64(stmt, 5);
      }
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return DbError("read");
    return row;
  }

  Status Save(const std::string& url, const CacheRow& row) {
    std::lock_guard<std::mutex> lock(mu);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO http_cache (key, url, etag, last_modified, "
                           "digest, size, filename, last_modified_unix) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &stmt, nullptr) != SQLITE_OK) {
      return DbError("write");
    }
    std::string key = Key(url);
    std::string redacted = RedactUrl(url);
    sqlite3_bind_text(stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, redacted.data(), static_cast<int>(redacted.size()), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, row.etag.data(), static_cast<int>(row.etag.size()), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, row.last_modified.data(), static_cast<int>(row.last_modified.size()),
                      SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, row.file.digest.str().data(),
                      static_cast<int>(row.file.digest.str().size()), SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, static_cast<sqlite3_int64>(row.file.size));
    sqlite3_bind_text(stmt, 7, row.file.filename.data(), static_cast<int>(row.file.filename.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 8, row.file.last_modified_unix);
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return DbError("write");
    return Status::Ok();
  }

  // One GET; `cached` set means a conditional request for it.
  Result<HttpFile> Get(const std::string& url, const UrlParts& parts,
                       const std::optional<CacheRow>& cached, const HttpFetchOptions& options,
                       bool* not_modified);
};

Result<HttpFile> HttpSource::Impl::Get(const std::string& url, const UrlParts& parts,
                                       const std::optional<CacheRow>& cached,
                                       const HttpFetchOptions& options, bool* not_modified) {
  *not_modified = false;
  const std::string shown = RedactUrl(url);
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Status::Internal("curl_easy_init failed");
  struct Cleanup {
    CURL* curl;
    curl_slist* headers = nullptr;
    ~Cleanup() {
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);
    }
  } cleanup{curl};

  KILN_ASSIGN_OR_RETURN(content::Writer writer, store.NewWriter());
  util::Sha256 hash;
  util::Deadline deadline(network);
  Transfer t;
  t.deadline = &deadline;
  t.curl = curl;
  t.writer = &writer;
  t.hash = &hash;
  t.cancel = options.cancel;

  if (cached) {
    if (!cached->etag.empty()) {
      cleanup.headers =
          curl_slist_append(cleanup.headers, ("If-None-Match: " + cached->etag).c_str());
    }
    if (!cached->last_modified.empty()) {
      cleanup.headers = curl_slist_append(cleanup.headers,
                                          ("If-Modified-Since: " + cached->last_modified).c_str());
    }
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, static_cast<long>(kMaxRedirects));
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(network.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>((network.stall_timeout.count() + 999) / 1000)));
  curl_easy_setopt(curl, CURLOPT_FILETIME, 1L);
  // Environment proxies apply, but never to loopback servers; the user's
  // NO_PROXY list is kept (setting CURLOPT_NOPROXY replaces it).
  std::string no_proxy = "localhost,127.0.0.1,::1";
  for (const char* name : {"no_proxy", "NO_PROXY"}) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
      no_proxy = std::string_view(v) == "*" ? "*" : std::string(v) + "," + no_proxy;
      break;
    }
  }
  curl_easy_setopt(curl, CURLOPT_NOPROXY, no_proxy.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, cleanup.headers);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);

  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    if (options.cancel != nullptr && options.cancel->cancelled()) {
      return options.cancel->Check().Annotate("fetching " + shown);
    }
    if (t.deadline_exceeded) {
      return Status::IOError(util::DeadlineMessage("fetching " + shown, deadline,
                                                   util::RaiseHint(network, "timeout")));
    }
    if (rc == CURLE_WRITE_ERROR && !t.write_error.ok()) {
      return t.write_error.Annotate("fetching " + shown);
    }
    std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    // libcurl's messages name hosts, not credentials; make sure of it.
    if (parts.userinfo_end != std::string::npos) {
      std::string userinfo = url.substr(parts.authority, parts.userinfo_end - parts.authority);
      for (size_t p; !userinfo.empty() && (p = detail.find(userinfo)) != std::string::npos;) {
        detail.replace(p, userinfo.size(), "xxxxx");
      }
    }
    return Status::IOError("fetching " + shown + ": " + detail);
  }
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if (code == 304 && cached) {
    *not_modified = true;
    return cached->file;
  }
  if (code < 200 || code >= 300) {
    std::string reason = ReasonPhrase(t.status_line);
    std::string msg = "fetching " + shown + ": server answered HTTP " + std::to_string(code) +
                      (reason.empty() ? "" : " " + reason);
    if (code == 404 || code == 410) return Status::NotFound(msg);
    if (code == 401 || code == 403) return Status::Unauthorized(msg);
    return Status::IOError(msg);
  }

  HttpFile file;
  file.size = hash.size();
  file.digest = hash.Finish();
  if (options.checksum && *options.checksum != file.digest) {
    writer.Abort();
    return Status::DigestMismatch("checksum of " + shown + " does not match: expected " +
                                  options.checksum->str() + ", got " + file.digest.str());
  }
  KILN_RETURN_IF_ERROR(writer.Commit(file.digest, file.size));

  if (auto cd = FindHeader(t, "content-disposition")) file.filename = DispositionFilename(*cd);
  if (file.filename.empty()) file.filename = BaseName(PercentDecode(parts.path));
  if (file.filename.empty()) file.filename = "index.html";
  curl_off_t filetime = -1;
  if (curl_easy_getinfo(curl, CURLINFO_FILETIME_T, &filetime) == CURLE_OK && filetime > 0) {
    file.last_modified_unix = static_cast<int64_t>(filetime);
  }

  CacheRow row;
  row.etag = FindHeader(t, "etag").value_or("");
  row.last_modified = FindHeader(t, "last-modified").value_or("");
  row.file = file;
  KILN_RETURN_IF_ERROR(Save(url, row));
  return file;
}

HttpSource::HttpSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpSource::~HttpSource() = default;

Result<std::shared_ptr<HttpSource>> HttpSource::Open(const content::Store& store,
                                                     const std::filesystem::path& cache_db,
                                                     const util::NetworkOptions& network) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto impl = std::make_unique<Impl>(store);
  impl->cache_db = cache_db;
  impl->network = network;
  // util::OpenSqlite: WAL and the schema set up safely while other kiln
  // processes open the same file (issue 15, failure 8), mode 0600.
  util::SqliteOptions options;
  options.kind = "HTTP cache";
  options.hint = " (the file is a cache: delete it to start afresh)";
  options.full_mutex = true;
  options.synchronous_normal = false;
  options.setup = [](sqlite3* db) -> Status {
    const char* schema =
        "CREATE TABLE IF NOT EXISTS http_cache ("
        " key TEXT PRIMARY KEY,"         // sha256 of the URL as given
        " url TEXT NOT NULL,"            // the URL, redacted
        " etag TEXT NOT NULL,"           // "" when the server sent none
        " last_modified TEXT NOT NULL,"  // the Last-Modified header as sent
        " digest TEXT NOT NULL,"         // the body in the content store
        " size INTEGER NOT NULL,"
        " filename TEXT NOT NULL,"
        " last_modified_unix INTEGER NOT NULL)";
    if (sqlite3_exec(db, schema, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Status::IOError(std::string("creating the schema: ") + sqlite3_errmsg(db));
    }
    return Status::Ok();
  };
  KILN_ASSIGN_OR_RETURN(util::SqliteHandle db, util::OpenSqlite(cache_db, options));
  impl->db = db.release();
  return std::shared_ptr<HttpSource>(new HttpSource(std::move(impl)));
}

Result<HttpFile> HttpSource::Fetch(const std::string& url, const HttpFetchOptions& options) {
  const std::string shown = RedactUrl(url);
  auto parts = SplitUrl(url);
  if (!parts || (parts->scheme != "http" && parts->scheme != "https")) {
    return Status::InvalidArgument("cannot fetch " + shown +
                                   ": only http:// and https:// URLs are supported");
  }
  if (options.checksum && options.checksum->algorithm() != "sha256") {
    return Status::Unimplemented("checksum " + options.checksum->str() + " for " + shown +
                                 ": only sha256 checksums are supported");
  }
  if (options.cancel != nullptr && options.cancel->cancelled()) {
    return options.cancel->Check().Annotate("fetching " + shown);
  }
  KILN_ASSIGN_OR_RETURN(std::optional<CacheRow> cached, impl_->Lookup(url));
  // A conditional request only makes sense while the stored body is there.
  if (cached && !impl_->store.Has(cached->file.digest)) cached.reset();
  if (cached && cached->etag.empty() && cached->last_modified.empty()) cached.reset();
  if (cached && options.checksum && *options.checksum != cached->file.digest) cached.reset();
  bool not_modified = false;
  auto file = impl_->Get(url, *parts, cached, options, &not_modified);
  if (!file.ok() || !not_modified) return file;
  // 304: reuse the stored body, unless it vanished since we looked.
  if (impl_->store.Has(file->digest)) return file;
  return impl_->Get(url, *parts, std::nullopt, options, &not_modified);
}

}  // namespace kiln::source
