#include "bpf/btf_names.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace tcptrail {

namespace {

using btf_raw::load;

constexpr std::uint16_t kBtfMagic = 0xeB9F;

} // namespace

std::optional<std::size_t> btf_trailer_size(std::uint32_t kind,
                                            std::uint32_t vlen) {
  switch (kind) {
  case 1:  // INT
  case 14: // VAR
  case 17: // DECL_TAG
    return 4;
  case 2:  // PTR
  case 7:  // FWD
  case 8:  // TYPEDEF
  case 9:  // VOLATILE
  case 10: // CONST
  case 11: // RESTRICT
  case 12: // FUNC
  case 16: // FLOAT
  case 18: // TYPE_TAG
    return 0;
  case 3: // ARRAY
    return 12;
  case 4:  // STRUCT
  case 5:  // UNION
  case 15: // DATASEC
  case 19: // ENUM64
    return 12 * std::size_t{vlen};
  case 6:  // ENUM
  case 13: // FUNC_PROTO
    return 8 * std::size_t{vlen};
  default:
    return std::nullopt;
  }
}

bool btf_sections(std::span<const std::uint8_t> raw, BtfSections &out,
                  std::string &error) {
  // struct btf_header: magic u16, version u8, flags u8, hdr_len u32,
  // type_off u32, type_len u32, str_off u32, str_len u32.
  if (raw.size() < 24 || load<std::uint16_t>(raw.data()) != kBtfMagic) {
    error = "not BTF (bad magic or size)";
    return false;
  }
  const auto hdr_len = load<std::uint32_t>(raw.data() + 4);
  const auto type_off = load<std::uint32_t>(raw.data() + 8);
  const auto type_len = load<std::uint32_t>(raw.data() + 12);
  const auto str_off = load<std::uint32_t>(raw.data() + 16);
  const auto str_len = load<std::uint32_t>(raw.data() + 20);
  const std::uint64_t types = std::uint64_t{hdr_len} + type_off;
  const std::uint64_t strs = std::uint64_t{hdr_len} + str_off;
  if (hdr_len < 24 || types + type_len > raw.size() ||
      strs + str_len > raw.size() || str_len == 0 ||
      raw[strs + str_len - 1] != 0) {
    error = "BTF sections out of bounds";
    return false;
  }
  out.types = raw.subspan(types, type_len);
  out.str = reinterpret_cast<const char *>(raw.data() + strs);
  out.str_len = str_len;
  return true;
}

bool btf_find(std::span<const std::uint8_t> btf, std::vector<BtfQuery> &queries,
              std::string &error) {
  BtfSections s;
  if (!btf_sections(btf, s, error))
    return false;
  for (BtfQuery &q : queries) {
    q.id = -1;
    q.enumerators.clear();
  }
  std::size_t left = queries.size();
  if (left == 0)
    return true;
  return btf_for_each_type(
      s,
      [&](std::uint32_t id, const std::uint8_t *p) {
        const auto name_off = load<std::uint32_t>(p);
        const auto info = load<std::uint32_t>(p + 4);
        const std::uint32_t kind = (info >> 24) & 0x1f;
        const std::uint32_t vlen = info & 0xffff;
        if (!name_off)
          return true;
        for (BtfQuery &q : queries) {
          if (q.id >= 0 || static_cast<std::uint32_t>(q.kind) != kind ||
              s.name(name_off) != q.name)
            continue;
          q.id = static_cast<std::int32_t>(id);
          --left;
          // ENUM: {name_off u32, val s32}; ENUM64: {name_off, lo32, hi32}.
          for (std::uint32_t i = 0; i < vlen; ++i) {
            const std::uint8_t *m = p + 12 + i * (kind == 6 ? 8 : 12);
            std::int64_t v;
            if (kind == 6)
              v = load<std::int32_t>(m + 4);
            else
              v = static_cast<std::int64_t>(
                  load<std::uint32_t>(m + 4) |
                  (std::uint64_t{load<std::uint32_t>(m + 8)} << 32));
            q.enumerators.emplace_back(
                v, std::string(s.name(load<std::uint32_t>(m))));
          }
        }
        return left > 0;
      },
      error);
}

BtfFile::~BtfFile() {
  if (map_ != nullptr)
    munmap(map_, size_);
}

std::optional<BtfFile> BtfFile::open(const char *path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  BtfFile out;
  struct stat st;
  // sysfs reports the BTF's true size. Mapping it (Linux 6.16+ allows it
  // for the kernel's BTF) costs 1.7 ms where reading it costs 18 ms
  // (Linux 6.18, 2-core VM, 5.5 MB).
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void *p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ,
                   MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      out.map_ = p;
      out.size_ = static_cast<std::size_t>(st.st_size);
      close(fd);
      return out;
    }
  }
  out.copy_.resize(st.st_size > 0 ? static_cast<std::size_t>(st.st_size)
                                  : std::size_t{1} << 20);
  std::size_t have = 0;
  for (;;) {
    if (have == out.copy_.size())
      out.copy_.resize(out.copy_.size() * 2);
    const ssize_t n =
        read(fd, out.copy_.data() + have, out.copy_.size() - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      errno = err;
      return std::nullopt;
    }
    if (n == 0)
      break;
    have += static_cast<std::size_t>(n);
  }
  close(fd);
  out.copy_.resize(have);
  return out;
}

std::span<const std::uint8_t> BtfFile::bytes() const {
  if (map_ != nullptr)
    return {static_cast<const std::uint8_t *>(map_), size_};
  return copy_;
}

} // namespace tcptrail

// libbpf 1.1 reads the kernel's BTF through stdio, 4 KiB per read(): 1,353
// read() calls for 5.5 MB at every start. The binaries are linked with
// --wrap=btf__load_vmlinux_btf (CMakeLists.txt), so where libbpf is linked
// statically its own call lands here and parses the same bytes from a
// mapping of the file. libbpf copies them (as it does after reading), and
// the mapping is gone before the programs load, so peak memory does not
// grow. Anything else (no sysfs BTF, a kernel that refuses the mapping
// and the read) goes to libbpf's own search.
//
// With a SharedKernelBtf alive, the parse is also kept: libbpf's
// btf__free() of it (--wrap=btf__free) is deferred to the scope's end.
namespace {

std::mutex g_shared_mutex;
bool g_sharing = false;
struct btf *g_shared = nullptr;

} // namespace

extern "C" {
struct btf *__real_btf__load_vmlinux_btf(void);
void __real_btf__free(struct btf *btf);

struct btf *__wrap_btf__load_vmlinux_btf(void) {
  std::lock_guard lock(g_shared_mutex);
  if (g_sharing && g_shared != nullptr)
    return g_shared;
  struct btf *btf = nullptr;
  if (const auto file = tcptrail::BtfFile::open("/sys/kernel/btf/vmlinux")) {
    const auto bytes = file->bytes();
    btf = btf__new(bytes.data(), static_cast<__u32>(bytes.size()));
    if (libbpf_get_error(btf) != 0)
      btf = nullptr;
  }
  if (btf == nullptr)
    btf = __real_btf__load_vmlinux_btf();
  if (g_sharing && libbpf_get_error(btf) == 0)
    g_shared = btf;
  return btf;
}

void __wrap_btf__free(struct btf *btf) {
  {
    std::lock_guard lock(g_shared_mutex);
    if (btf != nullptr && btf == g_shared)
      return; // freed by ~SharedKernelBtf()
  }
  __real_btf__free(btf);
}
}

namespace tcptrail {

SharedKernelBtf::SharedKernelBtf() {
  std::lock_guard lock(g_shared_mutex);
  g_sharing = true;
}

SharedKernelBtf::~SharedKernelBtf() {
  struct btf *kept;
  {
    std::lock_guard lock(g_shared_mutex);
    g_sharing = false;
    kept = std::exchange(g_shared, nullptr);
  }
  __real_btf__free(kept);
}

} // namespace tcptrail
