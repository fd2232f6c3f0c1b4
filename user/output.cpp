#include "output.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace tcptrail {

bool Output::flush() {
  if (closed_) {
    buf_.clear();
    return false;
  }
  const char *p = buf_.data();
  std::size_t left = buf_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EPIPE) {
        closed_ = true;
        buf_.clear();
        return false;
      }
      const int err = errno;
      buf_.clear();
      throw Error(fmt::format("writing output: {}", std::strerror(err)));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  buf_.clear();
  return true;
}

} // namespace tcptrail
