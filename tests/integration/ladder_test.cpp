// `tcptrail ladder` against the real kernel and a packet capture (issue
// 20): scripts/scenario.sh plays normal close, passive close, refused and
// reset between two network namespaces while tcpdump records the server's
// veth; every SYN, FIN and RST segment the ladder draws must be one tshark
// sees, with the same relative seq and ack, and none may be missing. The
// same scenes traced with `trace -f json` and drawn later with `--input`
// give the same ladder.
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace tcptrail::test {
namespace {

// A temporary directory, removed with its files.
class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/tcptrail-ladder-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() { run_command({"rm", "-rf", path_}); }
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

// One segment: who sent it, which of SYN/FIN/RST/ACK, relative seq/ack.
struct Seg {
  std::string src; // "addr:port"
  std::string dst;
  std::string flags; // "SYN", "SYN,ACK", "FIN,ACK", "RST,ACK", ...
  std::optional<std::uint64_t> seq, ack;
  std::string str() const {
    std::ostringstream o;
    o << src << " > " << dst << " " << flags;
    if (seq)
      o << " seq=" << *seq;
    if (ack)
      o << " ack=" << *ack;
    return o.str();
  }
};

std::string ep(const std::string &addr, const std::string &port) {
  return addr.find(':') != std::string::npos ? "[" + addr + "]:" + port
                                             : addr + ":" + port;
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    out.push_back(cur);
  if (!s.empty() && s.back() == sep)
    out.emplace_back();
  return out;
}

// tshark's view: the SYN/FIN/RST segments of the capture, relative numbers.
std::vector<Seg> tshark_segments(const std::string &pcap) {
  const std::string out = check_command(
      {"tshark",
       "-n",
       "-r",
       pcap,
       "-o",
       "tcp.relative_sequence_numbers:TRUE",
       "-o",
       "tcp.analyze_sequence_numbers:TRUE",
       "-Y",
       "tcp.flags.syn == 1 || tcp.flags.fin == 1 || tcp.flags.reset == 1",
       "-T",
       "fields",
       "-E",
       "separator=,",
       "-e",
       "ip.src",
       "-e",
       "ipv6.src",
       "-e",
       "tcp.srcport",
       "-e",
       "ip.dst",
       "-e",
       "ipv6.dst",
       "-e",
       "tcp.dstport",
       "-e",
       "tcp.flags.syn",
       "-e",
       "tcp.flags.fin",
       "-e",
       "tcp.flags.reset",
       "-e",
       "tcp.flags.ack",
       "-e",
       "tcp.seq",
       "-e",
       "tcp.ack"},
      std::chrono::seconds(60));
  std::vector<Seg> segs;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const auto f = split(line, ',');
    if (f.size() != 12)
      continue; // tshark's own notes (e.g. "Running as user root")
    auto on = [](const std::string &v) { return v == "1" || v == "True"; };
    Seg s;
    s.src = ep(f[0].empty() ? f[1] : f[0], f[2]);
    s.dst = ep(f[3].empty() ? f[4] : f[3], f[5]);
    std::string flags;
    auto add = [&flags](const char *x) {
      flags += flags.empty() ? x : std::string(",") + x;
    };
    if (on(f[6]))
      add("SYN");
    if (on(f[7]))
      add("FIN");
    if (on(f[8]))
      add("RST");
    if (on(f[9]))
      add("ACK");
    s.flags = flags;
    // tshark numbers a RST answering a SYN too (seq 1), although that
    // side has no ISN: the ladder leaves that seq out.
    s.seq = std::stoull(f[10]);
    if (on(f[9]) && !f[11].empty())
      s.ack = std::stoull(f[11]);
    segs.push_back(s);
  }
  return segs;
}

// The ladder's SYN/FIN/RST segments of the connections made in `netns`.
std::vector<Seg> ladder_segments(const std::vector<Json> &ladders,
                                 const std::set<std::uint64_t> &netns) {
  std::vector<Seg> segs;
  for (const Json &l : ladders) {
    if (l.value("event", "") != "ladder")
      continue;
    const Json &ends = l.at("ends");
    bool ours = false;
    for (const Json &e : ends)
      if (e.at("netns").is_number() &&
          netns.count(e.at("netns").get<std::uint64_t>()))
        ours = true;
    if (!ours)
      continue;
    for (const Json &r : l.at("rows")) {
      if (r.at("type") != "segment" || r.at("retransmit").get<bool>())
        continue;
      std::string flags;
      for (const Json &f : r.at("flags"))
        flags += (flags.empty() ? "" : ",") + f.get<std::string>();
      if (flags.find("SYN") == std::string::npos &&
          flags.find("FIN") == std::string::npos &&
          flags.find("RST") == std::string::npos)
        continue;
      const int from = r.at("from").get<int>();
      const Json &a = ends[from], &b = ends[1 - from];
      Seg s;
      s.src = ep(a.at("addr"), std::to_string(a.at("port").get<int>()));
      s.dst = ep(b.at("addr"), std::to_string(b.at("port").get<int>()));
      s.flags = flags;
      if (!r.at("seq").is_null())
        s.seq = r.at("seq").get<std::uint64_t>();
      if (!r.at("ack").is_null())
        s.ack = r.at("ack").get<std::uint64_t>();
      segs.push_back(s);
    }
  }
  return segs;
}

std::string dump(const std::vector<Seg> &segs) {
  std::string out;
  for (const Seg &s : segs)
    out += "  " + s.str() + "\n";
  return out;
}

std::vector<Json> parse_lines(const std::vector<std::string> &lines) {
  std::vector<Json> out;
  for (const std::string &l : lines)
    out.push_back(Json::parse(l));
  return out;
}

TEST(LadderTest, ScenesAgreeWithTsharkAndWithInput) {
  if (auto why = missing_prerequisite())
    TT_SKIP_OR_FAIL(*why);
  if (run_command({"sh", "-c", "command -v tshark && command -v tcpdump"})
          .exit_code != 0)
    TT_SKIP_OR_FAIL("tshark or tcpdump not installed (scripts/setup.sh "
                    "installs them)");
  TempDir dir;
  const std::string pcap = dir.path() + "/scenes.pcap";

  // The scenes' addresses only: less for the ring on a busy host (other
  // namespaces may use them too; the scenes' namespaces pick ours below).
  TracerProcess ladder({"ladder", "-f", "json", "--laddr", "198.18.0.0/24"});
  TracerProcess trace({"trace", "-f", "json", "--laddr", "198.18.0.0/24"});
  TT_START_TRACER(ladder);
  TT_START_TRACER(trace);
  const CommandResult scenario =
      run_command({"env", "CAPTURE=" + pcap, "bash", TCPTRAIL_SCENARIO,
                   "normal", "passive", "refused", "reset"},
                  std::chrono::seconds(60));
  ASSERT_EQ(scenario.exit_code, 0) << scenario.output;
  // Late events: the orphan's timewait socket, the last FIN's ACK.
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(trace.stop(), 0) << trace.stderr_text();
  ASSERT_EQ(ladder.stop(), 0) << ladder.stderr_text();

  std::set<std::uint64_t> netns;
  std::istringstream so(scenario.output);
  std::string line;
  while (std::getline(so, line))
    if (auto p = line.find("netns inode: "); p != std::string::npos)
      netns.insert(std::stoull(line.substr(p + 13)));
  ASSERT_EQ(netns.size(), 2u) << scenario.output;

  const std::vector<Json> live = parse_lines(ladder.stdout_lines());
  for (const Json &l : live)
    ASSERT_EQ(l.at("lost"), 0) << "records lost while tracing: the "
                                  "comparison would not be fair";
  const std::vector<Seg> drawn = ladder_segments(live, netns);
  const std::vector<Seg> seen = tshark_segments(pcap);
  ASSERT_FALSE(seen.empty());

  // Every captured SYN/FIN/RST is drawn, once, with its seq/ack.
  std::vector<bool> used(drawn.size());
  for (const Seg &s : seen) {
    bool found = false;
    for (std::size_t i = 0; i < drawn.size() && !found; ++i) {
      const Seg &d = drawn[i];
      if (used[i] || d.src != s.src || d.dst != s.dst || d.flags != s.flags)
        continue;
      if (d.seq && *d.seq != *s.seq)
        continue;
      if (d.ack != s.ack)
        continue;
      if (!d.seq && !(s.flags.find("RST") != std::string::npos))
        continue; // only a RST answering a SYN may lack its seq
      used[i] = found = true;
    }
    EXPECT_TRUE(found) << "captured " << s.str() << " not in the ladder:\n"
                       << dump(drawn) << "tshark:\n"
                       << dump(seen);
  }
  for (std::size_t i = 0; i < drawn.size(); ++i)
    EXPECT_TRUE(used[i]) << "drawn " << drawn[i].str() << " not captured:\n"
                         << dump(seen);
  // The scenes' four connections, each with its textbook segments.
  std::size_t syns = 0, fins = 0, rsts = 0;
  for (const Seg &s : seen) {
    syns += s.flags.find("SYN") != std::string::npos;
    fins += s.flags.find("FIN") != std::string::npos;
    rsts += s.flags.find("RST") != std::string::npos;
  }
  EXPECT_EQ(syns, 7u) << dump(seen); // 3 handshakes + refused SYN
  EXPECT_EQ(fins, 4u) << dump(seen); // normal and passive, both ends
  EXPECT_EQ(rsts, 2u) << dump(seen); // refused, reset

  // The same scenes from a saved trace, drawn later.
  const std::string saved = dir.path() + "/trace.json";
  {
    std::ofstream f(saved);
    for (const std::string &l : trace.stdout_lines())
      f << l << "\n";
  }
  const CommandResult offline =
      run_command({TCPTRAIL_BINARY, "ladder", "--input", saved, "-f", "json"});
  ASSERT_EQ(offline.exit_code, 0) << offline.output;
  std::vector<std::string> off_lines;
  std::istringstream oi(offline.output);
  while (std::getline(oi, line))
    if (!line.empty() && line[0] == '{')
      off_lines.push_back(line);
  EXPECT_EQ(dump(ladder_segments(parse_lines(off_lines), netns)), dump(drawn));
}

TEST(LadderTest, BadInputIsOneLineError) {
  TempDir dir;
  const std::string bad = dir.path() + "/bad.json";
  std::ofstream(bad) << "{\"event\":\"lost\",\"count\":1}\nnot json\n";
  const CommandResult r =
      run_command({TCPTRAIL_BINARY, "ladder", "--input", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("tcptrail: error: " + bad + ":2: not JSON"),
            std::string::npos)
      << r.output;
  const CommandResult missing =
      run_command({TCPTRAIL_BINARY, "ladder", "--input", dir.path() + "/no"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("tcptrail: error: cannot open"),
            std::string::npos)
      << missing.output;
  const CommandResult both = run_command(
      {TCPTRAIL_BINARY, "ladder", "--input", bad, "--duration", "1s"});
  EXPECT_EQ(both.exit_code, 2) << both.output;
}

} // namespace
} // namespace tcptrail::test
