#include "bpf/core_btf.h"

#include <array>
#include <cstring>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "bpf/btf_names.h"
#include "bpf/build_info.h"

namespace tcptrail {

namespace {

using btf_raw::load;

template <typename T> void store(std::vector<std::uint8_t> &out, T v) {
  const auto *b = reinterpret_cast<const std::uint8_t *>(&v);
  out.insert(out.end(), b, b + sizeof(v));
}

constexpr std::uint16_t kBtfMagic = 0xeB9F;
constexpr std::uint32_t kHeaderLen = 24;

// BTF_KIND_* (include/uapi/linux/btf.h).
enum : std::uint32_t {
  kPtr = 2,
  kArray = 3,
  kStruct = 4,
  kUnion = 5,
  kEnum = 6,
  kTypedef = 8,
  kVolatile = 9,
  kConst = 10,
  kRestrict = 11,
  kFunc = 12,
  kFuncProto = 13,
  kVar = 14,
  kDatasec = 15,
  kDeclTag = 17,
  kTypeTag = 18,
  kEnum64 = 19,
};

// enum bpf_core_relo_kind: BPF_CORE_TYPE_ID_LOCAL needs no kernel type.
constexpr std::uint32_t kCoreTypeIdLocal = 6;

// A raw BTF blob's sections, and each type's offset.
struct Btf {
  const std::uint8_t *types = nullptr;
  const char *str = nullptr;
  std::uint32_t str_len = 0;
  std::vector<std::uint32_t> offsets; // by type id; [0] is void

  std::string_view name(std::uint32_t off) const {
    return off < str_len ? std::string_view(str + off) : std::string_view();
  }
  const std::uint8_t *type(std::uint32_t id) const {
    return types + offsets[id];
  }
  std::uint32_t count() const {
    return static_cast<std::uint32_t>(offsets.size());
  }
};

std::uint32_t kind_of(const std::uint8_t *t) {
  return (load<std::uint32_t>(t + 4) >> 24) & 0x1f;
}
std::uint32_t vlen_of(const std::uint8_t *t) {
  return load<std::uint32_t>(t + 4) & 0xffff;
}

// Checks the header and indexes every type.
bool parse_btf(std::span<const std::uint8_t> raw, Btf &btf,
               std::string &error) {
  BtfSections s;
  if (!btf_sections(raw, s, error))
    return false;
  btf.types = s.types.data();
  btf.str = s.str;
  btf.str_len = s.str_len;
  btf.offsets.assign(1, 0);
  btf.offsets.reserve(s.types.size() / 16);
  return btf_for_each_type(
      s,
      [&](std::uint32_t, const std::uint8_t *t) {
        btf.offsets.push_back(static_cast<std::uint32_t>(t - btf.types));
        return true;
      },
      error);
}

// Calls ref(byte offset within the type) for each type id the type refers
// to, and name(byte offset) for each name offset it holds.
template <typename Ref, typename Name>
void for_each_field(const std::uint8_t *t, Ref ref, Name name) {
  const std::uint32_t kind = kind_of(t);
  const std::uint32_t vlen = vlen_of(t);
  name(0);
  switch (kind) {
  case kPtr:
  case kTypedef:
  case kVolatile:
  case kConst:
  case kRestrict:
  case kFunc:
  case kVar:
  case kDeclTag:
  case kTypeTag:
    ref(8);
    break;
  case kArray:
    ref(12);
    ref(16);
    break;
  case kStruct:
  case kUnion:
    for (std::uint32_t i = 0; i < vlen; ++i) {
      name(12 + i * 12);
      ref(12 + i * 12 + 4);
    }
    break;
  case kFuncProto:
    ref(8);
    for (std::uint32_t i = 0; i < vlen; ++i) {
      name(12 + i * 8);
      ref(12 + i * 8 + 4);
    }
    break;
  case kDatasec:
    for (std::uint32_t i = 0; i < vlen; ++i)
      ref(12 + i * 12);
    break;
  case kEnum:
    for (std::uint32_t i = 0; i < vlen; ++i)
      name(12 + i * 8);
    break;
  case kEnum64:
    for (std::uint32_t i = 0; i < vlen; ++i)
      name(12 + i * 12);
    break;
  default: // INT, FWD, FLOAT: no references
    break;
  }
}

} // namespace

std::size_t core_essential_len(std::string_view name) {
  // libbpf: the last "X___Y" where X and Y are not underscores.
  for (std::size_t i = name.size() >= 5 ? name.size() - 5 + 1 : 0; i-- > 0;) {
    if (name[i] != '_' && name[i + 1] == '_' && name[i + 2] == '_' &&
        name[i + 3] == '_' && name[i + 4] != '_')
      return i + 1;
  }
  return name.size();
}

bool core_relo_roots(std::span<const std::uint8_t> elf,
                     std::vector<std::string> &roots, std::string &error) {
  roots.clear();
  const std::string_view image(reinterpret_cast<const char *>(elf.data()),
                               elf.size());
  bool malformed = false;
  const auto ext_sec = elf_section(image, ".BTF.ext", &malformed);
  if (malformed) {
    error = "not a well-formed little-endian ELF64 object";
    return false;
  }
  if (!ext_sec)
    return true; // no relocations at all
  const auto btf_sec = elf_section(image, ".BTF");
  if (!btf_sec) {
    error = "ELF object has .BTF.ext but no .BTF";
    return false;
  }
  auto bytes = [](std::string_view v) {
    return std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t *>(v.data()), v.size());
  };
  Btf btf;
  if (!parse_btf(bytes(*btf_sec), btf, error))
    return false;

  // struct btf_ext_header: magic u16, version u8, flags u8, hdr_len u32,
  // func_info_off/len, line_info_off/len, then core_relo_off/len (u32s);
  // offsets count from the end of the header.
  const auto ext = bytes(*ext_sec);
  if (ext.size() < 24 || load<std::uint16_t>(ext.data()) != kBtfMagic) {
    error = ".BTF.ext: bad magic or size";
    return false;
  }
  const auto hdr_len = load<std::uint32_t>(ext.data() + 4);
  if (hdr_len < 32)
    return true; // an old header: no CO-RE relocations
  if (hdr_len > ext.size()) {
    error = ".BTF.ext: header out of bounds";
    return false;
  }
  const auto relo_off = load<std::uint32_t>(ext.data() + 24);
  const auto relo_len = load<std::uint32_t>(ext.data() + 28);
  if (relo_len == 0)
    return true;
  const std::uint64_t begin = std::uint64_t{hdr_len} + relo_off;
  if (begin + relo_len > ext.size() || relo_len < 4) {
    error = ".BTF.ext: core_relo out of bounds";
    return false;
  }
  // u32 record size, then per ELF section: sec_name_off u32, num_info u32
  // and num_info records {insn_off, type_id, access_str_off, kind}.
  const std::uint8_t *p = ext.data() + begin;
  const std::uint8_t *end = p + relo_len;
  const auto rec_size = load<std::uint32_t>(p);
  p += 4;
  if (rec_size < 16) {
    error = ".BTF.ext: core_relo record too small";
    return false;
  }
  std::unordered_set<std::string_view> seen;
  while (p < end) {
    if (end - p < 8) {
      error = ".BTF.ext: truncated core_relo section";
      return false;
    }
    const auto n = load<std::uint32_t>(p + 4);
    p += 8;
    if (static_cast<std::uint64_t>(end - p) < std::uint64_t{n} * rec_size) {
      error = ".BTF.ext: truncated core_relo records";
      return false;
    }
    for (std::uint32_t i = 0; i < n; ++i, p += rec_size) {
      const auto type_id = load<std::uint32_t>(p + 4);
      const auto kind = load<std::uint32_t>(p + 12);
      if (kind == kCoreTypeIdLocal)
        continue;
      if (type_id == 0 || type_id >= btf.count()) {
        error = ".BTF.ext: core_relo type id out of range";
        return false;
      }
      std::string_view name = btf.name(load<std::uint32_t>(btf.type(type_id)));
      name = name.substr(0, core_essential_len(name));
      if (!name.empty() && seen.insert(name).second)
        roots.emplace_back(name);
    }
  }
  return true;
}

bool minimize_btf(std::span<const std::uint8_t> vmlinux,
                  const std::vector<std::string> &roots,
                  std::vector<std::uint8_t> &out, std::string &error) {
  Btf btf;
  if (!parse_btf(vmlinux, btf, error))
    return false;
  // Roots by first letter: most names fail on that lookup alone, which
  // keeps the scan of 100,000+ names to a few instructions each.
  std::array<std::vector<std::string_view>, 256> by_first;
  for (const std::string &r : roots)
    if (!r.empty())
      by_first[static_cast<unsigned char>(r[0])].push_back(r);
  auto wanted = [&](std::uint32_t name_off) {
    if (name_off >= btf.str_len)
      return false;
    const char *name = btf.str + name_off; // no strlen() unless it may match
    for (std::string_view r : by_first[static_cast<unsigned char>(*name)])
      if (std::strncmp(name, r.data(), r.size()) == 0 &&
          core_essential_len(name) == r.size())
        return true;
    return false;
  };

  // Roots, then everything they reach except through a pointer.
  const std::uint32_t n = btf.count();
  std::vector<std::uint32_t> new_id(n, 0);
  std::vector<std::uint32_t> todo;
  auto take = [&](std::uint32_t id) {
    if (id != 0 && id < n && new_id[id] == 0) {
      new_id[id] = 1; // marked; numbered below
      todo.push_back(id);
    }
  };
  for (std::uint32_t id = 1; id < n; ++id)
    if (wanted(load<std::uint32_t>(btf.type(id))))
      take(id);
  while (!todo.empty()) {
    const std::uint32_t id = todo.back();
    todo.pop_back();
    const std::uint8_t *t = btf.type(id);
    if (kind_of(t) == kPtr)
      continue; // the cut: a pointer's target is not needed
    for_each_field(
        t, [&](std::uint32_t at) { take(load<std::uint32_t>(t + at)); },
        [](std::uint32_t) {});
  }
  std::uint32_t next = 1;
  for (std::uint32_t id = 1; id < n; ++id)
    if (new_id[id])
      new_id[id] = next++;

  // Types in their original order, ids and names remapped; strings
  // deduplicated.
  std::vector<std::uint8_t> types;
  std::vector<std::uint8_t> strings(1, 0);
  std::unordered_map<std::string_view, std::uint32_t> string_at;
  for (std::uint32_t id = 1; id < n; ++id) {
    if (!new_id[id])
      continue;
    const std::uint8_t *t = btf.type(id);
    const std::size_t size =
        12 + *btf_trailer_size(kind_of(t), vlen_of(t)); // checked by parse
    const std::size_t base = types.size();
    types.insert(types.end(), t, t + size);
    std::uint8_t *copy = types.data() + base;
    for_each_field(
        t,
        [&](std::uint32_t at) {
          const auto old = load<std::uint32_t>(t + at);
          const std::uint32_t mapped = old < n ? new_id[old] : 0;
          std::memcpy(copy + at, &mapped, 4);
        },
        [&](std::uint32_t at) {
          const std::string_view s = btf.name(load<std::uint32_t>(t + at));
          std::uint32_t off = 0;
          if (!s.empty()) {
            auto [it, added] = string_at.try_emplace(
                s, static_cast<std::uint32_t>(strings.size()));
            if (added) {
              strings.insert(strings.end(), s.begin(), s.end());
              strings.push_back(0);
            }
            off = it->second;
          }
          std::memcpy(copy + at, &off, 4);
        });
  }

  out.clear();
  out.reserve(kHeaderLen + types.size() + strings.size());
  store<std::uint16_t>(out, kBtfMagic);
  store<std::uint8_t>(out, 1); // version
  store<std::uint8_t>(out, 0); // flags
  store<std::uint32_t>(out, kHeaderLen);
  store<std::uint32_t>(out, 0); // type_off
  store<std::uint32_t>(out, static_cast<std::uint32_t>(types.size()));
  store<std::uint32_t>(out, static_cast<std::uint32_t>(types.size()));
  store<std::uint32_t>(out, static_cast<std::uint32_t>(strings.size()));
  out.insert(out.end(), types.begin(), types.end());
  out.insert(out.end(), strings.begin(), strings.end());
  return true;
}

} // namespace tcptrail
