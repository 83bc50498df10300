// Layer compression: streaming gzip (and zstd) compression and
// decompression. Compression uses the fastest Debian library measured for
// the job (isa-l, see docs/snapshots.md, "Compression"); the output is a standard gzip
// stream with no file name and mtime 0, so equal input gives equal bytes.
//
// Thread-safety: a Compressor, like a ByteSource from Decompress(), is used
// by one thread at a time; separate instances are independent.
#pragma once

#include <memory>
#include <string_view>

#include "util/io.h"
#include "util/status.h"

namespace kiln::util {

enum class Compression { kNone, kGzip, kZstd };

// From a stream's first bytes (at least 4 when available).
Compression DetectCompression(std::string_view head);

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual Status Write(std::string_view data) = 0;
  // Flushes the end of the stream into the downstream sink. Call once.
  virtual Status Finish() = 0;
};

// `level` 0 = the library's fast default chosen for layers.
Result<std::unique_ptr<Compressor>> NewCompressor(Compression c, ByteSink downstream,
                                                  int level = 0);

// Reads `upstream`, detects gzip/zstd/plain from its first bytes and returns
// the decompressed stream. Corrupt input is kInvalidArgument.
ByteSource Decompress(ByteSource upstream);

}  // namespace kiln::util
