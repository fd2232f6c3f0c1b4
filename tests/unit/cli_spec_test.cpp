// The command line as data, and the completion scripts made from it, for a
// synthetic CLI11 definition.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_spec.h"

namespace {

using tcptrail::describe_cli;

struct Fixture {
  CLI::App app{"demo tool", "demo"};
  std::vector<int> pids;
  std::string fmt, state, secret, what;
  bool flag = false;
  Fixture() {
    app.set_version_flag("-V,--version", "demo 1");
    CLI::App *run = app.add_subcommand("run", "run it: now");
    run->add_option("-p,--pid", pids, "owner [pid]");
    run->add_option("--state", state, "a state")->type_name("STATE");
    run->add_flag("--quiet", flag, "say nothing");
    run->add_option("--secret", secret, "hidden")->group("");
    run->add_option("file", what, "a positional");
    CLI::App *show = app.add_subcommand("show-all", "show");
    show->add_option("-f,--format", fmt, "text or json")
        ->check(CLI::IsMember({"text", "json"}))
        ->type_name("FORMAT");
    app.add_subcommand("_hidden", "")->group("");
  }
};

TEST(CliSpecTest, WalksVisibleSubcommandsAndOptions) {
  Fixture f;
  const tcptrail::CliSpec spec = describe_cli(f.app);
  EXPECT_EQ(spec.program, "demo");
  ASSERT_EQ(spec.commands.size(), 2u); // _hidden left out
  EXPECT_EQ(spec.commands[0].name, "run");
  EXPECT_EQ(spec.commands[1].name, "show-all");
  std::vector<std::string> top;
  for (const auto &o : spec.top.options)
    top.insert(top.end(), o.names.begin(), o.names.end());
  EXPECT_EQ(top, (std::vector<std::string>{"-h", "--help", "-V", "--version"}));

  const auto &run = spec.commands[0].options;
  std::vector<std::string> names;
  for (const auto &o : run)
    names.push_back(o.names.back());
  // --secret is hidden and "file" positional: neither is an option to offer.
  EXPECT_EQ(names, (std::vector<std::string>{"--help", "--pid", "--state",
                                             "--quiet"}));
  EXPECT_EQ(run[1].names, (std::vector<std::string>{"-p", "--pid"}));
  EXPECT_TRUE(run[1].takes_value);
  EXPECT_FALSE(run[3].takes_value);
  EXPECT_EQ(run[2].type_name, "STATE");
  EXPECT_EQ(run[2].values.size(), 12u);
  EXPECT_EQ(run[2].values.front(), "ESTABLISHED");
  EXPECT_EQ(run[2].values.back(), "NEW_SYN_RECV");
  // An IsMember validator's words become the values.
  const auto &fmt = spec.commands[1].options[1];
  EXPECT_EQ(fmt.type_name, "FORMAT");
  EXPECT_EQ(fmt.values, (std::vector<std::string>{"text", "json"}));
}

TEST(CliSpecTest, JsonHasEveryCommandAndOption) {
  Fixture f;
  const auto j =
      nlohmann::json::parse(tcptrail::cli_spec_json(describe_cli(f.app)));
  EXPECT_EQ(j["program"], "demo");
  ASSERT_EQ(j["commands"].size(), 2u);
  EXPECT_EQ(j["commands"][0]["name"], "run");
  EXPECT_EQ(j["commands"][0]["options"][1]["names"],
            nlohmann::json({"-p", "--pid"}));
  EXPECT_EQ(j["commands"][1]["options"][1]["values"],
            nlohmann::json({"text", "json"}));
}

TEST(CliSpecTest, BashScriptCompletesPerSubcommand) {
  Fixture f;
  const std::string s = tcptrail::bash_completion(describe_cli(f.app));
  EXPECT_NE(s.find("complete -F _demo demo\n"), std::string::npos);
  EXPECT_NE(s.find("    run | show-all) cmd=${COMP_WORDS[i]}; break ;;"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("opts='-h --help -p --pid --state --quiet'"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("    -f | --format)\n      COMPREPLY=($(compgen -W "
                   "'text json' -- \"$cur\"))"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.find("secret"), std::string::npos);
  EXPECT_EQ(s.find("_hidden"), std::string::npos);
}

TEST(CliSpecTest, ZshSpecsEscapeDescriptions) {
  Fixture f;
  const std::string s = tcptrail::zsh_completion(describe_cli(f.app));
  EXPECT_EQ(s.rfind("#compdef demo\n", 0), 0u);
  // ']' and ':' would end the description or start the action.
  EXPECT_NE(s.find("'*--pid[owner \\[pid\\]]:INT: '"), std::string::npos) << s;
  EXPECT_NE(s.find("'run:run it\\: now'"), std::string::npos) << s;
  EXPECT_NE(s.find("'*--format[text or json]:FORMAT:(text json)'"),
            std::string::npos)
      << s;
  // A subcommand name that is no identifier still names an array.
  EXPECT_NE(s.find("_demo_opts_show_all=("), std::string::npos) << s;
}

} // namespace
