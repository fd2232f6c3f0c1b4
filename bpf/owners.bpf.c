// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Seeds socket storage with owners at start-up: sockets (listeners above
 * all) that existed before tcptrail started never showed it a process-
 * context transition. Children accepted later inherit the owner via
 * BPF_F_CLONE. Costs nothing at run time.
 *
 * Two passes, because no helper may take a socket reached from an
 * iter/task_file file: hardened kernels type file->private_data->sk as an
 * untrusted pointer (bpf_skc_to_tcp_sock(), bpf_sk_storage_get() and
 * bpf_get_socket_cookie() are refused), while plain loads through it work
 * everywhere.
 *  1. seed_owner_files (iter/task_file, every process, every namespace):
 *     socket inode -> first owner seen, into seed_owners_by_ino; one u32 per
 *     socket (its network namespace) goes to the seq file, so user space
 *     knows which namespaces to visit.
 *  2. seed_owner_socks (iter/tcp, one namespace per iterator): the socket
 *     pointer is trusted there; storage is made for each socket found in
 *     the map, and the entry is deleted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sock.bpf.h"

__u64 seeded_sockets __weak = 0;

/* Bounds the kernel memory the seeding may take (entries are allocated on
 * demand and deleted by pass 2); sockets past it start with no owner. */
#define SEED_MAX_SOCKETS (256 * 1024)

struct seed_owner {
	__u32 pid;
	__u32 _pad;
	char comm[TT_COMM_LEN];
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SEED_MAX_SOCKETS);
	__type(key, __u64); /* socket inode */
	__type(value, struct seed_owner);
} seed_owners_by_ino SEC(".maps") __weak;

/*
 * The user's filters that can exclude a socket for all its life and its
 * children's: family, namespace, owner, local port; remote end and local
 * address too, except for a listener (its children have other ones).
 */
static __always_inline bool seed_wanted(const struct sock *sk, __u32 tgid, const char *comm,
					__u64 cgroup_id)
{
	struct tt_sock s = {};
	bool listener = sk->__sk_common.skc_state == TCP_LISTEN;

	if (!fill_tuple(&s, &sk->__sk_common))
		return false;
	if (cfg_af && s.af != cfg_af)
		return false;
	if (cfg_netns && s.netns != cfg_netns)
		return false;
	if (!owner_allowed(tgid, comm, cgroup_id))
		return false;
	if (cfg_n_lports && !ports_match(cfg_lports, cfg_n_lports, s.lport))
		return false;
	if (listener)
		return true;
	if (cfg_n_rports && !ports_match(cfg_rports, cfg_n_rports, s.rport))
		return false;
	if (cfg_n_laddrs && !cidrs_match(cfg_laddrs, cfg_n_laddrs, s.af, s.laddr))
		return false;
	if (cfg_n_raddrs && !cidrs_match(cfg_raddrs, cfg_n_raddrs, s.af, s.raddr))
		return false;
	return true;
}

SEC("iter/task_file")
int seed_owner_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sock *sk = task_file_tcp_sock(task, file);
	struct seed_owner owner = {};
	__u64 ino, cgroup_id;
	__u32 netns;

	if (!sk)
		return 0;
	cgroup_id = cgroup_note(task_cgroup(task));
	if (!seed_wanted(sk, task->tgid, task->comm, cgroup_id))
		return 0;
	ino = file->f_inode->i_ino;
	owner.pid = task->tgid;
	owner.cgroup_id = cgroup_id;
	__builtin_memcpy(owner.comm, task->comm, sizeof(owner.comm));
	/* The first process seen holding the socket owns it (a forked child
	 * that inherited it may show up first; a later close() corrects it). */
	if (bpf_map_update_elem(&seed_owners_by_ino, &ino, &owner, BPF_NOEXIST))
		return 0;
	netns = net_inum(sk->__sk_common.skc_net.net);
	bpf_seq_write(ctx->meta->seq, &netns, sizeof(netns));
	return 0;
}

SEC("iter/tcp")
int seed_owner_socks(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seed_owner *owner;
	struct sock_info *info;
	struct tcp_sock *tp;
	struct socket *so;
	struct sock *sk;
	__u64 ino;

	if (!skc || skc->skc_state == TCP_TIME_WAIT || skc->skc_state == TCP_NEW_SYN_RECV)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = (struct sock *)tp;
	so = sk->sk_socket;
	if (!so || !so->file)
		return 0;
	ino = so->file->f_inode->i_ino;
	owner = bpf_map_lookup_elem(&seed_owners_by_ino, &ino);
	if (!owner)
		return 0;
	info = bpf_sk_storage_get(&sock_infos, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (info && !(info->flags & TT_F_OWNER)) {
		info->pid = owner->pid;
		__builtin_memcpy(info->comm, owner->comm, sizeof(info->comm));
		info->cgroup_id = owner->cgroup_id;
		info->flags |= TT_F_OWNER;
		info->lport = sk->__sk_common.skc_num;
		__sync_fetch_and_add(&seeded_sockets, 1);
	}
	bpf_map_delete_elem(&seed_owners_by_ino, &ino);
	return 0;
}
