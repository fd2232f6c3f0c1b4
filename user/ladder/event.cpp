#include "ladder/event.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "format/escape.h"
#include "net.h"
#include "tcp_state.h"

namespace tcptrail::ladder {

namespace {

using Json = nlohmann::json;

void copy_comm(char (&dst)[TT_COMM_LEN], std::string_view s) {
  std::memset(dst, 0, TT_COMM_LEN);
  std::memcpy(dst, s.data(), std::min(s.size(), std::size_t{TT_COMM_LEN - 1}));
}

std::uint8_t detail_value(std::string_view name) {
  if (name == "time_wait")
    return TT_DETAIL_TW;
  if (name == "fin_wait2_timewait")
    return TT_DETAIL_TW_FIN_WAIT2;
  if (name == "reset_sent")
    return TT_DETAIL_RESET_SENT;
  if (name == "reset_received")
    return TT_DETAIL_RESET_RCVD;
  if (name == "error")
    return TT_DETAIL_ERROR;
  if (name == "orphan_fin_wait2")
    return TT_DETAIL_ORPHAN_FIN_WAIT2;
  return TT_DETAIL_NONE;
}

// Thrown inside the parser, turned into the error string.
struct BadField {
  std::string what;
};

const Json &field(const Json &j, const char *name) {
  auto it = j.find(name);
  if (it == j.end())
    throw BadField{std::string("missing field \"") + name + "\""};
  return *it;
}

template <typename T> T uint_field(const Json &j, const char *name) {
  const Json &v = field(j, name);
  if (!v.is_number_unsigned() ||
      v.get<std::uint64_t>() > std::numeric_limits<T>::max())
    throw BadField{std::string("field \"") + name +
                   "\" is not an unsigned number in range"};
  return static_cast<T>(v.get<std::uint64_t>());
}

// A nullable unsigned 32-bit field: sets `flag` in flags when present.
void optional_u32(const Json &j, const char *name, std::uint32_t &dst,
                  std::uint8_t &flags, std::uint8_t flag) {
  const Json &v = field(j, name);
  if (v.is_null())
    return;
  dst = uint_field<std::uint32_t>(j, name);
  flags |= flag;
}

std::string string_field(const Json &j, const char *name, bool nullable) {
  const Json &v = field(j, name);
  if (nullable && v.is_null())
    return {};
  if (!v.is_string())
    throw BadField{std::string("field \"") + name + "\" is not a string"};
  return v.get<std::string>();
}

std::uint8_t state_field(const Json &j, const char *name) {
  const std::string s = string_field(j, name, false);
  if (auto st = parse_state(s))
    return static_cast<std::uint8_t>(*st);
  // UNKNOWN(n) as the formatter prints it
  unsigned n = 0;
  if (std::sscanf(s.c_str(), "UNKNOWN(%u)", &n) == 1 && n < 256)
    return static_cast<std::uint8_t>(n);
  throw BadField{std::string("field \"") + name + "\": unknown state '" + s +
                 "'"};
}

void addr_field(const Json &j, const char *name, std::uint8_t af,
                std::uint8_t (&dst)[TT_ADDR_LEN]) {
  const std::string s = string_field(j, name, false);
  std::memset(dst, 0, TT_ADDR_LEN);
  if (inet_pton(af == 6 ? AF_INET6 : AF_INET, s.c_str(), dst) != 1)
    throw BadField{std::string("field \"") + name + "\": '" + s +
                   "' is not an IPv" + (af == 6 ? "6" : "4") + " address"};
}

void common(const Json &j, Event &ev) {
  ev.ts_ns = uint_field<std::uint64_t>(j, "ts_ns");
  ev.cookie = uint_field<std::uint64_t>(j, "cookie");
  ev.sk.pid = uint_field<std::uint32_t>(j, "pid");
  copy_comm(ev.sk.comm, string_field(j, "comm", false));
  ev.sk.af = uint_field<std::uint8_t>(j, "af");
  if (ev.sk.af != 4 && ev.sk.af != 6)
    throw BadField{"field \"af\" is neither 4 nor 6"};
  addr_field(j, "laddr", ev.sk.af, ev.sk.laddr);
  addr_field(j, "raddr", ev.sk.af, ev.sk.raddr);
  ev.sk.lport = uint_field<std::uint16_t>(j, "lport");
  ev.sk.rport = uint_field<std::uint16_t>(j, "rport");
  ev.sk.netns = uint_field<std::uint32_t>(j, "netns");
  ev.snd_una = uint_field<std::uint32_t>(j, "snd_una");
  ev.snd_nxt = uint_field<std::uint32_t>(j, "snd_nxt");
  ev.rcv_nxt = uint_field<std::uint32_t>(j, "rcv_nxt");
  optional_u32(j, "isn_local", ev.isn_local, ev.flags, TT_F_ISN_LOCAL);
  optional_u32(j, "isn_remote", ev.isn_remote, ev.flags, TT_F_ISN_REMOTE);
}

} // namespace

Event from_record(const tt_state_event &ev) {
  Event e;
  e.kind = EventKind::State;
  e.ts_ns = ev.hdr.ts_ns;
  e.cookie = ev.hdr.cookie;
  e.sk = ev.sk;
  e.old_state = ev.old_state;
  e.new_state = ev.new_state;
  e.flags = ev.flags;
  e.detail = ev.detail;
  e.snd_una = ev.snd_una;
  e.snd_nxt = ev.snd_nxt;
  e.rcv_nxt = ev.rcv_nxt;
  e.isn_local = ev.isn_local;
  e.isn_remote = ev.isn_remote;
  if (ev.flags & TT_F_OLD_TS)
    e.old_state_ns = ev.old_state_ns;
  if (ev.error)
    e.error = errno_name(ev.error);
  return e;
}

Event from_record(const tt_seg_event &ev, std::string_view reason_name) {
  Event e;
  e.kind =
      ev.hdr.kind == TT_KIND_RESET ? EventKind::Reset : EventKind::Retransmit;
  e.ts_ns = ev.hdr.ts_ns;
  e.cookie = ev.hdr.cookie;
  e.sk = ev.sk;
  e.old_state = e.new_state = ev.state;
  e.flags = ev.flags;
  e.what = ev.what;
  e.snd_una = ev.snd_una;
  e.snd_nxt = ev.snd_nxt;
  e.rcv_nxt = ev.rcv_nxt;
  e.isn_local = ev.isn_local;
  e.isn_remote = ev.isn_remote;
  e.seq = ev.seq;
  if (e.kind == EventKind::Reset && ev.what == TT_RESET_SENT)
    e.reason = std::string(reason_name);
  return e;
}

std::optional<Event> parse_trace_json(std::string_view line, std::string &error,
                                      std::uint64_t &lost) {
  error.clear();
  if (line.find_first_not_of(" \t\r") == std::string_view::npos)
    return std::nullopt;
  Json j = Json::parse(line, nullptr, false);
  if (j.is_discarded()) {
    error = "not JSON";
    return std::nullopt;
  }
  try {
    if (!j.is_object())
      throw BadField{"not a JSON object"};
    const std::string kind = string_field(j, "event", false);
    Event ev;
    if (kind == "lost") {
      lost += uint_field<std::uint64_t>(j, "count");
      return std::nullopt;
    }
    if (kind == "state") {
      ev.kind = EventKind::State;
      common(j, ev);
      ev.old_state = state_field(j, "old");
      ev.new_state = state_field(j, "new");
      if (!field(j, "old_state_ns").is_null())
        ev.old_state_ns = uint_field<std::uint64_t>(j, "old_state_ns");
      const Json &inferred = field(j, "inferred");
      if (!inferred.is_boolean())
        throw BadField{"field \"inferred\" is not a boolean"};
      if (inferred.get<bool>())
        ev.flags |= TT_F_INFERRED;
      const std::string role = string_field(j, "role", true);
      if (role == "active")
        ev.flags |= TT_F_ACTIVE;
      else if (role == "passive")
        ev.flags |= TT_F_PASSIVE;
      ev.detail = detail_value(string_field(j, "detail", true));
      ev.error = string_field(j, "error", true);
      return ev;
    }
    if (kind == "reset" || kind == "retransmit") {
      common(j, ev);
      ev.old_state = ev.new_state = state_field(j, "state");
      if (kind == "reset") {
        ev.kind = EventKind::Reset;
        const std::string dir = string_field(j, "dir", true);
        if (dir == "sent")
          ev.what = TT_RESET_SENT;
        else if (dir == "received")
          ev.what = TT_RESET_RECEIVED;
        else
          throw BadField{"field \"dir\" is neither \"sent\" nor \"received\""};
        ev.reason = string_field(j, "reason_name", true);
      } else {
        ev.kind = EventKind::Retransmit;
        ev.seq = uint_field<std::uint32_t>(j, "seq");
        const std::string what = string_field(j, "what", true);
        ev.what = what == "syn"      ? TT_RETRANS_SYN
                  : what == "synack" ? TT_RETRANS_SYNACK
                                     : TT_RETRANS_DATA;
      }
      return ev;
    }
    // Records of other subcommands (history's "connection", ...) are not
    // trace events.
    throw BadField{"\"event\":\"" + kind +
                   "\" is not a trace event (state, reset, retransmit, lost)"};
  } catch (const BadField &e) {
    error = e.what;
  } catch (const Json::exception &e) {
    error = e.what();
  }
  return std::nullopt;
}

} // namespace tcptrail::ladder
