// SVG: a picture for a postmortem or a course page. Presentation
// attributes only (no stylesheet), so any SVG viewer draws it the same.
#include <string>

#include <fmt/format.h>

#include "ladder/render.h"

namespace tcptrail::ladder {

namespace {

constexpr int kWidth = 980;
constexpr int kLeftX = 330;  // lifeline of column 0
constexpr int kRightX = 690; // lifeline of column 1
constexpr int kMarkRow = 22;
constexpr int kSegRow = 30;
constexpr int kSlope = 16; // an arrow's drop: the segment takes time
constexpr const char *kFont = "DejaVu Sans, Verdana, Arial, sans-serif";

std::string xml(std::string_view s) {
  std::string out;
  for (char ch : printable(s)) {
    switch (ch) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out.push_back(ch);
    }
  }
  return out;
}

struct Colour {
  const char *stroke;
  const char *marker;
};
constexpr Colour kBlack{"#000000", "ah-black"};
constexpr Colour kGrey{"#707070", "ah-grey"};
constexpr Colour kRed{"#c00000", "ah-red"};
constexpr Colour kOrange{"#d07000", "ah-orange"};

class SvgRenderer {
public:
  explicit SvgRenderer(const RenderOptions &opts) : opts_(opts) {}

  void connection(const Connection &c, std::size_t number) {
    text(20, y_ + 16,
         fmt::format("connection {}: {} - {}, {}", number, endpoint(c.ends[0]),
                     endpoint(c.ends[1]),
                     c.both_traced() ? "both ends traced"
                                     : "one end traced, the peer inferred"),
         "start", "bold", "#000000", 15);
    y_ += 30;
    for (int col = 0; col < 2; ++col)
      header(c.ends[col], col == 0 ? kLeftX : kRightX, col);
    y_ += 62;
    const int life_top = y_;
    y_ += 16;
    for (int col = 0; col < 2; ++col)
      if (!c.ends[col].initial.empty())
        state_text(col, y_, c.ends[col].initial, false);
    y_ += 8;
    std::vector<std::string> notes;
    const std::size_t lines_at = body_.size();
    for (const Row &r : c.rows) {
      if (r.is_segment)
        segment(c, r.seg);
      else
        mark(c, r.mark, notes);
    }
    y_ += 12;
    // Lifelines under everything else of this connection.
    std::string lines;
    for (int col = 0; col < 2; ++col) {
      const int x = col == 0 ? kLeftX : kRightX;
      lines += fmt::format(
          R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#404040" stroke-width="1.5"{}/>)"
          "\n",
          x, life_top, x, y_,
          c.ends[col].traced ? "" : R"( stroke-dasharray="4 4")");
    }
    body_.insert(lines_at, lines);
    y_ += 10;
    for (std::size_t i = 0; i < notes.size(); ++i) {
      y_ += 16;
      text(20, y_, fmt::format("[{}] {}", i + 1, notes[i]), "start", "normal",
           "#303030", 12);
    }
    y_ += 30;
  }

  void legend() {
    y_ += 4;
    text(20, y_, "Legend", "start", "bold", "#000000", 13);
    y_ += 20;
    legend_arrow(kBlack, false,
                 "a segment a kernel event shows: sent by a transition or "
                 "arriving (it moved the receiver)");
    legend_arrow(kGrey, true,
                 "inferred: no event shows it (payload between two seq/ack "
                 "snapshots, a segment of an untraced peer)");
    legend_arrow(kRed, false, "RST");
    legend_arrow(kOrange, false, "retransmission (tcp_retransmit_skb/synack)");
    body_ += fmt::format(R"(<circle cx="60" cy="{}" r="4" fill="#005f87"/>)"
                         "\n",
                         y_ - 4);
    text(110, y_,
         "STATE t: state entered here, time spent in it; (STATE): "
         "inferred; >=t: still in it when the trace ended",
         "start", "normal", "#000000", 12);
    y_ += 20;
    text(20, y_,
         opts_.raw_seq
             ? "time: seconds since the connection's first event; seq/ack raw"
             : "time: seconds since the connection's first event; seq/ack "
               "relative to each end's ISN (SYN = 0), as Wireshark shows them",
         "start", "normal", "#000000", 12);
    y_ += 16;
  }

  void finish(Buffer &out) {
    const int height = y_ + 10;
    fmt::format_to(
        std::back_inserter(out),
        R"(<?xml version="1.0" encoding="UTF-8"?>)"
        "\n"
        R"(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{0}" height="{1}" viewBox="0 0 {0} {1}" font-family="{2}">)"
        "\n<title>tcptrail ladder</title>\n"
        R"(<rect x="0" y="0" width="{0}" height="{1}" fill="#ffffff"/>)"
        "\n<defs>\n",
        kWidth, height, kFont);
    for (const Colour &c : {kBlack, kGrey, kRed, kOrange})
      fmt::format_to(
          std::back_inserter(out),
          R"(<marker id="{}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>)"
          "\n",
          c.marker, c.stroke);
    out.append(std::string_view("</defs>\n"));
    out.append(body_.data(), body_.data() + body_.size());
    out.append(std::string_view("</svg>\n"));
  }

  void empty() {
    text(20, y_ + 20, "no connection to draw", "start", "normal", "#000000",
         13);
    y_ += 30;
  }

  void warning(const std::string &w) {
    text(20, y_ + 16, w, "start", "bold", "#c00000", 13);
    y_ += 28;
  }

private:
  void text(int x, int y, std::string_view s, const char *anchor,
            const char *weight, const char *fill, int size,
            bool italic = false) {
    body_ += fmt::format(
        R"(<text x="{}" y="{}" font-size="{}" text-anchor="{}" font-weight="{}" fill="{}"{}>{}</text>)"
        "\n",
        x, y, size, anchor, weight, fill,
        italic ? R"( font-style="italic")" : "", xml(s));
  }

  void header(const End &e, int x, int col) {
    const int w = 250, h = 56;
    body_ += fmt::format(
        R"(<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{}" stroke="#404040"{}/>)"
        "\n",
        x - w / 2, y_, w, h, e.traced ? "#eef4fa" : "#ffffff",
        e.traced ? "" : R"( stroke-dasharray="4 4")");
    const std::string role = !e.traced ? "peer (inferred)"
                             : col == 0
                                 ? (e.active ? "client (active)" : "end A")
                                 : (e.active ? "end B" : "server (passive)");
    text(x, y_ + 16, role, "middle", "bold", "#000000", 13);
    text(x, y_ + 32, endpoint(e), "middle", "normal", "#000000", 12);
    text(x, y_ + 47,
         e.traced ? fmt::format("{}, netns {}", owner(e), e.sk.netns)
                  : owner(e),
         "middle", "normal", "#404040", 11);
  }

  void state_text(int col, int y, const std::string &s, bool inferred) {
    if (col == 0)
      text(kLeftX - 12, y, s, "end", "bold", inferred ? "#707070" : "#005f87",
           12, inferred);
    else
      text(kRightX + 12, y, s, "start", "bold",
           inferred ? "#707070" : "#005f87", 12, inferred);
  }

  void time_text(const Connection &c, std::uint64_t ts, int y) {
    if (ts == 0 || ts < c.start_ns)
      return;
    text(20, y,
         fmt::format("{:.6f}", static_cast<double>(ts - c.start_ns) / 1e9),
         "start", "normal", "#707070", 11);
  }

  void mark(const Connection &c, const Mark &m,
            std::vector<std::string> &notes) {
    y_ += kMarkRow;
    const int x = m.side == 0 ? kLeftX : kRightX;
    std::string label = mark_label(m, true);
    if (!m.note.empty()) {
      notes.push_back(m.note);
      label += fmt::format(" [{}]", notes.size());
    }
    body_ +=
        fmt::format(R"(<circle cx="{}" cy="{}" r="4" fill="{}" stroke="{}"{}/>)"
                    "\n",
                    x, y_ - 4, m.inferred ? "#ffffff" : "#005f87",
                    m.inferred ? "#707070" : "#005f87",
                    m.inferred ? R"( stroke-dasharray="2 2")" : "");
    state_text(m.side, y_, label, m.inferred);
    time_text(c, m.ts_ns, y_);
  }

  void segment(const Connection &c, const Segment &s) {
    y_ += kSegRow;
    const Colour col = s.rst          ? kRed
                       : s.retransmit ? kOrange
                       : s.inferred   ? kGrey
                                      : kBlack;
    const int x1 = s.from == 0 ? kLeftX : kRightX;
    const int x2 = s.from == 0 ? kRightX : kLeftX;
    const int y1 = y_ - kSlope, y2 = y_;
    body_ += fmt::format(
        R"svg(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1.6"{} marker-end="url(#{})"/>)svg"
        "\n",
        x1, y1, x2, y2, col.stroke,
        s.inferred ? R"( stroke-dasharray="7 5")" : "", col.marker);
    text((kLeftX + kRightX) / 2, y1 + kSlope / 2 - 7,
         segment_label(c, s, opts_.raw_seq), "middle", "normal", col.stroke, 12,
         s.inferred);
    time_text(c, s.ts_ns, y1 + 4);
  }

  void legend_arrow(const Colour &c, bool dashed, const char *what) {
    body_ += fmt::format(
        R"svg(<line x1="30" y1="{0}" x2="95" y2="{0}" stroke="{1}" stroke-width="1.6"{2} marker-end="url(#{3})"/>)svg"
        "\n",
        y_ - 4, c.stroke, dashed ? R"( stroke-dasharray="7 5")" : "", c.marker);
    text(110, y_, what, "start", "normal", "#000000", 12);
    y_ += 20;
  }

  const RenderOptions &opts_;
  std::string body_;
  int y_ = 10;
};

} // namespace

void render_svg(Buffer &out, const std::vector<Connection> &conns,
                const RenderOptions &opts) {
  SvgRenderer r(opts);
  if (opts.lost)
    r.warning(fmt::format("{} records were lost while tracing: parts of "
                          "these ladders may be missing",
                          opts.lost));
  for (std::size_t i = 0; i < conns.size(); ++i)
    r.connection(conns[i], i + 1);
  if (conns.empty())
    r.empty();
  else
    r.legend();
  r.finish(out);
}

} // namespace tcptrail::ladder
