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
#include <bpf/bpf_core_read.h>
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
	if (!tp || !fill_tuple(&ev.sk, tcp_skc(tp)))
		return 0;
	if (!ev.sk.lport)
		ev.sk.lport = info->lport;
	copy_owner(&ev.sk, info, tp);
	if (!filter_pass_states(&ev.sk, conn_states(info)))
		return 0;
	conn_fill(&ev, &ev.sk, info, tp, sock_cookie(sk), sk->sk_err);
	if (info->state == TCP_LISTEN)
		conn_accepted(&ev, info, false);
	bpf_seq_write(ctx->meta->seq, &ev, sizeof(ev));
	return 0;
}

/*
 * History mode, lazy storage: the sockets without storage (the ones connect()
 * made; every socket where the kernel keeps no paths, cfg_kernel_paths 0),
 * whose paths user space assembles from their transitions. This
 * gives their counters now, for the open records printed at --interval and
 * on exit: one counters-only tt_conn_event (TT_CF_COUNTERS, no steps) per
 * socket file descriptor, from every process, in every network namespace.
 * A socket no descriptor refers to any more (closed, not yet CLOSE) keeps
 * the counters of its last transition.
 */
SEC("iter/task_file")
int dump_unstored_counters(struct bpf_iter__task_file *ctx)
{
	struct sock *sk = task_file_tcp_sock(ctx->task, ctx->file);
	struct tt_conn_event ev = {};
	struct tcp_sock *tp;
	__u64 cookie;

	/*
	 * sk is untrusted on hardened kernels (see owners.bpf.c): plain loads
	 * and bpf_probe_read_kernel() only. A socket with any BPF storage is
	 * skipped when the kernel keeps paths (the dump above has it); a
	 * cookie never asked for means no record was ever made for it.
	 */
	if (!sk || (cfg_kernel_paths && sk->sk_bpf_storage))
		return 0;
	cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie || !fill_tuple(&ev.sk, &sk->__sk_common))
		return 0;
	tp = (struct tcp_sock *)sk;
	fill_header(&ev.hdr, TT_KIND_CONN, sizeof(ev), bpf_ktime_get_ns(), cookie);
	ev.bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	ev.bytes_received = BPF_CORE_READ(tp, bytes_received);
	ev.total_retrans = BPF_CORE_READ(tp, total_retrans);
	ev.error = sk->sk_err;
	ev.conn_flags = TT_CF_COUNTERS;
	bpf_seq_write(ctx->meta->seq, &ev, sizeof(ev));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
