// CSV (RFC 4180): a header row, then one row per event over a fixed superset
// of columns; columns that do not apply to a kind are empty. Like JSON, for
// machines: seq numbers are always raw, ISNs have their own columns.
#include <cstdint>
#include <memory>
#include <string_view>

#include "format/common.h"
#include "net.h"

namespace tcptrail::format_detail {

namespace {

constexpr std::string_view kHeader =
    "event,time,ts_ns,cookie,pid,comm,af,laddr,lport,raddr,rport,"
    "old,new,state,seq,what,dir,reason,old_state_ns,"
    "snd_una,snd_nxt,rcv_nxt,isn_local,isn_remote,netns,"
    "role,inferred,error,detail,bytes_acked,bytes_received,retransmits,"
    "cpu_pid,cpu_comm,count,cgroup_id,cgroup,container\n";

class CsvFormatter final : public Formatter {
public:
  explicit CsvFormatter(const OutputOptions &opts)
      : wall_offset_ns_(opts.wall_offset_ns), cgroups_(opts.cgroups) {}

  void header(Buffer &out) override { append_str(out, kHeader); }

  void state(Buffer &out, const tt_state_event &ev) override {
    append_str(out, "state,");
    identity(out, ev.hdr, ev.sk);
    append_state(out, ev.old_state); // old
    out.push_back(',');
    append_state(out, ev.new_state); // new
    append_str(out, ",,,,,,");       // state, seq, what, dir, reason
    if (ev.flags & TT_F_OLD_TS)
      append_uint(out, ev.old_state_ns);
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote);
    append_uint(out, ev.sk.netns);
    out.push_back(',');
    append_str(out, role_name(ev.flags));
    append_str(out, (ev.flags & TT_F_INFERRED) ? ",true," : ",false,");
    if (ev.error != 0)
      append_str(out, errno_name(ev.error));
    out.push_back(',');
    append_str(out, detail_name(ev.detail));
    out.push_back(',');
    append_uint(out, ev.bytes_acked);
    out.push_back(',');
    append_uint(out, ev.bytes_received);
    out.push_back(',');
    append_uint(out, ev.total_retrans);
    out.push_back(',');
    cpu_task(out, ev.sk);
    append_str(out, ",,"); // count
    append_cgroup_csv(out, cgroups_.get(), ev.sk.cgroup_id);
    out.push_back('\n');
  }

  void segment(Buffer &out, const tt_seg_event &ev) override {
    const bool retrans = ev.hdr.kind == TT_KIND_RETRANSMIT;
    if (!retrans && ev.hdr.kind != TT_KIND_RESET)
      return; // decode() lets no other kind through
    append_str(out, retrans ? "retransmit," : "reset,");
    identity(out, ev.hdr, ev.sk);
    append_str(out, ",,"); // old, new
    append_state(out, ev.state);
    out.push_back(',');
    if (retrans) {
      append_uint(out, ev.seq);
      out.push_back(',');
      append_str(out, retrans_name(ev.what));
      append_str(out, ",,,"); // dir, reason
    } else {
      append_str(out, ",,"); // seq, what
      append_str(out, reset_dir_name(ev.what));
      out.push_back(',');
      if (ev.what == TT_RESET_SENT)
        append_uint(out, ev.reason);
      out.push_back(',');
    }
    // old_state_ns is empty
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote);
    append_uint(out, ev.sk.netns);
    // role, inferred, error, detail, bytes_acked, bytes_received,
    // retransmits
    append_str(out, ",,,,,,,,");
    cpu_task(out, ev.sk);
    append_str(out, ",,"); // count
    append_cgroup_csv(out, cgroups_.get(), ev.sk.cgroup_id);
    out.push_back('\n');
  }

  void lost(Buffer &out, std::uint64_t count) override {
    append_str(out, "lost,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,");
    append_uint(out, count);
    append_str(out, ",,,\n"); // cgroup_id, cgroup, container
  }

private:
  // event is written; writes time..rport and the comma after rport.
  void identity(Buffer &out, const tt_header &hdr, const tt_sock &sk) const {
    append_rfc3339(out, realtime_ns(hdr.ts_ns, wall_offset_ns_));
    out.push_back(',');
    append_uint(out, hdr.ts_ns);
    out.push_back(',');
    append_uint(out, hdr.cookie);
    out.push_back(',');
    append_uint(out, sk.pid);
    out.push_back(',');
    append_csv_field(out, comm_view(sk.comm));
    out.push_back(',');
    append_uint(out, sk.af);
    out.push_back(',');
    append_ip(out, sk.af, sk.laddr);
    out.push_back(',');
    append_uint(out, sk.lport);
    out.push_back(',');
    append_ip(out, sk.af, sk.raddr);
    out.push_back(',');
    append_uint(out, sk.rport);
    out.push_back(',');
  }

  // Preceded by old_state_ns's value; writes ",snd_una,...,isn_remote,".
  static void seqs(Buffer &out, std::uint32_t snd_una, std::uint32_t snd_nxt,
                   std::uint32_t rcv_nxt, std::uint8_t flags,
                   std::uint32_t isn_local, std::uint32_t isn_remote) {
    out.push_back(',');
    append_uint(out, snd_una);
    out.push_back(',');
    append_uint(out, snd_nxt);
    out.push_back(',');
    append_uint(out, rcv_nxt);
    out.push_back(',');
    if (flags & TT_F_ISN_LOCAL)
      append_uint(out, isn_local);
    out.push_back(',');
    if (flags & TT_F_ISN_REMOTE)
      append_uint(out, isn_remote);
    out.push_back(',');
  }

  static void cpu_task(Buffer &out, const tt_sock &sk) {
    append_uint(out, sk.cpu_pid);
    out.push_back(',');
    append_csv_field(out, comm_view(sk.cpu_comm));
  }

  std::int64_t wall_offset_ns_;
  std::shared_ptr<CgroupNames> cgroups_;
};

} // namespace

std::unique_ptr<Formatter> make_csv_formatter(const OutputOptions &opts) {
  return std::make_unique<CsvFormatter>(opts);
}

} // namespace tcptrail::format_detail
