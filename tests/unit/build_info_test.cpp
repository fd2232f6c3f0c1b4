// --version's facts: the embedded BPF object and its BTF, the version line.
#include <elf.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "bpf/build_info.h"
#include "version.h"

namespace {

using tcptrail::elf_has_section;
using tcptrail::embedded_bpf_object;

// A minimal ELF64 image: null section, ".shstrtab" and one named section.
std::string tiny_elf(const char *section) {
  std::string names = std::string("\0.shstrtab\0", 11) + section + '\0';
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 3;
  eh.e_shstrndx = 1;
  eh.e_shoff = sizeof(Elf64_Ehdr) + names.size();
  Elf64_Shdr sh[3]{};
  sh[1].sh_name = 1;
  sh[1].sh_offset = sizeof(Elf64_Ehdr);
  sh[1].sh_size = names.size();
  sh[2].sh_name = 11;
  std::string out(reinterpret_cast<const char *>(&eh), sizeof(eh));
  out += names;
  out.append(reinterpret_cast<const char *>(sh), sizeof(sh));
  return out;
}

TEST(BuildInfoTest, FindsSectionsByExactName) {
  const std::string elf = tiny_elf(".BTF.ext");
  EXPECT_TRUE(elf_has_section(elf, ".BTF.ext"));
  EXPECT_TRUE(elf_has_section(elf, ".shstrtab"));
  EXPECT_FALSE(elf_has_section(elf, ".BTF")); // a prefix is not a match
  EXPECT_FALSE(elf_has_section(tiny_elf(".BTFX"), ".BTF"));
}

TEST(BuildInfoTest, MalformedImagesAreNoMatchNotACrash) {
  const std::string elf = tiny_elf(".BTF");
  EXPECT_FALSE(elf_has_section({}, ".BTF"));
  EXPECT_FALSE(elf_has_section("not an ELF file at all, just text", ".BTF"));
  // Every truncation: section headers or names cut off.
  for (std::size_t n = 0; n < elf.size(); ++n)
    EXPECT_FALSE(elf_has_section(elf.substr(0, n), ".BTF")) << n;
  std::string huge_offset = elf;
  Elf64_Ehdr eh;
  std::memcpy(&eh, huge_offset.data(), sizeof(eh));
  eh.e_shoff = ~0ULL - 8;
  std::memcpy(huge_offset.data(), &eh, sizeof(eh));
  EXPECT_FALSE(elf_has_section(huge_offset, ".BTF"));
}

TEST(BuildInfoTest, EmbeddedObjectCarriesBtfForCoRe) {
  const std::string_view obj = embedded_bpf_object();
  ASSERT_GT(obj.size(), sizeof(Elf64_Ehdr));
  EXPECT_EQ(obj.substr(0, SELFMAG), std::string_view(ELFMAG, SELFMAG));
  EXPECT_TRUE(elf_has_section(obj, ".BTF"));
  EXPECT_TRUE(elf_has_section(obj, ".BTF.ext"));
}

TEST(BuildInfoTest, VersionTextNamesEveryPart) {
  const std::string text = tcptrail::version_text();
  EXPECT_EQ(text.rfind("tcptrail " + std::string(tcptrail::source_version()) +
                           "\nlibbpf v",
                       0),
            0u)
      << text;
  EXPECT_NE(text.find("bpf object: embedded (" +
                      std::to_string(embedded_bpf_object().size()) +
                      " bytes), BTF: yes (CO-RE)"),
            std::string::npos)
      << text;
  // The tests link libbpf's shared library; the binary links libbpf.a.
  EXPECT_NE(text.find("(shared library)"), std::string::npos) << text;
  EXPECT_FALSE(tcptrail::source_version().empty());
}

} // namespace
