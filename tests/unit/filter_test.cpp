#include <arpa/inet.h>

#include <cstring>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "filter.h"
#include "net.h"

namespace {

using tcptrail::Cidr;
using tcptrail::cidr_contains;
using tcptrail::FilterSpec;
using tcptrail::matches;
using tcptrail::parse_cidr;
using tcptrail::validate;

// An address in tt_sock layout from its text form.
struct Addr {
  std::uint8_t af;
  std::uint8_t bytes[TT_ADDR_LEN] = {};
};

Addr addr(const char *text) {
  Addr a{std::strchr(text, ':') ? std::uint8_t{6} : std::uint8_t{4}};
  EXPECT_EQ(inet_pton(a.af == 6 ? AF_INET6 : AF_INET, text, a.bytes), 1)
      << text;
  return a;
}

Cidr cidr(const char *text) {
  auto c = parse_cidr(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

TEST(FilterTest, ParseCidrForms) {
  const struct {
    const char *text;
    std::uint8_t af;
    std::uint8_t prefix;
    const char *network; // host bits cleared
  } cases[] = {
      {"198.18.0.0/15", 4, 15, "198.18.0.0"},
      {"198.19.255.7/15", 4, 15, "198.18.0.0"},
      {"198.18.0.1", 4, 32, "198.18.0.1"},
      {"10.1.2.3/0", 4, 0, "0.0.0.0"},
      {"10.1.2.3/32", 4, 32, "10.1.2.3"},
      {"10.1.2.255/25", 4, 25, "10.1.2.128"},
      {"2001:db8::/32", 6, 32, "2001:db8::"},
      {"2001:db8:ffff::1/33", 6, 33, "2001:db8:8000::"},
      {"::1", 6, 128, "::1"},
      {"::/0", 6, 0, "::"},
      {"::ffff:198.18.0.1", 6, 128, "::ffff:198.18.0.1"},
      {"fe80::1/128", 6, 128, "fe80::1"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.text);
    const auto got = parse_cidr(c.text);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->af, c.af);
    EXPECT_EQ(got->prefix_len, c.prefix);
    EXPECT_EQ(tcptrail::format_ip(got->af, got->addr), c.network);
  }
}

TEST(FilterTest, ParseCidrRejectsJunk) {
  for (const char *bad : {"",
                          "x",
                          "1.2.3.4/33",
                          "::1/129",
                          "1.2.3.4/",
                          "/24",
                          "1.2.3/24",
                          "1.2.3.4.5",
                          "256.1.1.1",
                          "1.2.3.4/-1",
                          "1.2.3.4/+8",
                          "1.2.3.4/ 8",
                          "1.2.3.4/8 ",
                          " 1.2.3.4",
                          "1.2.3.4/0x8",
                          "1.2.3.4/0008",
                          "1.2.3.4/8/8",
                          "2001:db8::/",
                          "2001:db8:::1",
                          "fe80::1%eth0",
                          "::1/1280",
                          "1.2.3.4/3a",
                          "0000:0000:0000:0000:0000:0000:0000:0000:0000/8"})
    EXPECT_FALSE(parse_cidr(bad).has_value()) << '"' << bad << '"';
}

TEST(FilterTest, CidrContains) {
  const Addr in = addr("198.19.1.2");
  const Addr out = addr("198.20.0.1");
  const Addr v6 = addr("2001:db8::5");
  EXPECT_TRUE(cidr_contains(cidr("198.18.0.0/15"), in.af, in.bytes));
  EXPECT_FALSE(cidr_contains(cidr("198.18.0.0/15"), out.af, out.bytes));
  EXPECT_TRUE(cidr_contains(cidr("0.0.0.0/0"), out.af, out.bytes));
  EXPECT_FALSE(cidr_contains(cidr("0.0.0.0/0"), v6.af, v6.bytes))
      << "an IPv4 CIDR never matches an IPv6 address";
  EXPECT_TRUE(cidr_contains(cidr("2001:db8::/32"), v6.af, v6.bytes));
  EXPECT_FALSE(cidr_contains(cidr("2001:db9::/32"), v6.af, v6.bytes));
  EXPECT_TRUE(cidr_contains(cidr("::/0"), v6.af, v6.bytes));
  EXPECT_TRUE(cidr_contains(cidr("2001:db8::5"), v6.af, v6.bytes));
  EXPECT_FALSE(cidr_contains(cidr("2001:db8::4"), v6.af, v6.bytes));
  // Prefix boundary inside a byte: /31 holds .4 and .5, not .6.
  const Addr a4 = addr("10.0.0.4"), a5 = addr("10.0.0.5"),
             a6 = addr("10.0.0.6");
  EXPECT_TRUE(cidr_contains(cidr("10.0.0.5/31"), a4.af, a4.bytes));
  EXPECT_TRUE(cidr_contains(cidr("10.0.0.5/31"), a5.af, a5.bytes));
  EXPECT_FALSE(cidr_contains(cidr("10.0.0.5/31"), a6.af, a6.bytes));
  // Bytes past the IPv4 address are ignored for af 4.
  Addr junk = addr("198.18.0.1");
  junk.bytes[4] = 0xff;
  EXPECT_TRUE(cidr_contains(cidr("198.18.0.1"), junk.af, junk.bytes));
}

TEST(FilterTest, ValidateLimits) {
  EXPECT_EQ(validate(FilterSpec{}), std::nullopt);

  FilterSpec full;
  full.af = 4;
  full.pids.assign(tcptrail::kMaxFilterPids, 1);
  full.comm = std::string(15, 'c');
  full.lports.assign(tcptrail::kMaxFilterPorts, 80);
  full.rports.assign(tcptrail::kMaxFilterPorts, 443);
  full.laddrs.assign(tcptrail::kMaxFilterCidrs, cidr("10.0.0.0/8"));
  full.raddrs.assign(tcptrail::kMaxFilterCidrs, cidr("10.0.0.0/8"));
  full.state_mask = (1U << 1) | (1U << 12);
  full.netns = 4026531840U;
  EXPECT_EQ(validate(full), std::nullopt);

  const struct {
    const char *description;
    void (*mutate)(FilterSpec &);
  } bad[] = {
      {"af 5", [](FilterSpec &s) { s.af = 5; }},
      {"too many pids", [](FilterSpec &s) { s.pids.push_back(2); }},
      {"comm of 16 bytes", [](FilterSpec &s) { s.comm += 'x'; }},
      {"comm with NUL", [](FilterSpec &s) { s.comm = std::string("a\0b", 3); }},
      {"too many lports", [](FilterSpec &s) { s.lports.push_back(1); }},
      {"too many rports", [](FilterSpec &s) { s.rports.push_back(1); }},
      {"too many laddrs",
       [](FilterSpec &s) { s.laddrs.push_back(s.laddrs[0]); }},
      {"too many raddrs",
       [](FilterSpec &s) { s.raddrs.push_back(s.raddrs[0]); }},
      {"IPv6 laddr with af 4",
       [](FilterSpec &s) { s.laddrs[0] = *parse_cidr("2001:db8::/32"); }},
      {"IPv6 raddr with af 4",
       [](FilterSpec &s) { s.raddrs[0] = *parse_cidr("::1"); }},
      {"prefix 33 built by hand",
       [](FilterSpec &s) { s.laddrs[0].prefix_len = 33; }},
      {"cidr af 0", [](FilterSpec &s) { s.raddrs[0].af = 0; }},
      {"state 0 in mask", [](FilterSpec &s) { s.state_mask |= 1U; }},
      {"state 13 in mask", [](FilterSpec &s) { s.state_mask |= 1U << 13; }},
  };
  for (const auto &b : bad) {
    FilterSpec spec = full;
    b.mutate(spec);
    const auto reason = validate(spec);
    ASSERT_TRUE(reason.has_value()) << b.description;
    EXPECT_FALSE(reason->empty()) << b.description;
    EXPECT_EQ(reason->find('\n'), std::string::npos) << b.description;
  }
}

tt_sock make_sock() {
  tt_sock sk{};
  const Addr l = addr("198.18.0.1"), r = addr("198.18.0.2");
  std::memcpy(sk.laddr, l.bytes, TT_ADDR_LEN);
  std::memcpy(sk.raddr, r.bytes, TT_ADDR_LEN);
  sk.af = 4;
  sk.lport = 40000;
  sk.rport = 80;
  sk.netns = 4026532000U;
  sk.pid = 1234;
  sk.cpu_pid = 999;
  std::strcpy(sk.comm, "curl");
  std::strcpy(sk.cpu_comm, "ksoftirqd/0");
  return sk;
}

constexpr std::uint8_t kSynSent = 2, kEstablished = 1, kClose = 7,
                       kFinWait1 = 4;

TEST(FilterTest, MatchesTable) {
  const struct {
    const char *description;
    void (*setup)(FilterSpec &);
    bool want;
  } cases[] = {
      {"empty spec matches all", [](FilterSpec &) {}, true},
      {"af 4", [](FilterSpec &s) { s.af = 4; }, true},
      {"af 6", [](FilterSpec &s) { s.af = 6; }, false},
      {"pid any-of hit",
       [](FilterSpec &s) {
         s.pids = {1, 1234};
       },
       true},
      {"pid miss",
       [](FilterSpec &s) {
         s.pids = {1, 2};
       },
       false},
      {"pid is the owner, not the on-CPU task",
       [](FilterSpec &s) { s.pids = {999}; }, false},
      {"comm exact", [](FilterSpec &s) { s.comm = "curl"; }, true},
      {"comm prefix is no match", [](FilterSpec &s) { s.comm = "cur"; }, false},
      {"comm is case-sensitive", [](FilterSpec &s) { s.comm = "Curl"; }, false},
      {"comm is the owner's", [](FilterSpec &s) { s.comm = "ksoftirqd/0"; },
       false},
      {"lport any-of",
       [](FilterSpec &s) {
         s.lports = {1, 40000};
       },
       true},
      {"lport miss", [](FilterSpec &s) { s.lports = {80}; }, false},
      {"rport hit", [](FilterSpec &s) { s.rports = {80}; }, true},
      {"rport miss", [](FilterSpec &s) { s.rports = {40000}; }, false},
      {"laddr any-of",
       [](FilterSpec &s) {
         s.laddrs = {*parse_cidr("10.0.0.0/8"), *parse_cidr("198.18.0.0/15")};
       },
       true},
      {"laddr miss",
       [](FilterSpec &s) { s.laddrs = {*parse_cidr("198.18.0.2")}; }, false},
      {"raddr hit",
       [](FilterSpec &s) { s.raddrs = {*parse_cidr("198.18.0.2")}; }, true},
      {"raddr v6 never matches v4",
       [](FilterSpec &s) { s.raddrs = {*parse_cidr("::/0")}; }, false},
      {"state: new side",
       [](FilterSpec &s) { s.state_mask = 1U << kEstablished; }, true},
      {"state: old side", [](FilterSpec &s) { s.state_mask = 1U << kSynSent; },
       true},
      {"state: neither", [](FilterSpec &s) { s.state_mask = 1U << kClose; },
       false},
      {"netns equal", [](FilterSpec &s) { s.netns = 4026532000U; }, true},
      {"netns differs", [](FilterSpec &s) { s.netns = 4026531840U; }, false},
      {"all constraints at once",
       [](FilterSpec &s) {
         s.af = 4;
         s.pids = {1234};
         s.comm = "curl";
         s.lports = {40000};
         s.rports = {80};
         s.laddrs = {*parse_cidr("198.18.0.0/15")};
         s.raddrs = {*parse_cidr("198.18.0.0/15")};
         s.state_mask = 1U << kEstablished;
         s.netns = 4026532000U;
       },
       true},
      {"all but one",
       [](FilterSpec &s) {
         s.af = 4;
         s.pids = {1234};
         s.comm = "curl";
         s.rports = {81};
       },
       false},
  };
  const tt_sock sk = make_sock();
  for (const auto &c : cases) {
    FilterSpec spec;
    c.setup(spec);
    EXPECT_EQ(matches(spec, sk, kSynSent, kEstablished), c.want)
        << c.description;
  }
}

TEST(FilterTest, MatchesIpv6AndUnknownOwner) {
  tt_sock sk = make_sock();
  const Addr l = addr("2001:db8::1"), r = addr("2001:db8:1::2");
  sk.af = 6;
  std::memcpy(sk.laddr, l.bytes, TT_ADDR_LEN);
  std::memcpy(sk.raddr, r.bytes, TT_ADDR_LEN);
  FilterSpec spec;
  spec.af = 6;
  spec.raddrs = {cidr("2001:db8:1::/48")};
  EXPECT_TRUE(matches(spec, sk, kEstablished, kFinWait1));
  spec.laddrs = {cidr("2001:db8:1::/48")};
  EXPECT_FALSE(matches(spec, sk, kEstablished, kFinWait1));

  // Owner unknown: pid 0, comm "". A pid or comm filter cannot match it.
  sk.pid = 0;
  std::memset(sk.comm, 0, sizeof(sk.comm));
  FilterSpec by_pid;
  by_pid.pids = {1234};
  EXPECT_FALSE(matches(by_pid, sk, kEstablished, kFinWait1));
  FilterSpec by_comm;
  by_comm.comm = "curl";
  EXPECT_FALSE(matches(by_comm, sk, kEstablished, kFinWait1));
}

TEST(FilterTest, FullSixteenByteCommAndOddStates) {
  tt_sock sk = make_sock();
  std::memcpy(sk.comm, "0123456789abcdef", TT_COMM_LEN); // no NUL
  FilterSpec spec;
  spec.comm = "0123456789abcde"; // the longest valid filter
  EXPECT_FALSE(matches(spec, sk, kEstablished, kEstablished));

  // State values beyond the mask's width never match and never shift past
  // 31 bits (UB).
  FilterSpec by_state;
  by_state.state_mask = 0xffffffffU;
  EXPECT_FALSE(matches(by_state, sk, 200, 255));
  EXPECT_TRUE(matches(by_state, sk, 200, kClose));
}

} // namespace

// What the socket iterators keep (iter_wanted() in bpf/iter.bpf.c), which
// diagnose's sock_diag snapshots apply in user space as well.
namespace {

TEST(FilterTest, IterKeepsEveryListenerAndIgnoresOwners) {
  using tcptrail::iter_keeps;
  constexpr std::uint8_t kListen = 10, kCloseWait = 8;
  tt_sock sk = make_sock();
  FilterSpec spec;
  spec.rports = {5432};
  EXPECT_FALSE(iter_keeps(spec, sk, kCloseWait));
  EXPECT_TRUE(iter_keeps(spec, sk, kListen)); // whatever the filters
  sk.rport = 5432;
  EXPECT_TRUE(iter_keeps(spec, sk, kCloseWait));
  // The owner filters need the fds: not applied here.
  spec.pids = {1};
  spec.comm = "nginx";
  spec.cgroup_id = 77;
  EXPECT_TRUE(iter_keeps(spec, sk, kCloseWait));
  // The rest are.
  spec.state_mask = 1U << kEstablished;
  EXPECT_FALSE(iter_keeps(spec, sk, kCloseWait));
  spec.state_mask = 0;
  spec.af = 6;
  EXPECT_FALSE(iter_keeps(spec, sk, kCloseWait));
  spec.af = 0;
  spec.netns = sk.netns + 1;
  EXPECT_FALSE(iter_keeps(spec, sk, kCloseWait));
  spec.netns = 0;
  spec.laddrs = {cidr("198.19.0.0/16")};
  EXPECT_FALSE(iter_keeps(spec, sk, kCloseWait));
  EXPECT_TRUE(iter_keeps(spec, sk, kListen));
}

} // namespace
