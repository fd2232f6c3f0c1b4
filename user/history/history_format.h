// Output of `tcptrail history`: one line per ConnectionRecord, as a table
// (netstat/ss-like), JSON Lines or CSV. Each formatter appends to a Buffer
// the caller writes out.
//
// JSON (field names are a contract; extra fields may be added):
//   {"event":"connection","cookie":N,"pid":N,"comm":"s","af":4|6,
//    "laddr":"ip","lport":N,"raddr":"ip","rport":N,
//    "role":"active"|"passive"|null,"isn_local":N|null,"isn_remote":N|null,
//    "bytes_acked":N,"bytes_received":N,"retransmits":N,
//    "end":"closed"|"reset_received"|"reset_sent"|"refused"|"timeout"|"open",
//    "closed_first":"local"|"remote"|"simultaneous"|null,
//    "path":[{"state":"S","enter_ns":N,"dur_ns":N|null,
//             "snd_una":N,"snd_nxt":N,"rcv_nxt":N},...],
//    extras: "time" (RFC 3339 of the first step),"netns","listener",
//    "accepted":N|null,"resets_sent","resets_received",
//    "error":"ECONNREFUSED"|null,"prior_state":"S"|null,"steps_dropped"}
// Sequence numbers are raw in JSON and CSV (the ISNs are fields); relative
// to the ISNs in the table unless OutputOptions::raw_seq.
#pragma once

#include <cstdint>
#include <memory>

#include "format/formatter.h"
#include "history/record.h"

namespace tcptrail {

class HistoryFormatter {
public:
  virtual ~HistoryFormatter() = default;
  virtual void header(Buffer &out) = 0; // table/csv header line, json none
  virtual void record(Buffer &out, const ConnectionRecord &rec) = 0;
};

// show_seq (-v/--seq): the table shows snd_una/snd_nxt/rcv_nxt per step.
// JSON and CSV always carry them.
std::unique_ptr<HistoryFormatter>
make_history_formatter(const OutputOptions &opts, bool show_seq);

// Human units for the table: "0B", "512B", "1.2KiB", "15.0MiB", "3.0GiB".
void append_human_bytes(Buffer &out, std::uint64_t bytes);
// Three significant digits: "750ns", "50us", "0.21ms", "12.5ms", "11.9s";
// whole seconds from 1000 s.
void append_human_duration(Buffer &out, std::uint64_t ns);

} // namespace tcptrail
