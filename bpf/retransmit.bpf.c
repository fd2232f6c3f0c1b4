// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcp:tcp_retransmit_skb and tcp:tcp_retransmit_synack. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "serve.bpf.h"

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	struct tt_seg_event *ev;
	struct sock_info *info;
	struct tt_sock s = {};
	__u32 seq = 0;
	__u8 state, flags = 0;

	if (cfg_no_retransmits || !tp || !fill_tuple(&s, tcp_skc(tp)))
		return 0;
	state = sk->__sk_common.skc_state;
	bpf_probe_read_kernel(&seq, sizeof(seq), &((struct tcp_skb_cb *)skb->cb)->seq);

	info = sock_info_peek(sk);
	/* As in emit_reset(): a socket open before start, outside history. */
	if (!cfg_aggregate && seed_wanted_for(info))
		info = seed_claim(sk, info);
	if (info) {
		if (state == TCP_SYN_SENT) { /* the SYN carries the ISN */
			info->isn_local = seq;
			info->flags |= TT_F_ISN_LOCAL;
		}
		flags = info->flags;
		/* A SYN retransmit is where a connect() that times out shows
		 * its port: it reads 0 again at SYN_SENT -> CLOSE. */
		remember_lport(&s, info);
	}
	/*
	 * History mode counts retransmits with tcp_sock.total_retrans. A
	 * socket without storage still sends them: a SYN retransmit carries the
	 * local port its SYN_SENT -> CLOSE will read as 0.
	 */
	if (cfg_aggregate && cfg_kernel_paths && info)
		return 0;
	fill_owner(&s, info, tp);
	if (!filter_pass(&s, state, state))
		return 0;
	if (cfg_serve) {
		serve_seg(state == TCP_SYN_SENT ? TT_SEG_RETRANS_SYN : TT_SEG_RETRANS_DATA);
		if (cfg_serve_no_records)
			return 0;
	}

	ev = ring_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	fill_header(&ev->hdr, TT_KIND_RETRANSMIT, sizeof(*ev), bpf_ktime_get_ns(),
		    bpf_get_socket_cookie((void *)sk));
	ev->sk = s;
	ev->seq = seq;
	fill_seg_seq(ev, tp, info);
	ev->state = state;
	ev->flags = flags;
	ev->what = state == TCP_SYN_SENT ? TT_RETRANS_SYN : TT_RETRANS_DATA;
	ev->stored = info != NULL;
	ev->reason = 0;
	ring_submit(ev, sizeof(*ev));
	return 0;
}

/*
 * A SYN-ACK retransmitted for a request socket (NEW_SYN_RECV): half-open
 * connections never pass through inet_sock_set_state, so this is where a
 * listener's SYN backlog trouble shows. sk is the listener.
 */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(handle_tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	const struct tcp_request_sock *treq;
	struct tt_seg_event *ev;
	struct sock_info *info;
	struct tt_sock s = {};

	if (cfg_no_retransmits || cfg_aggregate)
		return 0;
	treq = bpf_skc_to_tcp_request_sock((void *)req); /* see skc_plain() */
	if (!treq || !fill_tuple(&s, &treq->req.req.__req_common))
		return 0;
	info = sock_info_peek(sk);
	/* The listener's cgroup, read through its alias (see sock_cgroup()). */
	fill_owner(&s, info, bpf_skc_to_tcp_sock((void *)sk));
	if (!filter_pass(&s, TCP_NEW_SYN_RECV, TCP_NEW_SYN_RECV))
		return 0;
	if (cfg_serve) {
		serve_seg(TT_SEG_RETRANS_SYNACK);
		if (cfg_serve_no_records)
			return 0;
	}

	ev = ring_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	fill_header(&ev->hdr, TT_KIND_RETRANSMIT, sizeof(*ev), bpf_ktime_get_ns(),
		    bpf_get_socket_cookie((void *)req));
	ev->sk = s;
	ev->seq = BPF_CORE_READ((struct tcp_request_sock *)req, snt_isn);
	ev->snd_una = ev->seq;
	ev->snd_nxt = ev->seq + 1;
	ev->rcv_nxt = BPF_CORE_READ((struct tcp_request_sock *)req, rcv_isn) + 1;
	ev->isn_local = ev->seq;
	ev->isn_remote = ev->rcv_nxt - 1;
	ev->state = TCP_NEW_SYN_RECV;
	ev->flags = TT_F_PASSIVE | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE | (info ? info->flags & TT_F_OWNER : 0);
	ev->what = TT_RETRANS_SYNACK;
	ev->stored = 1; /* a request socket: complete, nothing to remember */
	ev->reason = 0;
	ring_submit(ev, sizeof(*ev));
	return 0;
}
