// libFuzzer target over everything a ring-buffer record reaches in user
// space: decode(), the trace formatters (table with and without colour, raw
// seq and wall time; JSON; CSV) and `tcptrail history` (HistoryAssembler and
// its table/JSON/CSV formatters).
//
// Input: byte 0 selects options (bit 0-1: history max_conns, bit 2: advance
// the assembler between records); the rest is fed to decode() twice:
//   1. as one record, exactly as the ring would hand it over;
//   2. as a stream of records cut by for_each_record() (each `hdr.size`
//      bytes long while that fits, as a batched ring record is cut), so
//      that one input can carry a whole connection.
// Every record is copied into its own exactly-sized heap block first, so
// that AddressSanitizer sees any read past its end.
//
// For every record decode() accepts, and every history record, the output
// must hold these invariants (a violation aborts, so libFuzzer reports it):
//   - JSON: exactly one line, '\n'-terminated; parses (nlohmann::json also
//     checks UTF-8); an object with the right "event"; "comm" round-trips
//     when the name is printable UTF-8.
//   - CSV: exactly one line, '\n'-terminated; valid UTF-8 with no control
//     character; RFC 4180 quoting balanced; as many fields as the header.
//   - table: exactly one line, '\n'-terminated; valid UTF-8; no C0/C1
//     control character or DEL (so no ESC, no CSI U+009B and no raw 0x9b
//     byte outside a multi-byte character) except, with colour on, the
//     formatter's own SGR sequences ESC '[' digits 'm'.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "decode.h"
#include "format/escape.h"
#include "format/formatter.h"
#include "history/assembler.h"
#include "history/history_format.h"

namespace {

using tcptrail::Buffer;
using Json = nlohmann::json;

[[noreturn]] void fail(const char *what, std::string_view out) {
  std::fprintf(stderr,
               "fuzz_decode: invariant violated: %s\noutput (%zu "
               "bytes):",
               what, out.size());
  for (unsigned char c : out)
    std::fprintf(stderr, " %02x", c);
  std::fprintf(stderr, "\n%.*s\n", static_cast<int>(out.size()), out.data());
  std::abort();
}

std::string_view view(const Buffer &b) { return {b.data(), b.size()}; }

// Decodes one UTF-8 code point at s[i] (well-formed only: no overlongs,
// surrogates or values above U+10FFFF). Returns its length, 0 if invalid.
std::size_t utf8_decode(std::string_view s, std::size_t i, char32_t &cp) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  auto cont = [&](std::size_t k, unsigned char lo, unsigned char hi) {
    return k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf && cont(i + 1, 0x80, 0xbf)) {
    cp = (c & 0x1fU) << 6 | (at(i + 1) & 0x3fU);
    return 2;
  }
  if (c >= 0xe0 && c <= 0xef &&
      cont(i + 1, c == 0xe0 ? 0xa0 : 0x80, c == 0xed ? 0x9f : 0xbf) &&
      cont(i + 2, 0x80, 0xbf)) {
    cp = (c & 0x0fU) << 12 | (at(i + 1) & 0x3fU) << 6 | (at(i + 2) & 0x3fU);
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4 &&
      cont(i + 1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) &&
      cont(i + 2, 0x80, 0xbf) && cont(i + 3, 0x80, 0xbf)) {
    cp = (c & 0x07U) << 18 | (at(i + 1) & 0x3fU) << 12 |
         (at(i + 2) & 0x3fU) << 6 | (at(i + 3) & 0x3fU);
    return 4;
  }
  return 0;
}

bool is_control(char32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

// One '\n'-terminated line with no other '\n'.
void check_one_line(std::string_view out, const char *fmt_name) {
  if (out.empty() || out.back() != '\n')
    fail(fmt_name, out);
  if (out.find('\n') != out.size() - 1)
    fail(fmt_name, out);
}

// Valid UTF-8, no control character but the final '\n'. With `sgr`, the
// formatter's own colour sequences ESC '[' digits/';' 'm' are allowed.
void check_terminal_safe(std::string_view out, bool sgr, const char *what) {
  check_one_line(out, what);
  const std::string_view body = out.substr(0, out.size() - 1);
  std::size_t i = 0;
  while (i < body.size()) {
    if (sgr && body[i] == '\x1b' && i + 1 < body.size() && body[i + 1] == '[') {
      std::size_t k = i + 2;
      while (k < body.size() &&
             ((body[k] >= '0' && body[k] <= '9') || body[k] == ';'))
        ++k;
      if (k < body.size() && body[k] == 'm' && k > i + 2) {
        i = k + 1;
        continue;
      }
      fail(what, out); // an ESC that is not one of our SGR sequences
    }
    char32_t cp = 0;
    const std::size_t len = utf8_decode(body, i, cp);
    if (len == 0 || is_control(cp))
      fail(what, out);
    i += len;
  }
}

// Number of RFC 4180 fields in one line (without its '\n'); 0 when the
// quoting is broken (a quote inside an unquoted field, an unterminated
// quoted field, or text after a closing quote).
std::size_t csv_fields(std::string_view line) {
  std::size_t fields = 1;
  std::size_t i = 0;
  for (;;) {
    if (i < line.size() && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= line.size())
          return 0;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      if (i < line.size() && line[i] != ',')
        return 0;
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"')
          return 0;
        ++i;
      }
    }
    if (i >= line.size())
      return fields;
    ++i; // ','
    ++fields;
  }
}

void check_csv(std::string_view out, std::size_t header_fields,
               const char *what) {
  check_terminal_safe(out, false, what);
  if (csv_fields(out.substr(0, out.size() - 1)) != header_fields)
    fail(what, out);
}

// Printable UTF-8 (what JSON carries unchanged).
bool printable_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    const std::size_t len = utf8_decode(s, i, cp);
    if (len == 0 || is_control(cp))
      return false;
    i += len;
  }
  return true;
}

Json check_json(std::string_view out, const char *event, const char *what) {
  check_one_line(out, what);
  Json j;
  try {
    j = Json::parse(out.substr(0, out.size() - 1));
  } catch (const Json::exception &e) {
    std::fprintf(stderr, "fuzz_decode: %s\n", e.what());
    fail(what, out);
  }
  if (!j.is_object() || !j.contains("event") || j["event"] != event)
    fail(what, out);
  return j;
}

void check_comm(const Json &j, std::string_view comm, std::string_view out) {
  if (!j.contains("comm") || !j["comm"].is_string())
    fail("json: no comm string", out);
  if (printable_utf8(comm) && j["comm"].get<std::string>() != comm)
    fail("json: comm does not round-trip", out);
}

// ---- the formatters under test
// -----------------------------------------------

struct TraceFormatters {
  // Table: every combination of colour, raw seq and wall-clock time.
  std::vector<
      std::pair<tcptrail::OutputOptions, std::unique_ptr<tcptrail::Formatter>>>
      tables;
  std::unique_ptr<tcptrail::Formatter> json;
  std::unique_ptr<tcptrail::Formatter> csv;
  std::size_t csv_header_fields = 0;

  TraceFormatters() {
    tcptrail::OutputOptions base;
    // Realistic clocks: CLOCK_REALTIME - CLOCK_MONOTONIC on a host up for
    // a while, and a tracer started 1000 s after boot.
    base.wall_offset_ns = 1'700'000'000'000'000'000;
    base.start_ns = 1'000'000'000'000;
    for (int bits = 0; bits < 8; ++bits) {
      tcptrail::OutputOptions o = base;
      o.format = tcptrail::Format::Table;
      o.color = bits & 1;
      o.raw_seq = bits & 2;
      o.wall_time = bits & 4;
      tables.emplace_back(o, tcptrail::make_formatter(o));
    }
    tcptrail::OutputOptions j = base;
    j.format = tcptrail::Format::Json;
    json = tcptrail::make_formatter(j);
    tcptrail::OutputOptions c = base;
    c.format = tcptrail::Format::Csv;
    csv = tcptrail::make_formatter(c);

    Buffer b;
    csv->header(b);
    check_one_line(view(b), "csv header");
    csv_header_fields = csv_fields(view(b).substr(0, b.size() - 1));
    for (auto &[o, t] : tables) {
      Buffer h;
      t->header(h);
      check_terminal_safe(view(h), false, "table header");
    }
    Buffer jh;
    json->header(jh);
    if (jh.size() != 0)
      fail("json header is not empty", view(jh));
  }

  template <typename Event, typename Fn>
  void each(const Event &ev, const char *event, Fn &&call) {
    for (auto &[o, t] : tables) {
      Buffer b;
      call(*t, b, ev);
      check_terminal_safe(view(b), o.color, "table line");
    }
    Buffer j;
    call(*json, j, ev);
    const Json parsed = check_json(view(j), event, "json line");
    check_comm(parsed, tcptrail::comm_view(ev.sk.comm), view(j));
    Buffer c;
    call(*csv, c, ev);
    check_csv(view(c), csv_header_fields, "csv line");
  }

  void state(const tt_state_event &ev) {
    each(ev, "state",
         [](tcptrail::Formatter &f, Buffer &b, const tt_state_event &e) {
           f.state(b, e);
         });
  }

  void segment(const tt_seg_event &ev) {
    const char *event =
        ev.hdr.kind == TT_KIND_RETRANSMIT ? "retransmit" : "reset";
    each(ev, event,
         [](tcptrail::Formatter &f, Buffer &b, const tt_seg_event &e) {
           f.segment(b, e);
         });
  }

  void lost(std::uint64_t count) {
    Buffer j;
    json->lost(j, count);
    const Json parsed = check_json(view(j), "lost", "json lost");
    if (!parsed.contains("count") || parsed["count"] != count)
      fail("json lost: count", view(j));
    Buffer c;
    csv->lost(c, count);
    check_csv(view(c), csv_header_fields, "csv lost");
    for (auto &[o, t] : tables) {
      Buffer b;
      t->lost(b, count); // the table warns on stderr instead
      if (b.size() != 0)
        fail("table lost: output", view(b));
    }
  }
};

struct HistoryFormatters {
  std::vector<std::pair<tcptrail::OutputOptions,
                        std::unique_ptr<tcptrail::HistoryFormatter>>>
      tables;
  std::unique_ptr<tcptrail::HistoryFormatter> json;
  std::unique_ptr<tcptrail::HistoryFormatter> csv;
  std::size_t csv_header_fields = 0;

  HistoryFormatters() {
    tcptrail::OutputOptions base;
    base.wall_offset_ns = 1'700'000'000'000'000'000;
    base.start_ns = 1'000'000'000'000;
    for (int bits = 0; bits < 16; ++bits) {
      tcptrail::OutputOptions o = base;
      o.format = tcptrail::Format::Table;
      o.color = bits & 1;
      o.raw_seq = bits & 2;
      o.wall_time = bits & 4;
      tables.emplace_back(o, tcptrail::make_history_formatter(o, bits & 8));
    }
    tcptrail::OutputOptions j = base;
    j.format = tcptrail::Format::Json;
    json = tcptrail::make_history_formatter(j, false);
    tcptrail::OutputOptions c = base;
    c.format = tcptrail::Format::Csv;
    csv = tcptrail::make_history_formatter(c, false);

    Buffer b;
    csv->header(b);
    check_one_line(view(b), "history csv header");
    csv_header_fields = csv_fields(view(b).substr(0, b.size() - 1));
    for (auto &[o, t] : tables) {
      Buffer h;
      t->header(h);
      check_terminal_safe(view(h), false, "history table header");
    }
  }

  void record(const tcptrail::ConnectionRecord &rec) {
    for (auto &[o, t] : tables) {
      Buffer b;
      t->record(b, rec);
      check_terminal_safe(view(b), o.color, "history table line");
    }
    Buffer j;
    json->record(j, rec);
    const Json parsed = check_json(view(j), "connection", "history json line");
    check_comm(parsed, rec.comm, view(j));
    Buffer c;
    csv->record(c, rec);
    check_csv(view(c), csv_header_fields, "history csv line");
  }
};

// Decodes a copy of [data, data + len) in a block of exactly len bytes.
tcptrail::Record decode_copy(const std::uint8_t *data, std::size_t len) {
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[len ? len : 1]);
  if (len)
    std::memcpy(copy.get(), data, len);
  return tcptrail::decode(len ? copy.get() : nullptr, len);
}

// The checks decode() promises: a record is only accepted with a known
// kind and size == len == sizeof its struct.
void check_decoded(const tcptrail::Record &rec, const std::uint8_t *data,
                   std::size_t len) {
  tt_header hdr{};
  if (len >= sizeof(hdr))
    std::memcpy(&hdr, data, sizeof(hdr));
  if (const auto *st = std::get_if<tt_state_event>(&rec)) {
    if (len != sizeof(*st) || hdr.kind != TT_KIND_STATE ||
        hdr.size != sizeof(*st) || std::memcmp(st, data, len) != 0)
      fail("decode accepted a bad state record",
           {reinterpret_cast<const char *>(data), len});
  } else if (const auto *seg = std::get_if<tt_seg_event>(&rec)) {
    if (len != sizeof(*seg) ||
        (hdr.kind != TT_KIND_RETRANSMIT && hdr.kind != TT_KIND_RESET) ||
        hdr.size != sizeof(*seg) || std::memcmp(seg, data, len) != 0)
      fail("decode accepted a bad segment record",
           {reinterpret_cast<const char *>(data), len});
  } else if ((len == sizeof(tt_state_event) && hdr.kind == TT_KIND_STATE &&
              hdr.size == len) ||
             (len == sizeof(tt_seg_event) &&
              (hdr.kind == TT_KIND_RETRANSMIT || hdr.kind == TT_KIND_RESET) &&
              hdr.size == len)) {
    fail("decode refused a well-formed record",
         {reinterpret_cast<const char *>(data), len});
  }
}

TraceFormatters &trace_formatters() {
  static TraceFormatters f;
  return f;
}

HistoryFormatters &history_formatters() {
  static HistoryFormatters f;
  return f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size) {
  TraceFormatters &trace = trace_formatters();
  HistoryFormatters &hist_fmt = history_formatters();

  const std::uint8_t opts = size > 0 ? data[0] : 0;
  const std::uint8_t *body = size > 0 ? data + 1 : data;
  const std::size_t body_len = size > 0 ? size - 1 : 0;

  // 1. The whole body as one record.
  {
    const tcptrail::Record rec = decode_copy(body, body_len);
    check_decoded(rec, body, body_len);
    if (const auto *st = std::get_if<tt_state_event>(&rec))
      trace.state(*st);
    else if (const auto *seg = std::get_if<tt_seg_event>(&rec))
      trace.segment(*seg);
  }

  // 2. The body as a stream of records, through the history assembler too.
  static constexpr std::size_t kMaxConns[] = {1, 2, 16, 65536};
  tcptrail::HistoryAssembler hist(kMaxConns[opts & 3], 1000);
  const bool advance = opts & 4;
  std::vector<tcptrail::ConnectionRecord> records;
  std::uint64_t last_ts = 0;
  // Cut as the Tracer cuts a batched ring record.
  tcptrail::for_each_record(body, body_len, [&](const void *piece,
                                                std::size_t len) {
    const auto *p = static_cast<const std::uint8_t *>(piece);
    if (p < body || p + len > body + body_len)
      fail("for_each_record: a piece outside the record", {});
    const tcptrail::Record rec = decode_copy(p, len);
    check_decoded(rec, p, len);
    if (const auto *st = std::get_if<tt_state_event>(&rec)) {
      trace.state(*st);
      hist.on_state(*st);
      last_ts = st->hdr.ts_ns;
    } else if (const auto *seg = std::get_if<tt_seg_event>(&rec)) {
      trace.segment(*seg);
      hist.on_segment(*seg);
      last_ts = seg->hdr.ts_ns;
    }
    if (advance)
      hist.advance(last_ts, records);
  });
  hist.snapshot_open(records);
  hist.flush_all(records);
  for (const tcptrail::ConnectionRecord &rec : records)
    hist_fmt.record(rec);
  if (hist.tracked() != 0)
    fail("history: connections tracked after flush_all", {});

  // A loss report with a count taken from the input.
  std::uint64_t count = 0;
  if (body_len > 0)
    std::memcpy(&count, body,
                body_len < sizeof(count) ? body_len : sizeof(count));
  trace.lost(count);
  return 0;
}
