// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Seeds socket storage with owners at start-up: sockets (listeners above
 * all) that existed before tcptrail started never showed it a process-
 * context transition. Run once through an iterator over every task's files;
 * children accepted later inherit the owner via BPF_F_CLONE. Costs nothing
 * at run time.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sock.bpf.h"

__u64 seeded_sockets __weak = 0;

SEC("iter/task_file")
int seed_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sock_info *info;
	struct socket *sock;
	struct tcp_sock *tp;
	struct sock *sk;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	if (!tp)
		return 0;
	info = bpf_sk_storage_get(&sock_infos, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!info || (info->flags & TT_F_OWNER))
		return 0;
	/* First process seen holding the socket owns it (a forked child that
	 * inherited it may show up first; a later close() corrects it). */
	info->pid = task->tgid;
	__builtin_memcpy(info->comm, task->comm, sizeof(info->comm));
	info->flags |= TT_F_OWNER;
	info->lport = sk->__sk_common.skc_num;
	__sync_fetch_and_add(&seeded_sockets, 1);
	return 0;
}
