#include <algorithm>
#include <cstring>
#include <memory>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "decode.h"

namespace {

using tcptrail::decode;
using tcptrail::DecodeError;
using tcptrail::Invalid;
using tcptrail::for_each_record;
using tcptrail::Record;

tt_state_event make_state() {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = 123456789;
  ev.hdr.cookie = 42;
  ev.sk.af = 4;
  ev.old_state = 2;
  ev.new_state = 1;
  ev.snd_nxt = 0xdeadbeef;
  return ev;
}

tt_seg_event make_seg(unsigned kind) {
  tt_seg_event ev{};
  ev.hdr.kind = static_cast<__u16>(kind);
  ev.hdr.size = sizeof(ev);
  ev.hdr.cookie = 7;
  ev.seq = 1234;
  ev.what = 1;
  return ev;
}

// Copies `len` bytes of `src` into an exactly sized heap block, so that a
// read past `len` is caught by ASan.
template <typename T> Record decode_exact(const T &src, std::size_t len) {
  auto buf = std::make_unique<unsigned char[]>(len);
  std::memcpy(buf.get(), &src, std::min(len, sizeof(T)));
  return decode(buf.get(), len);
}

DecodeError error_of(const Record &r) {
  EXPECT_TRUE(std::holds_alternative<Invalid>(r));
  return std::holds_alternative<Invalid>(r) ? std::get<Invalid>(r).error
                                            : DecodeError::BadKind;
}

TEST(DecodeTest, StateEvent) {
  const tt_state_event ev = make_state();
  const Record r = decode_exact(ev, sizeof(ev));
  ASSERT_TRUE(std::holds_alternative<tt_state_event>(r));
  const auto &got = std::get<tt_state_event>(r);
  EXPECT_EQ(got.hdr.ts_ns, 123456789u);
  EXPECT_EQ(got.hdr.cookie, 42u);
  EXPECT_EQ(got.snd_nxt, 0xdeadbeefu);
  EXPECT_EQ(std::memcmp(&got, &ev, sizeof(ev)), 0);
}

TEST(DecodeTest, RetransmitAndResetEvents) {
  for (unsigned kind : {TT_KIND_RETRANSMIT, TT_KIND_RESET}) {
    const tt_seg_event ev = make_seg(kind);
    const Record r = decode_exact(ev, sizeof(ev));
    ASSERT_TRUE(std::holds_alternative<tt_seg_event>(r)) << kind;
    EXPECT_EQ(std::get<tt_seg_event>(r).hdr.kind, kind);
    EXPECT_EQ(std::get<tt_seg_event>(r).seq, 1234u);
  }
}

TEST(DecodeTest, ConnectionEvent) {
  tt_conn_event ev{};
  ev.hdr.kind = TT_KIND_CONN;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cookie = 7;
  ev.n_steps = 2;
  ev.steps[1].new_state = 1;
  const Record r = decode_exact(ev, sizeof(ev));
  ASSERT_TRUE(std::holds_alternative<tt_conn_event>(r));
  EXPECT_EQ(std::memcmp(&std::get<tt_conn_event>(r), &ev, sizeof(ev)), 0);
  // A state event's length with the connection kind is refused.
  EXPECT_TRUE(std::holds_alternative<Invalid>(
      decode_exact(ev, sizeof(tt_state_event))));
}

TEST(DecodeTest, FlushMark) {
  tt_flush_event ev{};
  ev.hdr.kind = TT_KIND_FLUSH;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cpu = 1;
  ev.hdr.ts_ns = 99;
  ev.records = 3;
  const Record r = decode_exact(ev, sizeof(ev));
  ASSERT_TRUE(std::holds_alternative<tt_flush_event>(r));
  EXPECT_EQ(std::get<tt_flush_event>(r).records, 3u);
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(ev) - 1)), DecodeError::BadSize);
}

// The pieces for_each_record() cuts a ring record into.
std::vector<std::size_t> pieces(const unsigned char *data, std::size_t len) {
  std::vector<std::size_t> out;
  const unsigned char *next = data;
  for_each_record(data, len, [&](const void *p, std::size_t n) {
    EXPECT_EQ(p, next);
    next += n;
    out.push_back(n);
  });
  EXPECT_EQ(next, data + len);
  return out;
}

TEST(DecodeTest, BatchOfRecords) {
  // A batch as the state program sends it: records back to back.
  std::vector<unsigned char> batch;
  auto append = [&batch](const auto &ev) {
    const auto *p = reinterpret_cast<const unsigned char *>(&ev);
    batch.insert(batch.end(), p, p + sizeof(ev));
  };
  tt_state_event st = make_state();
  append(st);
  st.hdr.ts_ns += 1;
  append(st);
  append(make_seg(TT_KIND_RESET));
  const auto got = pieces(batch.data(), batch.size());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], sizeof(tt_state_event));
  EXPECT_EQ(got[2], sizeof(tt_seg_event));
  std::size_t off = 0;
  int states = 0, segs = 0;
  for (std::size_t n : got) {
    const Record r = decode(batch.data() + off, n);
    states += std::holds_alternative<tt_state_event>(r);
    segs += std::holds_alternative<tt_seg_event>(r);
    off += n;
  }
  EXPECT_EQ(states, 2);
  EXPECT_EQ(segs, 1);
  EXPECT_EQ(std::get<tt_state_event>(decode(batch.data() + sizeof(st),
                                            sizeof(st)))
                .hdr.ts_ns,
            st.hdr.ts_ns);
}

TEST(DecodeTest, BatchWithABadSizeEndsInOneRefusedPiece) {
  std::vector<unsigned char> batch(2 * sizeof(tt_state_event));
  tt_state_event st = make_state();
  std::memcpy(batch.data(), &st, sizeof(st));
  st.hdr.size = 0xffff; // longer than what is left
  std::memcpy(batch.data() + sizeof(st), &st, sizeof(st));
  const auto got = pieces(batch.data(), batch.size());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], sizeof(st));
  EXPECT_EQ(error_of(decode(batch.data() + sizeof(st), got[1])),
            DecodeError::BadSize);
  // Too short for a header: one piece, refused.
  EXPECT_EQ(pieces(batch.data(), 5), std::vector<std::size_t>{5});
  EXPECT_TRUE(pieces(batch.data(), 0).empty());
  // A size below a header's cannot stall the walk.
  st.hdr.size = 0;
  std::memcpy(batch.data(), &st, sizeof(st));
  EXPECT_EQ(pieces(batch.data(), batch.size()),
            std::vector<std::size_t>{batch.size()});
}

TEST(DecodeTest, UnalignedInput) {
  const tt_state_event ev = make_state();
  alignas(8) unsigned char buf[sizeof(ev) + 1];
  std::memcpy(buf + 1, &ev, sizeof(ev));
  const Record r = decode(buf + 1, sizeof(ev));
  ASSERT_TRUE(std::holds_alternative<tt_state_event>(r));
  EXPECT_EQ(std::get<tt_state_event>(r).snd_nxt, 0xdeadbeefu);
}

TEST(DecodeTest, TooShort) {
  const tt_state_event ev = make_state();
  EXPECT_EQ(error_of(decode(nullptr, 0)), DecodeError::TooShort);
  EXPECT_EQ(error_of(decode(nullptr, sizeof(ev))), DecodeError::TooShort);
  EXPECT_EQ(error_of(decode_exact(ev, 0)), DecodeError::TooShort);
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(tt_header) - 1)),
            DecodeError::TooShort);
}

TEST(DecodeTest, BadKind) {
  for (unsigned kind : {0u, TT_KIND_MAX + 1u, 0xffffu}) {
    tt_state_event ev = make_state();
    ev.hdr.kind = static_cast<__u16>(kind);
    EXPECT_EQ(error_of(decode_exact(ev, sizeof(ev))), DecodeError::BadKind)
        << kind;
  }
}

TEST(DecodeTest, LengthMustMatchTheKind) {
  const tt_state_event ev = make_state();
  // A header alone, a truncated record, one byte too many.
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(tt_header))),
            DecodeError::BadSize);
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(ev) - 1)), DecodeError::BadSize);
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(ev) + 1)), DecodeError::BadSize);
  // A state header on a segment-sized record.
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(tt_seg_event))),
            DecodeError::BadSize);
  // A segment kind on a state-sized record.
  tt_state_event wrong = ev;
  wrong.hdr.kind = TT_KIND_RETRANSMIT;
  EXPECT_EQ(error_of(decode_exact(wrong, sizeof(wrong))), DecodeError::BadSize);
}

TEST(DecodeTest, HeaderSizeMustMatch) {
  tt_state_event ev = make_state();
  ev.hdr.size = sizeof(ev) - 8;
  EXPECT_EQ(error_of(decode_exact(ev, sizeof(ev))), DecodeError::BadSize);
  tt_seg_event seg = make_seg(TT_KIND_RESET);
  seg.hdr.size = sizeof(tt_state_event);
  EXPECT_EQ(error_of(decode_exact(seg, sizeof(seg))), DecodeError::BadSize);
}

} // namespace
