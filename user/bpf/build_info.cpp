#include "bpf/build_info.h"

#include <dlfcn.h>
#include <elf.h>

#include <cstring>

#include <bpf/libbpf.h>

namespace tcptrail {

namespace {

// The object (executable or shared library) a code address belongs to.
const void *object_base(const void *addr) {
  Dl_info info{};
  if (dladdr(addr, &info) == 0)
    return nullptr;
  return info.dli_fbase;
}

template <typename T>
bool read_at(std::string_view elf, std::size_t off, T &out) {
  if (off > elf.size() || elf.size() - off < sizeof(T))
    return false;
  std::memcpy(&out, elf.data() + off, sizeof(T));
  return true;
}

} // namespace

LibbpfInfo libbpf_info() {
  LibbpfInfo out;
  out.version = libbpf_version_string();
  const void *libbpf_base =
      object_base(reinterpret_cast<const void *>(&libbpf_version_string));
  const void *own_base =
      object_base(reinterpret_cast<const void *>(&libbpf_info));
  out.linked_statically = libbpf_base != nullptr && libbpf_base == own_base;
  return out;
}

std::optional<std::string_view> elf_section(std::string_view elf,
                                            std::string_view name,
                                            bool *malformed) {
  auto bad = [malformed] {
    if (malformed)
      *malformed = true;
    return std::nullopt;
  };
  if (malformed)
    *malformed = false;
  Elf64_Ehdr eh{};
  if (!read_at(elf, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum ||
      eh.e_shoff > elf.size() ||
      (elf.size() - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum)
    return bad();
  Elf64_Shdr strtab{};
  if (!read_at(elf,
               eh.e_shoff + std::size_t{eh.e_shstrndx} * sizeof(Elf64_Shdr),
               strtab) ||
      strtab.sh_offset > elf.size() ||
      strtab.sh_size > elf.size() - strtab.sh_offset)
    return bad();
  const std::string_view names = elf.substr(strtab.sh_offset, strtab.sh_size);
  for (std::size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh{};
    if (!read_at(elf, eh.e_shoff + i * sizeof(Elf64_Shdr), sh))
      return bad();
    if (sh.sh_name >= names.size())
      continue;
    const std::string_view rest = names.substr(sh.sh_name);
    if (rest.substr(0, rest.find('\0')) != name)
      continue;
    if (sh.sh_offset > elf.size() || sh.sh_size > elf.size() - sh.sh_offset)
      return bad();
    return elf.substr(sh.sh_offset, sh.sh_size);
  }
  return std::nullopt;
}

bool elf_has_section(std::string_view elf, std::string_view name) {
  return elf_section(elf, name).has_value();
}

} // namespace tcptrail
