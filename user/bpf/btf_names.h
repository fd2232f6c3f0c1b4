// Finds a few named types in raw BTF (the kernel's /sys/kernel/btf/vmlinux)
// in one pass, without building libbpf's index: the feature probes need
// the ids of a handful of attach targets at every start, and libbpf 1.1's
// btf__load_vmlinux_btf() costs 42-55 ms on the 2-core development VM
// (125,851 types, Linux 6.18), about as long as all of tcptrail's start-up,
// where this scan costs a few milliseconds (scripts/bench/startup.sh).
// Pure logic over a byte buffer, so unit tests feed it hand-made BTF.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tcptrail {

// BTF kinds (include/uapi/linux/btf.h); only those the probes look up.
enum class BtfKind : std::uint8_t {
  Enum = 6,
  Typedef = 8,
  Func = 12,
  Enum64 = 19,
};

struct BtfQuery {
  BtfKind kind;
  std::string name;
  std::int32_t id = -1; // filled in: the type's id, -1 when absent
  // Enum only: the enumerators, value -> name, filled in when found.
  std::vector<std::pair<std::int64_t, std::string>> enumerators;
};

// Bytes that follow a type's 12-byte header, by kind (the kernel's
// btf_type_size(); BTF_KIND_* numbers from include/uapi/linux/btf.h);
// nullopt for a kind this build does not know.
std::optional<std::size_t> btf_trailer_size(std::uint32_t kind,
                                            std::uint32_t vlen);

namespace btf_raw {
// A little-endian field of raw BTF, at any alignment.
template <typename T> T load(const std::uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
} // namespace btf_raw

// A raw BTF blob's type and string sections, bounds-checked against its
// header (struct btf_header).
struct BtfSections {
  std::span<const std::uint8_t> types;
  const char *str = nullptr;
  std::uint32_t str_len = 0; // str[str_len - 1] is '\0'
  std::string_view name(std::uint32_t off) const {
    return off < str_len ? std::string_view(str + off) : std::string_view();
  }
};
// False, with `error` set, when `raw` is not well-formed BTF.
bool btf_sections(std::span<const std::uint8_t> raw, BtfSections &out,
                  std::string &error);

// Calls fn(id, type) for each type in id order (from 1), `type` pointing at
// its 12-byte header and trailer, until fn returns false. False, with
// `error` set, on a truncated type or a kind this build does not know.
template <typename Fn>
bool btf_for_each_type(const BtfSections &s, Fn &&fn, std::string &error) {
  const std::uint8_t *p = s.types.data();
  const std::uint8_t *end = p + s.types.size();
  for (std::uint32_t id = 1; p < end; ++id) {
    if (end - p < 12) {
      error = "truncated BTF type";
      return false;
    }
    const auto info = btf_raw::load<std::uint32_t>(p + 4);
    const auto extra = btf_trailer_size((info >> 24) & 0x1f, info & 0xffff);
    if (!extra || static_cast<std::size_t>(end - p - 12) < *extra) {
      error = extra ? "truncated BTF type" : "unknown BTF kind";
      return false;
    }
    if (!fn(id, p))
      return true;
    p += 12 + *extra;
  }
  return true;
}

// Scans `btf` once and fills in each query's id (first match). Returns
// false, with `error` set, when the buffer is not well-formed BTF.
bool btf_find(std::span<const std::uint8_t> btf, std::vector<BtfQuery> &queries,
              std::string &error);

// A BTF file's bytes: mapped where the kernel allows it, else read.
class BtfFile {
public:
  // nullopt with errno set when the file cannot be opened or read.
  static std::optional<BtfFile> open(const char *path);
  BtfFile(BtfFile &&o) noexcept
      : map_(std::exchange(o.map_, nullptr)), size_(o.size_),
        copy_(std::move(o.copy_)) {}
  BtfFile &operator=(BtfFile &&) = delete;
  BtfFile(const BtfFile &) = delete;
  ~BtfFile();
  std::span<const std::uint8_t> bytes() const;

private:
  BtfFile() = default;
  void *map_ = nullptr;
  std::size_t size_ = 0;
  std::vector<std::uint8_t> copy_;
};

// While one lives, libbpf's parse of the kernel BTF is kept from one
// object's load to the next instead of being freed and made again: the
// start-up loads two instances of the object (Tracer::create()), and each
// parse of the 5.3 MB took ~4.5 ms there (6.18.44-fc-v1300). libbpf only
// reads it: attach targets and typed ksyms. Where libbpf is not linked
// statically (no --wrap), it does nothing.
class SharedKernelBtf {
public:
  SharedKernelBtf();
  ~SharedKernelBtf(); // frees the kept parse
  SharedKernelBtf(const SharedKernelBtf &) = delete;
  SharedKernelBtf &operator=(const SharedKernelBtf &) = delete;
};

} // namespace tcptrail
