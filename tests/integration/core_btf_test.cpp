// tcptrail resolves its CO-RE relocations against the kernel's BTF cut down
// to the types they name (user/bpf/core_btf.h). On this kernel, every
// relocation of every program of every subcommand must be patched exactly
// as libbpf patches it against the whole kernel BTF (TCPTRAIL_CORE_BTF=
// kernel), as libbpf's debug log (--verbose) reports it.
#include "harness.h"

#include <regex>
#include <set>
#include <sstream>

namespace tcptrail::test {
namespace {

struct Relocations {
  std::set<std::string> patched; // "prog 'x': relo #3: patched insn #7 ..."
  std::string core_note;         // tcptrail's "CO-RE: ..." line
  std::string output;
};

Relocations relocations(const std::string &mode, bool whole_kernel_btf) {
  std::vector<std::string> argv{"env"};
  if (whole_kernel_btf)
    argv.push_back("TCPTRAIL_CORE_BTF=kernel");
  for (const char *a :
       {TCPTRAIL_BINARY, mode.c_str(), "--exit-after-attach", "--verbose"})
    argv.push_back(a);
  const CommandResult r = run_command(argv);
  Relocations out;
  out.output = r.output;
  EXPECT_EQ(r.exit_code, 0) << mode << ":\n" << r.output;
  static const std::regex patched(
      R"(prog '[^']+': relo #[0-9]+: (patched|substituting|poison).*)");
  std::istringstream lines(r.output);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, patched))
      out.patched.insert(m.str(0));
    else if (line.starts_with("tcptrail: CO-RE: "))
      out.core_note = line;
  }
  return out;
}

class CoreBtfTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    if (auto missing = missing_prerequisite())
      TT_SKIP_OR_FAIL(*missing);
  }
};

TEST_P(CoreBtfTest, EveryRelocationAsAgainstTheWholeKernelBtf) {
  const Relocations whole = relocations(GetParam(), true);
  const Relocations small = relocations(GetParam(), false);
  EXPECT_NE(whole.core_note.find("whole kernel BTF"), std::string::npos)
      << whole.core_note;
  // The cut-down BTF was made and used, not silently skipped.
  EXPECT_NE(small.core_note.find("relocation roots resolved in"),
            std::string::npos)
      << small.output;
  ASSERT_GT(whole.patched.size(), 20u) << whole.output;
  std::vector<std::string> only_whole, only_small;
  std::set_difference(whole.patched.begin(), whole.patched.end(),
                      small.patched.begin(), small.patched.end(),
                      std::back_inserter(only_whole));
  std::set_difference(small.patched.begin(), small.patched.end(),
                      whole.patched.begin(), whole.patched.end(),
                      std::back_inserter(only_small));
  EXPECT_TRUE(only_whole.empty() && only_small.empty())
      << "whole kernel BTF only:\n"
      << (only_whole.empty() ? "" : only_whole.front())
      << "\ncut-down BTF only:\n"
      << (only_small.empty() ? "" : only_small.front());
}

INSTANTIATE_TEST_SUITE_P(Modes, CoreBtfTest,
                         ::testing::Values("trace", "history", "snapshot",
                                           "leaks", "diagnose"),
                         [](const auto &info) { return info.param; });

} // namespace
} // namespace tcptrail::test
