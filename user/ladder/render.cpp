#include "ladder/render.h"

#include <algorithm>

#include <fmt/format.h>

#include "net.h"

namespace tcptrail::ladder {

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    out.push_back(u >= 0x20 && u < 0x7f ? ch : '?');
  }
  return out;
}

std::string format_duration(std::uint64_t ns, bool ascii) {
  const double v = static_cast<double>(ns);
  if (ns < 1'000'000)
    return fmt::format("{} {}s", (ns + 500) / 1000, ascii ? "u" : "µ");
  if (ns < 10'000'000)
    return fmt::format("{:.3f} ms", v / 1e6);
  if (ns < 1'000'000'000)
    return fmt::format("{:.1f} ms", v / 1e6);
  return fmt::format("{:.2f} s", v / 1e9);
}

std::string segment_label(const Connection &c, const Segment &s, bool raw) {
  std::string flags;
  auto add = [&flags](const char *f) {
    if (!flags.empty())
      flags += ',';
    flags += f;
  };
  if (s.data && !s.fin && !s.syn && !s.rst) {
    flags = "data";
  } else {
    if (s.syn)
      add("SYN");
    if (s.fin)
      add("FIN");
    if (s.rst)
      add("RST");
    if (s.ack)
      add("ACK");
  }
  const auto seq = raw ? raw_seq(c, s) : s.seq;
  const auto ack = raw ? raw_ack(c, s) : s.ack_no;
  std::string out = flags;
  if (seq)
    out += fmt::format(" seq={}", *seq);
  if (ack)
    out += fmt::format(" ack={}", *ack);
  if (s.len)
    out += fmt::format(" len={}", s.len);
  if (s.retransmit)
    out += " (retransmit)";
  return out;
}

std::string mark_label(const Mark &m, bool ascii) {
  std::string out = m.inferred ? "(" + m.state + ")" : m.state;
  if (m.dur_ns) {
    out += ' ';
    if (m.open_at_end)
      out += ascii ? ">=" : "≥";
    out += format_duration(*m.dur_ns, ascii);
  }
  return out;
}

std::string endpoint(const End &e) {
  return format_endpoint(e.sk.af, e.sk.laddr, e.sk.lport);
}

std::string owner(const End &e) {
  if (!e.traced)
    return "not traced";
  const std::string comm = printable(comm_view(e.sk.comm));
  if (e.sk.pid == 0)
    return comm.empty() ? "owner unknown" : comm;
  return fmt::format("{} pid {}", comm.empty() ? "?" : comm, e.sk.pid);
}

void render(Buffer &out, LadderFormat format,
            const std::vector<Connection> &conns, const RenderOptions &opts) {
  switch (format) {
  case LadderFormat::Text:
    render_text(out, conns, opts);
    break;
  case LadderFormat::Svg:
    render_svg(out, conns, opts);
    break;
  case LadderFormat::Mermaid:
    render_mermaid(out, conns, opts);
    break;
  case LadderFormat::Json:
    render_json(out, conns, opts);
    break;
  }
}

} // namespace tcptrail::ladder
