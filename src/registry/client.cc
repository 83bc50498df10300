#include "registry/client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "image/index.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "registry/auth.h"
#include "registry/endpoint.h"
#include "registry/http.h"
#include "registry/responses.h"
#include "util/base64.h"
#include "util/json.h"

namespace kiln::registry {
namespace {

using image::Descriptor;
using image::Reference;
using util::Digest;

constexpr int kMaxRedirects = 5;

const std::string kManifestAccept = "Accept: " + std::string(image::kMediaTypeOciIndex) + ", " +
                                    std::string(image::kMediaTypeOciManifest) + ", " +
                                    std::string(image::kMediaTypeDockerManifestList) + ", " +
                                    std::string(image::kMediaTypeDockerManifest);

// A repository on a registry, as requests address it.
struct Repo {
  std::string domain;  // as in the reference: "docker.io", "127.0.0.1:5000"
  std::string path;    // "library/alpine"
  std::string base;    // "https://registry-1.docker.io/v2/"

  std::string Name() const { return domain + "/" + path; }
};

bool IsTransient(const Response& r) {
  if (!r.error.ok()) return r.retryable;
  return r.status >= 500 || r.status == 429 || r.status == 408;
}

std::string ContentTypeOf(const Response& r) {
  std::string ct = r.Header("Content-Type").value_or("");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  return ct;
}

// The Status for a failed exchange; `what` names the operation, the
// registry and the repository.
Status HttpError(const Response& r, const std::string& what) {
  if (!r.error.ok()) return r.error.Annotate(what);
  std::string detail = RegistryErrorDetail(r.body);
  std::string suffix =
      " (HTTP " + std::to_string(r.status) + (detail.empty() ? std::string() : ", " + detail) + ")";
  switch (r.status) {
    case 401:
      return Status::Unauthorized(what + ": authentication required" + suffix);
    case 403:
      return Status::Unauthorized(what + ": access denied" + suffix);
    case 404:
      return Status::NotFound(what + ": not found" + suffix);
    case 429:
      return Status::ResourceExhausted(what + ": too many requests" + suffix);
    default:
      if (r.status >= 500) return Status::IOError(what + ": server error" + suffix);
      return Status::IOError(what + ": unexpected response" + suffix);
  }
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.append(sep);
    out.append(v[i]);
  }
  return out;
}

}  // namespace

// What the client knows about one registry.
struct RegistryState {
  std::mutex mu;
  bool pinged = false;                 // guarded by mu
  std::optional<Challenge> challenge;  // bearer or basic; none: anonymous access
  bool creds_loaded = false;
  Credentials creds;  // never printed
};

struct Client::Impl {
  RegistryOptions options;
  std::unique_ptr<Transport> transport;
  TokenCache tokens;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<RegistryState>> registries;  // by domain; guarded by mu

  Repo RepoOf(const Reference& ref) const {
    return Repo{ref.domain, ref.path, ApiBase(ref.domain, options.insecure_registries)};
  }

  std::shared_ptr<RegistryState> State(const std::string& domain) {
    std::lock_guard<std::mutex> lock(mu);
    auto& s = registries[domain];
    if (!s) s = std::make_shared<RegistryState>();
    return s;
  }

  std::chrono::milliseconds Backoff(int attempt) {
    auto d = options.initial_backoff;
    for (int i = 1; i < attempt && d < options.max_backoff; ++i) d *= 2;
    d = std::min(d, options.max_backoff);
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(1, d.count() / 4));
    return d + std::chrono::milliseconds(jitter(rng));
  }

  // How long to wait before attempt `attempt` + 1 after `r`; nullopt when
  // the server asks for a wait longer than options allow.
  std::optional<std::chrono::milliseconds> RetryDelay(const Response& r, int attempt) {
    if (r.error.ok() && (r.status == 429 || r.status == 503)) {
      if (auto ra = r.Header("Retry-After")) {
        if (auto secs = ParseRetryAfter(*ra, std::chrono::system_clock::now())) {
          if (*secs > options.max_retry_after) return std::nullopt;
          return std::max<std::chrono::milliseconds>(*secs, Backoff(1));
        }
      }
    }
    return Backoff(attempt);
  }

  // Waits `delay` before another attempt after `r`. False when there must
  // be none: the build was cancelled meanwhile, or the deadline passes first
  // (then after waiting until it does); `r` then says which.
  bool WaitToRetry(std::chrono::milliseconds delay, util::Deadline* dl, Response* r) {
    bool expires = false;
    if (dl != nullptr && dl->limited() && delay >= dl->Remaining()) {
      delay = dl->Remaining();
      expires = true;
    }
    if (util::SleepUnlessCancelled(options.cancel, delay)) {
      r->error = options.cancel->Check();
      r->retryable = false;
      r->deadline_exceeded = false;
      return false;
    }
    if (expires) {
      r->error = Status::IOError("deadline passed");
      r->retryable = false;
      r->deadline_exceeded = true;
      return false;
    }
    return true;
  }

  // The Status of an operation whose deadline passed: names the registry
  // and what it was doing, and how to allow more time.
  Status TimedOut(const Repo& repo, const std::string& doing) const {
    util::Deadline d(options.timeout, options.min_rate);
    return Status::IOError(
        util::DeadlineMessage("registry " + repo.domain + ": " + doing, d, options.timeout_hint));
  }

  // Pings /v2/ once per registry to learn its challenge. Locks st.mu.
  Status EnsurePinged(const Repo& repo, RegistryState& st, util::Deadline* dl) {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.pinged) return Status::Ok();
    Response r;
    for (int attempt = 1;; ++attempt) {
      Request req;
      req.url = repo.base;
      req.deadline = dl;
      r = transport->Do(req);
      if (!IsTransient(r) || attempt >= options.max_attempts) break;
      auto delay = RetryDelay(r, attempt);
      if (!delay || !WaitToRetry(*delay, dl, &r)) break;
    }
    if (r.deadline_exceeded) return TimedOut(repo, "checking the API (GET /v2/)");
    if (!r.error.ok()) return r.error.Annotate("registry " + repo.domain);
    if (r.status == 401) {
      std::string header = r.Header("WWW-Authenticate").value_or("");
      auto challenges = ParseWwwAuthenticate(header);
      if (!challenges.ok()) return challenges.status().Annotate("registry " + repo.domain);
      for (const Challenge& c : *challenges) {
        if (c.scheme == "bearer") {
          st.challenge = c;
          break;
        }
        if (c.scheme == "basic" && !st.challenge) st.challenge = c;
      }
      if (!st.challenge) {
        return Status::Unimplemented("registry " + repo.domain +
                                     " asks for an authentication scheme kiln does not "
                                     "support: " +
                                     header.substr(0, header.find(' ')));
      }
    } else if (r.status < 200 || r.status >= 300) {
      // Some registries answer the ping with 404 and still serve the API;
      // carry on anonymously and let real requests report errors.
      if (r.status >= 500) return HttpError(r, "registry " + repo.domain + ": GET /v2/");
    }
    st.pinged = true;
    return Status::Ok();
  }

  Status EnsureCredentials(const Repo& repo, RegistryState& st) {
    if (st.creds_loaded) return Status::Ok();
    auto creds = LoadCredentials(DockerConfigDir(options.docker_config_dir), repo.domain);
    if (!creds.ok()) return creds.status().Annotate("credentials for registry " + repo.domain);
    st.creds = std::move(creds).value();
    st.creds_loaded = true;
    return Status::Ok();
  }

  Status NoCredentialsError(const Repo& repo, const std::vector<std::string>& scopes) {
    return Status::Unauthorized(
        "registry " + repo.domain + " requires authentication for " + repo.path + " (" +
        Join(scopes, " ") + ") and no credentials for it were found in " +
        (DockerConfigDir(options.docker_config_dir) / "config.json").string());
  }

  // Fetches a bearer token from the challenge's realm. st.mu held.
  Result<Token> FetchToken(const Repo& repo, const RegistryState& st,
                           const std::vector<std::string>& scopes, util::Deadline* dl) {
    const Challenge& c = *st.challenge;
    std::string realm = c.Param("realm");
    if (!realm.starts_with("https://") && !realm.starts_with("http://")) {
      return Status::Unimplemented("registry " + repo.domain +
                                   ": the token realm is not an http(s) URL");
    }
    const std::string service = c.Param("service");
    const std::string origin = UrlOrigin(realm);
    Request req;
    if (!st.creds.identity_token.empty()) {
      req.method = "POST";
      req.url = realm;
      req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
      std::string form = "grant_type=refresh_token&client_id=kiln";
      if (!service.empty()) form += "&service=" + QueryEscape(service);
      for (const auto& s : scopes) form += "&scope=" + QueryEscape(s);
      form += "&refresh_token=" + QueryEscape(st.creds.identity_token);
      req.body = std::move(form);
    } else {
      std::string url = realm;
      if (!service.empty()) url = AddQuery(url, "service", service);
      for (const auto& s : scopes) url = AddQuery(url, "scope", s);
      req.url = url;
      if (!st.creds.username.empty() || !st.creds.password.empty()) {
        req.headers.push_back("Authorization: Basic " +
                              util::Base64Encode(st.creds.username + ":" + st.creds.password));
      }
    }
    req.deadline = dl;
    Response r;
    for (int attempt = 1;; ++attempt) {
      r = transport->Do(req);
      if (!IsTransient(r) || attempt >= options.max_attempts) break;
      auto delay = RetryDelay(r, attempt);
      if (!delay || !WaitToRetry(*delay, dl, &r)) break;
    }
    // Error messages show the token server's origin only: its URL carries
    // no secret, but the form body does.
    const std::string what = "registry " + repo.domain + ": token server " + origin + " for " +
                             repo.path + " (" + Join(scopes, " ") + ")";
    if (r.deadline_exceeded) {
      return TimedOut(repo, "fetching a token from " + origin + " for " + repo.path);
    }
    if (!r.error.ok()) return r.error.Annotate(what);
    if ((r.status == 401 || r.status == 403) && st.creds.empty()) {
      return NoCredentialsError(repo, scopes);
    }
    if (r.status == 401 || r.status == 403) {
      return Status::Unauthorized(what + " refused the credentials (HTTP " +
                                  std::to_string(r.status) + ")");
    }
    if (r.status < 200 || r.status >= 300) return HttpError(r, what);
    auto token = ParseTokenResponse(r.body, std::chrono::steady_clock::now());
    if (!token.ok()) return token.status().Annotate(what);
    return token;
  }

  // The Authorization header value for `scopes`, "" for anonymous access.
  // `refresh` skips the token cache.
  Result<std::string> Authorization(const Repo& repo, RegistryState& st,
                                    const std::vector<std::string>& scopes, bool refresh,
                                    util::Deadline* dl) {
    std::lock_guard<std::mutex> lock(st.mu);
    if (!st.challenge) return std::string();
    KILN_RETURN_IF_ERROR(EnsureCredentials(repo, st));
    if (st.challenge->scheme == "basic") {
      if (st.creds.username.empty() && st.creds.password.empty()) {
        return NoCredentialsError(repo, scopes);
      }
      return "Basic " + util::Base64Encode(st.creds.username + ":" + st.creds.password);
    }
    if (!st.creds.registry_token.empty()) return "Bearer " + st.creds.registry_token;
    const std::string key = repo.domain + "\n" + Join(scopes, " ");
    if (!refresh) {
      if (auto t = tokens.Get(key)) return "Bearer " + *t;
    }
    KILN_ASSIGN_OR_RETURN(Token token, FetchToken(repo, st, scopes, dl));
    std::string value = "Bearer " + token.value;
    tokens.Put(key, std::move(token));
    return value;
  }

  // One exchange with the registry, with authentication (a fresh token and
  // one more try on 401) and, when `follow`, redirects (Authorization is
  // only sent to the registry's own origin). `make` builds the request anew
  // for every try (a body reader must start over).
  Response Send(const Repo& repo, const std::function<Result<Request>()>& make,
                std::vector<std::string> scopes, bool follow, util::Deadline* dl) {
    Response fail;
    std::shared_ptr<RegistryState> st = State(repo.domain);
    if (Status s = EnsurePinged(repo, *st, dl); !s.ok()) {
      fail.error = s;
      return fail;
    }
    auto auth = Authorization(repo, *st, scopes, false, dl);
    if (!auth.ok()) {
      fail.error = auth.status();
      return fail;
    }
    const std::string origin = UrlOrigin(repo.base);
    for (int auth_try = 0;; ++auth_try) {
      Response r;
      std::string url;
      for (int hop = 0;; ++hop) {
        auto req = make();
        if (!req.ok()) {
          fail.error = req.status();
          return fail;
        }
        if (!url.empty()) req->url = url;
        req->deadline = dl;
        if (!auth->empty() && UrlOrigin(req->url) == origin) {
          req->headers.push_back("Authorization: " + *auth);
        }
        r = transport->Do(*req);
        if (!follow || r.redirect_url.empty() || r.status < 300 || r.status >= 400) break;
        if (hop >= kMaxRedirects) {
          r.error =
              Status::IOError(req->method + " " + ShownUrl(req->url) + ": too many redirects");
          return r;
        }
        url = r.redirect_url;
        if (!url.starts_with("https://") && !url.starts_with("http://")) {
          r.error = Status::IOError(req->method + " " + ShownUrl(req->url) +
                                    ": redirect to a URL that is not http(s)");
          return r;
        }
      }
      if (r.status != 401 || !r.error.ok() || auth_try >= 1) return r;
      // A 401: the token expired, was for too narrow a scope, or the
      // registry wants credentials the ping did not ask for.
      if (auto header = r.Header("WWW-Authenticate")) {
        if (auto challenges = ParseWwwAuthenticate(*header); challenges.ok()) {
          std::lock_guard<std::mutex> lock(st->mu);
          for (const Challenge& c : *challenges) {
            if (c.scheme != "bearer" && c.scheme != "basic") continue;
            st->challenge = c;
            std::string scope = c.Param("scope");
            if (!scope.empty() && std::find(scopes.begin(), scopes.end(), scope) == scopes.end()) {
              scopes.push_back(scope);
            }
            break;
          }
        }
      }
      auth = Authorization(repo, *st, scopes, true, dl);
      if (!auth.ok()) {
        fail.error = auth.status();
        return fail;
      }
      if (auth->empty()) return r;
    }
  }

  // Send() retried with backoff while the failure is transient.
  Response SendRetrying(const Repo& repo, const std::function<Result<Request>()>& make,
                        const std::vector<std::string>& scopes, bool follow, util::Deadline* dl) {
    for (int attempt = 1;; ++attempt) {
      Response r = Send(repo, make, scopes, follow, dl);
      if (!IsTransient(r) || attempt >= options.max_attempts) return r;
      auto delay = RetryDelay(r, attempt);
      if (!delay || !WaitToRetry(*delay, dl, &r)) return r;
    }
  }

  static std::vector<std::string> PullScope(const Repo& repo) {
    return {RepositoryScope(repo.path, "pull")};
  }

  std::string Unauthorized401(const Repo& repo, const std::vector<std::string>& scopes) {
    return "registry " + repo.domain + " refused access to " + repo.path + " (" +
           Join(scopes, " ") + ")";
  }

  // Converts a failed exchange to a Status, giving 401s a message that names
  // the registry and repository.
  Status Failure(const Response& r, const Repo& repo, const std::vector<std::string>& scopes,
                 const std::string& what) {
    if (r.deadline_exceeded) return TimedOut(repo, what);
    if (r.error.ok() && r.status == 401) {
      return Status::Unauthorized(Unauthorized401(repo, scopes) + " (HTTP 401)");
    }
    return HttpError(r, what);
  }

  // HEAD of a manifest: its descriptor if the registry says. kNotFound when
  // absent; nullopt when HEAD is not usable (no digest header, or not
  // supported).
  Result<std::optional<Descriptor>> HeadManifest(const Repo& repo, const std::string& reference) {
    auto scopes = PullScope(repo);
    const std::string url = ManifestUrl(repo.base, repo.path, reference);
    util::Deadline dl(options.timeout, options.min_rate);
    Response r = SendRetrying(
        repo,
        [&]() -> Result<Request> {
          Request req;
          req.method = "HEAD";
          req.url = url;
          req.headers.push_back(kManifestAccept);
          return req;
        },
        scopes, true, &dl);
    const std::string what = "manifest " + repo.Name() + ":" + reference;
    if (r.deadline_exceeded)
      return TimedOut(repo, "fetching manifest " + repo.path + ":" + reference);
    if (!r.error.ok() || r.status == 401 || r.status == 403 || r.status == 404) {
      return Failure(r, repo, scopes, what);
    }
    if (r.status != 200) return std::optional<Descriptor>();
    auto dh = r.Header("Docker-Content-Digest");
    if (!dh) return std::optional<Descriptor>();
    auto digest = Digest::Parse(*dh);
    if (!digest.ok()) return std::optional<Descriptor>();
    Descriptor d;
    d.digest = *digest;
    d.media_type = ContentTypeOf(r);
    if (auto cl = r.Header("Content-Length")) {
      std::from_chars(cl->data(), cl->data() + cl->size(), d.size);
      if (static_cast<uint64_t>(d.size) > options.max_manifest_size) {
        return Status::ResourceExhausted(what + ": the manifest is " + std::to_string(d.size) +
                                         " bytes, more than the limit of " +
                                         std::to_string(options.max_manifest_size));
      }
    }
    return std::optional<Descriptor>(std::move(d));
  }

  // GET a manifest by tag or digest. The bytes must hash to `expected` when
  // given, else to the Docker-Content-Digest the registry sent.
  Result<FetchedManifest> GetManifest(const Repo& repo, const std::string& reference,
                                      const Descriptor* expected) {
    auto scopes = PullScope(repo);
    const std::string url = ManifestUrl(repo.base, repo.path, reference);
    const std::string sep =
        reference.starts_with("sha") && reference.find(':') != std::string::npos ? "@" : ":";
    const std::string what = "manifest " + repo.Name() + sep + reference;
    util::Deadline dl(options.timeout, options.min_rate);
    Response r = SendRetrying(
        repo,
        [&]() -> Result<Request> {
          Request req;
          req.url = url;
          req.headers.push_back(kManifestAccept);
          req.max_body = options.max_manifest_size;
          return req;
        },
        scopes, true, &dl);
    if (r.deadline_exceeded)
      return TimedOut(repo, "fetching manifest " + repo.path + sep + reference);
    if (!r.error.ok() && r.error.code() == StatusCode::kResourceExhausted) {
      return Status::ResourceExhausted(what + ": larger than the manifest limit of " +
                                       std::to_string(options.max_manifest_size) + " bytes");
    }
    if (!r.error.ok() || r.status != 200) return Failure(r, repo, scopes, what);
    FetchedManifest out;
    out.bytes = std::move(r.body);
    const Digest actual = util::Sha256Of(out.bytes);
    if (expected != nullptr) {
      if (expected->digest.algorithm() != "sha256") {
        return Status::Unimplemented(what + ": digest algorithm " +
                                     std::string(expected->digest.algorithm()) +
                                     " is not supported");
      }
      if (actual != expected->digest ||
          (expected->size > 0 && static_cast<int64_t>(out.bytes.size()) != expected->size)) {
        // The expected size only when the descriptor states one (a digest
        // reference does not).
        auto bytes = [](uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); };
        return Status::DigestMismatch(
            what + ": expected " + expected->digest.str() +
            (expected->size > 0 ? " (" + bytes(static_cast<uint64_t>(expected->size)) + ")"
                                : std::string()) +
            ", the registry sent " + actual.str() + " (" + bytes(out.bytes.size()) + ")");
      }
    } else if (auto dh = r.Header("Docker-Content-Digest")) {
      auto announced = Digest::Parse(*dh);
      if (announced.ok() && announced->algorithm() == "sha256" && *announced != actual) {
        return Status::DigestMismatch(what + ": the registry announced " + announced->str() +
                                      " but sent bytes with digest " + actual.str());
      }
    }
    out.descriptor.digest = actual;
    out.descriptor.size = static_cast<int64_t>(out.bytes.size());
    out.descriptor.media_type = ManifestMediaType(out.bytes, ContentTypeOf(r));
    if (out.descriptor.media_type == image::kMediaTypeDockerManifestSchema1 ||
        out.descriptor.media_type == image::kMediaTypeDockerManifestSchema1Signed) {
      return Status::Unimplemented(what + ": Docker schema 1 manifests are not supported");
    }
    return out;
  }

  // A manifest by descriptor: from `store` when it has it, else fetched.
  Result<std::string> ManifestBytes(const Repo& repo, const Descriptor& d,
                                    const content::Store* store) {
    if (store != nullptr && store->Has(d.digest)) {
      auto bytes = store->Read(d.digest);
      if (bytes.ok()) return bytes;
    }
    KILN_ASSIGN_OR_RETURN(FetchedManifest m, GetManifest(repo, d.digest.str(), &d));
    return std::move(m.bytes);
  }

  Result<Resolved> ResolveImpl(const Reference& ref, const image::Platform& platform,
                               const content::Store* store) {
    if (ref.domain.empty() || ref.path.empty()) {
      return Status::InvalidArgument("reference \"" + ref.String() + "\" names no registry");
    }
    const Repo repo = RepoOf(ref);
    Resolved out;
    out.reference = ref;
    std::optional<Descriptor> known;
    if (!ref.digest.empty()) {
      auto d = Digest::Parse(ref.digest);
      if (!d.ok()) return d.status();
      known = Descriptor{};
      known->digest = *d;
    } else {
      const std::string tag = ref.tag.empty() ? "latest" : ref.tag;
      KILN_ASSIGN_OR_RETURN(known, HeadManifest(repo, tag));
    }
    if (known) {
      // Fetch by digest: the tag may move between HEAD and GET.
      std::string bytes;
      if (store != nullptr && store->Has(known->digest)) {
        auto b = store->Read(known->digest);
        if (b.ok()) bytes = std::move(b).value();
      }
      if (bytes.empty()) {
        KILN_ASSIGN_OR_RETURN(FetchedManifest m,
                              GetManifest(repo, known->digest.str(), &known.value()));
        out.top = std::move(m.descriptor);
        out.top_bytes = std::move(m.bytes);
      } else {
        out.top.digest = known->digest;
        out.top.size = static_cast<int64_t>(bytes.size());
        out.top.media_type = ManifestMediaType(bytes, known->media_type);
        out.top_bytes = std::move(bytes);
      }
    } else {
      KILN_ASSIGN_OR_RETURN(FetchedManifest m,
                            GetManifest(repo, ref.tag.empty() ? "latest" : ref.tag, nullptr));
      out.top = std::move(m.descriptor);
      out.top_bytes = std::move(m.bytes);
    }
    const std::string name = ref.String();
    if (image::IsIndex(out.top.media_type)) {
      auto index = image::ParseIndex(out.top_bytes);
      if (!index.ok()) return index.status().Annotate(name);
      auto picked = image::PickManifest(*index, platform);
      if (!picked.ok()) return picked.status().Annotate(name);
      out.manifest = std::move(picked).value();
      KILN_ASSIGN_OR_RETURN(out.manifest_bytes, ManifestBytes(repo, out.manifest, store));
    } else if (image::IsManifest(out.top.media_type)) {
      out.manifest = out.top;
      out.manifest_bytes = out.top_bytes;
    } else {
      return Status::Unimplemented(name + ": unsupported manifest media type \"" +
                                   out.top.media_type + "\"");
    }
    auto manifest = image::ParseManifest(out.manifest_bytes);
    if (!manifest.ok()) return manifest.status().Annotate(name);
    out.config = manifest->config;
    out.layers = manifest->layers;
    return out;
  }

  // Downloads one blob into `store`, resuming or restarting after transient
  // failures. `received` counts body bytes; `cancel` stops the transfer.
  Status FetchBlobImpl(const Repo& repo, const Descriptor& blob, const content::Store& store,
                       std::atomic<uint64_t>* received, const std::atomic<bool>* cancel) {
    const std::string what = "blob " + repo.Name() + "@" + blob.digest.str();
    if (blob.digest.algorithm() != "sha256") {
      return Status::Unimplemented(what + ": only sha256 digests are supported");
    }
    if (blob.size < 0) return Status::InvalidArgument(what + ": negative size");
    const uint64_t size = static_cast<uint64_t>(blob.size);
    auto scopes = PullScope(repo);
    const std::string url = BlobUrl(repo.base, repo.path, blob.digest.str());
    std::optional<content::Writer> writer;
    bool resumable = false;  // the server showed it honours Range
    util::Deadline dl(options.timeout, options.min_rate);
    for (int attempt = 1;; ++attempt) {
      if (!writer || (writer->size() > 0 && !resumable)) {
        writer.reset();
        KILN_ASSIGN_OR_RETURN(content::Writer w, store.NewWriter());
        writer.emplace(std::move(w));
      }
      Status restart_error;
      auto make = [&]() -> Result<Request> {
        Request req;
        req.url = url;
        req.stop = cancel;
        const uint64_t offset = writer->size();
        if (offset > 0) req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
        req.on_headers = [&, offset](const Response& r) -> Status {
          if (FindHeader(r.headers, "Accept-Ranges").value_or("") == "bytes") resumable = true;
          if (auto cl = r.Header("Content-Length")) {
            uint64_t len = 0;
            auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), len);
            const uint64_t from = r.status == 206 ? offset : 0;
            if (ec == std::errc() && from + len > size) {
              return Status::DigestMismatch(
                  what + ": the registry announced " + std::to_string(from + len) +
                  " bytes, the descriptor states " + std::to_string(size));
            }
          }
          if (offset > 0) {
            if (r.status == 206) {
              resumable = true;
              auto start = ContentRangeStart(r.Header("Content-Range").value_or(""));
              if (!start || *start != offset) {
                return Status::IOError(what + ": the registry answered a range request from " +
                                       std::to_string(offset) + " with another range");
              }
            } else {
              // The whole blob again: start over.
              writer.reset();
              KILN_ASSIGN_OR_RETURN(content::Writer w, store.NewWriter());
              writer.emplace(std::move(w));
            }
          }
          return Status::Ok();
        };
        req.sink = [&](std::string_view chunk) -> Status {
          if (cancel != nullptr && cancel->load()) return Status::Cancelled(what + ": cancelled");
          if (writer->size() + chunk.size() > size) {
            return Status::DigestMismatch(what + ": the registry sent more than the " +
                                          std::to_string(size) + " bytes the descriptor states");
          }
          if (received != nullptr) *received += chunk.size();
          return writer->Write(chunk);
        };
        return req;
      };
      Response r = Send(repo, make, scopes, true, &dl);
      if (r.error.ok() && (r.status == 200 || r.status == 206)) break;
      const std::string doing = "fetching blob " + blob.digest.str() + " of " + repo.path;
      if (!IsTransient(r) || attempt >= options.max_attempts ||
          (cancel != nullptr && cancel->load())) {
        writer.reset();
        if (r.deadline_exceeded) return TimedOut(repo, doing);
        if (!r.error.ok() && r.error.code() == StatusCode::kDigestMismatch) return r.error;
        return Failure(r, repo, scopes, what);
      }
      auto delay = RetryDelay(r, attempt);
      if (!delay) return Failure(r, repo, scopes, what);
      if (!WaitToRetry(*delay, &dl, &r)) {
        writer.reset();
        if (r.deadline_exceeded) return TimedOut(repo, doing);
        return Failure(r, repo, scopes, what);
      }
    }
    Status st = writer->Commit(blob.digest, size);
    if (!st.ok()) return st.Annotate(what);
    return Status::Ok();
  }

  // Runs `fn` on each item with at most `parallelism` threads; the first
  // error stops the others (through `cancel`) and is returned.
  template <typename T, typename Fn>
  Status ForEachParallel(const std::vector<T>& items, int parallelism, std::atomic<bool>& cancel,
                         Fn fn) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    Status first;
    auto worker = [&] {
      while (!cancel.load() && !(options.cancel != nullptr && options.cancel->cancelled())) {
        size_t i = next.fetch_add(1);
        if (i >= items.size()) return;
        Status s = fn(items[i]);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = s;
          cancel.store(true);
        }
      }
    };
    const size_t n = std::min<size_t>(items.size(), static_cast<size_t>(std::max(1, parallelism)));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    if (first.ok() && options.cancel != nullptr) return options.cancel->Check();
    return first;
  }

  // --- push ---

  // One blob to the destination repository; `transient` is set when the
  // failure may go away on another try.
  Status PushBlobOnce(const Repo& dest, const Descriptor& blob, const content::Store& store,
                      const PushOptions& opts, const std::vector<std::string>& scopes,
                      PushStats& stats, std::mutex& stats_mu, bool* transient, util::Deadline* dl) {
    *transient = false;
    const std::string what = "push blob " + blob.digest.str() + " to " + dest.Name();
    auto fail = [&](const Response& r) {
      *transient = IsTransient(r);
      return Failure(r, dest, scopes, what);
    };
    auto simple = [](std::string method, std::string url) {
      return [method = std::move(method), url = std::move(url)]() -> Result<Request> {
        Request req;
        req.method = method;
        req.url = url;
        return req;
      };
    };
    // Already there?
    Response head = Send(dest, simple("HEAD", BlobUrl(dest.base, dest.path, blob.digest.str())),
                         scopes, true, dl);
    auto report = [&](PushProgress::State state, uint64_t sent, std::string from = {}) {
      if (!opts.progress) return;
      PushProgress p;
      p.blob = blob;
      p.state = state;
      p.sent = sent;
      p.mounted_from = std::move(from);
      opts.progress(p);
    };
    if (head.error.ok() && head.status == 200) {
      {
        std::lock_guard<std::mutex> lock(stats_mu);
        ++stats.blobs_existing;
      }
      report(PushProgress::State::kExisting, static_cast<uint64_t>(blob.size));
      return Status::Ok();
    }
    if (!head.error.ok() || head.status != 404) return fail(head);

    std::string upload;
    // Cross-repository mount from a repository known to hold the blob.
    for (const Reference& from : opts.mount_from) {
      if (from.domain != dest.domain || from.path == dest.path) continue;
      Repo src{from.domain, from.path, dest.base};
      Response h = Send(dest, simple("HEAD", BlobUrl(dest.base, src.path, blob.digest.str())),
                        scopes, true, dl);
      if (!h.error.ok() || h.status != 200) continue;
      std::string url = AddQuery(UploadUrl(dest.base, dest.path), "mount", blob.digest.str());
      url = AddQuery(url, "from", src.path);
      Response m = Send(dest, simple("POST", url), scopes, false, dl);
      if (m.error.ok() && m.status == 201) {
        {
          std::lock_guard<std::mutex> lock(stats_mu);
          ++stats.blobs_mounted;
        }
        report(PushProgress::State::kMounted, static_cast<uint64_t>(blob.size), src.path);
        return Status::Ok();
      }
      if (m.error.ok() && m.status == 202) {
        if (auto loc = m.Header("Location")) upload = ResolveLocation(url, *loc);
        break;
      }
      if (!m.error.ok() || m.status >= 500) return fail(m);
      break;
    }
    if (upload.empty()) {
      const std::string url = UploadUrl(dest.base, dest.path);
      Response p = Send(dest, simple("POST", url), scopes, false, dl);
      if (!p.error.ok() || p.status != 202) return fail(p);
      auto loc = p.Header("Location");
      if (!loc) {
        return Status::IOError(what + ": the registry started an upload without a Location");
      }
      upload = ResolveLocation(url, *loc);
    }

    const uint64_t size = static_cast<uint64_t>(blob.size);
    // Opens the blob and returns a reader of `count` bytes from the current
    // position of `reader` (shared across the chunks of one upload).
    std::shared_ptr<content::BlobReader> reader;
    auto open = [&]() -> Status {
      auto r = store.OpenReader(blob.digest);
      if (!r.ok()) return r.status().Annotate(what);
      if (r->size() != size) {
        return Status::DigestMismatch(what + ": the store holds " + std::to_string(r->size()) +
                                      " bytes, the descriptor states " + std::to_string(size));
      }
      reader = std::make_shared<content::BlobReader>(std::move(r).value());
      return Status::Ok();
    };
    // Bytes of this attempt handed to the transport so far, for `progress`.
    // Reported every kProgressStep bytes, not every read.
    constexpr uint64_t kProgressStep = 256 << 10;
    auto sent = std::make_shared<uint64_t>(0);
    report(PushProgress::State::kUploading, 0);
    auto body_of = [sent, &report](std::shared_ptr<content::BlobReader> rd, uint64_t count) {
      auto left = std::make_shared<uint64_t>(count);
      return [rd, left, sent, &report](char* buf, size_t cap) -> Result<size_t> {
        if (*left == 0) return size_t{0};
        size_t want = static_cast<size_t>(std::min<uint64_t>(cap, *left));
        size_t got = 0;
        while (got < want) {
          KILN_ASSIGN_OR_RETURN(size_t n, rd->Read(buf + got, want - got));
          if (n == 0) break;
          got += n;
        }
        if (got == 0) return Status::IOError("the blob ended early");
        *left -= got;
        const uint64_t before = *sent;
        *sent += got;
        if (*sent / kProgressStep != before / kProgressStep) {
          report(PushProgress::State::kUploading, *sent);
        }
        return got;
      };
    };

    if (size <= opts.monolithic_limit) {
      const std::string url = AddQuery(upload, "digest", blob.digest.str());
      Response put = Send(
          dest,
          [&]() -> Result<Request> {
            KILN_RETURN_IF_ERROR(open());
            *sent = 0;  // a retried request reads the blob again
            Request req;
            req.method = "PUT";
            req.url = url;
            req.headers.push_back("Content-Type: application/octet-stream");
            req.body_reader = body_of(reader, size);
            req.body_size = size;
            return req;
          },
          scopes, false, dl);
      if (!put.error.ok() || put.status != 201) return fail(put);
    } else {
      KILN_RETURN_IF_ERROR(open());
      uint64_t offset = 0;
      while (offset < size) {
        const uint64_t n = std::min(opts.chunk_size, size - offset);
        bool sent = false;
        const std::string url = upload;
        Response patch = Send(
            dest,
            [&]() -> Result<Request> {
              // A chunk cannot be read twice from the stream: an
              // authentication retry fails the attempt (retried whole).
              if (sent) return Status::IOError(what + ": chunk needs to be sent again");
              sent = true;
              Request req;
              req.method = "PATCH";
              req.url = url;
              req.headers.push_back("Content-Type: application/octet-stream");
              req.headers.push_back("Content-Range: " + std::to_string(offset) + "-" +
                                    std::to_string(offset + n - 1));
              req.body_reader = body_of(reader, n);
              req.body_size = n;
              return req;
            },
            scopes, false, dl);
        if (!patch.error.ok() || patch.status != 202) {
          if (!patch.error.ok() && patch.error.code() == StatusCode::kIOError) *transient = true;
          return fail(patch);
        }
        if (auto loc = patch.Header("Location")) upload = ResolveLocation(url, *loc);
        offset += n;
      }
      const std::string url = AddQuery(upload, "digest", blob.digest.str());
      Response put = Send(
          dest,
          [&]() -> Result<Request> {
            Request req;
            req.method = "PUT";
            req.url = url;
            req.headers.push_back("Content-Type: application/octet-stream");
            return req;
          },
          scopes, false, dl);
      if (!put.error.ok() || put.status != 201) return fail(put);
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu);
      ++stats.blobs_uploaded;
    }
    report(PushProgress::State::kUploaded, size);
    return Status::Ok();
  }

  Status PushBlob(const Repo& dest, const Descriptor& blob, const content::Store& store,
                  const PushOptions& opts, const std::vector<std::string>& scopes, PushStats& stats,
                  std::mutex& stats_mu) {
    if (!store.Has(blob.digest)) {
      return Status::NotFound("push to " + dest.Name() + ": blob " + blob.digest.str() +
                              " is not in the content store");
    }
    util::Deadline dl(options.timeout, options.min_rate);
    for (int attempt = 1;; ++attempt) {
      bool transient = false;
      Status s = PushBlobOnce(dest, blob, store, opts, scopes, stats, stats_mu, &transient, &dl);
      if (s.ok() || !transient || attempt >= options.max_attempts) return s;
      Response r;
      r.error = s;
      if (!WaitToRetry(Backoff(attempt), &dl, &r)) {
        if (r.deadline_exceeded) {
          return TimedOut(dest, "pushing blob " + blob.digest.str() + " to " + dest.path);
        }
        return r.error;
      }
    }
  }

  Status PutManifest(const Repo& dest, const std::string& reference, const Descriptor& d,
                     const std::string& bytes, const std::vector<std::string>& scopes) {
    const std::string url = ManifestUrl(dest.base, dest.path, reference);
    util::Deadline dl(options.timeout, options.min_rate);
    Response r = SendRetrying(
        dest,
        [&]() -> Result<Request> {
          Request req;
          req.method = "PUT";
          req.url = url;
          req.headers.push_back("Content-Type: " + d.media_type);
          req.body = bytes;
          return req;
        },
        scopes, false, &dl);
    const std::string what = "push manifest " + d.digest.str() + " to " + dest.Name() +
                             (reference == d.digest.str() ? "" : ":" + reference);
    if (!r.error.ok() || r.status != 201) return Failure(r, dest, scopes, what);
    if (auto dh = r.Header("Docker-Content-Digest")) {
      if (*dh != d.digest.str()) {
        return Status::DigestMismatch(what + ": the registry stored it as " + *dh);
      }
    }
    return Status::Ok();
  }

  // Pushes the manifest or index `d` and everything it reaches, then puts it
  // under `reference`.
  Status PushTree(const Repo& dest, const Descriptor& d, const std::string& reference,
                  const content::Store& store, const PushOptions& opts,
                  const std::vector<std::string>& scopes, PushStats& stats, int depth) {
    if (depth > 4) return Status::InvalidArgument("push: indexes nested too deeply");
    auto bytes = store.Read(d.digest);
    if (!bytes.ok()) return bytes.status().Annotate("push to " + dest.Name());
    if (d.media_type.empty()) {
      Descriptor typed = d;
      typed.media_type = ManifestMediaType(*bytes, "");
      return PushTree(dest, typed, reference, store, opts, scopes, stats, depth);
    }
    std::mutex stats_mu;
    if (image::IsIndex(d.media_type)) {
      auto index = image::ParseIndex(*bytes);
      if (!index.ok()) return index.status().Annotate("push " + d.digest.str());
      for (const Descriptor& m : index->manifests) {
        if (!image::IsIndex(m.media_type) && !image::IsManifest(m.media_type)) {
          KILN_RETURN_IF_ERROR(PushBlob(dest, m, store, opts, scopes, stats, stats_mu));
          continue;
        }
        KILN_RETURN_IF_ERROR(
            PushTree(dest, m, m.digest.str(), store, opts, scopes, stats, depth + 1));
      }
    } else if (image::IsManifest(d.media_type)) {
      auto manifest = image::ParseManifest(*bytes);
      if (!manifest.ok()) return manifest.status().Annotate("push " + d.digest.str());
      std::vector<Descriptor> blobs;
      std::set<Digest> seen;
      auto add = [&](const Descriptor& b) {
        if (image::IsNondistributableLayer(b.media_type)) return;
        if (seen.insert(b.digest).second) blobs.push_back(b);
      };
      add(manifest->config);
      for (const auto& l : manifest->layers) add(l);
      std::atomic<bool> cancel{false};
      KILN_RETURN_IF_ERROR(
          ForEachParallel(blobs, opts.parallelism, cancel, [&](const Descriptor& b) {
            return PushBlob(dest, b, store, opts, scopes, stats, stats_mu);
          }));
    } else {
      return Status::InvalidArgument("push " + d.digest.str() + ": media type \"" + d.media_type +
                                     "\" is neither a manifest nor an index");
    }
    KILN_RETURN_IF_ERROR(PutManifest(dest, reference, d, *bytes, scopes));
    ++stats.manifests_pushed;
    return Status::Ok();
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::Create(RegistryOptions options) {
  TransportOptions t;
  t.connect_timeout = options.connect_timeout;
  t.low_speed_time = options.low_speed_time;
  t.user_agent = options.user_agent;
  t.ca_file = options.ca_file;
  t.cancel = options.cancel;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, Transport::Create(std::move(t)));
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->options.max_attempts = std::max(1, impl->options.max_attempts);
  impl->transport = std::move(transport);
  return Client(std::move(impl));
}

const RegistryOptions& Client::options() const { return impl_->options; }

Result<Resolved> Client::Resolve(const Reference& ref, const image::Platform& platform) {
  return impl_->ResolveImpl(ref, platform, nullptr);
}

Result<FetchedManifest> Client::FetchManifest(const Reference& ref) {
  if (ref.domain.empty() || ref.path.empty()) {
    return Status::InvalidArgument("reference \"" + ref.String() + "\" names no registry");
  }
  const Repo repo = impl_->RepoOf(ref);
  if (!ref.digest.empty()) {
    KILN_ASSIGN_OR_RETURN(Digest d, Digest::Parse(ref.digest));
    Descriptor expected;
    expected.digest = d;
    return impl_->GetManifest(repo, d.str(), &expected);
  }
  return impl_->GetManifest(repo, ref.tag.empty() ? "latest" : ref.tag, nullptr);
}

Status Client::FetchBlob(const Reference& ref, const Descriptor& blob,
                         const content::Store& store) {
  if (store.Has(blob.digest)) return Status::Ok();
  return impl_->FetchBlobImpl(impl_->RepoOf(ref), blob, store, nullptr, nullptr);
}

Result<PullResult> Client::Pull(const Reference& ref, const image::Platform& platform,
                                const content::Store& store, const PullOptions& options) {
  PullResult out;
  KILN_ASSIGN_OR_RETURN(out.resolved, impl_->ResolveImpl(ref, platform, &store));
  const Resolved& res = out.resolved;
  // Manifests: already verified in memory.
  auto keep = [&](const Descriptor& d, const std::string& bytes) -> Status {
    if (store.Has(d.digest)) {
      ++out.blobs_skipped;
      return Status::Ok();
    }
    auto put = store.Put(bytes, &d.digest);
    if (!put.ok()) return put.status().Annotate("pull " + ref.String());
    ++out.blobs_fetched;
    out.bytes_fetched += bytes.size();
    return Status::Ok();
  };
  if (res.is_index()) KILN_RETURN_IF_ERROR(keep(res.top, res.top_bytes));
  KILN_RETURN_IF_ERROR(keep(res.manifest, res.manifest_bytes));

  std::vector<Descriptor> blobs;
  std::set<Digest> seen;
  for (const Descriptor* d : {&res.config}) {
    if (seen.insert(d->digest).second) blobs.push_back(*d);
  }
  for (const Descriptor& l : res.layers) {
    if (seen.insert(l.digest).second) blobs.push_back(l);
  }
  std::vector<Descriptor> missing;
  for (const Descriptor& b : blobs) {
    if (store.Has(b.digest)) {
      ++out.blobs_skipped;
    } else {
      missing.push_back(b);
    }
  }
  const Repo repo = impl_->RepoOf(ref);
  std::atomic<uint64_t> received{0};
  std::atomic<bool> cancel{false};
  KILN_RETURN_IF_ERROR(
      impl_->ForEachParallel(missing, options.parallelism, cancel, [&](const Descriptor& b) {
        return impl_->FetchBlobImpl(repo, b, store, &received, &cancel);
      }));
  out.blobs_fetched += missing.size();
  out.bytes_fetched += received.load();
  return out;
}

Status Client::Push(const content::Store& store, const Descriptor& top, const Reference& dest,
                    const PushOptions& options, PushStats* stats) {
  if (dest.domain.empty() || dest.path.empty()) {
    return Status::InvalidArgument("reference \"" + dest.String() + "\" names no registry");
  }
  if (!dest.digest.empty() && dest.digest != top.digest.str()) {
    return Status::InvalidArgument("push to " + dest.String() + ": the reference's digest is not " +
                                   top.digest.str());
  }
  Repo repo = impl_->RepoOf(dest);
  if (options.insecure) repo.base = ApiBase(dest.domain, {dest.domain});
  std::vector<std::string> scopes = {RepositoryScope(repo.path, "pull,push")};
  for (const Reference& from : options.mount_from) {
    if (from.domain == dest.domain && from.path != dest.path) {
      std::string s = RepositoryScope(from.path, "pull");
      if (std::find(scopes.begin(), scopes.end(), s) == scopes.end()) scopes.push_back(s);
    }
  }
  PushStats local;
  PushStats& st = stats != nullptr ? *stats : local;
  const std::string reference = dest.tag.empty() ? top.digest.str() : dest.tag;
  return impl_->PushTree(repo, top, reference, store, options, scopes, st, 0);
}

}  // namespace kiln::registry
