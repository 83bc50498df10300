#include "util/compress.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace kiln::util {
namespace {

std::string Compress(Compression c, std::string_view data, size_t chunk = 1 << 16, int level = 0) {
  std::string out;
  auto comp = NewCompressor(
      c,
      [&](std::string_view b) {
        out.append(b);
        return Status::Ok();
      },
      level);
  KILN_CHECK(comp.ok(), comp.status().ToString());
  for (size_t i = 0; i < data.size(); i += chunk) {
    KILN_CHECK((*comp)->Write(data.substr(i, chunk)).ok(), "write");
  }
  KILN_CHECK((*comp)->Finish().ok(), "finish");
  return out;
}

// A source handing out `data` in pieces of at most `piece` bytes.
ByteSource StringSource(std::string data, size_t piece = 4096) {
  auto pos = std::make_shared<size_t>(0);
  auto d = std::make_shared<std::string>(std::move(data));
  return [d, pos, piece](char* buf, size_t cap) -> Result<size_t> {
    size_t n = std::min({cap, piece, d->size() - *pos});
    std::memcpy(buf, d->data() + *pos, n);
    *pos += n;
    return n;
  };
}

Result<std::string> DecompressAll(std::string data, size_t piece = 4096, size_t cap = 65536) {
  ByteSource src = Decompress(StringSource(std::move(data), piece));
  std::string out;
  std::vector<char> buf(cap);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(size_t n, src(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
}

std::string MixedData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  s.reserve(size);
  const char* words[] = {"layer ", "snapshot ", "overlay ", "kiln ", "/usr/lib/x86_64 ", "\n"};
  while (s.size() < size) {
    if (rng() % 2) {
      for (int i = 0; i < 512 && s.size() < size; ++i) s.push_back(static_cast<char>(rng()));
    } else {
      for (int i = 0; i < 100 && s.size() < size; ++i) s += words[rng() % 6];
    }
  }
  s.resize(size);
  return s;
}

// Decompresses with zlib itself, accepting concatenated members.
std::string ZlibGunzip(const std::string& gz) {
  z_stream zs{};
  KILN_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, "inflateInit2");
  std::string out;
  std::vector<char> buf(1 << 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(buf.size());
    int rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);
      continue;
    }
    KILN_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, "zlib inflate failed");
    KILN_CHECK(!(rc == Z_BUF_ERROR && zs.avail_in == 0), "zlib: truncated");
  }
  inflateEnd(&zs);
  return out;
}

TEST(CompressTest, DetectCompression) {
  EXPECT_EQ(DetectCompression(std::string("\x1f\x8b\x08\x00", 4)), Compression::kGzip);
  EXPECT_EQ(DetectCompression(std::string("\x28\xb5\x2f\xfd", 4)), Compression::kZstd);
  EXPECT_EQ(DetectCompression("ustar"), Compression::kNone);
  EXPECT_EQ(DetectCompression(""), Compression::kNone);
  EXPECT_EQ(DetectCompression(std::string("\x28\xb5\x2f", 3)), Compression::kNone);
  EXPECT_EQ(DetectCompression(Compress(Compression::kGzip, "x")), Compression::kGzip);
  EXPECT_EQ(DetectCompression(Compress(Compression::kZstd, "x")), Compression::kZstd);
}

TEST(CompressTest, GzipHeaderIsFixed) {
  std::string gz = Compress(Compression::kGzip, "hello");
  ASSERT_GE(gz.size(), 18u);
  // Magic, deflate, no flags (so no file name), mtime 0, OS unknown.
  EXPECT_EQ(gz.substr(0, 10), std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10));
}

TEST(CompressTest, RoundTripsEmptyAndSmall) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    for (std::string in : {std::string(), std::string("a"), std::string("hello, layer\n")}) {
      auto out = DecompressAll(Compress(c, in));
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ(*out, in) << "compression " << static_cast<int>(c);
    }
  }
  EXPECT_EQ(ZlibGunzip(Compress(Compression::kGzip, "")), "");
}

TEST(CompressTest, RoundTripsFiftyMegabytes) {
  std::string data = MixedData(50 << 20, 7);
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    std::string packed = Compress(c, data, 1 << 20);
    if (c != Compression::kNone) {
      EXPECT_LT(packed.size(), data.size());
    }
    auto out = DecompressAll(packed, 1 << 17, 1 << 20);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(*out == data) << "compression " << static_cast<int>(c);
    if (c == Compression::kGzip) {
      EXPECT_TRUE(ZlibGunzip(packed) == data);
    }
  }
}

TEST(CompressTest, GzipIsDeterministicAcrossChunkings) {
  std::string data = MixedData(3 << 20, 11);
  std::string a = Compress(Compression::kGzip, data, 1 << 20);
  std::string b = Compress(Compression::kGzip, data, 1 << 20);
  EXPECT_TRUE(a == b);
  std::string z1 = Compress(Compression::kZstd, data, 1 << 20);
  std::string z2 = Compress(Compression::kZstd, data, 1 << 20);
  EXPECT_TRUE(z1 == z2);
}

TEST(CompressTest, ZlibReadsOurGzipAtEveryLevel) {
  std::string data = MixedData(1 << 20, 3);
  for (int level : {0, 1, 2, 3, 9}) {
    EXPECT_TRUE(ZlibGunzip(Compress(Compression::kGzip, data, 4096, level)) == data)
        << "level " << level;
  }
}

TEST(CompressTest, RejectsBadLevels) {
  auto sink = [](std::string_view) { return Status::Ok(); };
  EXPECT_EQ(NewCompressor(Compression::kGzip, sink, 10).status().message(),
            "gzip level 10 is out of range (0 = default, 1-9)");
  EXPECT_EQ(NewCompressor(Compression::kZstd, sink, -1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CompressTest, ReadsMultiMemberGzip) {
  std::string a = MixedData(300000, 1), b = MixedData(5, 2), c = MixedData(70000, 3);
  std::string gz = Compress(Compression::kGzip, a) + Compress(Compression::kGzip, b) +
                   Compress(Compression::kGzip, "") + Compress(Compression::kGzip, c);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    auto out = DecompressAll(gz, piece, piece == 1 ? 3 : 65536);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(*out == a + b + c) << "piece " << piece;
  }
  EXPECT_TRUE(ZlibGunzip(gz) == a + b + c);
}

TEST(CompressTest, ReadsZlibWrittenGzip) {
  std::string data = MixedData(200000, 5);
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string gz(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  auto out = DecompressAll(gz);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(*out == data);
}

TEST(CompressTest, PlainPassesThrough) {
  auto out = DecompressAll("ab", 1, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "ab");
}

TEST(CompressTest, CorruptGzipIsInvalidArgument) {
  std::string data = MixedData(100000, 9);
  std::string gz = Compress(Compression::kGzip, data);

  auto truncated = DecompressAll(gz.substr(0, gz.size() / 2));
  EXPECT_EQ(truncated.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(truncated.status().message(), "corrupt gzip stream: truncated (ends inside member 1)");

  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x55;
  auto crc = DecompressAll(bad_crc);
  EXPECT_EQ(crc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(crc.status().message(), "corrupt gzip stream: CRC32 or length check failed");

  std::string bad_method = gz;
  bad_method[2] = 7;
  auto method = DecompressAll(bad_method);
  EXPECT_EQ(method.status().code(), StatusCode::kInvalidArgument);

  auto trailing = DecompressAll(gz + "garbage!");
  EXPECT_EQ(trailing.status().message(), "corrupt gzip stream: unexpected data after member 1");

  std::string flipped = gz;
  for (size_t i = 20; i < 60; ++i) flipped[i] = static_cast<char>(~flipped[i]);
  EXPECT_EQ(DecompressAll(flipped).status().code(), StatusCode::kInvalidArgument);
}

TEST(CompressTest, CorruptZstdIsInvalidArgument) {
  std::string z = Compress(Compression::kZstd, MixedData(100000, 4));
  auto truncated = DecompressAll(z.substr(0, z.size() / 2));
  EXPECT_EQ(truncated.status().message(), "corrupt zstd stream: truncated");
  std::string bad = z;
  bad[bad.size() - 2] ^= 0x11;  // the content checksum
  auto crc = DecompressAll(bad);
  EXPECT_EQ(crc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(crc.status().message().find("corrupt zstd stream: "), std::string::npos);
}

TEST(CompressTest, UpstreamErrorsPassThrough) {
  ByteSource failing = [](char*, size_t) -> Result<size_t> {
    return Status::IOError("read: connection reset");
  };
  auto src = Decompress(failing);
  char buf[16];
  EXPECT_EQ(src(buf, sizeof buf).status(), Status::IOError("read: connection reset"));
}

}  // namespace
}  // namespace kiln::util
