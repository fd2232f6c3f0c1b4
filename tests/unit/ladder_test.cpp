// tcptrail ladder: the textbook scenes as synthetic event streams (the
// records the kernel sends, as the trace session hands them on) through
// the ladder model and every renderer. Text and Mermaid are compared with
// golden files (TCPTRAIL_UPDATE_GOLDEN=1 rewrites them), SVG is parsed by
// libxml2 and its arrows counted, JSON is checked field by field.
#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <nlohmann/json.hpp>

#include "error.h"
#include "format/formatter.h"
#include "ladder/input.h"
#include "ladder/model.h"
#include "ladder/render.h"
#include "tcp_state.h"

namespace {

using namespace tcptrail;
using ladder::Connection;
using ladder::Event;
using S = TcpState;

constexpr std::uint32_t kIsnC = 1000000;    // client's ISN
constexpr std::uint32_t kIsnS = 4294967000; // server's: wraps around
constexpr std::uint64_t kT0 = 5'000'000'000;
constexpr std::uint64_t kUs = 1000;
constexpr std::uint64_t kMs = 1000 * kUs;

std::uint8_t st(S s) { return static_cast<std::uint8_t>(s); }

void set_addr(std::uint8_t af, const char *text, std::uint8_t (&out)[16]) {
  std::memset(out, 0, sizeof(out));
  ASSERT_EQ(inet_pton(af == 6 ? AF_INET6 : AF_INET, text, out), 1) << text;
}

// The two ends of a connection, in two network namespaces.
struct Ends {
  tt_sock client{}, server{};
  std::uint64_t client_cookie = 4097, server_cookie = 8193;
};

Ends ends_v4(std::uint16_t server_port = 8080) {
  Ends e;
  e.client.af = e.server.af = 4;
  set_addr(4, "198.18.0.1", e.client.laddr);
  set_addr(4, "198.18.0.2", e.client.raddr);
  set_addr(4, "198.18.0.2", e.server.laddr);
  set_addr(4, "198.18.0.1", e.server.raddr);
  e.client.lport = e.server.rport = 49564;
  e.client.rport = e.server.lport = server_port;
  e.client.netns = 4026532001U;
  e.server.netns = 4026532002U;
  e.client.pid = 14647;
  e.server.pid = 14605;
  std::strcpy(e.client.comm, "client");
  std::strcpy(e.server.comm, "server");
  return e;
}

// A stream of records, as the tracer hands them to its sink.
struct Stream {
  std::vector<tt_state_event> states;
  std::vector<tt_seg_event> segs;
  std::vector<Event> events; // both, converted, in the order added

  void state(const tt_sock &sk, std::uint64_t cookie, std::uint64_t ts, S o,
             S n, std::uint32_t una, std::uint32_t nxt, std::uint32_t rcv,
             std::uint8_t flags = 0, std::uint8_t detail = 0,
             std::uint16_t error = 0) {
    tt_state_event ev{};
    ev.hdr.kind = TT_KIND_STATE;
    ev.hdr.size = sizeof(ev);
    ev.hdr.ts_ns = ts;
    ev.hdr.cookie = cookie;
    ev.sk = sk;
    ev.old_state = st(o);
    ev.new_state = st(n);
    ev.snd_una = una;
    ev.snd_nxt = nxt;
    ev.rcv_nxt = rcv;
    ev.flags = flags;
    // The ISNs the flags promise (SocketMemory fills them in live).
    const bool client = sk.netns == 4026532001U;
    ev.isn_local = client ? kIsnC : kIsnS;
    ev.isn_remote = client ? kIsnS : kIsnC;
    ev.detail = detail;
    ev.error = error;
    states.push_back(ev);
    events.push_back(ladder::from_record(ev));
  }
  void seg(const tt_sock &sk, std::uint64_t cookie, std::uint64_t ts,
           std::uint16_t kind, std::uint8_t what, S state, std::uint32_t una,
           std::uint32_t nxt, std::uint32_t rcv, std::uint32_t seq = 0,
           std::uint8_t flags = 0) {
    tt_seg_event ev{};
    ev.hdr.kind = kind;
    ev.hdr.size = sizeof(ev);
    ev.hdr.ts_ns = ts;
    ev.hdr.cookie = cookie;
    ev.sk = sk;
    ev.state = st(state);
    ev.what = what;
    ev.snd_una = una;
    ev.snd_nxt = nxt;
    ev.rcv_nxt = rcv;
    ev.seq = seq;
    ev.flags = flags;
    const bool client = sk.netns == 4026532001U;
    ev.isn_local = client ? kIsnC : kIsnS;
    ev.isn_remote = client ? kIsnS : kIsnC;
    segs.push_back(ev);
    events.push_back(ladder::from_record(ev, ""));
  }
};

constexpr std::uint8_t kIsns = TT_F_ISN_LOCAL | TT_F_ISN_REMOTE;

// Handshake and 10 bytes out, 7 back (as scripts/scenario.sh's scenes).
void open(Stream &s, const Ends &e, std::uint64_t t = kT0) {
  tt_sock c0 = e.client;
  c0.lport = 0; // connect() picks the port later
  s.state(c0, e.client_cookie, t, S::Close, S::SynSent, 0, 0, 0, TT_F_ACTIVE);
  s.state(e.client, e.client_cookie, t + 85 * kUs, S::SynSent, S::Established,
          kIsnC + 1, kIsnC + 1, kIsnS + 1, TT_F_ACTIVE);
  // The child is born when the ACK arrives (after the client's
  // ESTABLISHED): the SYN-ACK must still be drawn before it.
  s.state(e.server, e.server_cookie, t + 98 * kUs, S::Listen, S::SynRecv,
          kIsnS + 1, kIsnS + 1, kIsnC + 1, TT_F_PASSIVE);
  s.state(e.server, e.server_cookie, t + 104 * kUs, S::SynRecv, S::Established,
          kIsnS + 1, kIsnS + 1, kIsnC + 1, TT_F_PASSIVE);
}

using Scene = std::function<std::pair<Stream, std::uint64_t>()>;

// Client closes with shutdown(), server answers, client in TIME_WAIT.
std::pair<Stream, std::uint64_t> scene_normal() {
  Stream s;
  Ends e = ends_v4();
  open(s, e);
  const std::uint64_t t = kT0 + 880 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::FinWait1, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns);
  s.state(e.server, e.server_cookie, t + 4 * kUs, S::Established, S::CloseWait,
          kIsnS + 8, kIsnS + 8, kIsnC + 12, kIsns);
  s.state(e.client, e.client_cookie, t + 43 * kMs, S::FinWait1, S::FinWait2,
          kIsnC + 12, kIsnC + 12, kIsnS + 8, kIsns);
  s.state(e.server, e.server_cookie, t + 50 * kMs, S::CloseWait, S::LastAck,
          kIsnS + 8, kIsnS + 8, kIsnC + 12, kIsns);
  s.state(e.client, e.client_cookie, t + 50 * kMs + 30 * kUs, S::FinWait2,
          S::TimeWait, kIsnC + 12, kIsnC + 12, kIsnS + 9, kIsns | TT_F_INFERRED,
          TT_DETAIL_TW);
  s.state(e.server, e.server_cookie, t + 50 * kMs + 60 * kUs, S::LastAck,
          S::Close, kIsnS + 9, kIsnS + 9, kIsnC + 12, kIsns);
  return {s, t + 200 * kMs};
}

// scripts/scenario.sh normal: the client close()s at once, its orphan
// FIN_WAIT2 goes to a timewait socket before the server's FIN arrives.
std::pair<Stream, std::uint64_t> scene_orphan() {
  Stream s;
  Ends e = ends_v4();
  open(s, e);
  const std::uint64_t t = kT0 + 880 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::FinWait1, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns);
  s.state(e.server, e.server_cookie, t + 4 * kUs, S::Established, S::CloseWait,
          kIsnS + 8, kIsnS + 8, kIsnC + 12, kIsns);
  s.state(e.client, e.client_cookie, t + 43 * kMs, S::FinWait1, S::FinWait2,
          kIsnC + 12, kIsnC + 12, kIsnS + 8, kIsns);
  s.state(e.client, e.client_cookie, t + 43 * kMs + 9 * kUs, S::FinWait2,
          S::Close, kIsnC + 12, kIsnC + 12, kIsnS + 8, kIsns,
          TT_DETAIL_ORPHAN_FIN_WAIT2);
  s.state(e.server, e.server_cookie, t + 101 * kMs, S::CloseWait, S::LastAck,
          kIsnS + 8, kIsnS + 8, kIsnC + 12, kIsns);
  s.state(e.server, e.server_cookie, t + 101 * kMs + 76 * kUs, S::LastAck,
          S::Close, kIsnS + 9, kIsnS + 9, kIsnC + 12, kIsns);
  return {s, t + 200 * kMs};
}

// The server closes first.
std::pair<Stream, std::uint64_t> scene_passive() {
  Stream s;
  Ends e = ends_v4(8081);
  open(s, e);
  const std::uint64_t t = kT0 + 900 * kUs;
  s.state(e.server, e.server_cookie, t, S::Established, S::FinWait1, kIsnS + 8,
          kIsnS + 8, kIsnC + 11, kIsns);
  s.state(e.client, e.client_cookie, t + 5 * kUs, S::Established, S::CloseWait,
          kIsnC + 11, kIsnC + 11, kIsnS + 9, kIsns);
  s.state(e.server, e.server_cookie, t + 40 * kMs, S::FinWait1, S::FinWait2,
          kIsnS + 9, kIsnS + 9, kIsnC + 11, kIsns);
  s.state(e.client, e.client_cookie, t + 100 * kMs, S::CloseWait, S::LastAck,
          kIsnC + 11, kIsnC + 11, kIsnS + 9, kIsns);
  s.state(e.server, e.server_cookie, t + 100 * kMs + 20 * kUs, S::FinWait2,
          S::TimeWait, kIsnS + 9, kIsnS + 9, kIsnC + 12, kIsns | TT_F_INFERRED,
          TT_DETAIL_TW);
  s.state(e.client, e.client_cookie, t + 100 * kMs + 45 * kUs, S::LastAck,
          S::Close, kIsnC + 12, kIsnC + 12, kIsnS + 9, kIsns);
  return {s, t + 200 * kMs};
}

// Both FINs cross: FIN_WAIT1 -> CLOSING -> TIME_WAIT on both sides.
std::pair<Stream, std::uint64_t> scene_simultaneous() {
  Stream s;
  Ends e = ends_v4();
  open(s, e);
  const std::uint64_t t = kT0 + 900 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::FinWait1, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns);
  s.state(e.server, e.server_cookie, t + 1 * kUs, S::Established, S::FinWait1,
          kIsnS + 8, kIsnS + 8, kIsnC + 11, kIsns);
  s.state(e.client, e.client_cookie, t + 20 * kUs, S::FinWait1, S::Closing,
          kIsnC + 11, kIsnC + 12, kIsnS + 9, kIsns);
  s.state(e.server, e.server_cookie, t + 21 * kUs, S::FinWait1, S::Closing,
          kIsnS + 8, kIsnS + 9, kIsnC + 12, kIsns);
  s.state(e.client, e.client_cookie, t + 40 * kUs, S::Closing, S::TimeWait,
          kIsnC + 12, kIsnC + 12, kIsnS + 9, kIsns | TT_F_INFERRED,
          TT_DETAIL_TW);
  s.state(e.server, e.server_cookie, t + 41 * kUs, S::Closing, S::TimeWait,
          kIsnS + 9, kIsnS + 9, kIsnC + 12, kIsns | TT_F_INFERRED,
          TT_DETAIL_TW);
  return {s, t + 10 * kMs};
}

// SYN to a closed port: the server's kernel answers RST without a socket.
std::pair<Stream, std::uint64_t> scene_refused() {
  Stream s;
  Ends e = ends_v4(9);
  tt_sock c0 = e.client;
  c0.lport = 0;
  s.state(c0, e.client_cookie, kT0, S::Close, S::SynSent, 0, 0, 0, TT_F_ACTIVE);
  tt_sock nobody = e.server;
  nobody.pid = 0;
  nobody.comm[0] = '\0';
  s.seg(nobody, 0, kT0 + 49 * kUs, TT_KIND_RESET, TT_RESET_SENT, S::Close, 0, 0,
        0);
  s.seg(e.client, e.client_cookie, kT0 + 70 * kUs, TT_KIND_RESET,
        TT_RESET_RECEIVED, S::SynSent, kIsnC, kIsnC + 1, 0);
  s.state(e.client, e.client_cookie, kT0 + 73 * kUs, S::SynSent, S::Close,
          kIsnC, kIsnC + 1, 0, TT_F_ACTIVE, TT_DETAIL_RESET_RCVD, ECONNREFUSED);
  return {s, kT0 + 1 * kMs};
}

// Nobody answers: SYN retransmitted until connect() gives up. Only the
// client is traced.
std::pair<Stream, std::uint64_t> scene_timeout() {
  Stream s;
  Ends e = ends_v4(8085);
  tt_sock c0 = e.client;
  c0.lport = 0;
  s.state(c0, e.client_cookie, kT0, S::Close, S::SynSent, 0, 0, 0, TT_F_ACTIVE);
  std::uint64_t t = kT0;
  for (int i = 0; i < 3; ++i) {
    t += (1000ULL << i) * kMs;
    s.seg(e.client, e.client_cookie, t, TT_KIND_RETRANSMIT, TT_RETRANS_SYN,
          S::SynSent, kIsnC, kIsnC + 1, 0, kIsnC);
  }
  t += 8000 * kMs;
  s.state(e.client, e.client_cookie, t, S::SynSent, S::Close, kIsnC, kIsnC + 1,
          0, TT_F_ACTIVE, TT_DETAIL_ERROR, ETIMEDOUT);
  return {s, t + 1 * kMs};
}

// The client aborts (SO_LINGER 0): RST instead of FIN.
std::pair<Stream, std::uint64_t> scene_reset() {
  Stream s;
  Ends e = ends_v4(8082);
  open(s, e);
  const std::uint64_t t = kT0 + 900 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::Close, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns, TT_DETAIL_RESET_SENT);
  s.seg(e.client, e.client_cookie, t + 2 * kUs, TT_KIND_RESET, TT_RESET_SENT,
        S::Close, kIsnC + 11, kIsnC + 11, kIsnS + 8);
  s.seg(e.server, e.server_cookie, t + 10 * kUs, TT_KIND_RESET,
        TT_RESET_RECEIVED, S::Established, kIsnS + 8, kIsnS + 8, kIsnC + 11);
  s.state(e.server, e.server_cookie, t + 12 * kUs, S::Established, S::Close,
          kIsnS + 8, kIsnS + 8, kIsnC + 11, kIsns, TT_DETAIL_RESET_RCVD,
          ECONNRESET);
  return {s, t + 1 * kMs};
}

// The same abort as the kernel reports it over veth (Linux 6.18): the
// state change carries no detail, and the sender's "RST sent" comes after
// the receiver took the RST (the veth delivers it within the send).
std::pair<Stream, std::uint64_t> scene_reset_late() {
  Stream s;
  Ends e = ends_v4(8082);
  open(s, e);
  const std::uint64_t t = kT0 + 900 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::Close, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns);
  s.seg(e.server, e.server_cookie, t + 10 * kUs, TT_KIND_RESET,
        TT_RESET_RECEIVED, S::Established, kIsnS + 8, kIsnS + 8, kIsnC + 11, 0,
        kIsns);
  s.state(e.server, e.server_cookie, t + 16 * kUs, S::Established, S::Close,
          kIsnS + 8, kIsnS + 8, kIsnC + 11, kIsns, TT_DETAIL_RESET_RCVD,
          ECONNRESET);
  s.seg(e.client, e.client_cookie, t + 21 * kUs, TT_KIND_RESET, TT_RESET_SENT,
        S::Close, kIsnC + 11, kIsnC + 11, kIsnS + 8, 0, kIsns);
  return {s, t + 1 * kMs};
}

// The server never closes: its socket stays in CLOSE_WAIT.
std::pair<Stream, std::uint64_t> scene_leak() {
  Stream s;
  Ends e = ends_v4(8084);
  open(s, e);
  const std::uint64_t t = kT0 + 880 * kUs;
  s.state(e.client, e.client_cookie, t, S::Established, S::FinWait1, kIsnC + 11,
          kIsnC + 11, kIsnS + 8, kIsns);
  s.state(e.server, e.server_cookie, t + 4 * kUs, S::Established, S::CloseWait,
          kIsnS + 8, kIsnS + 8, kIsnC + 12, kIsns);
  s.state(e.client, e.client_cookie, t + 40 * kMs, S::FinWait1, S::FinWait2,
          kIsnC + 12, kIsnC + 12, kIsnS + 8, kIsns);
  s.state(e.client, e.client_cookie, t + 40 * kMs + 9 * kUs, S::FinWait2,
          S::Close, kIsnC + 12, kIsnC + 12, kIsnS + 8, kIsns,
          TT_DETAIL_ORPHAN_FIN_WAIT2);
  return {s, t + 30'000 * kMs};
}

// Only the client is traced (the server is elsewhere): the peer inferred.
std::pair<Stream, std::uint64_t> scene_client_only() {
  auto [full, end] = scene_normal();
  Stream s;
  for (std::size_t i = 0; i < full.events.size(); ++i)
    if (full.events[i].cookie == 4097)
      s.events.push_back(full.events[i]);
  for (const auto &ev : full.states)
    if (ev.hdr.cookie == 4097)
      s.states.push_back(ev);
  return {s, end};
}

const std::map<std::string, Scene> &scenes() {
  static const std::map<std::string, Scene> m{
      {"normal", scene_normal},   {"orphan", scene_orphan},
      {"passive", scene_passive}, {"simultaneous", scene_simultaneous},
      {"refused", scene_refused}, {"timeout", scene_timeout},
      {"reset", scene_reset},     {"reset_late", scene_reset_late},
      {"leak", scene_leak},       {"client_only", scene_client_only},
  };
  return m;
}

std::vector<Connection> build(const std::string &name) {
  auto [s, end] = scenes().at(name)();
  return ladder::build(s.events, end);
}

std::string render(const std::vector<Connection> &conns, ladder::LadderFormat f,
                   bool raw = false, bool ascii = false) {
  Buffer out;
  ladder::RenderOptions o;
  o.raw_seq = raw;
  o.ascii = ascii;
  ladder::render(out, f, conns, o);
  return fmt::to_string(out);
}

std::string read_file(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void golden(const std::string &file, const std::string &actual) {
  const std::string path = std::string(TCPTRAIL_TEST_DATA) + "/ladder/" + file;
  if (const char *u = std::getenv("TCPTRAIL_UPDATE_GOLDEN"); u && *u == '1') {
    std::ofstream(path) << actual;
    return;
  }
  EXPECT_EQ(read_file(path), actual)
      << "golden file " << path << " (TCPTRAIL_UPDATE_GOLDEN=1 rewrites)";
}

// "SYN 0 -", "FIN,ACK 11 8": the segments of a connection in order.
std::vector<std::string> arrows(const Connection &c) {
  std::vector<std::string> out;
  for (const auto &r : c.rows) {
    if (!r.is_segment)
      continue;
    const auto &s = r.seg;
    std::string a =
        (s.from == 0 ? "A>" : "B>") + ladder::segment_label(c, s, false);
    if (s.inferred)
      a += " ~";
    out.push_back(a);
  }
  return out;
}

std::vector<std::string> marks(const Connection &c, int side) {
  std::vector<std::string> out;
  for (const auto &r : c.rows)
    if (!r.is_segment && r.mark.side == side)
      out.push_back(r.mark.inferred ? "(" + r.mark.state + ")" : r.mark.state);
  return out;
}

using V = std::vector<std::string>;

TEST(Ladder, NormalCloseTextbookOrder) {
  const auto conns = build("normal");
  ASSERT_EQ(conns.size(), 1u);
  const Connection &c = conns[0];
  EXPECT_TRUE(c.both_traced());
  EXPECT_EQ(c.ends[0].isn, kIsnC);
  EXPECT_EQ(c.ends[1].isn, kIsnS);
  EXPECT_EQ(arrows(c),
            (V{"A>SYN seq=0", "B>SYN,ACK seq=0 ack=1", "A>ACK seq=1 ack=1",
               "A>data seq=1 ack=1 len=10 ~", "B>data seq=1 ack=11 len=7 ~",
               "A>FIN,ACK seq=11 ack=8", "B>ACK seq=8 ack=12",
               "B>FIN,ACK seq=8 ack=12", "A>ACK seq=12 ack=9"}));
  EXPECT_EQ(marks(c, 0), (V{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
                            "(TIME_WAIT)"}));
  EXPECT_EQ(marks(c, 1),
            (V{"SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"}));
}

TEST(Ladder, RawSeqAddsTheIsnsModulo2To32) {
  const auto conns = build("normal");
  const Connection &c = conns[0];
  const auto &synack = c.rows[3].seg; // SYN, SYN_RECV mark, ...
  ASSERT_TRUE(c.rows[3].is_segment);
  EXPECT_EQ(ladder::segment_label(c, synack, true),
            fmt::format("SYN,ACK seq={} ack={}", kIsnS, kIsnC + 1));
  const std::string text = render(conns, ladder::LadderFormat::Text, true);
  // the server's ISN + 8 wraps
  EXPECT_NE(
      text.find(fmt::format("FIN,ACK seq={} ack={}",
                            static_cast<std::uint32_t>(kIsnS + 8), kIsnC + 12)),
      std::string::npos)
      << text;
}

TEST(Ladder, OrphanFinWait2TakesTheFinInItsTimewaitSocket) {
  const auto conns = build("orphan");
  ASSERT_EQ(conns.size(), 1u);
  const Connection &c = conns[0];
  EXPECT_EQ(arrows(c).back(), "A>ACK seq=12 ack=9");
  EXPECT_EQ(marks(c, 0), (V{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
                            "CLOSED", "(TIME_WAIT)"}));
}

TEST(Ladder, PassiveCloseFromTheServer) {
  const auto c = build("passive").at(0);
  EXPECT_EQ(arrows(c),
            (V{"A>SYN seq=0", "B>SYN,ACK seq=0 ack=1", "A>ACK seq=1 ack=1",
               "A>data seq=1 ack=1 len=10 ~", "B>data seq=1 ack=11 len=7 ~",
               "B>FIN,ACK seq=8 ack=11", "A>ACK seq=11 ack=9",
               "A>FIN,ACK seq=11 ack=9", "B>ACK seq=9 ack=12"}));
  EXPECT_EQ(marks(c, 1), (V{"SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
                            "(TIME_WAIT)"}));
}

TEST(Ladder, TraceStartedLateInfersTheFinsItMissed) {
  // The passive close seen only from the server's FIN_WAIT1 -> FIN_WAIT2
  // on: the FIN that moved it there and the payload before are inferred.
  auto [full, end] = scene_passive();
  std::vector<Event> late;
  for (const Event &ev : full.events)
    if (ev.ts_ns >= kT0 + 900 * kUs + 40 * kMs) {
      late.push_back(ev);
      // A listener's child carries its role on every record (storage
      // cloned from the listener); the client's memory is lost.
      if (ev.cookie == 8193)
        late.back().flags |= TT_F_PASSIVE;
      else
        late.back().flags &= ~(TT_F_ISN_LOCAL | TT_F_ISN_REMOTE);
    }
  const auto conns = ladder::build(late, end);
  ASSERT_EQ(conns.size(), 1u);
  const Connection &c = conns[0];
  EXPECT_EQ(c.ends[0].cookie, 4097u) << "the client stays on the left";
  EXPECT_TRUE(c.ends[0].active) << "across from a server: its client";
  EXPECT_EQ(c.ends[1].initial, "FIN_WAIT1");
  EXPECT_EQ(arrows(c),
            (V{"A>data seq=1 ack=1 len=10 ~", "B>data seq=1 ack=11 len=7 ~",
               "B>FIN seq=8 ~", "A>ACK seq=11 ack=9", "A>FIN,ACK seq=11 ack=9",
               "B>ACK seq=9 ack=12"}));
}

TEST(Ladder, SimultaneousCloseGoesThroughClosing) {
  const auto c = build("simultaneous").at(0);
  const V a = arrows(c);
  EXPECT_EQ(V(a.begin() + 5, a.end()),
            (V{"A>FIN,ACK seq=11 ack=8", "B>FIN,ACK seq=8 ack=11",
               "B>ACK seq=9 ack=12", "A>ACK seq=12 ack=9"}));
  EXPECT_EQ(marks(c, 0), (V{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING",
                            "(TIME_WAIT)"}));
  EXPECT_EQ(marks(c, 1), (V{"SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING",
                            "(TIME_WAIT)"}));
}

TEST(Ladder, RefusedIsAnRstAnsweringTheSyn) {
  const auto conns = build("refused");
  ASSERT_EQ(conns.size(), 1u) << "the RST of a port without a socket joins "
                                 "the client's connection";
  const Connection &c = conns[0];
  EXPECT_FALSE(c.ends[1].traced);
  EXPECT_EQ(arrows(c), (V{"A>SYN seq=0", "B>RST,ACK ack=1"}));
  ASSERT_EQ(marks(c, 0), (V{"SYN_SENT", "CLOSED"}));
  EXPECT_EQ(c.rows.back().mark.note, "reset_received ECONNREFUSED");
}

TEST(Ladder, RstsWithoutSocketJoinTheirOwnConnections) {
  // Two refused connects: both RSTs come from no socket (cookie 0).
  auto [a, end] = scene_refused();
  Stream s = a;
  Ends e = ends_v4(9);
  for (tt_sock *sk : {&e.client, &e.server}) {
    std::uint16_t &port = sk == &e.client ? sk->lport : sk->rport;
    port = 50000;
  }
  const std::uint64_t t = kT0 + 2 * kMs;
  tt_sock c0 = e.client;
  c0.lport = 0;
  s.state(c0, 7000, t, S::Close, S::SynSent, 0, 0, 0, TT_F_ACTIVE);
  tt_sock nobody = e.server;
  nobody.pid = 0;
  nobody.comm[0] = '\0';
  s.seg(nobody, 0, t + 40 * kUs, TT_KIND_RESET, TT_RESET_SENT, S::Close, 0, 0,
        0);
  s.seg(e.client, 7000, t + 60 * kUs, TT_KIND_RESET, TT_RESET_RECEIVED,
        S::SynSent, kIsnC, kIsnC + 1, 0);
  s.state(e.client, 7000, t + 62 * kUs, S::SynSent, S::Close, kIsnC, kIsnC + 1,
          0, TT_F_ACTIVE, TT_DETAIL_RESET_RCVD, ECONNREFUSED);
  const auto conns = ladder::build(s.events, t + kMs);
  ASSERT_EQ(conns.size(), 2u);
  for (const auto &c : conns)
    EXPECT_EQ(arrows(c), (V{"A>SYN seq=0", "B>RST,ACK ack=1"}));
}

TEST(Ladder, ConnectTimeoutRetransmitsTheSyn) {
  const auto c = build("timeout").at(0);
  EXPECT_EQ(arrows(c),
            (V{"A>SYN seq=0", "A>SYN seq=0 (retransmit)",
               "A>SYN seq=0 (retransmit)", "A>SYN seq=0 (retransmit)"}));
  EXPECT_EQ(c.rows.back().mark.note, "error ETIMEDOUT");
  EXPECT_EQ(c.rows.front().mark.dur_ns, 15'000 * kMs);
}

TEST(Ladder, ResetAbortDrawsOneRst) {
  const auto c = build("reset").at(0);
  const V a = arrows(c);
  EXPECT_EQ(V(a.begin() + 5, a.end()), (V{"A>RST,ACK seq=11 ack=8"}));
  EXPECT_EQ(marks(c, 1).back(), "CLOSED");
  EXPECT_EQ(c.rows.back().mark.note, "reset_received ECONNRESET");
}

TEST(Ladder, AbortReportedLateDrawsOneRst) {
  const auto c = build("reset_late").at(0);
  const V a = arrows(c);
  EXPECT_EQ(V(a.begin() + 5, a.end()), (V{"A>RST,ACK seq=11 ack=8"}));
  EXPECT_EQ(marks(c, 0).back(), "CLOSED");
  for (const auto &r : c.rows)
    if (!r.is_segment && r.mark.side == 0 && r.mark.state == "CLOSED")
      EXPECT_EQ(r.mark.note, "reset_sent");
}

TEST(Ladder, CloseWaitLeakStaysOpenAtTheEnd) {
  const auto c = build("leak").at(0);
  const auto &last = c.rows.back().mark;
  ASSERT_FALSE(c.rows.back().is_segment);
  EXPECT_EQ(marks(c, 1).back(), "CLOSE_WAIT");
  const ladder::Mark *cw = nullptr;
  for (const auto &r : c.rows)
    if (!r.is_segment && r.mark.state == "CLOSE_WAIT")
      cw = &r.mark;
  ASSERT_NE(cw, nullptr);
  EXPECT_TRUE(cw->open_at_end);
  EXPECT_EQ(cw->dur_ns, 30'000 * kMs - 4 * kUs);
  EXPECT_NE(cw->note.find("not answered"), std::string::npos);
  (void)last;
}

TEST(Ladder, OneEndDrawsThePeerInferred) {
  const auto conns = build("client_only");
  ASSERT_EQ(conns.size(), 1u);
  const Connection &c = conns[0];
  EXPECT_TRUE(c.ends[0].traced);
  EXPECT_FALSE(c.ends[1].traced);
  EXPECT_EQ(c.ends[1].isn, kIsnS) << "the peer's ISN is the client's "
                                     "isn_remote";
  EXPECT_EQ(arrows(c),
            (V{"A>SYN seq=0", "B>SYN,ACK seq=0 ack=1", "A>ACK seq=1 ack=1",
               "A>data seq=1 ack=1 len=10 ~", "B>data seq=1 ack=11 len=7 ~",
               "A>FIN,ACK seq=11 ack=8", "B>ACK seq=8 ack=12",
               "B>FIN,ACK seq=8 ack=12", "A>ACK seq=12 ack=9 ~"}));
  EXPECT_TRUE(marks(c, 1).empty());
}

TEST(Ladder, PairsEndsByIsnWhenTheTupleIsReused) {
  // The same four-tuple twice (port reuse): each client pairs with the
  // server end whose ISNs mirror its own, not with the nearest one.
  Stream s;
  Ends e = ends_v4();
  open(s, e);
  Ends e2 = e;
  e2.client_cookie = 5000;
  e2.server_cookie = 6000;
  tt_sock c0 = e2.client;
  c0.lport = 0;
  const std::uint64_t t = kT0 + 5 * kMs;
  s.state(c0, 5000, t, S::Close, S::SynSent, 0, 0, 0, TT_F_ACTIVE);
  s.state(e2.client, 5000, t + 10 * kUs, S::SynSent, S::Established, 78, 78,
          901, TT_F_ACTIVE);
  s.state(e2.server, 6000, t + 20 * kUs, S::Listen, S::SynRecv, 901, 901, 78,
          TT_F_PASSIVE);
  // Swap the server records' order: the second server end comes first.
  std::vector<Event> evs = s.events;
  const auto conns = ladder::build(evs, t + kMs);
  ASSERT_EQ(conns.size(), 2u);
  EXPECT_EQ(conns[0].ends[0].cookie, 4097u);
  EXPECT_EQ(conns[0].ends[1].cookie, 8193u);
  EXPECT_EQ(conns[1].ends[0].cookie, 5000u);
  EXPECT_EQ(conns[1].ends[1].cookie, 6000u);
  EXPECT_EQ(conns[1].ends[1].isn, 900u);
}

TEST(Ladder, ListenersAreNotDrawn) {
  Stream s;
  Ends e = ends_v4();
  tt_sock l = e.server;
  std::memset(l.raddr, 0, sizeof(l.raddr));
  l.rport = 0;
  s.state(l, 77, kT0 - kMs, S::Close, S::Listen, 0, 0, 0);
  open(s, e);
  s.state(l, 77, kT0 + kMs, S::Listen, S::Close, 0, 0, 0);
  const auto conns = ladder::build(s.events, kT0 + 2 * kMs);
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0].ends[1].initial, "LISTEN");
}

// Golden files: every scene, text (Unicode and ASCII) and Mermaid.
class LadderGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(LadderGolden, TextAndMermaid) {
  const auto conns = build(GetParam());
  golden(GetParam() + ".txt", render(conns, ladder::LadderFormat::Text));
  golden(GetParam() + ".ascii.txt",
         render(conns, ladder::LadderFormat::Text, false, true));
  golden(GetParam() + ".mmd", render(conns, ladder::LadderFormat::Mermaid));
}

TEST_P(LadderGolden, AsciiIsAscii) {
  const std::string text =
      render(build(GetParam()), ladder::LadderFormat::Text, false, true);
  for (unsigned char ch : text)
    ASSERT_TRUE(ch == '\n' || (ch >= 0x20 && ch < 0x7f)) << int(ch);
}

// The SVG is well-formed XML (libxml2 parses it) with one arrow line per
// segment, dashed exactly for the inferred ones, and a text for each
// segment's label.
TEST_P(LadderGolden, SvgIsWellFormedWithTheArrows) {
  const auto conns = build(GetParam());
  const std::string svg = render(conns, ladder::LadderFormat::Svg);
  xmlDocPtr doc = xmlReadMemory(
      svg.data(), static_cast<int>(svg.size()), "ladder.svg", nullptr,
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  ASSERT_NE(doc, nullptr) << svg;
  xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  xmlXPathRegisterNs(ctx, BAD_CAST "s", BAD_CAST "http://www.w3.org/2000/svg");
  auto count = [&](const char *xpath) {
    xmlXPathObjectPtr r = xmlXPathEvalExpression(BAD_CAST xpath, ctx);
    const int n = r && r->nodesetval ? r->nodesetval->nodeNr : -1;
    xmlXPathFreeObject(r);
    return n;
  };
  std::size_t segments = 0, inferred = 0;
  std::vector<std::string> labels;
  for (const auto &c : conns)
    for (const auto &r : c.rows)
      if (r.is_segment) {
        ++segments;
        inferred += r.seg.inferred;
        labels.push_back(ladder::segment_label(c, r.seg, false));
      }
  // The legend draws four sample arrows, one of them dashed.
  EXPECT_EQ(count("/s:svg/s:line[@marker-end]"),
            static_cast<int>(segments) + 4);
  EXPECT_EQ(count("/s:svg/s:line[@marker-end and @stroke-dasharray]"),
            static_cast<int>(inferred) + 1);
  for (const std::string &l : labels) {
    const std::string xp = "/s:svg/s:text[. = '" + l + "']";
    EXPECT_GE(count(xp.c_str()), 1) << l;
  }
  EXPECT_EQ(count("/s:svg/s:defs/s:marker"), 4);
  xmlXPathFreeContext(ctx);
  xmlFreeDoc(doc);
}

INSTANTIATE_TEST_SUITE_P(Scenes, LadderGolden,
                         ::testing::Values("normal", "orphan", "passive",
                                           "simultaneous", "refused", "timeout",
                                           "reset", "reset_late", "leak",
                                           "client_only"));

// --input: the JSON Lines trace prints parse back to the same ladder as
// the records themselves (the live path).
TEST(LadderInput, TraceJsonGivesTheSameLadderAsTheRecords) {
  for (const auto &[name, scene] : scenes()) {
    auto [s, end] = scene();
    OutputOptions oo;
    oo.format = Format::Json;
    auto fmt_json = make_formatter(oo);
    Buffer lines;
    // The records in the order the scene added them.
    std::size_t si = 0, gi = 0;
    for (const Event &ev : s.events) {
      if (ev.kind == ladder::EventKind::State)
        fmt_json->state(lines, s.states.at(si++));
      else
        fmt_json->segment(lines, s.segs.at(gi++));
    }
    std::istringstream in(fmt::to_string(lines));
    const auto input = ladder::read_trace_json(in, "t.json", FilterSpec{});
    ASSERT_EQ(input.events.size(), s.events.size()) << name;
    const auto a = ladder::build(input.events, end);
    const auto b = ladder::build(s.events, end);
    EXPECT_EQ(render(a, ladder::LadderFormat::Json),
              render(b, ladder::LadderFormat::Json))
        << name;
  }
}

TEST(LadderInput, BadLineNamesItsNumber) {
  std::istringstream in("\n{\"event\":\"lost\",\"count\":3}\n{not json\n");
  try {
    ladder::read_trace_json(in, "cap.json", FilterSpec{});
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "cap.json:3: not JSON");
  }
  std::istringstream in2(R"({"event":"state","ts_ns":1})");
  try {
    ladder::read_trace_json(in2, "x", FilterSpec{});
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "x:1: missing field \"cookie\"");
  }
  std::istringstream in3(R"({"event":"connection","cookie":1})");
  EXPECT_THROW(ladder::read_trace_json(in3, "x", FilterSpec{}), Error);
}

TEST(LadderInput, LostRecordsAreCountedAndFiltersApply) {
  auto [s, end] = scene_normal();
  OutputOptions oo;
  oo.format = Format::Json;
  auto f = make_formatter(oo);
  Buffer lines;
  for (const auto &ev : s.states)
    f->state(lines, ev);
  f->lost(lines, 5);
  std::istringstream in(fmt::to_string(lines));
  FilterSpec only_client;
  only_client.netns = 4026532001U;
  const auto input = ladder::read_trace_json(in, "t", only_client);
  EXPECT_EQ(input.lost, 5u);
  for (const auto &ev : input.events)
    EXPECT_EQ(ev.cookie, 4097u);
  EXPECT_EQ(input.events.size(), 5u);
}

TEST(LadderRender, HostileCommIsHarmlessInEveryFormat) {
  auto [s, end] = scene_normal();
  for (auto &ev : s.events)
    std::memcpy(ev.sk.comm, "<x&\x1b[2J;#\">\xff", 13);
  const auto conns = ladder::build(s.events, end);
  for (auto f : {ladder::LadderFormat::Text, ladder::LadderFormat::Svg,
                 ladder::LadderFormat::Mermaid, ladder::LadderFormat::Json}) {
    const std::string out = render(conns, f);
    EXPECT_EQ(out.find('\x1b'), std::string::npos);
    EXPECT_EQ(out.find('\xff'), std::string::npos);
  }
  const std::string svg = render(conns, ladder::LadderFormat::Svg);
  xmlDocPtr doc =
      xmlReadMemory(svg.data(), static_cast<int>(svg.size()), "x.svg", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOERROR);
  EXPECT_NE(doc, nullptr);
  xmlFreeDoc(doc);
  const std::string mmd = render(conns, ladder::LadderFormat::Mermaid);
  EXPECT_EQ(mmd.find(';'), std::string::npos);
}

TEST(LadderRender, ColourOnlyWhenAskedRstInRed) {
  const auto conns = build("reset");
  Buffer plain, colour;
  ladder::RenderOptions o;
  ladder::render_text(plain, conns, o);
  o.color = true;
  ladder::render_text(colour, conns, o);
  EXPECT_EQ(fmt::to_string(plain).find('\x1b'), std::string::npos);
  const std::string c = fmt::to_string(colour);
  const std::size_t rst = c.find("RST,ACK seq=11 ack=8");
  ASSERT_NE(rst, std::string::npos) << c;
  const std::size_t bol = c.rfind('\n', rst);
  EXPECT_NE(c.substr(bol, rst - bol).find("\x1b[31m"), std::string::npos) << c;
  // Without the escapes, the same drawing.
  std::string stripped;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i] == '\x1b') {
      i = c.find('m', i);
      continue;
    }
    stripped += c[i];
  }
  EXPECT_EQ(stripped, fmt::to_string(plain));
}

TEST(LadderRender, JsonRowsCarryRelativeAndRawNumbers) {
  const auto conns = build("normal");
  const auto j =
      nlohmann::json::parse(render(conns, ladder::LadderFormat::Json));
  EXPECT_EQ(j["event"], "ladder");
  EXPECT_EQ(j["ends"][0]["isn"], kIsnC);
  EXPECT_EQ(j["ends"][1]["port"], 8080);
  const auto &synack = j["rows"][3];
  EXPECT_EQ(synack["type"], "segment");
  EXPECT_EQ(synack["flags"], nlohmann::json::array({"SYN", "ACK"}));
  EXPECT_EQ(synack["seq"], 0);
  EXPECT_EQ(synack["ack"], 1);
  EXPECT_EQ(synack["raw_seq"], kIsnS);
  EXPECT_EQ(synack["raw_ack"], kIsnC + 1);
  EXPECT_EQ(synack["inferred"], false);
}

TEST(LadderRender, EmptyInputGivesAValidEmptySvg) {
  const std::string svg = render({}, ladder::LadderFormat::Svg);
  xmlDocPtr doc = xmlReadMemory(svg.data(), static_cast<int>(svg.size()),
                                "e.svg", nullptr, XML_PARSE_NONET);
  EXPECT_NE(doc, nullptr);
  xmlFreeDoc(doc);
  EXPECT_EQ(render({}, ladder::LadderFormat::Text), "");
}

} // namespace
