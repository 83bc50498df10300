#include "util/compress.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::util {
namespace {

constexpr size_t kOutChunk = 1 << 17;  // compressed bytes handed downstream per call
constexpr size_t kInChunk = 1 << 17;   // compressed bytes pulled from upstream per read

// The gzip member header we write: magic, deflate, no flags, mtime 0, no
// extra flags, OS 255 ("unknown"), so output never depends on the host.
constexpr unsigned char kGzipHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

class PlainCompressor : public Compressor {
 public:
  explicit PlainCompressor(ByteSink sink) : sink_(std::move(sink)) {}
  Status Write(std::string_view data) override {
    if (data.empty()) return Status::Ok();
    return sink_(data);
  }
  Status Finish() override { return Status::Ok(); }

 private:
  ByteSink sink_;
};

// igzip: a raw deflate stream between our fixed header and the CRC32/ISIZE
// trailer that igzip writes for IGZIP_GZIP_NO_HDR.
class IsalGzipCompressor : public Compressor {
 public:
  IsalGzipCompressor(ByteSink sink, int level) : sink_(std::move(sink)), out_(kOutChunk) {
    isal_deflate_init(&stream_);
    stream_.level = static_cast<uint32_t>(level);
    switch (level) {
      case 1:
        level_buf_.resize(ISAL_DEF_LVL1_DEFAULT);
        break;
      case 2:
        level_buf_.resize(ISAL_DEF_LVL2_DEFAULT);
        break;
      case 3:
        level_buf_.resize(ISAL_DEF_LVL3_DEFAULT);
        break;
      default:
        break;
    }
    stream_.level_buf = level_buf_.empty() ? nullptr : level_buf_.data();
    stream_.level_buf_size = static_cast<uint32_t>(level_buf_.size());
    stream_.gzip_flag = IGZIP_GZIP_NO_HDR;
    stream_.end_of_stream = 0;
    stream_.flush = NO_FLUSH;
  }

  Status Write(std::string_view data) override {
    if (finished_) return Status::Internal("gzip compressor: Write after Finish");
    KILN_RETURN_IF_ERROR(WriteHeaderOnce());
    while (!data.empty()) {
      size_t n = std::min<size_t>(data.size(), 1u << 30);
      stream_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data.data()));
      stream_.avail_in = static_cast<uint32_t>(n);
      while (stream_.avail_in > 0) KILN_RETURN_IF_ERROR(Step());
      data.remove_prefix(n);
    }
    return Status::Ok();
  }

  Status Finish() override {
    if (finished_) return Status::Internal("gzip compressor: Finish called twice");
    finished_ = true;
    KILN_RETURN_IF_ERROR(WriteHeaderOnce());
    stream_.next_in = nullptr;
    stream_.avail_in = 0;
    stream_.end_of_stream = 1;
    while (stream_.internal_state.state != ZSTATE_END) KILN_RETURN_IF_ERROR(Step());
    return Status::Ok();
  }

 private:
  Status WriteHeaderOnce() {
    if (header_written_) return Status::Ok();
    header_written_ = true;
    return sink_(std::string_view(reinterpret_cast<const char*>(kGzipHeader), sizeof kGzipHeader));
  }

  // One isal_deflate call into out_, handing whatever it produced downstream.
  Status Step() {
    stream_.next_out = out_.data();
    stream_.avail_out = static_cast<uint32_t>(out_.size());
    int rc = isal_deflate(&stream_);
    if (rc != COMP_OK) {
      return Status::Internal("igzip deflate failed with code " + std::to_string(rc));
    }
    size_t produced = out_.size() - stream_.avail_out;
    if (produced == 0) return Status::Ok();
    return sink_(std::string_view(reinterpret_cast<const char*>(out_.data()), produced));
  }

  ByteSink sink_;
  isal_zstream stream_{};
  std::vector<uint8_t> level_buf_;
  std::vector<uint8_t> out_;
  bool header_written_ = false;
  bool finished_ = false;
};

class ZstdCompressor : public Compressor {
 public:
  ZstdCompressor(ByteSink sink, int level)
      : sink_(std::move(sink)), cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }

  Status Write(std::string_view data) override {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    while (in.pos < in.size) KILN_RETURN_IF_ERROR(Step(&in, ZSTD_e_continue, nullptr));
    return Status::Ok();
  }

  Status Finish() override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    size_t remaining = 1;
    while (remaining != 0) KILN_RETURN_IF_ERROR(Step(&in, ZSTD_e_end, &remaining));
    return Status::Ok();
  }

 private:
  Status Step(ZSTD_inBuffer* in, ZSTD_EndDirective mode, size_t* remaining) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t rc = ZSTD_compressStream2(cctx_, &out, in, mode);
    if (ZSTD_isError(rc)) {
      return Status::Internal(std::string("zstd compression failed: ") + ZSTD_getErrorName(rc));
    }
    if (remaining) *remaining = rc;
    if (out.pos == 0) return Status::Ok();
    return sink_(std::string_view(out_.data(), out.pos));
  }

  ByteSink sink_;
  ZSTD_CCtx* cctx_;
  std::vector<char> out_;
};

// Pulls compressed bytes from upstream on demand; remembers the end.
class Input {
 public:
  explicit Input(ByteSource upstream) : upstream_(std::move(upstream)), buf_(kInChunk) {}

  // Makes at least `want` bytes available unless the stream ends first.
  Status Fill(size_t want) {
    if (avail() >= want || eof_) return Status::Ok();
    if (pos_ > 0) {
      std::memmove(buf_.data(), buf_.data() + pos_, avail());
      end_ -= pos_;
      pos_ = 0;
    }
    if (buf_.size() < want) buf_.resize(want);
    while (end_ < want && !eof_) {
      KILN_ASSIGN_OR_RETURN(size_t n, upstream_(buf_.data() + end_, buf_.size() - end_));
      if (n == 0) eof_ = true;
      end_ += n;
    }
    return Status::Ok();
  }
  // Refills when empty; returns false at the end of the stream.
  Result<bool> More() {
    if (avail() > 0) return true;
    pos_ = end_ = 0;
    if (eof_) return false;
    KILN_ASSIGN_OR_RETURN(size_t n, upstream_(buf_.data(), buf_.size()));
    if (n == 0) eof_ = true;
    end_ = n;
    return n > 0;
  }
  char* data() { return buf_.data() + pos_; }
  size_t avail() const { return end_ - pos_; }
  void Consume(size_t n) { pos_ += n; }

 private:
  ByteSource upstream_;
  std::vector<char> buf_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
};

std::string IsalError(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid back-reference distance";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unsupported compression method (gzip must use deflate)";
    case ISAL_INCORRECT_CHECKSUM:
      return "CRC32 or length check failed";
    default:
      return "inflate error " + std::to_string(rc);
  }
}

// Decodes a sequence of gzip members (as `cat a.gz b.gz` makes) with igzip.
class GzipDecoder {
 public:
  explicit GzipDecoder(Input input) : in_(std::move(input)) { StartMember(); }

  Result<size_t> Read(char* buf, size_t capacity) {
    if (capacity == 0) return size_t{0};
    for (;;) {
      if (member_done_) {
        // Another member may follow; anything else is an error.
        KILN_ASSIGN_OR_RETURN(bool more, in_.More());
        if (!more) return size_t{0};
        KILN_RETURN_IF_ERROR(in_.Fill(2));
        if (in_.avail() < 2 || static_cast<unsigned char>(in_.data()[0]) != 0x1f ||
            static_cast<unsigned char>(in_.data()[1]) != 0x8b) {
          return Status::InvalidArgument("corrupt gzip stream: unexpected data after member " +
                                         std::to_string(members_));
        }
        StartMember();
      }
      if (state_.avail_in == 0) {
        KILN_ASSIGN_OR_RETURN(bool more, in_.More());
        if (!more) {
          return Status::InvalidArgument("corrupt gzip stream: truncated (ends inside member " +
                                         std::to_string(members_ + 1) + ")");
        }
        state_.next_in = reinterpret_cast<uint8_t*>(in_.data());
        state_.avail_in = static_cast<uint32_t>(std::min<size_t>(in_.avail(), 1u << 30));
      }
      uint32_t before_in = state_.avail_in;
      state_.next_out = reinterpret_cast<uint8_t*>(buf);
      state_.avail_out = static_cast<uint32_t>(std::min<size_t>(capacity, 1u << 30));
      int rc = isal_inflate(&state_);
      in_.Consume(before_in - state_.avail_in);
      if (rc < 0) return Status::InvalidArgument("corrupt gzip stream: " + IsalError(rc));
      size_t produced = std::min<size_t>(capacity, 1u << 30) - state_.avail_out;
      if (state_.block_state == ISAL_BLOCK_FINISH) {
        member_done_ = true;
        ++members_;
      }
      if (produced > 0) return produced;
    }
  }

 private:
  void StartMember() {
    isal_inflate_init(&state_);
    state_.crc_flag = ISAL_GZIP;
    // Input bytes left in our buffer are handed to the new member lazily.
    state_.avail_in = 0;
    member_done_ = false;
  }

  Input in_;
  inflate_state state_{};
  bool member_done_ = false;
  int members_ = 0;
};

class ZstdDecoder {
 public:
  explicit ZstdDecoder(Input input) : in_(std::move(input)), dctx_(ZSTD_createDCtx()) {}
  ~ZstdDecoder() { ZSTD_freeDCtx(dctx_); }
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  Result<size_t> Read(char* buf, size_t capacity) {
    if (capacity == 0) return size_t{0};
    for (;;) {
      KILN_ASSIGN_OR_RETURN(bool more, in_.More());
      ZSTD_outBuffer out{buf, capacity, 0};
      if (!more) {
        // Flush anything still held in the decoder's window.
        ZSTD_inBuffer in{nullptr, 0, 0};
        size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
        if (ZSTD_isError(rc)) {
          return Status::InvalidArgument(std::string("corrupt zstd stream: ") +
                                         ZSTD_getErrorName(rc));
        }
        if (out.pos > 0) return out.pos;
        if (!frame_done_) return Status::InvalidArgument("corrupt zstd stream: truncated");
        return size_t{0};
      }
      ZSTD_inBuffer in{in_.data(), in_.avail(), 0};
      size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
      in_.Consume(in.pos);
      if (ZSTD_isError(rc)) {
        return Status::InvalidArgument(std::string("corrupt zstd stream: ") +
                                       ZSTD_getErrorName(rc));
      }
      frame_done_ = rc == 0;
      if (out.pos > 0) return out.pos;
    }
  }

 private:
  Input in_;
  ZSTD_DCtx* dctx_;
  bool frame_done_ = true;
};

}  // namespace

Compression DetectCompression(std::string_view head) {
  auto at = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  if (head.size() >= 2 && at(0) == 0x1f && at(1) == 0x8b) return Compression::kGzip;
  if (head.size() >= 4 && at(0) == 0x28 && at(1) == 0xb5 && at(2) == 0x2f && at(3) == 0xfd) {
    return Compression::kZstd;
  }
  return Compression::kNone;
}

Result<std::unique_ptr<Compressor>> NewCompressor(Compression c, ByteSink downstream, int level) {
  switch (c) {
    case Compression::kNone:
      return std::unique_ptr<Compressor>(new PlainCompressor(std::move(downstream)));
    case Compression::kGzip:
      if (level < 0 || level > 9) {
        return Status::InvalidArgument("gzip level " + std::to_string(level) +
                                       " is out of range (0 = default, 1-9)");
      }
      // igzip has levels 0-3; 0 (ours) is its fast level 1, and the zlib
      // range 4-9 maps to igzip's strongest, 3.
      return std::unique_ptr<Compressor>(new IsalGzipCompressor(
          std::move(downstream), level == 0 ? 1 : std::min(level, ISAL_DEF_MAX_LEVEL)));
    case Compression::kZstd:
      if (level < 0 || level > ZSTD_maxCLevel()) {
        return Status::InvalidArgument("zstd level " + std::to_string(level) +
                                       " is out of range (0 = default, 1-" +
                                       std::to_string(ZSTD_maxCLevel()) + ")");
      }
      return std::unique_ptr<Compressor>(
          new ZstdCompressor(std::move(downstream), level == 0 ? 3 : level));
  }
  return Status::Internal("unknown compression");
}

ByteSource Decompress(ByteSource upstream) {
  // The decoder is picked on the first read, once the first bytes are known.
  struct State {
    std::optional<Input> input;
    std::unique_ptr<GzipDecoder> gzip;
    std::unique_ptr<ZstdDecoder> zstd;
    bool started = false;
  };
  auto st = std::make_shared<State>();
  st->input.emplace(std::move(upstream));
  return [st](char* buf, size_t capacity) -> Result<size_t> {
    if (!st->started) {
      st->started = true;
      KILN_RETURN_IF_ERROR(st->input->Fill(4));
      Compression c = DetectCompression(std::string_view(st->input->data(), st->input->avail()));
      if (c == Compression::kGzip) {
        st->gzip = std::make_unique<GzipDecoder>(std::move(*st->input));
      } else if (c == Compression::kZstd) {
        st->zstd = std::make_unique<ZstdDecoder>(std::move(*st->input));
      }
    }
    if (st->gzip) return st->gzip->Read(buf, capacity);
    if (st->zstd) return st->zstd->Read(buf, capacity);
    KILN_ASSIGN_OR_RETURN(bool more, st->input->More());
    if (!more) return size_t{0};
    size_t n = std::min(capacity, st->input->avail());
    std::memcpy(buf, st->input->data(), n);
    st->input->Consume(n);
    return n;
  };
}

}  // namespace kiln::util
