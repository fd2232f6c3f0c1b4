// The kernel BTF cut down for CO-RE (user/bpf/core_btf.h), on BTF built
// with libbpf's writer API and on tcptrail's own BPF object. That every
// program is relocated exactly as with the whole kernel BTF is proven on
// real kernels by the integration suite (CoreBtfTest).
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bpf/build_info.h"
#include "bpf/core_btf.h"

namespace tcptrail {
namespace {

struct BtfDeleter {
  void operator()(btf *b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

std::span<const std::uint8_t> object_elf() {
  const std::string_view elf = embedded_bpf_object();
  return {reinterpret_cast<const std::uint8_t *>(elf.data()), elf.size()};
}

std::vector<std::uint8_t> raw(const btf *b) {
  __u32 size = 0;
  const void *data = btf__raw_data(b, &size);
  const auto *p = static_cast<const std::uint8_t *>(data);
  return {p, p + size};
}

BtfPtr parse(const std::vector<std::uint8_t> &bytes) {
  btf *b = btf__new(bytes.data(), static_cast<__u32>(bytes.size()));
  return BtfPtr(libbpf_get_error(b) ? nullptr : b);
}

// A small "kernel": struct sock embeds struct inner, points to struct
// pointee, holds an array of a typedef'd int; struct sock_common___old is a
// flavoured name; struct unrelated and enum color are not reached.
BtfPtr make_kernel() {
  BtfPtr k(btf__new_empty());
  const int int_id = btf__add_int(k.get(), "int", 4, BTF_INT_SIGNED);
  const int u32_id = btf__add_typedef(k.get(), "u32", int_id);
  const int inner = btf__add_struct(k.get(), "inner", 8);
  btf__add_field(k.get(), "a", int_id, 0, 0);
  btf__add_field(k.get(), "b", u32_id, 32, 0);
  const int pointee = btf__add_struct(k.get(), "pointee", 4);
  btf__add_field(k.get(), "z", int_id, 0, 0);
  const int ptr = btf__add_ptr(k.get(), pointee);
  const int arr = btf__add_array(k.get(), int_id, u32_id, 4);
  const int sock = btf__add_struct(k.get(), "sock", 40);
  btf__add_field(k.get(), "in", inner, 0, 0);
  btf__add_field(k.get(), "p", ptr, 64, 0);
  btf__add_field(k.get(), "arr", arr, 128, 0);
  btf__add_field(k.get(), "flag", u32_id, 256, 1); // a 1-bit bitfield
  const int flavoured = btf__add_struct(k.get(), "sock_common___old", 4);
  btf__add_field(k.get(), "x", int_id, 0, 0);
  const int unrelated = btf__add_struct(k.get(), "unrelated", 4);
  btf__add_field(k.get(), "u", int_id, 0, 0);
  btf__add_enum(k.get(), "color", 4);
  btf__add_enum_value(k.get(), "RED", 1);
  EXPECT_GT(flavoured, 0);
  EXPECT_GT(unrelated, 0);
  EXPECT_GT(sock, 0);
  return k;
}

TEST(CoreEssentialLen, MatchesLibbpfFlavourRule) {
  EXPECT_EQ(core_essential_len("sock"), 4u);
  EXPECT_EQ(core_essential_len("sock___old"), 4u);
  EXPECT_EQ(core_essential_len("tcp_sock___v61"), 8u);
  EXPECT_EQ(core_essential_len("a___b___c"), 5u); // the last separator
  EXPECT_EQ(core_essential_len("a____b"), 6u);    // ____ is not a separator
  EXPECT_EQ(core_essential_len("___x"), 4u);
  EXPECT_EQ(core_essential_len(""), 0u);
}

TEST(MinimizeBtf, KeepsRootsAndWhatTheyEmbedButNotPointees) {
  const BtfPtr kernel = make_kernel();
  std::vector<std::uint8_t> out;
  std::string error;
  ASSERT_TRUE(minimize_btf(raw(kernel.get()), {"sock"}, out, error)) << error;
  const BtfPtr small = parse(out);
  ASSERT_TRUE(small) << "output is not valid BTF";

  const int sock = btf__find_by_name_kind(small.get(), "sock", BTF_KIND_STRUCT);
  ASSERT_GT(sock, 0);
  EXPECT_GT(btf__find_by_name_kind(small.get(), "inner", BTF_KIND_STRUCT), 0);
  EXPECT_GT(btf__find_by_name_kind(small.get(), "u32", BTF_KIND_TYPEDEF), 0);
  EXPECT_GT(btf__find_by_name_kind(small.get(), "int", BTF_KIND_INT), 0);
  EXPECT_LT(btf__find_by_name_kind(small.get(), "pointee", BTF_KIND_STRUCT), 0);
  EXPECT_LT(btf__find_by_name_kind(small.get(), "unrelated", BTF_KIND_STRUCT),
            0);
  EXPECT_LT(btf__find_by_name_kind(small.get(), "color", BTF_KIND_ENUM), 0);
  // int, u32, inner, ptr, array, sock.
  EXPECT_EQ(btf__type_cnt(small.get()), 7u);

  // Members keep names, offsets, bitfield sizes; the pointer points to void.
  const btf_type *t = btf__type_by_id(small.get(), sock);
  ASSERT_EQ(btf_vlen(t), 4);
  const btf_member *m = btf_members(t);
  const char *names[] = {"in", "p", "arr", "flag"};
  const unsigned offsets[] = {0, 64, 128, 256};
  for (int i = 0; i < 4; ++i) {
    EXPECT_STREQ(btf__name_by_offset(small.get(), m[i].name_off), names[i]);
    EXPECT_EQ(btf_member_bit_offset(t, i), offsets[i]);
  }
  EXPECT_EQ(btf_member_bitfield_size(t, 3), 1u);
  const btf_type *p = btf__type_by_id(small.get(), m[1].type);
  ASSERT_TRUE(btf_is_ptr(p));
  EXPECT_EQ(p->type, 0u);
  const btf_type *a = btf__type_by_id(small.get(), m[2].type);
  ASSERT_TRUE(btf_is_array(a));
  EXPECT_EQ(btf_array(a)->nelems, 4u);
  EXPECT_EQ(btf__resolve_size(small.get(), sock), 40);
}

TEST(MinimizeBtf, FlavouredKernelNamesMatchTheirRoot) {
  const BtfPtr kernel = make_kernel();
  std::vector<std::uint8_t> out;
  std::string error;
  ASSERT_TRUE(
      minimize_btf(raw(kernel.get()), {"sock_common", "color"}, out, error))
      << error;
  const BtfPtr small = parse(out);
  ASSERT_TRUE(small);
  EXPECT_GT(
      btf__find_by_name_kind(small.get(), "sock_common___old", BTF_KIND_STRUCT),
      0);
  const int color = btf__find_by_name_kind(small.get(), "color", BTF_KIND_ENUM);
  ASSERT_GT(color, 0);
  const btf_type *e = btf__type_by_id(small.get(), color);
  ASSERT_EQ(btf_vlen(e), 1);
  EXPECT_STREQ(btf__name_by_offset(small.get(), btf_enum(e)->name_off), "RED");
  // A root that is only a prefix of a kernel name does not match it.
  ASSERT_TRUE(minimize_btf(raw(kernel.get()), {"soc"}, out, error));
  EXPECT_EQ(btf__type_cnt(parse(out).get()), 1u); // void only
}

TEST(MinimizeBtf, RefusesMalformedBtf) {
  std::vector<std::uint8_t> out;
  std::string error;
  EXPECT_FALSE(
      minimize_btf(std::vector<std::uint8_t>(10, 0), {"sock"}, out, error));
  EXPECT_FALSE(error.empty());
  std::vector<std::uint8_t> cut = raw(make_kernel().get());
  cut.resize(cut.size() - 40); // strings run past the end
  error.clear();
  EXPECT_FALSE(minimize_btf(cut, {"sock"}, out, error));
  EXPECT_FALSE(error.empty());
}

TEST(CoreReloRoots, TcptrailsObjectNamesItsKernelTypes) {
  std::vector<std::string> roots;
  std::string error;
  ASSERT_TRUE(core_relo_roots(object_elf(), roots, error)) << error;
  for (const char *want : {"sock", "sock_common", "tcp_sock", "task_struct",
                           "sk_buff", "bpf_iter__tcp"})
    EXPECT_NE(std::find(roots.begin(), roots.end(), want), roots.end()) << want;
  std::vector<std::string> sorted = roots;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
      << "duplicates";
  for (const std::string &r : roots)
    EXPECT_EQ(r.find("___"), std::string::npos) << r;
}

TEST(CoreReloRoots, RefusesWhatIsNotAnElfObject) {
  std::vector<std::string> roots;
  std::string error;
  EXPECT_FALSE(
      core_relo_roots(std::vector<std::uint8_t>(64, 0x7f), roots, error));
  EXPECT_FALSE(error.empty());
  // The real object cut short: its section headers are gone.
  const auto elf = object_elf();
  error.clear();
  EXPECT_FALSE(core_relo_roots(elf.first(elf.size() / 2), roots, error));
  EXPECT_FALSE(error.empty());
}

} // namespace
} // namespace tcptrail
