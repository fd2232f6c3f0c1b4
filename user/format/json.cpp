// JSON Lines: one object per event. The field names are a contract with
// other tools; seq numbers are always raw.
#include <cstdint>
#include <memory>
#include <string_view>

#include "format/common.h"
#include "net.h"

namespace tcptrail::format_detail {

namespace {

class JsonFormatter final : public Formatter {
public:
  explicit JsonFormatter(const OutputOptions &opts)
      : wall_offset_ns_(opts.wall_offset_ns), rst_reasons_(opts.rst_reasons),
        cgroups_(opts.cgroups) {}

  void header(Buffer & /*out*/) override {}

  void state(Buffer &out, const tt_state_event &ev) override {
    append_str(out, R"({"event":"state",)");
    identity(out, ev.hdr, ev.sk);
    append_str(out, R"(,"old":")");
    append_state(out, ev.old_state);
    append_str(out, R"(","new":")");
    append_state(out, ev.new_state);
    append_str(out, R"(","old_state_ns":)");
    optional_uint(out, ev.flags & TT_F_OLD_TS, ev.old_state_ns);
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote);
    append_str(out, R"(,"netns":)");
    append_uint(out, ev.sk.netns);
    append_str(out, R"(,"role":)");
    optional_string(out, role_name(ev.flags));
    append_str(out, (ev.flags & TT_F_INFERRED) ? R"(,"inferred":true)"
                                               : R"(,"inferred":false)");
    append_str(out, R"(,"error":)");
    if (ev.error != 0) {
      out.push_back('"');
      append_str(out, errno_name(ev.error));
      out.push_back('"');
    } else {
      append_str(out, "null");
    }
    append_str(out, R"(,"detail":)");
    optional_string(out, detail_name(ev.detail));
    append_str(out, R"(,"bytes_acked":)");
    append_uint(out, ev.bytes_acked);
    append_str(out, R"(,"bytes_received":)");
    append_uint(out, ev.bytes_received);
    append_str(out, R"(,"retransmits":)");
    append_uint(out, ev.total_retrans);
    cpu_task(out, ev.sk);
    append_cgroup_json(out, cgroups_.get(), ev.sk.cgroup_id);
    append_str(out, "}\n");
  }

  void segment(Buffer &out, const tt_seg_event &ev) override {
    if (ev.hdr.kind == TT_KIND_RETRANSMIT) {
      append_str(out, R"({"event":"retransmit",)");
      identity(out, ev.hdr, ev.sk);
      append_str(out, R"(,"state":")");
      append_state(out, ev.state);
      append_str(out, R"(","seq":)");
      append_uint(out, ev.seq);
      append_str(out, R"(,"what":)");
      optional_string(out, retrans_name(ev.what));
    } else if (ev.hdr.kind == TT_KIND_RESET) {
      append_str(out, R"({"event":"reset","dir":)");
      optional_string(out, reset_dir_name(ev.what));
      out.push_back(',');
      identity(out, ev.hdr, ev.sk);
      append_str(out, R"(,"state":")");
      append_state(out, ev.state);
      append_str(out, R"(","reason":)");
      optional_uint(out, ev.what == TT_RESET_SENT, ev.reason);
      append_str(out, R"(,"reason_name":)");
      optional_string(out, ev.what == TT_RESET_SENT
                               ? rst_reason_name(rst_reasons_, ev.reason)
                               : std::string_view());
    } else {
      return; // decode() lets no other kind through
    }
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote);
    append_str(out, R"(,"netns":)");
    append_uint(out, ev.sk.netns);
    cpu_task(out, ev.sk);
    append_cgroup_json(out, cgroups_.get(), ev.sk.cgroup_id);
    append_str(out, "}\n");
  }

  void lost(Buffer &out, std::uint64_t count) override {
    append_str(out, R"({"event":"lost","count":)");
    append_uint(out, count);
    append_str(out, "}\n");
  }

private:
  void identity(Buffer &out, const tt_header &hdr, const tt_sock &sk) const {
    append_str(out, R"("time":")");
    append_rfc3339(out, realtime_ns(hdr.ts_ns, wall_offset_ns_));
    append_str(out, R"(","ts_ns":)");
    append_uint(out, hdr.ts_ns);
    append_str(out, R"(,"cookie":)");
    append_uint(out, hdr.cookie);
    append_str(out, R"(,"pid":)");
    append_uint(out, sk.pid);
    append_str(out, R"(,"comm":)");
    append_json_string(out, comm_view(sk.comm));
    append_str(out, R"(,"af":)");
    append_uint(out, sk.af);
    append_str(out, R"(,"laddr":")");
    append_ip(out, sk.af, sk.laddr);
    append_str(out, R"(","lport":)");
    append_uint(out, sk.lport);
    append_str(out, R"(,"raddr":")");
    append_ip(out, sk.af, sk.raddr);
    append_str(out, R"(","rport":)");
    append_uint(out, sk.rport);
  }

  static void seqs(Buffer &out, std::uint32_t snd_una, std::uint32_t snd_nxt,
                   std::uint32_t rcv_nxt, std::uint8_t flags,
                   std::uint32_t isn_local, std::uint32_t isn_remote) {
    append_str(out, R"(,"snd_una":)");
    append_uint(out, snd_una);
    append_str(out, R"(,"snd_nxt":)");
    append_uint(out, snd_nxt);
    append_str(out, R"(,"rcv_nxt":)");
    append_uint(out, rcv_nxt);
    append_str(out, R"(,"isn_local":)");
    optional_uint(out, flags & TT_F_ISN_LOCAL, isn_local);
    append_str(out, R"(,"isn_remote":)");
    optional_uint(out, flags & TT_F_ISN_REMOTE, isn_remote);
  }

  static void cpu_task(Buffer &out, const tt_sock &sk) {
    append_str(out, R"(,"cpu_pid":)");
    append_uint(out, sk.cpu_pid);
    append_str(out, R"(,"cpu_comm":)");
    append_json_string(out, comm_view(sk.cpu_comm));
  }

  template <typename T>
  static void optional_uint(Buffer &out, bool valid, T value) {
    if (valid)
      append_uint(out, value);
    else
      append_str(out, "null");
  }

  // Names from our own tables: no escaping needed.
  static void optional_string(Buffer &out, std::string_view s) {
    if (s.empty()) {
      append_str(out, "null");
      return;
    }
    out.push_back('"');
    append_str(out, s);
    out.push_back('"');
  }

  std::int64_t wall_offset_ns_;
  std::vector<std::string> rst_reasons_;
  std::shared_ptr<CgroupNames> cgroups_;
};

} // namespace

std::unique_ptr<Formatter> make_json_formatter(const OutputOptions &opts) {
  return std::make_unique<JsonFormatter>(opts);
}

} // namespace tcptrail::format_detail
