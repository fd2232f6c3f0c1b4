// The terminal drawing: two lifelines, arrows between them, each end's
// states in the margins, time down the left.
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "ladder/render.h"

namespace tcptrail::ladder {

namespace {

struct Glyphs {
  const char *solid, *dashed, *head_right, *head_left, *life, *dot, *tee_right,
      *tee_left;
};
constexpr Glyphs kUnicode{"─", "┄", "▶", "◀", "│", "●", "├", "┤"};
constexpr Glyphs kAscii{"-", ".", ">", "<", "|", "*", "+", "+"};

constexpr const char *kDim = "\x1b[2m";
constexpr const char *kRed = "\x1b[31m";
constexpr const char *kYellow = "\x1b[33m";
constexpr const char *kCyan = "\x1b[36m";
constexpr const char *kBold = "\x1b[1m";
constexpr const char *kReset = "\x1b[0m";

constexpr std::size_t kTimeWidth = 10;

// Display width: every character drawn here is one column wide.
std::size_t width(std::string_view s) {
  std::size_t n = 0;
  for (char ch : s)
    if ((static_cast<unsigned char>(ch) & 0xc0) != 0x80)
      ++n;
  return n;
}

std::string repeat(const char *g, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += g;
  return s;
}

class TextRenderer {
public:
  TextRenderer(Buffer &out, const RenderOptions &opts)
      : out_(out), opts_(opts), g_(opts.ascii ? kAscii : kUnicode) {}

  void connection(const Connection &c, std::size_t number) {
    notes_.clear();
    // Margins and arrow area wide enough for every label.
    std::size_t left_w = 12, arrow_w = 30;
    for (const Row &r : c.rows) {
      if (r.is_segment)
        arrow_w = std::max(arrow_w,
                           width(segment_label(c, r.seg, opts_.raw_seq)) + 8);
      else if (r.mark.side == 0)
        left_w = std::max(left_w, width(label_with_note(r.mark, false)));
    }
    for (const End &e : c.ends) {
      arrow_w = std::max(arrow_w, width(endpoint(e)) + 4);
      arrow_w = std::max(arrow_w, width(owner(e)) + 4);
    }
    left_w_ = left_w;
    arrow_w_ = arrow_w;
    left_x_ = kTimeWidth + 2 + left_w_ + 1;
    right_x_ = left_x_ + arrow_w_ + 1;

    color(kBold);
    append(fmt::format("connection {}: {} {} {}, {}", number,
                       endpoint(c.ends[0]), opts_.ascii ? "<->" : "⟷",
                       endpoint(c.ends[1]),
                       c.both_traced() ? "both ends traced"
                                       : "one end traced, the peer inferred"));
    color(kReset);
    append("\n");
    header_line(role(c.ends[0], 0), role(c.ends[1], 1));
    header_line(endpoint(c.ends[0]), endpoint(c.ends[1]));
    header_line(owner(c.ends[0]), owner(c.ends[1]));
    header_line(
        c.ends[0].traced ? fmt::format("netns {}", c.ends[0].sk.netns) : "",
        c.ends[1].traced ? fmt::format("netns {}", c.ends[1].sk.netns) : "");
    initial_line(c);
    for (const Row &r : c.rows) {
      if (r.is_segment)
        segment(c, r.seg);
      else
        mark(c, r.mark);
    }
    lifelines_only("");
    for (std::size_t i = 0; i < notes_.size(); ++i)
      append(fmt::format("  [{}] {}\n", i + 1, notes_[i]));
    append("\n");
  }

  void legend() {
    const std::string solid =
        fmt::format("{}{}", repeat(g_.solid, 4), g_.head_right);
    const std::string dashed =
        fmt::format("{}{}", repeat(g_.dashed, 4), g_.head_left);
    append("legend:\n");
    append(fmt::format("  {}  a segment a kernel event shows: sent by a "
                       "transition (SYN_SENT, FIN_WAIT1, LAST_ACK, RST sent, "
                       "retransmit) or arriving (it moved the receiver)\n",
                       solid));
    append(fmt::format("  {}  inferred, no event shows it: payload between "
                       "two seq/ack snapshots (one arrow may stand for "
                       "several segments; their ACKs are not drawn) or a "
                       "segment an untraced peer must have sent or "
                       "received\n",
                       dashed));
    append(fmt::format("  {} STATE t   the end entered STATE here and stayed "
                       "t; (STATE): inferred, not reported by the kernel; "
                       "{}t: still in it when the trace ended\n",
                       g_.dot, opts_.ascii ? ">=" : "≥"));
    append(fmt::format("  time: seconds since the connection's first event; "
                       "seq/ack: {}\n",
                       opts_.raw_seq
                           ? "raw (--raw-seq)"
                           : "relative to each end's ISN (SYN = 0, first "
                             "payload byte = 1), as Wireshark shows them"));
  }

private:
  void append(std::string_view s) {
    out_.append(s.data(), s.data() + s.size());
  }
  void color(const char *code) {
    if (opts_.color)
      append(code);
  }

  static std::string role(const End &e, int col) {
    if (!e.traced)
      return "peer (inferred)";
    return col == 0 ? (e.active ? "client (active)" : "end A")
                    : (e.active ? "end B" : "server (passive)");
  }

  std::string label_with_note(const Mark &m, bool add) {
    std::string l = mark_label(m, opts_.ascii);
    if (!m.note.empty()) {
      std::size_t n = notes_.size() + 1;
      if (add)
        notes_.push_back(m.note);
      l += fmt::format(" [{}]", n);
    }
    return l;
  }

  // Text centred under each lifeline.
  void header_line(const std::string &a, const std::string &b) {
    std::string out;
    const std::size_t wa = width(a), wb = width(b);
    const std::size_t start_a = left_x_ > wa / 2 ? left_x_ - wa / 2 : 0;
    std::size_t start_b = right_x_ > wb / 2 ? right_x_ - wb / 2 : 0;
    start_b = std::max(start_b, start_a + wa + 2);
    out.append(start_a, ' ');
    out += a;
    out.append(start_b - start_a - wa, ' ');
    out += b;
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    append(out);
    append("\n");
  }

  void initial_line(const Connection &c) {
    std::string left = c.ends[0].initial, right = c.ends[1].initial;
    append(std::string(kTimeWidth + 2 + left_w_ - width(left), ' '));
    color(kCyan);
    append(left);
    color(kReset);
    append(
        fmt::format(" {}{}{}", g_.life, std::string(arrow_w_, ' '), g_.life));
    if (!right.empty()) {
      append(" ");
      color(kCyan);
      append(right);
      color(kReset);
    }
    append("\n");
  }

  std::string time_field(const Connection &c, std::uint64_t ts) const {
    if (ts == 0 || ts < c.start_ns)
      return std::string(kTimeWidth, ' ');
    return fmt::format("{:>{}.6f}", static_cast<double>(ts - c.start_ns) / 1e9,
                       kTimeWidth);
  }

  void lifelines_only(const std::string &time) {
    append(time.empty() ? std::string(kTimeWidth, ' ') : time);
    append(std::string(2 + left_w_ + 1, ' '));
    append(
        fmt::format("{}{}{}\n", g_.life, std::string(arrow_w_, ' '), g_.life));
  }

  void mark(const Connection &c, const Mark &m) {
    const std::string label = label_with_note(m, true);
    const char *col = m.inferred ? kDim : kCyan;
    append(time_field(c, m.ts_ns));
    append("  ");
    if (m.side == 0) {
      append(std::string(left_w_ - width(label), ' '));
      color(col);
      append(label);
      color(kReset);
      append(fmt::format(" {}{}{}\n", m.inferred ? g_.life : g_.dot,
                         std::string(arrow_w_, ' '), g_.life));
    } else {
      append(std::string(left_w_ + 1, ' '));
      append(fmt::format("{}{}{} ", g_.life, std::string(arrow_w_, ' '),
                         m.inferred ? g_.life : g_.dot));
      color(col);
      append(label);
      color(kReset);
      append("\n");
    }
  }

  void segment(const Connection &c, const Segment &s) {
    const std::string label = segment_label(c, s, opts_.raw_seq);
    const char *dash = s.inferred ? g_.dashed : g_.solid;
    const std::size_t body = arrow_w_ - 1; // without the head
    const std::size_t lw = width(label) + 2;
    const std::size_t before = (body - lw) / 2, after = body - lw - before;
    const char *col = s.rst          ? kRed
                      : s.retransmit ? kYellow
                      : s.inferred   ? kDim
                                     : "";
    append(time_field(c, s.ts_ns));
    append(std::string(2 + left_w_ + 1, ' '));
    append(s.from == 0 ? g_.tee_right : g_.life);
    if (*col)
      color(col);
    if (s.from == 1)
      append(g_.head_left);
    append(repeat(dash, before));
    append(" ");
    append(label);
    append(" ");
    append(repeat(dash, after));
    if (s.from == 0)
      append(g_.head_right);
    if (*col)
      color(kReset);
    append(s.from == 1 ? g_.tee_left : g_.life);
    append("\n");
  }

  Buffer &out_;
  const RenderOptions &opts_;
  Glyphs g_;
  std::size_t left_w_ = 0, arrow_w_ = 0, left_x_ = 0, right_x_ = 0;
  std::vector<std::string> notes_;
};

} // namespace

void render_text(Buffer &out, const std::vector<Connection> &conns,
                 const RenderOptions &opts) {
  TextRenderer r(out, opts);
  if (opts.lost)
    fmt::format_to(std::back_inserter(out),
                   "warning: {} records were lost while tracing: parts of "
                   "these ladders may be missing\n\n",
                   opts.lost);
  for (std::size_t i = 0; i < conns.size(); ++i)
    r.connection(conns[i], i + 1);
  if (!conns.empty())
    r.legend();
}

} // namespace tcptrail::ladder
