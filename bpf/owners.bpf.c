// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Owners of the sockets that existed before tcptrail started: they never
 * showed it a process-context transition. Costs nothing at run time.
 *
 * No helper may take a socket reached from an iter/task_file file: hardened
 * kernels type file->private_data->sk as an untrusted pointer
 * (bpf_skc_to_tcp_sock(), bpf_sk_storage_get() and bpf_get_socket_cookie()
 * are refused), while plain loads through it work everywhere. So:
 *  1. seed_owner_files (iter/task_file, every process, every namespace) puts
 *     socket address -> (inode, first owner seen) into seed_owners, and
 *     gives user space a tt_iter_file record per listener (which namespaces
 *     to walk in step 2) and, per fd of a socket in the states of
 *     cfg_walk_states (diagnose's and leaks' owners: they need no walk of
 *     their own).
 *  2. Listeners get storage with their owner now, before they accept
 *     anything: a child gets a copy of its listener's storage (BPF_F_CLONE)
 *     at birth, in softirq, where no owner is on the CPU.
 *     seed_owner_socks (iter/tcp, one namespace per iterator; the socket
 *     pointer is trusted there) does it, and stops where the established
 *     table starts: iter/tcp walks the listeners first.
 *  3. Every other socket is claimed later, by the first program that meets
 *     it without an owner (seed_claim() in sock.bpf.h): start-up does not
 *     grow with the sockets a host holds open, only the fd walk does.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sock.bpf.h"

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

/*
 * Also tells user space of each listener it put in seed_owners, as a
 * tt_iter_file record (TT_FF_LISTENER): which namespaces to walk for
 * listeners; of every fd of a socket in the states of cfg_walk_states: the
 * owners diagnose and leaks ask for (the one fd walk of a tracing start,
 * see socket_owners_of() and SocketEnumerator in user/snapshot/enumerate.h).
 */
SEC("iter/task_file")
int seed_owner_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sock *sk = task_file_tcp_sock(task, file);
	struct seed_owner owner = {};
	struct tt_iter_file rec = {};
	bool seeded = false;
	__u64 key, cgroup_id;
	__u8 state;
	__u32 h;

	if (!sk)
		return 0;
	/* A socket still in CLOSE has had no connection yet: its owner is on
	 * the CPU at its connect() or listen(). */
	state = sk->__sk_common.skc_state;
	if (state == TCP_CLOSE)
		return 0;
	cgroup_id = cgroup_note(task_cgroup(task));
	owner.ino = file->f_inode->i_ino;
	owner.pid = task->tgid;
	owner.lport = sk->__sk_common.skc_num;
	owner.cgroup_id = cgroup_id;
	__builtin_memcpy(owner.comm, task->comm, sizeof(owner.comm));
	key = (__u64)sk;
	/* The first process seen holding the socket owns it (a forked child
	 * that inherited it may show up first; a later close() corrects it). */
	if (seed_wanted(sk, task->tgid, task->comm, cgroup_id) &&
	    !bpf_map_update_elem(&seed_owners, &key, &owner, BPF_NOEXIST)) {
		/* The only writer, one socket at a time: no atomic needed. */
		h = sk->__sk_common.skc_hash;
		*seed_filter_word(h) |= seed_filter_bit(h);
		seed_walked++;
		seeded = true;
	}
	/*
	 * Records: each listener seeded here, and the holders of every
	 * socket in cfg_walk_states, whatever the filters (user space
	 * applies them to the sockets it joins them with).
	 */
	if (!(seeded && state == TCP_LISTEN) && !(cfg_walk_states & state_bit(state)))
		return 0;

	/* sk is untrusted on hardened kernels: the cookie as the kernel keeps
	 * it (0 if never asked for), as dump_task_file reads it. */
	fill_header(&rec.hdr, TT_KIND_ITER_FILE, sizeof(rec), bpf_ktime_get_ns(),
		    sk->__sk_common.skc_cookie.counter);
	rec.pid = owner.pid;
	rec.fd = ctx->fd;
	rec.ino = owner.ino;
	rec.netns = net_inum(sk->__sk_common.skc_net.net);
	rec.flags = seeded && state == TCP_LISTEN ? TT_FF_LISTENER : 0;
	__builtin_memcpy(rec.comm, owner.comm, sizeof(rec.comm));
	rec.cgroup_id = cgroup_id;
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/*
 * Returns 1 at the first socket that is not a listener: the kernel then ends
 * the read() with what it has, or with EAGAIN (see seed_listeners_in()), and
 * the established table, however large, is not walked.
 */
SEC("iter/tcp")
int seed_owner_socks(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct sock_info *info;
	struct seed_owner *owner;
	struct tcp_sock *tp;
	char mark = 1;
	__u64 key;

	if (!skc)
		return 0;
	if (skc->skc_state != TCP_LISTEN)
		return 1;
	/* One byte per listener: the read() that meets the first other
	 * socket then ends with these bytes; only the next one gets EAGAIN. */
	bpf_seq_write(ctx->meta->seq, &mark, sizeof(mark));
	key = (__u64)skc;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	owner = bpf_map_lookup_elem(&seed_owners, &key);
	if (!owner)
		return 0;
	info = bpf_sk_storage_get(&sock_infos, tp, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (info && !(info->flags & TT_F_OWNER))
		seed_give(info, owner);
	bpf_map_delete_elem(&seed_owners, &key);
	return 0;
}
