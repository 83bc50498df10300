// HTTP(S) sources for `ADD <url>`: downloads a file into the content store
// and pins it by the sha256 of its body (spec K7). `--checksum` is enforced
// before anything is used (kDigestMismatch naming the URL, expected and
// actual digest). A later fetch of the same URL sends If-None-Match /
// If-Modified-Since from the last response (kept in ROOT/http-cache.db) and
// reuses the stored body on 304. The file name is the last path component
// of the URL (or the Content-Disposition filename), "index.html" when empty.
//
// Credentials in a URL (user:password@) are used for the request and never
// appear in an error, a log line or a returned value.
//
// Thread-safety: Fetch may be called from several threads.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "content/store.h"
#include "util/cancel.h"
#include "util/digest.h"
#include "util/network.h"
#include "util/status.h"

namespace kiln::source {

struct HttpFetchOptions {
  std::optional<util::Digest> checksum;  // http.checksum
  // The transfer ends within about a second of its cancellation (kCancelled).
  util::Canceller* cancel = nullptr;
};

struct HttpFile {
  util::Digest digest;  // sha256 of the body: the pin
  uint64_t size = 0;
  std::string filename;            // from the URL or Content-Disposition
  int64_t last_modified_unix = 0;  // 0 when the server sent none
};

class HttpSource {
 public:
  // `cache_db`: ROOT/http-cache.db.
  // `network`: connect timeout, stall window and the deadline of one
  // fetch (util::NetworkOptions); a fetch past its deadline is kIOError
  // naming the URL (redacted) and how to allow more time.
  static Result<std::shared_ptr<HttpSource>> Open(const content::Store& store,
                                                  const std::filesystem::path& cache_db,
                                                  const util::NetworkOptions& network = {});
  ~HttpSource();
  Result<HttpFile> Fetch(const std::string& url, const HttpFetchOptions& options);

  struct Impl;

 private:
  explicit HttpSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The URL for messages: credentials replaced by "xxxxx".
std::string RedactUrl(std::string_view url);

}  // namespace kiln::source
