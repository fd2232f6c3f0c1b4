// Buffered output to a file descriptor: large writes, no stdio buffering,
// a closed pipe ends output quietly.
#pragma once

#include <fmt/format.h>

namespace tcptrail {

class Output {
public:
  explicit Output(int fd) : fd_(fd) {}
  Output(const Output &) = delete;
  Output &operator=(const Output &) = delete;

  fmt::memory_buffer &buf() { return buf_; }
  // Writes everything buffered. Returns false once the reader has gone
  // (EPIPE); throws tcptrail::Error on any other write error.
  bool flush();
  // Flushes when the buffer has grown past `threshold` bytes.
  bool flush_if_over(std::size_t threshold) {
    return buf_.size() < threshold || flush();
  }
  bool closed() const { return closed_; }

private:
  int fd_;
  bool closed_ = false;
  fmt::memory_buffer buf_;
};

} // namespace tcptrail
