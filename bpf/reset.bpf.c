// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcp:tcp_send_reset and tcp:tcp_receive_reset. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "serve.bpf.h"

#define TCP_FLAG_ACK_BIT 0x10

/*
 * The four-tuple of the RST we answer `skb` with, from the segment itself:
 * used when no socket exists (a closed port: the textbook RST).
 */
static __always_inline bool tuple_from_skb(struct tt_sock *s, const struct sk_buff *skb,
					   __u32 *seq)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	struct tcphdr tcp;
	__u8 ver = 0;

	if (bpf_probe_read_kernel(&ver, 1, head + nh))
		return false;
	ver >>= 4;
	if (ver == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return false;
		s->af = 4;
		*(__u32 *)s->laddr = ip.daddr;
		*(__u32 *)s->raddr = ip.saddr;
	} else if (ver == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return false;
		s->af = 6;
		__builtin_memcpy(s->laddr, &ip6.daddr, TT_ADDR_LEN);
		__builtin_memcpy(s->raddr, &ip6.saddr, TT_ADDR_LEN);
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return false;
	s->lport = bpf_ntohs(tcp.dest);
	s->rport = bpf_ntohs(tcp.source);
	/* RFC 793: the RST takes its seq from the offending segment's ACK. */
	*seq = (((__u8 *)&tcp)[13] & TCP_FLAG_ACK_BIT) ? bpf_ntohl(tcp.ack_seq) : 0;
	s->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	return true;
}

static __always_inline int emit_reset(const struct sock *sk, struct tt_sock *s, __u8 what,
				      __u32 reason, __u32 seq, __u8 state)
{
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock((void *)sk) : NULL;
	struct sock_info *info = NULL;
	struct tt_seg_event *ev;

	if (tp) {
		info = sock_info_peek(sk);
		/* Outside history, where the state program claims (the
		 * record is the connection's), a socket open before start
		 * may meet its first program here. */
		if (!cfg_aggregate && state != TCP_CLOSE && seed_wanted_for(info))
			info = seed_claim(sk, info);
		if (info) {
			info->si_flags |= what == TT_RESET_SENT ? SI_RST_SENT : SI_RST_RCVD;
			if (cfg_aggregate && cfg_kernel_paths && info->n_steps) {
				/* History mode: counted into the connection's record. */
				if (what == TT_RESET_SENT)
					info->resets_sent++;
				else
					info->resets_received++;
				return 0;
			}
			remember_lport(s, info);
			if (state == TCP_SYN_SENT && tp->snd_nxt) { /* the SYN's seq */
				info->isn_local = tp->snd_nxt - 1;
				info->flags |= TT_F_ISN_LOCAL;
			}
		}
	}
	/*
	 * History mode sends the RST of a full socket only: one whose record
	 * is already out (an abort: CLOSE comes first, then the RST), for user
	 * space to count within its grace period, or one without storage,
	 * whose path user space assembles.
	 */
	if (cfg_aggregate && !tp)
		return 0;
	fill_owner(s, info, tp);
	if (!filter_pass(s, state, state))
		return 0;
	if (cfg_serve) {
		serve_seg(what == TT_RESET_SENT ? TT_SEG_RST_SENT : TT_SEG_RST_RECEIVED);
		if (what == TT_RESET_SENT && state == TCP_CLOSE)
			serve_abort_rst(info);
		if (cfg_serve_no_records)
			return 0;
	}

	ev = ring_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	fill_header(&ev->hdr, TT_KIND_RESET, sizeof(*ev), bpf_ktime_get_ns(),
		    sk ? bpf_get_socket_cookie((void *)sk) : 0);
	ev->sk = *s;
	ev->seq = tp ? tp->snd_nxt : seq;
	fill_seg_seq(ev, tp, info);
	ev->state = state;
	ev->flags = info ? info->flags : 0;
	ev->what = what;
	ev->stored = info != NULL;
	ev->reason = reason;
	ring_submit(ev, sizeof(*ev));
	return 0;
}

/*
 * sk is a full socket (an abort), a request or timewait socket, or NULL:
 * no socket for the segment (a closed port). skb is the segment answered,
 * NULL for an active reset.
 */
SEC("tp_btf/tcp_send_reset")
int handle_tcp_send_reset(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	struct tt_sock s = {};
	__u32 reason = 0, seq = 0;
	__u8 state = TCP_CLOSE;

	if (cfg_no_resets)
		return 0;
	if (have_rst_reason())
		reason = (__u32)ctx[2];
	if (sk) {
		const struct sock_common *skc = skc_plain(&sk->__sk_common);

		if (!skc || !fill_tuple(&s, skc))
			return 0;
		state = sk->__sk_common.skc_state;
	} else if (!skb || !tuple_from_skb(&s, skb, &seq)) {
		return 0;
	}
	return emit_reset(sk, &s, TT_RESET_SENT, reason, seq, state);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_tcp_receive_reset, const struct sock *sk)
{
	const struct sock_common *skc;
	struct tt_sock s = {};

	if (cfg_no_resets)
		return 0;
	skc = skc_plain(&sk->__sk_common);
	if (!skc || !fill_tuple(&s, skc))
		return 0;
	return emit_reset(sk, &s, TT_RESET_RECEIVED, 0, 0, sk->__sk_common.skc_state);
}
