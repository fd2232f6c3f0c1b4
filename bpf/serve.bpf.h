/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tcptrail serve: counting into this CPU's serve_stats (events.h) instead of
 * sending records. Per-CPU, so plain increments: a program interrupted on
 * its CPU by another tcptrail program may, rarely, lose one count.
 */
#ifndef TCPTRAIL_SERVE_BPF_H
#define TCPTRAIL_SERVE_BPF_H

#include "sock.bpf.h"

#define TT_ECONNRESET 104
#define TT_ETIMEDOUT 110
#define TT_ECONNREFUSED 111

static __always_inline struct tt_serve_stats *serve_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&serve_stats, &zero);
}

/* floor(log2(v)), 0 for 0 and 1; no loop, no clz instruction needed. */
static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32((__u32)v);
}

static __always_inline void serve_observe(struct tt_serve_stats *st, __u32 h, __u64 ns)
{
	if (h >= TT_SERVE_HISTS)
		return;
	st->hist[h][log2_u64(ns) & (TT_SERVE_BUCKETS - 1)]++;
	st->hist_sum_ns[h] += ns;
}

static __always_inline void serve_seg(__u32 seg)
{
	struct tt_serve_stats *st = serve_get();

	if (st && seg < TT_SERVE_SEGS)
		st->segs[seg]++;
}

/*
 * How a connection ended, as history's assembler decides it (ConnEnd in
 * user/history/record.h, from the same detail and sk_err).
 */
static __always_inline __u32 serve_end(__u8 old, __u8 detail, __u16 err, __u8 si_flags)
{
	bool rst_rcvd = detail == TT_DETAIL_RESET_RCVD || err == TT_ECONNRESET;

	if (err == TT_ETIMEDOUT)
		return TT_END_TIMEOUT;
	if (old == TCP_SYN_SENT && (err == TT_ECONNREFUSED || rst_rcvd))
		return TT_END_REFUSED;
	if (detail == TT_DETAIL_ORPHAN_FIN_WAIT2 && !(si_flags & (SI_RST_SENT | SI_RST_RCVD)))
		return TT_END_ORPHAN_FIN_WAIT2;
	if (rst_rcvd)
		return TT_END_RESET_RECEIVED;
	if (detail == TT_DETAIL_RESET_SENT)
		return TT_END_RESET_SENT;
	return TT_END_CLOSED;
}

/* One transition that passed the filters (state program). */
static __always_inline void serve_transition(struct sock_info *info, __u8 old, __u8 new, __u8 flags,
					     __u8 detail, __u16 err, __u64 old_ns, __u64 now)
{
	struct tt_serve_stats *st = serve_get();
	__u32 role, end;

	if (!st)
		return;
	st->transitions[old & (TT_SERVE_STATES - 1)][new &(TT_SERVE_STATES - 1)]++;
	if (flags & TT_F_OLD_TS) {
		if (old == TCP_SYN_SENT && new == TCP_ESTABLISHED)
			serve_observe(st, TT_HIST_HANDSHAKE_ACTIVE, old_ns);
		else if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED)
			serve_observe(st, TT_HIST_HANDSHAKE_PASSIVE, old_ns);
		else if (old == TCP_CLOSE_WAIT)
			serve_observe(st, TT_HIST_CLOSE_WAIT, old_ns);
		else if (old == TCP_FIN_WAIT2)
			serve_observe(st, TT_HIST_FIN_WAIT2, old_ns);
	}
	/* The end of a connection; a listener's close is not one. */
	if ((new != TCP_CLOSE &&new != TCP_TIME_WAIT) || old == TCP_LISTEN || old == TCP_CLOSE)
		return;
	role = (flags & TT_F_ACTIVE)	? TT_ROLE_ACTIVE
	       : (flags & TT_F_PASSIVE) ? TT_ROLE_PASSIVE
					: TT_ROLE_UNKNOWN;
	end = serve_end(old, detail, err, info ? info->si_flags : 0);
	st->ends[role][end & (TT_SERVE_ENDS - 1)]++;
	if (!info)
		return;
	/*
	 * An abort (close() with SO_LINGER 0, tcp_disconnect()) moves to CLOSE
	 * before it sends its RST: counted "closed" now, moved to reset_sent
	 * by the RST (serve_abort_rst), as history decides it.
	 */
	info->serve_abort =
	    end == TT_END_CLOSED && new == TCP_CLOSE &&old != TCP_LAST_ACK ? 1 + role : 0;
	if (info->born_ts && now > info->born_ts)
		serve_observe(st, TT_HIST_LIFETIME, now - info->born_ts);
}

/*
 * A RST sent by a socket whose close was counted "closed" just before: the
 * count moves to reset_sent. The decrement may land on another CPU's copy;
 * the sum over CPUs (modulo 2^64) is right.
 */
static __always_inline void serve_abort_rst(struct sock_info *info)
{
	struct tt_serve_stats *st;
	__u32 role;

	if (!info || !info->serve_abort)
		return;
	role = (__u32)info->serve_abort - 1;
	info->serve_abort = 0;
	if (role >= TT_SERVE_ROLES)
		return;
	st = serve_get();
	if (!st)
		return;
	st->ends[role][TT_END_CLOSED]--;
	st->ends[role][TT_END_RESET_SENT]++;
}

#endif /* TCPTRAIL_SERVE_BPF_H */
