#include "util/sparse.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "util/no_space.h"

namespace kiln::util {
namespace {

// A full disk keeps its own code (kResourceExhausted) so that callers, who
// know the path, can say so with util/no_space.h's message.
Status IoError(const char* what) {
  const int e = errno;
  std::string msg = std::string(what) + ": " + std::strerror(e);
  if (IsNoSpace(e)) return Status::ResourceExhausted(std::move(msg));
  return Status::IOError(std::move(msg));
}

// Writes all of `data` at `offset`.
Status PwriteAll(int out, const char* data, size_t n, int64_t offset) {
  while (n > 0) {
    const ssize_t w = ::pwrite(out, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return IoError("write");
    data += w;
    n -= static_cast<size_t>(w);
    offset += w;
  }
  return Status::Ok();
}

// Copies [from, to) of `in` to the same offsets of `out`.
Status CopyRange(int in, int out, int64_t from, int64_t to, bool* kernel, std::vector<char>* buf) {
  loff_t in_off = from, out_off = from;
  while (in_off < to) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(to - in_off, int64_t{1} << 30));
    if (*kernel) {
      const ssize_t n = ::copy_file_range(in, &in_off, out, &out_off, want, 0);
      if (n > 0) continue;
      if (n == 0) return Status::IOError("the file shrank while it was copied");
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
          errno != EBADF && errno != EPERM) {
        return IoError("copy");
      }
      *kernel = false;  // across filesystems, or a pair without support
      continue;
    }
    if (buf->empty()) buf->resize(1 << 20);
    const ssize_t n = ::pread(in, buf->data(), std::min(want, buf->size()), in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read");
    if (n == 0) return Status::IOError("the file shrank while it was copied");
    KILN_RETURN_IF_ERROR(PwriteAll(out, buf->data(), static_cast<size_t>(n), in_off));
    in_off += n;
    out_off += n;
  }
  return Status::Ok();
}

bool AllZero(const char* p, size_t n) {
  // Compare the block with itself shifted by one byte after checking the first.
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

}  // namespace

Status CopySparse(int in, int out) {
  struct stat st;
  if (::fstat(in, &st) != 0) return IoError("stat");
  const int64_t size = st.st_size;
  bool kernel = true;
  std::vector<char> buf;
  int64_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(in, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0 && errno != EINVAL && errno != EOPNOTSUPP) return IoError("seek");
    off_t hole = data < 0 ? -1 : ::lseek(in, data, SEEK_HOLE);
    if (data < 0 || hole < 0) {
      // No hole support: the rest is data.
      data = static_cast<off_t>(pos);
      hole = static_cast<off_t>(size);
    }
    hole = std::min<off_t>(hole, static_cast<off_t>(size));
    if (data >= hole) break;
    KILN_RETURN_IF_ERROR(CopyRange(in, out, data, hole, &kernel, &buf));
    pos = hole;
  }
  if (::ftruncate(out, static_cast<off_t>(size)) != 0) return IoError("truncate");
  return Status::Ok();
}

Status WriteSparse(int out, std::string_view data, int64_t offset) {
  constexpr int64_t kBlock = 4096;
  // The data in pieces that end on the file's 4 KiB block boundaries. A
  // piece of zeros is skipped whatever its length: the range reads as zeros
  // already, and a partial block skipped here is allocated only if another
  // call writes data into it. So chunks that do not start on a boundary
  // (a tar read through a pipe) leave the same holes as aligned ones.
  while (!data.empty()) {
    size_t n = static_cast<size_t>(std::min<int64_t>(kBlock - offset % kBlock, data.size()));
    if (AllZero(data.data(), n)) {
      data.remove_prefix(n);
      offset += static_cast<int64_t>(n);
      continue;
    }
    // A run of data pieces, written in one call.
    size_t run = n;
    while (run < data.size()) {
      const size_t next = std::min<size_t>(kBlock, data.size() - run);
      if (AllZero(data.data() + run, next)) break;
      run += next;
    }
    KILN_RETURN_IF_ERROR(PwriteAll(out, data.data(), run, offset));
    data.remove_prefix(run);
    offset += static_cast<int64_t>(run);
  }
  return Status::Ok();
}

}  // namespace kiln::util
