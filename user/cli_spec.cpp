#include "cli_spec.h"

#include <algorithm>
#include <cstdint>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tcp_state.h"

namespace tcptrail {

namespace {

// CLI11's full type name is "TYPE" plus ":description" per validator; an
// IsMember validator describes itself as "{a,b}".
std::vector<std::string> member_words(const std::string &full_type) {
  std::vector<std::string> words;
  const auto open = full_type.find(":{");
  if (open == std::string::npos || full_type.back() != '}')
    return words;
  std::string item;
  for (char c : full_type.substr(open + 2, full_type.size() - open - 3)) {
    if (c == ',') {
      words.push_back(item);
      item.clear();
    } else if (c != ' ') {
      item.push_back(c);
    }
  }
  if (!item.empty())
    words.push_back(item);
  return words;
}

OptionSpec describe_option(const CLI::Option &opt) {
  OptionSpec o;
  for (const std::string &s : opt.get_snames())
    o.names.push_back("-" + s);
  for (const std::string &l : opt.get_lnames())
    o.names.push_back("--" + l);
  o.takes_value = opt.get_items_expected_max() != 0; // flags expect 0
  o.description = opt.get_description();
  if (o.takes_value) {
    const std::string full = opt.get_type_name();
    o.type_name = full.substr(0, full.find(':'));
    o.values = member_words(full);
    if (o.values.empty())
      o.values = value_words(o.type_name);
  }
  return o;
}

CommandSpec describe_command(const CLI::App &app) {
  CommandSpec c;
  c.name = app.get_parent() ? app.get_name() : std::string{};
  c.description = app.get_description();
  for (const CLI::Option *opt : app.get_options([](const CLI::Option *o) {
         // Hidden options have no group; positionals have no names.
         return !o->get_group().empty() &&
                !(o->get_snames().empty() && o->get_lnames().empty());
       }))
    c.options.push_back(describe_option(*opt));
  return c;
}

// The word between single quotes, for bash and zsh alike.
std::string sh_quote(const std::string &s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

std::string join(const std::vector<std::string> &v, const char *sep) {
  std::string out;
  for (const std::string &s : v)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

// A shell identifier made of a subcommand's name.
std::string ident(const std::string &name) {
  std::string out;
  for (char c : name)
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

// zsh's _arguments: a description in [...] may not hold ']' or ':' unescaped.
std::string zsh_describe(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '[' || c == ']' || c == ':' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void bash_case_arm(std::string &out, const CommandSpec &c,
                   const std::string &subcommands) {
  std::vector<std::string> names;
  for (const OptionSpec &o : c.options)
    names.insert(names.end(), o.names.begin(), o.names.end());
  out += fmt::format("  {})\n", c.name.empty() ? "''" : c.name);
  // The word after an option that takes a value is that value.
  std::string values;
  for (const OptionSpec &o : c.options) {
    if (!o.takes_value)
      continue;
    values += fmt::format("    {})\n      COMPREPLY=($(compgen -W {} -- "
                          "\"$cur\"))\n      return ;;\n",
                          join(o.names, " | "), sh_quote(join(o.values, " ")));
  }
  if (!values.empty())
    out += "    case $prev in\n" + values + "    esac\n";
  out += fmt::format("    opts={}\n    words={}\n    ;;\n",
                     sh_quote(join(names, " ")), sh_quote(subcommands));
}

} // namespace

std::vector<std::string> value_words(const std::string &type_name) {
  std::vector<std::string> words;
  if (type_name == "STATE") {
    for (std::uint8_t s = 1; s <= kMaxTcpState; ++s)
      words.emplace_back(state_name(s));
  } else if (type_name == "FMT") {
    words = {"table", "json", "csv"};
  }
  return words;
}

CliSpec describe_cli(const CLI::App &app) {
  CliSpec spec;
  spec.program = app.get_name();
  spec.top = describe_command(app);
  for (const CLI::App *sub : app.get_subcommands(
           [](const CLI::App *s) { return !s->get_group().empty(); }))
    spec.commands.push_back(describe_command(*sub));
  return spec;
}

std::string cli_spec_json(const CliSpec &spec) {
  auto command = [](const CommandSpec &c) {
    nlohmann::json options = nlohmann::json::array();
    for (const OptionSpec &o : c.options)
      options.push_back({{"names", o.names},
                         {"type", o.type_name},
                         {"takes_value", o.takes_value},
                         {"description", o.description},
                         {"values", o.values}});
    return nlohmann::json{
        {"name", c.name}, {"description", c.description}, {"options", options}};
  };
  nlohmann::json commands = nlohmann::json::array();
  for (const CommandSpec &c : spec.commands)
    commands.push_back(command(c));
  return nlohmann::json{{"program", spec.program},
                        {"options", command(spec.top)["options"]},
                        {"commands", commands}}
      .dump(2);
}

std::string bash_completion(const CliSpec &spec) {
  std::vector<std::string> subs;
  for (const CommandSpec &c : spec.commands)
    subs.push_back(c.name);
  const std::string p = spec.program;
  std::string out = fmt::format(
      "# bash completion for {0}. Generated from its command line by\n"
      "# `{0} _cli bash`: do not edit.\n"
      "_{1}() {{\n"
      "  local cur=${{COMP_WORDS[COMP_CWORD]}} "
      "prev=${{COMP_WORDS[COMP_CWORD-1]}}\n"
      "  local cmd= opts= words= i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    case ${{COMP_WORDS[i]}} in\n"
      "    {2}) cmd=${{COMP_WORDS[i]}}; break ;;\n"
      "    esac\n"
      "  done\n"
      "  case $cmd in\n",
      p, ident(p), join(subs, " | "));
  bash_case_arm(out, spec.top, join(subs, " "));
  for (const CommandSpec &c : spec.commands)
    bash_case_arm(out, c, "");
  out += "  esac\n"
         "  if [[ $cur == -* || -z $words ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
         "  else\n"
         "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "  fi\n"
         "}\n";
  out += fmt::format("complete -F _{} {}\n", ident(p), p);
  return out;
}

std::string zsh_completion(const CliSpec &spec) {
  const std::string p = spec.program;
  const std::string fn = "_" + ident(p);
  std::string out = fmt::format("#compdef {0}\n"
                                "# zsh completion for {0}. Generated from its "
                                "command line by\n# `{0} _cli zsh`: do not "
                                "edit.\n\n",
                                p);
  auto options = [&](const CommandSpec &c, const std::string &array) {
    out += array + "=(\n";
    for (const OptionSpec &o : c.options) {
      // Every option may repeat ('*'), as the repeatable filters do.
      std::string action;
      if (o.takes_value)
        action =
            fmt::format(":{}:{}", zsh_describe(o.type_name),
                        o.values.empty() ? std::string{" "}
                                         : "(" + join(o.values, " ") + ")");
      for (const std::string &n : o.names)
        out += fmt::format("  {}\n", sh_quote(fmt::format(
                                         "*{}[{}]{}", n,
                                         zsh_describe(o.description), action)));
    }
    out += ")\n";
  };
  options(spec.top, fn + "_opts");
  for (const CommandSpec &c : spec.commands)
    options(c, fn + "_opts_" + ident(c.name));
  out += fn + "_commands=(\n";
  for (const CommandSpec &c : spec.commands)
    out += "  " + sh_quote(c.name + ":" + zsh_describe(c.description)) + "\n";
  out += ")\n\n";
  out += fmt::format(
      "{0}() {{\n"
      "  local curcontext=$curcontext state line\n"
      "  typeset -A opt_args\n"
      "  _arguments -C \"${{{0}_opts[@]}}\" '1: :->command' '*:: :->args'\n"
      "  case $state in\n"
      "  command) _describe -t commands '{1} subcommand' {0}_commands ;;\n"
      "  args)\n"
      "    local spec={0}_opts_${{words[1]//[^[:alnum:]]/_}}\n"
      "    (( ${{(P)+spec}} )) && _arguments \"${{(@P)spec}}\" ;;\n"
      "  esac\n"
      "}}\n\n"
      "if [[ $funcstack[1] == {0} ]]; then\n"
      "  {0} \"$@\"\n"
      "else\n"
      "  compdef {0} {1}\n"
      "fi\n",
      fn, p);
  return out;
}

} // namespace tcptrail
