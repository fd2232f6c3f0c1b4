// The diagnose report formats: the JSON schema (docs/diagnose-schema.md)
// and the text report's verdict lines and colour.
#include <cerrno>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "diagnose/aggregator.h"
#include "diagnose/report_format.h"
#include "diagnose_test_util.h"

namespace tcptrail::diagnose {
namespace {

using namespace testutil;
using nlohmann::json;
constexpr std::uint64_t kSec = 1'000'000'000ULL;

Report sample(const char *comm = "client") {
  DiagnoseAggregator agg;
  Sock s{.rport = 9, .comm = comm};
  agg.on_state(state_ev({.cookie = 1, .old_state = 7, .new_state = 2, .sock = s}));
  agg.on_state(state_ev({.cookie = 1, .old_state = 2, .new_state = 7, .old_ns = 20'000, .error = ECONNREFUSED, .sock = s}));
  agg.on_state(state_ev({.cookie = 2, .old_state = 7, .new_state = 2}));
  agg.on_state(state_ev({.cookie = 2, .old_state = 2, .new_state = 1, .old_ns = 150'000}));
  return agg.report(0, 10 * kSec);
}

void expect_type(const json &j, const char *key, json::value_t t) {
  ASSERT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j.at(key).type(), t) << key << " in " << j.dump();
}

TEST(DiagnoseReportJson, SchemaOfAProblemReport) {
  const json d = json::parse(render_json(sample()));
  EXPECT_EQ(d.at("schema"), "tcptrail.diagnose/1");
  expect_type(d, "duration_ns", json::value_t::number_unsigned);
  EXPECT_EQ(d.at("duration_ns"), 10 * kSec);
  EXPECT_TRUE(d.at("netns").is_null());
  EXPECT_EQ(d.at("exit_code"), 3);
  EXPECT_EQ(d.at("lost"), 0);
  const json &t = d.at("totals");
  for (const char *k : {"events", "state_events", "retransmit_events",
                        "reset_events", "connect_attempts", "opened_active",
                        "opened_passive", "failed_connects", "closed",
                        "time_wait"})
    expect_type(t, k, json::value_t::number_unsigned);
  EXPECT_EQ(t.at("transitions").at("SYN_SENT->CLOSE"), 1);
  EXPECT_EQ(t.at("transitions").at("SYN_SENT->ESTABLISHED"), 1);

  ASSERT_EQ(d.at("problems").size(), 1u);
  const json &p = d.at("problems")[0];
  EXPECT_EQ(p.at("kind"), "refused");
  EXPECT_EQ(p.at("severity"), "warning");
  EXPECT_EQ(p.at("count"), 1);
  expect_type(p, "summary", json::value_t::string);
  expect_type(p, "meaning", json::value_t::string);
  const json &e = p.at("evidence");
  for (const char *k : {"remote_endpoints", "processes", "examples",
                        "connections", "listeners"})
    expect_type(e, k, json::value_t::array);
  expect_type(e, "counters", json::value_t::object);
  EXPECT_EQ(e.at("remote_endpoints")[0],
            (json{{"endpoint", "198.18.0.2:9"}, {"count", 1}}));
  EXPECT_EQ(e.at("processes")[0],
            (json{{"pid", 100}, {"comm", "client"}, {"count", 1}}));

  ASSERT_FALSE(d.at("checks").empty());
  for (const auto &c : d.at("checks")) {
    expect_type(c, "kind", json::value_t::string);
    EXPECT_TRUE(c.at("status") == "ok" || c.at("status") == "problem");
  }

  const json &lat = d.at("latency");
  EXPECT_DOUBLE_EQ(lat.at("relative_error").get<double>(), 1.0 / 128);
  const json &c = lat.at("connect");
  EXPECT_EQ(c.at("count"), 1);
  for (const char *k : {"min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns"})
    EXPECT_EQ(c.at(k), 150'000) << k;
  ASSERT_EQ(c.at("log2_buckets").size(), 1u);
  EXPECT_EQ(c.at("log2_buckets")[0],
            (json{{"low_ns", 131072}, {"high_ns", 262143}, {"count", 1}}));
  EXPECT_EQ(lat.at("states").at("SYN_SENT").at("count"), 2);

  expect_type(d.at("time_wait"), "port_range_size", json::value_t::number_unsigned);
  expect_type(d.at("time_wait"), "endpoints", json::value_t::array);
  EXPECT_TRUE(d.at("counters").at("netns").is_null());
  expect_type(d.at("counters"), "delta", json::value_t::object);
  for (const char *k : {"connections", "endpoints", "processes", "listeners"})
    EXPECT_EQ(d.at("dropped").at(k), 0);
  expect_type(d, "notes", json::value_t::array);
}

TEST(DiagnoseReportJson, EvidenceCarriesTheOwnersCgroup) {
  Report r;
  Problem p;
  p.kind = "close_wait";
  ConnEvidence c;
  c.tuple = "198.18.0.2:80 -> 198.18.0.1:40000";
  c.cgroup_id = 4242;
  p.evidence.connections.push_back(c);
  c.cgroup_id = 0;
  p.evidence.connections.push_back(c);
  ListenerEvidence l;
  l.listener = "198.18.0.2:80";
  l.cgroup_id = 4242;
  p.evidence.listeners.push_back(l);
  r.problems.push_back(p);
  StaticCgroupNames names;
  const std::string id(64, 'a');
  names.add(4242, "/machine.slice/libpod-" + id + ".scope");
  const json d = json::parse(render_json(r, &names));
  const json &e = d.at("problems")[0].at("evidence");
  EXPECT_EQ(e.at("connections")[0].at("cgroup_id"), 4242);
  EXPECT_EQ(e.at("connections")[0].at("cgroup"),
            "/machine.slice/libpod-" + id + ".scope");
  EXPECT_EQ(e.at("connections")[0].at("container"), id);
  EXPECT_TRUE(e.at("connections")[0].at("pod").is_null());
  for (const char *k : {"cgroup_id", "cgroup", "container", "pod"})
    EXPECT_TRUE(e.at("connections")[1].at(k).is_null()) << k;
  EXPECT_EQ(e.at("listeners")[0].at("container"), id);
  // Without names: the id only.
  const json d2 = json::parse(render_json(r));
  EXPECT_EQ(
      d2.at("problems")[0].at("evidence").at("listeners")[0].at("cgroup_id"),
      4242);
  EXPECT_TRUE(d2.at("problems")[0]
                  .at("evidence")
                  .at("listeners")[0]
                  .at("cgroup")
                  .is_null());
}

TEST(DiagnoseReportJson, CleanReportHasNoProblemsAndNullConnect) {
  DiagnoseAggregator agg;
  const json d = json::parse(render_json(agg.report(0, kSec)));
  EXPECT_TRUE(d.at("problems").empty());
  EXPECT_EQ(d.at("exit_code"), 0);
  EXPECT_TRUE(d.at("latency").at("connect").is_null());
  EXPECT_TRUE(d.at("latency").at("states").empty());
}

TEST(DiagnoseReportJson, HostileCommStaysValidJson) {
  const std::string text = render_json(sample("a\"b\\\x01\xff\x1b[2J"));
  const json d = json::parse(text); // throws on invalid JSON / UTF-8
  const std::string comm =
      d.at("problems")[0].at("evidence").at("processes")[0].at("comm");
  EXPECT_EQ(comm.substr(0, 4), "a\"b\\");
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

TEST(DiagnoseReportText, VerdictLinesAndNoColourByDefault) {
  const std::string text = render_text(sample("evil\x1b[2J"), {.color = false, .unicode = false});
  EXPECT_NE(text.find("PROBLEM [warning] refused: 1 connect refused"), std::string::npos) << text;
  EXPECT_NE(text.find("\nok      connect timeouts: none\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    remote endpoints: 198.18.0.2:9 (1)"), std::string::npos) << text;
  EXPECT_NE(text.find("SYN_SENT->ESTABLISHED"), std::string::npos);
  EXPECT_NE(text.find("  connect "), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no colour, no raw ESC";
  EXPECT_NE(text.find("evil\\x1b[2J"), std::string::npos) << text;
}

TEST(DiagnoseReportText, ColourOnlyWhenAsked) {
  const std::string text = render_text(sample(), {.color = true, .unicode = true});
  EXPECT_NE(text.find("\033[31m"), std::string::npos);
  EXPECT_NE(text.find("\u2588"), std::string::npos); // histogram block
}

TEST(DiagnoseReportText, CleanSaysSo) {
  DiagnoseAggregator agg;
  const std::string text = render_text(agg.report(0, kSec), {});
  EXPECT_NE(text.find("no problems found"), std::string::npos);
  EXPECT_EQ(text.find("PROBLEM"), std::string::npos);
}

TEST(DiagnoseMib, ParsesNetstatAndSnmpPairs) {
  const char *text =
      "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n"
      "TcpExt: 3 0 17 18\n"
      "IpExt: InNoRoutes\n"
      "IpExt: 0\n"
      "Tcp: RtoAlgorithm MaxConn ActiveOpens RetransSegs\n"
      "Tcp: 1 -1 42 7\n"
      "Broken: A B\n"
      "Broken: 1\n";
  const MibCounters m = parse_mib(text);
  EXPECT_EQ(m.at("TcpExt.SyncookiesSent"), 3);
  EXPECT_EQ(m.at("TcpExt.ListenOverflows"), 17);
  EXPECT_EQ(m.at("TcpExt.ListenDrops"), 18);
  EXPECT_EQ(m.at("IpExt.InNoRoutes"), 0);
  EXPECT_EQ(m.at("Tcp.MaxConn"), -1);
  EXPECT_EQ(m.at("Tcp.RetransSegs"), 7);
  EXPECT_EQ(m.count("Broken.A"), 0u);
  const MibCounters d = mib_delta({{"Tcp.RetransSegs", 2}, {"Gone.X", 1}}, m);
  EXPECT_EQ(d.at("Tcp.RetransSegs"), 5);
  EXPECT_EQ(d.count("Gone.X"), 0u);
  EXPECT_EQ(d.count("TcpExt.ListenDrops"), 0u); // not in both
}

} // namespace
} // namespace tcptrail::diagnose
