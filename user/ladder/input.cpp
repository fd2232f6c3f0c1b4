#include "ladder/input.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "error.h"

namespace tcptrail::ladder {

bool keep(const FilterSpec &filter, const Event &ev) {
  return matches(filter, ev.sk, ev.old_state, ev.new_state);
}

Input read_trace_json(std::istream &in, const std::string &name,
                      const FilterSpec &filter, std::uint64_t count) {
  Input out;
  std::string line, error;
  std::uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto ev = parse_trace_json(line, error, out.lost);
    if (!error.empty())
      throw Error(fmt::format("{}:{}: {}", name, number, error),
                  "--input reads the JSON Lines of `tcptrail trace -f json`");
    if (!ev || !keep(filter, *ev))
      continue;
    out.events.push_back(std::move(*ev));
    if (count && out.events.size() >= count)
      break;
  }
  if (in.bad())
    throw Error(fmt::format("{}: cannot read line {}: {}", name, number + 1,
                            std::strerror(errno)));
  return out;
}

} // namespace tcptrail::ladder
