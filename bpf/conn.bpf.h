/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * History mode (cfg_aggregate): a socket's path, kept in its storage and sent
 * as one tt_conn_event, by the state program when the connection ends and by
 * the storage iterator for connections still open.
 */
#ifndef TCPTRAIL_CONN_BPF_H
#define TCPTRAIL_CONN_BPF_H

#include "sock.bpf.h"

/* Forgets the path: a new life, or sent. */
static __always_inline void conn_reset(struct sock_info *info)
{
	info->n_steps = 0;
	info->steps_dropped = 0;
	info->resets_sent = 0;
	info->resets_received = 0;
}

/*
 * Appends a transition. A path longer than the array keeps its first step
 * and the latest ones: the second is dropped and counted, as user space's
 * HistoryAssembler does.
 */
static __always_inline void conn_add_step(struct sock_info *info, __u64 ts,
					  const struct tcp_sock *tp, __u8 old, __u8 new,
					  __u8 flags, __u8 detail)
{
	struct tt_conn_step *step;
	__u32 n = info->n_steps;

	if (n >= TT_CONN_MAX_STEPS) {
		for (int i = 1; i < TT_CONN_MAX_STEPS - 1; i++)
			info->steps[i] = info->steps[i + 1];
		n = TT_CONN_MAX_STEPS - 1;
		if (info->steps_dropped < 0xff)
			info->steps_dropped++;
	}
	if (n >= TT_CONN_MAX_STEPS) /* for the verifier */
		return;
	step = &info->steps[n];
	step->ts_ns = ts;
	step->snd_una = tp->snd_una;
	step->snd_nxt = tp->snd_nxt;
	step->rcv_nxt = tp->rcv_nxt;
	step->old_state = old;
	step->new_state = new;
	step->flags = flags;
	step->detail = detail;
	info->n_steps = n + 1;
}

/* The state_bit()s of every state on the path, for filter_pass_states(). */
static __always_inline __u32 conn_states(const struct sock_info *info)
{
	__u32 states = 0;

	for (int i = 0; i < TT_CONN_MAX_STEPS; i++) {
		if (i >= info->n_steps)
			break;
		states |= state_bit(info->steps[i].old_state) | state_bit(info->steps[i].new_state);
	}
	return states;
}

/*
 * The listener's count of accepted children, taken out of listener_accepts
 * when `take` (the listener's record is its last).
 */
static __always_inline void conn_accepted(struct tt_conn_event *ev, const struct sock_info *info,
					  bool take)
{
	__u64 key = info->listener_cookie;
	__u32 *accepted;

	if (!key)
		return;
	accepted = bpf_map_lookup_elem(&listener_accepts, &key);
	if (!accepted)
		return;
	ev->accepted = *accepted;
	ev->conn_flags |= TT_CF_ACCEPTED;
	if (take)
		bpf_map_delete_elem(&listener_accepts, &key);
}

/* Everything but the accepted count, from the storage and the socket now. */
static __always_inline void conn_fill(struct tt_conn_event *ev, const struct tt_sock *s,
				      const struct sock_info *info, const struct tcp_sock *tp,
				      __u64 cookie, __u16 err)
{
	__u32 n = info->n_steps;

	ev->hdr.kind = TT_KIND_CONN;
	ev->hdr.size = sizeof(*ev);
	ev->hdr.cpu = bpf_get_smp_processor_id();
	ev->hdr.ts_ns = 0; /* the last step's, below */
	ev->hdr.cookie = cookie;
	ev->sk = *s;
	ev->bytes_acked = tp->bytes_acked;
	ev->bytes_received = tp->bytes_received;
	ev->isn_local = info->isn_local;
	ev->isn_remote = info->isn_remote;
	ev->total_retrans = tp->total_retrans;
	ev->accepted = 0;
	ev->error = err;
	ev->resets_sent = info->resets_sent;
	ev->resets_received = info->resets_received;
	ev->n_steps = n;
	ev->steps_dropped = info->steps_dropped;
	ev->flags = info->flags & TT_F_CONN_MASK;
	ev->conn_flags = 0;
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));
	/* Constant offsets only: the iterator's value is a PTR_TO_BUF. */
	for (int i = 0; i < TT_CONN_MAX_STEPS; i++) {
		if (i < n) {
			ev->steps[i] = info->steps[i];
			ev->hdr.ts_ns = info->steps[i].ts_ns;
		} else
			__builtin_memset(&ev->steps[i], 0, sizeof(ev->steps[i]));
	}
}

#endif /* TCPTRAIL_CONN_BPF_H */
