// JSON Lines: one object per connection, for machines (and the tests that
// compare a ladder with a packet capture).
#include <string>

#include <nlohmann/json.hpp>

#include "format/escape.h"
#include "ladder/render.h"
#include "net.h"

namespace tcptrail::ladder {

namespace {

using Json = nlohmann::ordered_json;

template <typename T> Json opt(const std::optional<T> &v) {
  return v ? Json(*v) : Json(nullptr);
}

Json end_json(const End &e, int col) {
  Json j;
  j["traced"] = e.traced;
  j["role"] = e.active ? "active" : "passive";
  j["cookie"] = e.traced ? Json(e.cookie) : Json(nullptr);
  j["addr"] = format_ip(e.sk.af, e.sk.laddr);
  j["port"] = e.sk.lport;
  j["pid"] = e.traced && e.sk.pid ? Json(e.sk.pid) : Json(nullptr);
  j["comm"] = e.traced ? Json(printable(comm_view(e.sk.comm))) : Json(nullptr);
  j["netns"] = e.traced ? Json(e.sk.netns) : Json(nullptr);
  j["isn"] = e.isn_known ? Json(e.isn) : Json(nullptr);
  j["initial"] = e.initial.empty() ? Json(nullptr) : Json(e.initial);
  j["column"] = col;
  return j;
}

} // namespace

void render_json(Buffer &out, const std::vector<Connection> &conns,
                 const RenderOptions &opts) {
  for (std::size_t n = 0; n < conns.size(); ++n) {
    const Connection &c = conns[n];
    Json j;
    j["event"] = "ladder";
    j["connection"] = n + 1;
    j["start_ns"] = c.start_ns;
    j["end_ns"] = c.end_ns;
    j["lost"] = opts.lost;
    j["ends"] = Json::array({end_json(c.ends[0], 0), end_json(c.ends[1], 1)});
    Json rows = Json::array();
    for (const Row &r : c.rows) {
      Json row;
      if (r.is_segment) {
        const Segment &s = r.seg;
        Json flags = Json::array();
        if (s.syn)
          flags.push_back("SYN");
        if (s.fin)
          flags.push_back("FIN");
        if (s.rst)
          flags.push_back("RST");
        if (s.ack)
          flags.push_back("ACK");
        row["type"] = "segment";
        row["from"] = s.from;
        row["flags"] = flags;
        row["data"] = s.data;
        row["seq"] = opt(s.seq);
        row["ack"] = opt(s.ack_no);
        row["raw_seq"] = opt(raw_seq(c, s));
        row["raw_ack"] = opt(raw_ack(c, s));
        row["len"] = s.len;
        row["inferred"] = s.inferred;
        row["retransmit"] = s.retransmit;
        row["ts_ns"] = s.ts_ns ? Json(s.ts_ns) : Json(nullptr);
        row["label"] = segment_label(c, s, opts.raw_seq);
      } else {
        const Mark &m = r.mark;
        row["type"] = "state";
        row["side"] = m.side;
        row["state"] = m.state;
        row["ts_ns"] = m.ts_ns ? Json(m.ts_ns) : Json(nullptr);
        row["dur_ns"] = opt(m.dur_ns);
        row["inferred"] = m.inferred;
        row["open_at_end"] = m.open_at_end;
        row["note"] = m.note.empty() ? Json(nullptr) : Json(m.note);
      }
      rows.push_back(std::move(row));
    }
    j["rows"] = std::move(rows);
    const std::string s =
        j.dump(-1, ' ', false, Json::error_handler_t::replace);
    out.append(s.data(), s.data() + s.size());
    out.push_back('\n');
  }
}

} // namespace tcptrail::ladder
