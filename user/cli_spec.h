// The command line as data, read from the CLI11 definition itself, and what
// is generated from it: shell completion for bash and zsh, and the JSON that
// the man-page test reads (`tcptrail _cli bash|zsh|json`, hidden). A new
// subcommand or option is covered without touching this file.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace tcptrail {

struct OptionSpec {
  std::vector<std::string> names; // "-p", "--pid": short ones first
  std::string type_name;          // "INT", "STATE"; empty for a flag
  bool takes_value = false;
  std::string description;
  std::vector<std::string> values; // the words a value may be, if known
};

struct CommandSpec {
  std::string name; // empty for the program itself
  std::string description;
  std::vector<OptionSpec> options; // as --help shows them
};

struct CliSpec {
  std::string program;
  CommandSpec top;                   // the program's own options
  std::vector<CommandSpec> commands; // visible subcommands, in order
};

// Visible subcommands and options only (CLI11's hidden ones have an empty
// group).
CliSpec describe_cli(const CLI::App &app);

// The words a value of this type may take, or empty when any value goes:
// STATE (the TCP state table), FMT/FORMAT (output formats).
std::vector<std::string> value_words(const std::string &type_name);

std::string cli_spec_json(const CliSpec &spec);
// A bash completion script: `complete -F _tcptrail tcptrail`.
std::string bash_completion(const CliSpec &spec);
// A zsh completion function (#compdef), also usable with `source`.
std::string zsh_completion(const CliSpec &spec);

} // namespace tcptrail
