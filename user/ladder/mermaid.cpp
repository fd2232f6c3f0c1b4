// Mermaid sequenceDiagram: renders in GitHub and GitLab Markdown. One
// diagram per connection, separated by a blank line.
#include <string>

#include <fmt/format.h>

#include "ladder/render.h"

namespace tcptrail::ladder {

namespace {

// Mermaid reads ';' and '#' as syntax in messages and notes.
std::string safe(std::string_view s) {
  std::string out = printable(s);
  for (char &ch : out)
    if (ch == ';' || ch == '#' || ch == '%')
      ch = '?';
  return out;
}

void append(Buffer &out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

} // namespace

void render_mermaid(Buffer &out, const std::vector<Connection> &conns,
                    const RenderOptions &opts) {
  if (opts.lost)
    append(out, fmt::format("%% warning: {} records were lost while "
                            "tracing: parts of these ladders may be "
                            "missing\n",
                            opts.lost));
  const char *ids[2] = {"A", "B"};
  for (std::size_t n = 0; n < conns.size(); ++n) {
    const Connection &c = conns[n];
    if (n)
      append(out, "\n");
    append(out, "sequenceDiagram\n");
    append(out, fmt::format("    %% connection {}: {} - {}, {}\n", n + 1,
                            endpoint(c.ends[0]), endpoint(c.ends[1]),
                            c.both_traced() ? "both ends traced"
                                            : "one end traced, the peer "
                                              "inferred"));
    for (int col = 0; col < 2; ++col) {
      const End &e = c.ends[col];
      const std::string role = !e.traced  ? "peer (inferred)"
                               : col == 0 ? (e.active ? "client" : "end A")
                                          : (e.active ? "end B" : "server");
      append(out,
             fmt::format("    participant {} as {}<br/>{}<br/>{}\n", ids[col],
                         role, safe(endpoint(e)), safe(owner(e))));
    }
    for (int col = 0; col < 2; ++col)
      if (!c.ends[col].initial.empty())
        append(out, fmt::format("    Note over {}: {}\n", ids[col],
                                c.ends[col].initial));
    for (const Row &r : c.rows) {
      if (!r.is_segment) {
        const Mark &m = r.mark;
        std::string label = safe(mark_label(m, true));
        if (!m.note.empty())
          label += "<br/>" + safe(m.note);
        append(out, fmt::format("    Note {} {}: {}\n",
                                m.side == 0 ? "left of" : "right of",
                                ids[m.side], label));
        continue;
      }
      const Segment &s = r.seg;
      // ->> observed, -->> inferred; -x / --x for RST.
      const char *arrow =
          s.rst ? (s.inferred ? "--x" : "-x") : (s.inferred ? "-->>" : "->>");
      std::string label = safe(segment_label(c, s, opts.raw_seq));
      if (s.inferred)
        label += " (inferred)";
      append(out, fmt::format("    {}{}{}: {}\n", ids[s.from], arrow,
                              ids[1 - s.from], label));
    }
  }
}

} // namespace tcptrail::ladder
