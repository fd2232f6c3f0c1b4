// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * History mode: the connections still open, from socket storage. A map
 * iterator visits every socket that has a sock_infos entry, in every network
 * namespace, with no per-namespace setns() as iter/tcp needs. Run by user
 * space at each --interval and on exit; records are the state program's
 * tt_conn_event without TT_CF_ENDED. Reads race with the state program on
 * another CPU: a path being extended may show one step less.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "conn.bpf.h"

SEC("iter/bpf_sk_storage_map")
int dump_open_conns(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct sock_info *info = ctx->value;
	struct sock *sk = ctx->sk;
	struct tt_conn_event ev = {};
	struct tcp_sock *tp;

	if (!sk || !info || !info->n_steps)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp || !fill_tuple(&ev.sk, &sk->__sk_common))
		return 0;
	if (!ev.sk.lport)
		ev.sk.lport = info->lport;
	copy_owner(&ev.sk, info);
	if (!filter_pass_states(&ev.sk, conn_states(info)))
		return 0;
	conn_fill(&ev, &ev.sk, info, tp, sock_cookie(sk), sk->sk_err);
	if (info->state == TCP_LISTEN)
		conn_accepted(&ev, info, false);
	bpf_seq_write(ctx->meta->seq, &ev, sizeof(ev));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
