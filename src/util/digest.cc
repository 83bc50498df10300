#include "util/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace kiln::util {
namespace {

constexpr char kHex[] = "0123456789abcdef";

size_t HexLengthFor(std::string_view algo) {
  if (algo == "sha256") return 64;
  if (algo == "sha512") return 128;
  return 0;
}

}  // namespace

Result<Digest> Digest::Parse(std::string_view text) {
  const size_t colon = text.find(':');
  if (text.empty()) return Status::InvalidArgument("invalid digest: empty string");
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument("invalid digest \"" + std::string(text) +
                                   "\": expected \"algorithm:hex\", e.g. sha256:<64 hex digits>");
  }
  std::string_view algo = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  const size_t want = HexLengthFor(algo);
  if (want == 0) {
    return Status::InvalidArgument("invalid digest \"" + std::string(text) +
                                   "\": unsupported algorithm \"" + std::string(algo) +
                                   "\" (kiln verifies sha256 and sha512)");
  }
  if (hex.size() != want) {
    return Status::InvalidArgument("invalid digest \"" + std::string(text) +
                                   "\": " + std::string(algo) + " needs " + std::to_string(want) +
                                   " hex digits, found " + std::to_string(hex.size()));
  }
  for (size_t i = 0; i < hex.size(); ++i) {
    const char c = hex[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Status::InvalidArgument("invalid digest \"" + std::string(text) + "\": character " +
                                     std::to_string(colon + 1 + i) +
                                     " is not a lowercase hex digit");
    }
  }
  return Digest(std::string(text));
}

Digest Digest::FromSha256Bytes(const unsigned char (&bytes)[32]) {
  std::string s = "sha256:";
  s.reserve(7 + 64);
  for (unsigned char b : bytes) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return Digest(std::move(s));
}

std::string_view Digest::algorithm() const {
  std::string_view t = text_;
  return t.substr(0, t.find(':'));
}

std::string_view Digest::hex() const {
  std::string_view t = text_;
  const size_t colon = t.find(':');
  return colon == std::string_view::npos ? std::string_view() : t.substr(colon + 1);
}

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  KILN_CHECK(ctx_->md != nullptr, "EVP_MD_CTX_new failed");
  KILN_CHECK(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1, "EVP_DigestInit_ex failed");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t size) {
  KILN_CHECK(ctx_ != nullptr, "Sha256 used after Finish");
  KILN_CHECK(EVP_DigestUpdate(ctx_->md, data, size) == 1, "EVP_DigestUpdate failed");
  size_ += size;
}

Digest Sha256::Finish() {
  KILN_CHECK(ctx_ != nullptr, "Sha256::Finish called twice");
  unsigned char out[32];
  unsigned int len = 0;
  KILN_CHECK(EVP_DigestFinal_ex(ctx_->md, out, &len) == 1 && len == 32,
             "EVP_DigestFinal_ex failed");
  ctx_.reset();
  return Digest::FromSha256Bytes(out);
}

Digest Sha256Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

Result<Digest> Sha256OfFile(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::IOError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Status::IOError("cannot read " + path.string() + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.Finish();
}

}  // namespace kiln::util
