// Client: kiln's OCI distribution API client — resolve, pull and push images.
//
// Owns the HTTP transport (connection reuse across calls and threads), what
// each registry asked for at its /v2/ ping, the credentials read for it
// (auth.h) and the bearer tokens obtained per (registry, scope). It knows
// image manifests and indexes only as far as needed to walk them; the bytes
// it fetches are verified against their digests before anything is kept:
//
//   - Resolve(): HEAD the manifest (Accept: OCI index and manifest, Docker
//     manifest list and schema 2), then GET it by digest; the bytes must hash
//     to the digest the reference names or the registry announced. For an
//     index the platform's manifest is picked (image::PickManifest) and
//     fetched the same way. Manifests above RegistryOptions::max_manifest_size
//     are refused (kResourceExhausted) before their body is read.
//   - Pull(): Resolve() plus every blob into a content::Store, streamed
//     through a content::Writer (verified as it arrives, no second pass),
//     several blobs at once; blobs the store has are skipped. Transient
//     failures (5xx, 429, timeouts, cut connections) are retried with
//     exponential backoff, honouring Retry-After; an interrupted blob resumes
//     with a Range request when the registry showed it supports ranges, and
//     starts over otherwise. A blob whose bytes do not match is
//     kDigestMismatch and nothing of it stays in the store.
//   - Push(): blobs first (HEAD to skip those the registry has, a
//     cross-repository mount when the blob is known to be in another
//     repository of the same registry, a monolithic or chunked upload by
//     size), then manifests, then the index, then the tag.
//
// Waiting: every request has a connect timeout and a stall window, every
// operation an overall deadline (RegistryOptions::timeout), and all of them
// end within about a second of the build's cancellation
// (RegistryOptions::cancel); see docs/network.md.
//
// Which registries are spoken to over plain HTTP: see endpoint.h. Errors name
// the registry and repository (and the digest or tag); credentials never
// appear in messages. Wrong or missing credentials are kUnauthorized, a
// missing manifest or blob kNotFound.
//
// Called by source/ (image sources), exporter/ (registry push) and cli/
// (pull, inspect, copy).
//
// Thread-safety: a Client may be used by several threads at once; its
// caches are internally synchronized. Moving a Client is not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "content/store.h"
#include "image/descriptor.h"
#include "image/platform.h"
#include "image/reference.h"
#include "util/cancel.h"
#include "util/network.h"
#include "util/status.h"

namespace kiln::registry {

struct RegistryOptions {
  // Registries ("host[:port]", or "host" for every port) spoken to over
  // plain HTTP besides loopback ones.
  std::vector<std::string> insecure_registries;
  // Where config.json is; empty: $DOCKER_CONFIG, else ~/.docker.
  std::filesystem::path docker_config_dir;
  // PEM bundle of extra trusted CAs; empty: the system's.
  std::filesystem::path ca_file;

  std::chrono::milliseconds connect_timeout{30'000};
  // A transfer that moves less than 1 byte/s for this long is abandoned
  // (and retried).
  std::chrono::milliseconds low_speed_time{30'000};
  // Overall deadline of one operation (a manifest's HEAD or GET, a blob's
  // download or upload, a manifest's PUT), all its attempts, redirects,
  // token fetches and backoff sleeps included, extended by a second for
  // every `min_rate` bytes it moves (util::Deadline). When it passes the
  // operation fails with kIOError naming the registry and what it was doing,
  // followed by `timeout_hint`.
  std::chrono::milliseconds timeout{300'000};
  uint64_t min_rate = 64 << 10;
  std::string timeout_hint;
  // The build's canceller: once cancelled, every request ends within about a
  // second and backoff sleeps wake; operations fail with kCancelled. May be
  // null; must outlive the Client.
  const util::Canceller* cancel = nullptr;
  // Attempts per request for transient failures, the first included.
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{250};  // doubled per attempt
  std::chrono::milliseconds max_backoff{10'000};
  // A Retry-After longer than this fails the request instead of waiting.
  std::chrono::seconds max_retry_after{60};

  uint64_t max_manifest_size = 4 << 20;
  std::string user_agent = "kiln/0.1";
};

// What a reference resolves to for one platform.
struct Resolved {
  image::Reference reference;  // the reference as given
  // What the reference names: the index for a multi-platform image, else the
  // manifest. Its digest is the pin recorded in build sources (K5).
  image::Descriptor top;
  std::string top_bytes;  // the index's bytes; equal to manifest_bytes otherwise
  // The manifest for the requested platform (== top for a single manifest),
  // with the platform the index gave it.
  image::Descriptor manifest;
  std::string manifest_bytes;
  image::Descriptor config;
  std::vector<image::Descriptor> layers;

  bool is_index() const { return top.digest != manifest.digest; }
};

// A manifest or index as the registry serves it, verified.
struct FetchedManifest {
  image::Descriptor descriptor;  // media type from the document, else Content-Type
  std::string bytes;
};

struct PullOptions {
  int parallelism = 4;  // blobs downloaded at once
};

struct PullResult {
  Resolved resolved;
  uint64_t blobs_fetched = 0;  // blobs downloaded (manifests included)
  uint64_t blobs_skipped = 0;  // already in the store
  uint64_t bytes_fetched = 0;  // body bytes received, retries included
};

// One blob's state during Push(). An upload reports kUploading with `sent`
// growing (it starts again from 0 when the upload is retried), then one of
// the final states.
struct PushProgress {
  enum class State {
    kUploading,  // bytes are being sent
    kUploaded,   // the upload finished
    kMounted,    // mounted from another repository (`mounted_from`)
    kExisting,   // the destination repository already had it
  };
  image::Descriptor blob;
  State state = State::kUploading;
  uint64_t sent = 0;         // bytes sent in the current attempt
  std::string mounted_from;  // kMounted: the source repository's path
};

struct PushOptions {
  int parallelism = 4;  // blobs uploaded at once
  // Blobs larger than this are uploaded in chunks of chunk_size (PATCH).
  uint64_t monolithic_limit = 32ull << 20;
  uint64_t chunk_size = 16ull << 20;
  // Repositories that may already hold some of the blobs (the images they
  // were pulled from). Those on the destination's registry are asked (HEAD)
  // and, where they have a blob, it is mounted instead of uploaded.
  std::vector<image::Reference> mount_from;
  // Speak plain HTTP to the destination's registry even when it is neither
  // loopback nor in RegistryOptions::insecure_registries (the
  // `registry.insecure=true` output option).
  bool insecure = false;
  // Called as each blob moves (see PushProgress); from the uploading threads,
  // possibly several at once. May be empty.
  std::function<void(const PushProgress&)> progress;
};

struct PushStats {
  uint64_t blobs_uploaded = 0;
  uint64_t blobs_mounted = 0;
  uint64_t blobs_existing = 0;  // already in the destination repository
  uint64_t manifests_pushed = 0;
};

class Client {
 public:
  // kInternal if the HTTP library cannot be initialized.
  static Result<Client> Create(RegistryOptions options);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  const RegistryOptions& options() const;

  // Resolves `ref` (tag or digest) and picks the manifest for `platform`
  // (ignored for a single manifest, which is returned whatever its config
  // says). kNotFound for an unknown repository, tag or digest, or no manifest
  // for the platform; kUnimplemented for Docker schema 1; kDigestMismatch for
  // bytes that do not match; kResourceExhausted for an oversized manifest.
  Result<Resolved> Resolve(const image::Reference& ref, const image::Platform& platform);

  // Resolve() then stores the index (if any), the manifest, the config and
  // the layers in `store`. Manifests and config found in the store are read
  // from it rather than fetched.
  Result<PullResult> Pull(const image::Reference& ref, const image::Platform& platform,
                          const content::Store& store, const PullOptions& options = {});

  // The manifest or index `ref` names, verified (no platform selection).
  Result<FetchedManifest> FetchManifest(const image::Reference& ref);

  // Downloads one blob of repository `ref` into `store` (verified; skipped
  // if present).
  Status FetchBlob(const image::Reference& ref, const image::Descriptor& blob,
                   const content::Store& store);

  // Pushes the image whose top-level manifest or index is `top` (every blob
  // it reaches must be in `store`) to `dest`, tagging it with dest.tag when
  // there is one. kNotFound naming a missing blob; kInvalidArgument for a
  // `dest` with a digest that is not top's.
  Status Push(const content::Store& store, const image::Descriptor& top,
              const image::Reference& dest, const PushOptions& options = {},
              PushStats* stats = nullptr);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry
