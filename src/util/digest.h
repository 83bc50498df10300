// Content digests ("algorithm:hex") and streaming SHA-256.
//
// Digest is a validated value: a Digest object always holds a supported
// algorithm (sha256 or sha512) and a lowercase hex string of the right length,
// so code holding one never re-checks it. Sha256 hashes a stream through
// OpenSSL's EVP interface (SHA-NI where the CPU has it).
//
// Thread-safety: Digest is a value type. A Sha256 object is used by one
// thread at a time.
#pragma once

#include <compare>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::util {

class Digest {
 public:
  Digest() = default;  // empty: no digest

  // Parses "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>".
  // Errors (kInvalidArgument) say what was wrong: a missing ':', an
  // unsupported algorithm, a bad length, a non-hex or upper-case character.
  static Result<Digest> Parse(std::string_view text);
  // From 32 raw bytes.
  static Digest FromSha256Bytes(const unsigned char (&bytes)[32]);

  bool empty() const { return text_.empty(); }
  std::string_view algorithm() const;
  std::string_view hex() const;
  const std::string& str() const { return text_; }

  friend auto operator<=>(const Digest&, const Digest&) = default;
  friend bool operator==(const Digest&, const Digest&) = default;

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;  // "algo:hex", validated; empty when default-constructed
};

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Total bytes passed to Update so far.
  uint64_t size() const { return size_; }
  // Finishes the hash; the object must not be used afterwards.
  Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t size_ = 0;
};

Digest Sha256Of(std::string_view data);
// Hashes a whole file, streaming it.
Result<Digest> Sha256OfFile(const std::filesystem::path& path);

}  // namespace kiln::util
