// Byte streams and file descriptors shared by the modules that move layer
// and file bytes around (snapshot diff/apply, compression, sources, the
// exporter).
//
// A ByteSink receives a stream in chunks; a ByteSource is pulled from. A
// source returns 0 only at the end of the stream. Both are called from one
// thread at a time. UniqueFd owns a file descriptor.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "util/status.h"

namespace kiln::util {

using ByteSink = std::function<Status(std::string_view chunk)>;
// Fills up to `capacity` bytes of `buf`; returns how many (0 = end of stream).
using ByteSource = std::function<Result<size_t>(char* buf, size_t capacity)>;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A ByteSource reading `fd` from its current offset (retrying EINTR).
ByteSource FdSource(int fd);
// A ByteSink writing everything to `fd` (retrying short writes and EINTR).
ByteSink FdSink(int fd);
// Pulls `source` to its end into `sink`.
Status Pump(const ByteSource& source, const ByteSink& sink);

}  // namespace kiln::util
