// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * BPF iterators for `tcptrail snapshot` and `tcptrail leaks`: never attached
 * by the skeleton; user/bpf/iter.cpp creates a link and an iterator fd on
 * demand and reads the fixed-size records these programs bpf_seq_write().
 *
 * iter/tcp: every TCP socket (full, timewait, request) of the network
 *   namespace of the task that created the iterator fd.
 * iter/task_file: every socket file descriptor of every process, to join
 *   sockets with their owners (pid, comm, fd) by cookie. (Seeding socket
 *   storage with owners for the live tracer is bpf/owners.bpf.c's job.)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sock.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";


/*
 * libbpf fills this from /proc/config.gz or /boot/config-$(uname -r); 0 when
 * neither exists. User space then calibrates HZ from bpf_jiffies64() itself.
 */
extern unsigned int CONFIG_HZ __kconfig __weak;

/*
 * Whether a walk reports this socket: the user's filters but the owner ones
 * (user space matches --pid and --comm against every fd's holder), so that
 * what the consumer would drop is never written. snapshot, leaks and serve
 * all filter rows by the socket's current state. Listeners always pass:
 * leaks tells passive ends by them, and they are few.
 */
static __always_inline bool iter_wanted(const struct tt_sock *s, __u8 state)
{
	if (state == TCP_LISTEN)
		return true;
	if (cfg_af && s->af != cfg_af)
		return false;
	if (cfg_netns && s->netns != cfg_netns)
		return false;
	if (cfg_state_mask && !(cfg_state_mask & state_bit(state)))
		return false;
	return endpoints_allowed(s, false);
}

/*
 * The state filter alone, on skc_state, before the socket is read at all: a
 * timewait socket's state is its substate (TIME_WAIT or FIN_WAIT2), known
 * only later. A host's TIME_WAIT sockets can outnumber the rest.
 */
static __always_inline bool iter_state_may_pass(__u8 state)
{
	if (!cfg_state_mask || state == TCP_LISTEN)
		return true;
	if (state == TCP_TIME_WAIT)
		return cfg_state_mask & (state_bit(TCP_TIME_WAIT) | state_bit(TCP_FIN_WAIT2));
	return cfg_state_mask & state_bit(state);
}

/*
 * The age lower bound for a socket tcptrail did not see entering its state.
 * Two witnesses of the last activity on the socket travel with each record;
 * user space takes the later one (the smaller age), so the bound holds as
 * long as either witness is never older than the state entry:
 *
 * - tcp_sock.tcp_mstamp (CLOCK_MONOTONIC us, like bpf_ktime_get_ns()):
 *   tcp_mstamp_refresh() sets it to the current time, only ever forward,
 *   at the start of every received segment (tcp_rcv_established(),
 *   tcp_rcv_state_process()) and of every transmission (tcp_write_xmit()).
 * - tcp_sock.rcv_tstamp (jiffies): tcp_ack() sets it to tcp_jiffies32 for
 *   every ACK that is not older than snd_una (the "old_ack" path skips it).
 *
 * CLOSE_WAIT is entered only by tcp_fin(), called from tcp_data_queue()
 * while the peer's FIN segment is processed: tcp_rcv_established() (fast
 * path ineligible with FIN set) refreshes tcp_mstamp, calls tcp_ack() (which
 * stamps rcv_tstamp unless the FIN carries an old ACK), then tcp_data_queue()
 * -> tcp_fin() -> tcp_set_state(TCP_CLOSE_WAIT). Everything the socket
 * receives or sends later only moves both stamps forward. So at any later
 * time, now - stamp <= now - (state entry) + d, where d is the time from the
 * start of processing that one segment to its tcp_set_state() (the same
 * softirq or release_sock() call, microseconds). User space subtracts one
 * jiffy from the rcv_tstamp age (tick granularity) and 1 ms from the
 * tcp_mstamp age (d), and reports the smaller as the lower bound. The old-ACK
 * case (a FIN reordered behind a later pure ACK of the peer) leaves
 * rcv_tstamp earlier than the entry, but not tcp_mstamp, and the smaller age
 * wins.
 * FIN_WAIT2 is entered on the ACK of our FIN (tcp_rcv_state_process(), after
 * tcp_ack() and the refresh): the same argument. LAST_ACK, FIN_WAIT1 and
 * CLOSING are entered by close()/shutdown() or on the peer's FIN, and then
 * our FIN goes out through tcp_write_xmit(), which refreshes tcp_mstamp after
 * the state change; rcv_tstamp can be older there, the smaller age wins.
 * User space trusts the bound for these states only.
 */
SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	const struct sock_common *plain;
	struct tt_iter_sock rec = {};
	struct tt_sock tuple = {};
	struct tcp_timewait_sock *tw = NULL;
	struct tcp_request_sock *req;
	struct tcp_sock *tp;
	struct sock_info *info;
	struct socket *so;
	struct sock *sk;

	if (!skc)
		return 0; /* end of iteration */
	if (!iter_state_may_pass(skc->skc_state))
		return 0;
	plain = skc_plain(skc);
	if (!plain || !fill_tuple(&tuple, plain))
		return 0;
	/* How bpf_iter_tcp4.c in the kernel's selftests tells them apart. */
	rec.state = skc->skc_state;
	if (rec.state == TCP_TIME_WAIT) {
		tw = bpf_skc_to_tcp_timewait_sock(skc);
		if (!tw)
			return 0;
		rec.state = tw->tw_sk.tw_substate;
	}
	if (!iter_wanted(&tuple, rec.state))
		return 0;
	__builtin_memcpy(rec.laddr, tuple.laddr, sizeof(rec.laddr));
	__builtin_memcpy(rec.raddr, tuple.raddr, sizeof(rec.raddr));
	rec.lport = tuple.lport;
	rec.rport = tuple.rport;
	rec.af = tuple.af;
	rec.netns = tuple.netns;
	rec.hz = CONFIG_HZ;
	rec.jiffies = bpf_jiffies64();

	if (tw) {
		rec.sk_kind = TT_SK_TIMEWAIT;
		/*
		 * The timewait seq state lives in sock_common on this kernel
		 * (skc_tw_snd_nxt/skc_tw_rcv_nxt); kernels that kept it in
		 * tcp_timewait_sock get zeros rather than a load failure.
		 */
		if (bpf_core_field_exists(skc->skc_tw_snd_nxt)) {
			rec.snd_nxt = tw->tw_sk.__tw_common.skc_tw_snd_nxt;
			rec.rcv_nxt = tw->tw_sk.__tw_common.skc_tw_rcv_nxt;
			rec.snd_una = rec.snd_nxt;
		}
	} else if (rec.state == TCP_NEW_SYN_RECV) {
		req = bpf_skc_to_tcp_request_sock(skc);
		if (!req)
			return 0;
		rec.sk_kind = TT_SK_REQUEST;
		rec.snd_una = req->snt_isn + 1;
		rec.snd_nxt = req->snt_isn + 1;
		rec.rcv_nxt = req->rcv_isn + 1;
	} else {
		tp = bpf_skc_to_tcp_sock(skc);
		if (!tp)
			return 0;
		sk = (struct sock *)tp;
		rec.sk_kind = TT_SK_FULL;
		rec.snd_una = tp->snd_una;
		rec.snd_nxt = tp->snd_nxt;
		rec.rcv_nxt = tp->rcv_nxt;
		rec.rcv_tstamp = tp->rcv_tstamp;
		rec.mstamp_ns = tp->tcp_mstamp * 1000;
		rec.flags |= TT_IF_ACTIVITY;
		if (rec.state == TCP_LISTEN) {
			rec.rx_queue = sk->sk_ack_backlog;
			rec.tx_queue = sk->sk_max_ack_backlog;
		} else {
			int rx = tp->rcv_nxt - tp->copied_seq;

			rec.rx_queue = rx > 0 ? rx : 0;
			rec.tx_queue = tp->write_seq - tp->snd_una;
		}
		rec.uid = sk->sk_uid.val;
		if (sock_flag_dead(sk))
			rec.flags |= TT_IF_ORPHAN;
		/* sock_i_ino(): SOCK_INODE(sk->sk_socket), the file's inode */
		so = sk->sk_socket;
		if (so && so->file)
			rec.ino = so->file->f_inode->i_ino;

		info = bpf_sk_storage_get(&sock_infos, sk, NULL, 0);
		/*
		 * A socket open before start that no program has met yet: the
		 * owner the start-up fd walk found (leaks enumerates right
		 * after attach), claimed as a tracing program claims it.
		 * Without seeds pending (snapshot), not even asked.
		 */
		if (seed_wanted_for(info))
			info = seed_claim(sk, info);
		if (info) {
			if (info->flags & TT_F_OWNER) {
				rec.pid = info->pid;
				__builtin_memcpy(rec.comm, info->comm, sizeof(rec.comm));
				rec.cgroup_id = info->cgroup_id;
				rec.flags |= TT_IF_OWNER;
			}
			if (info->state_ts && info->state == rec.state) {
				rec.state_ts = info->state_ts;
				rec.flags |= TT_IF_STATE_TS;
			}
		}
		if (!rec.cgroup_id)
			rec.cgroup_id = sock_cgroup_id(tp);
	}

	rec.hdr.kind = TT_KIND_ITER_SOCK;
	rec.hdr.size = sizeof(rec);
	rec.hdr.cpu = bpf_get_smp_processor_id();
	rec.hdr.ts_ns = bpf_ktime_get_ns();
	rec.hdr.cookie = bpf_get_socket_cookie(skc);
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

/*
 * One record per TCP socket file descriptor (see task_file_tcp_sock() for
 * which threads' tables are read); a thread with a table of its own names its
 * process (tgid), as a tgid == pid test would lose its sockets.
 */
SEC("iter/task_file")
int dump_task_file(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tt_iter_file rec = {};
	struct sock *sk = task_file_tcp_sock(task, file);
	struct tt_sock tuple = {};

	if (!sk || !fill_tuple(&tuple, &sk->__sk_common) ||
	    !iter_wanted(&tuple, sk->__sk_common.skc_state))
		return 0;
	/* sk is untrusted on hardened kernels: no helper may take it, so the
	 * cookie is read where the kernel keeps it (0 if never asked for; user
	 * space then joins by inode). */
	fill_header(&rec.hdr, TT_KIND_ITER_FILE, sizeof(rec), bpf_ktime_get_ns(),
		    sk->__sk_common.skc_cookie.counter);
	rec.pid = task->tgid;
	rec.fd = ctx->fd;
	rec.ino = file->f_inode->i_ino;
	rec.netns = tuple.netns;
	__builtin_memcpy(rec.comm, task->comm, sizeof(rec.comm));
	rec.cgroup_id = cgroup_id_of(task_cgroup(task));
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}
