#include "snapshot/records.h"

#include <cstring>

namespace tcptrail {

namespace {

template <typename T>
bool take(std::string_view bytes, std::size_t off, const tt_header &hdr,
          std::vector<T> &dst) {
  if (hdr.size != sizeof(T) || bytes.size() - off < sizeof(T))
    return false;
  T rec;
  std::memcpy(&rec, bytes.data() + off, sizeof(T));
  dst.push_back(rec);
  return true;
}

} // namespace

void decode_iter_stream(std::string_view bytes, IterRecords &out) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    tt_header hdr;
    if (bytes.size() - off < sizeof(hdr)) {
      ++out.invalid;
      return;
    }
    std::memcpy(&hdr, bytes.data() + off, sizeof(hdr));
    bool ok = false;
    if (hdr.kind == TT_KIND_ITER_SOCK)
      ok = take(bytes, off, hdr, out.sockets);
    else if (hdr.kind == TT_KIND_ITER_FILE)
      ok = take(bytes, off, hdr, out.files);
    if (!ok) {
      ++out.invalid;
      return;
    }
    off += hdr.size;
  }
}

} // namespace tcptrail
