#include "util/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "util/no_space.h"

namespace kiln::util {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

ByteSource FdSource(int fd) {
  return [fd](char* buf, size_t capacity) -> Result<size_t> {
    for (;;) {
      ssize_t n = ::read(fd, buf, capacity);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      return Status::IOError(std::string("read: ") + std::strerror(errno));
    }
  };
}

ByteSink FdSink(int fd) {
  return [fd](std::string_view chunk) -> Status {
    while (!chunk.empty()) {
      ssize_t n = ::write(fd, chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (IsNoSpace(errno)) {
          // Name the file the descriptor writes to (an output, a pipe).
          char target[4096];
          const std::string link = "/proc/self/fd/" + std::to_string(fd);
          const ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
          return NoSpace(len > 0 ? std::string(target, static_cast<size_t>(len)) : link, "writing");
        }
        return Status::IOError(std::string("write: ") + std::strerror(errno));
      }
      chunk.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  };
}

Status Pump(const ByteSource& source, const ByteSink& sink) {
  std::vector<char> buf(1 << 20);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(size_t n, source(buf.data(), buf.size()));
    if (n == 0) return Status::Ok();
    KILN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
  }
}

}  // namespace kiln::util
