/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The only ABI between tcptrail's BPF programs and user space.
 *
 * C, included by both sides. Fixed-width fields only, explicit padding, no
 * bool/enum-typed fields/pointers. Every record starts with struct tt_header;
 * the consumer checks hdr.size against the record length before copying.
 * tests/unit/abi_test.cpp static_asserts every size and key offset.
 */
#ifndef TCPTRAIL_EVENTS_H
#define TCPTRAIL_EVENTS_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define TT_COMM_LEN 16
#define TT_ADDR_LEN 16

/* tt_header.kind */
#define TT_KIND_STATE 1      /* struct tt_state_event */
#define TT_KIND_RETRANSMIT 2 /* struct tt_seg_event */
#define TT_KIND_RESET 3      /* struct tt_seg_event */
#define TT_KIND_CONN 4       /* struct tt_conn_event (history: aggregated) */
#define TT_KIND_FLUSH 5      /* struct tt_flush_event (batched mode, see there) */
#define TT_KIND_MAX 5

/* tt_state_event.flags, tt_seg_event.flags */
#define TT_F_OLD_TS (1U << 0)     /* old_state_ns is valid */
#define TT_F_ISN_LOCAL (1U << 1)  /* isn_local is valid */
#define TT_F_ISN_REMOTE (1U << 2) /* isn_remote is valid */
#define TT_F_INFERRED (1U << 3)   /* new_state inferred (TIME_WAIT) */
#define TT_F_ACTIVE (1U << 4)     /* this side sent the SYN (connect) */
#define TT_F_PASSIVE (1U << 5)    /* accepted from a listener */
#define TT_F_OWNER (1U << 6)      /* pid/comm hold a known owner */
#define TT_F_ORPHAN (1U << 7)     /* no file refers to it (closed by app) */
/* The flags that describe the connection rather than one transition: a
 * tt_conn_event's flags, and what each replayed step inherits. */
#define TT_F_CONN_MASK \
	(TT_F_ACTIVE | TT_F_PASSIVE | TT_F_OWNER | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE)

/* tt_state_event.detail: why a socket left for CLOSE / TIME_WAIT */
#define TT_DETAIL_NONE 0
#define TT_DETAIL_TW 1          /* FIN exchange done: timewait sock, TIME_WAIT */
/* 2: no longer sent (older builds' "fin_wait2_timewait", an orphaned
 * FIN_WAIT2 reported as an inferred TIME_WAIT; now TT_DETAIL_ORPHAN_FIN_WAIT2) */
#define TT_DETAIL_TW_FIN_WAIT2 2
#define TT_DETAIL_RESET_SENT 3  /* we sent RST (abort) */
#define TT_DETAIL_RESET_RCVD 4  /* peer's RST */
#define TT_DETAIL_ERROR 5       /* closed with sk_err (see error) */
/* FIN_WAIT2 -> CLOSE of an orphan without the peer's FIN: the socket lives on
 * as a timewait socket in the FIN_WAIT2 substate for tcp_fin_timeout */
#define TT_DETAIL_ORPHAN_FIN_WAIT2 6

/* tt_seg_event.what for TT_KIND_RETRANSMIT */
#define TT_RETRANS_DATA 1   /* tcp_retransmit_skb on a full socket */
#define TT_RETRANS_SYN 2    /* tcp_retransmit_skb in SYN_SENT */
#define TT_RETRANS_SYNACK 3 /* tcp_retransmit_synack (request socket) */
/* tt_seg_event.what for TT_KIND_RESET */
#define TT_RESET_SENT 1
#define TT_RESET_RECEIVED 2

/* In-kernel filter tables (rodata cfg_* arrays) and their entry type. */
#define TT_MAX_FILTER_PIDS 8
#define TT_MAX_FILTER_PORTS 16
#define TT_MAX_FILTER_CIDRS 8

struct tt_cidr {
	__u8 af; /* 4 or 6 */
	__u8 prefix_len;
	__u8 _pad[2];
	__u8 addr[TT_ADDR_LEN]; /* host bits cleared */
};

/* 24 bytes, at offset 0 of every record. */
struct tt_header {
	__u16 kind;
	__u16 size;   /* sizeof the whole record */
	__u32 cpu;    /* CPU the event was produced on */
	__u64 ts_ns;  /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 cookie; /* socket cookie: the identity of a socket */
};

/* 96 bytes: the socket's attributes at the time of the event. */
struct tt_sock {
	__u8 laddr[TT_ADDR_LEN]; /* IPv4 in the first 4 bytes when af == 4 */
	__u8 raddr[TT_ADDR_LEN];
	__u16 lport; /* host byte order; 0 at CLOSE -> SYN_SENT */
	__u16 rport;
	__u8 af; /* 4 or 6 */
	__u8 _pad0[3];
	__u32 netns;   /* network namespace inode */
	__u32 pid;     /* owner process (tgid), 0 when unknown */
	__u32 cpu_pid; /* task on the CPU when the event happened (tgid) */
	__u32 _pad1;
	char comm[TT_COMM_LEN];     /* owner's comm, "" when unknown */
	char cpu_comm[TT_COMM_LEN]; /* on-CPU task's comm */
	/*
	 * The owner's cgroup (v2) id, 0 when unknown: the cgroup of the task
	 * that became the owner (pid), taken with it; for a socket with no
	 * owner in storage, the cgroup of the task that created it (the
	 * socket's sk_cgrp_data; an accepted socket's is its listener's).
	 */
	__u64 cgroup_id;
};

/* 176 bytes: TT_KIND_STATE, one per inet_sock_set_state (TCP only). */
struct tt_state_event {
	struct tt_header hdr;
	struct tt_sock sk;
	__u64 old_state_ns; /* time spent in old_state, if TT_F_OLD_TS */
	__u64 bytes_acked;  /* tcp_sock.bytes_acked (RFC 4898) */
	__u64 bytes_received;
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 isn_local;  /* if TT_F_ISN_LOCAL */
	__u32 isn_remote; /* if TT_F_ISN_REMOTE */
	__u32 total_retrans;
	__u16 error; /* sk_err (positive errno) on transitions into CLOSE */
	__u8 old_state;
	__u8 new_state;
	__u8 flags;
	__u8 detail; /* TT_DETAIL_* */
	__u8 stored; /* 1: the kernel keeps this socket's state (socket storage) */
	__u8 _pad;
};

/*
 * Batched mode (TracerConfig::batch): the state program stages its records
 * per CPU and sends TT_STAGE_RECORDS of them as one ring record, back to
 * back, each with its own header. A ring record may therefore hold several
 * records; hdr.size says where the next one starts.
 */
#define TT_STAGE_RECORDS 16

/*
 * 32 bytes: TT_KIND_FLUSH, batched mode only. The flush program, run on
 * hdr.cpu, sent that CPU's staged records (`records` of them) and then took
 * hdr.ts_ns. Every record made on hdr.cpu with an earlier timestamp is in
 * the ring before this one: user space releases records in timestamp order
 * up to the oldest of the CPUs' latest flush marks. hdr.cookie is 0.
 */
struct tt_flush_event {
	struct tt_header hdr;
	__u32 records;
	__u32 _pad;
};

/* 152 bytes: TT_KIND_RETRANSMIT and TT_KIND_RESET. */
struct tt_seg_event {
	struct tt_header hdr;
	struct tt_sock sk;
	__u32 seq; /* sequence number of the segment (retransmit) */
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 isn_local;
	__u32 isn_remote;
	__u8 state; /* socket state at the event */
	__u8 flags;
	__u8 what; /* TT_RETRANS_* or TT_RESET_* */
	__u8 stored; /* as tt_state_event.stored */
	__u32 reason; /* kernel's sk_rst_reason for RST sent, else 0 */
};

/*
 * History mode (TracerConfig::aggregate): the state program keeps each
 * socket's path in its socket storage and sends one tt_conn_event when the
 * connection ends (CLOSE, inferred TIME_WAIT, a listener's LISTEN -> CLOSE),
 * instead of one tt_state_event per transition. Connections still open are
 * dumped in the same form by the iter/bpf_sk_storage_map program.
 */
#define TT_CONN_MAX_STEPS 6 /* the first step and the latest 5 */

/* tt_conn_event.conn_flags */
#define TT_CF_ENDED (1U << 0)    /* the last step ends the connection */
#define TT_CF_ACCEPTED (1U << 1) /* accepted is known (listener seen entering LISTEN) */
/* No steps: the counters now of a socket without storage (history's lazy
 * mode), whose path user space assembles; from dump_unstored_counters. */
#define TT_CF_COUNTERS (1U << 2)

/* 24 bytes: one transition of the path. */
struct tt_conn_step {
	__u64 ts_ns; /* bpf_ktime_get_ns() of the transition */
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u8 old_state;
	__u8 new_state;
	__u8 flags;  /* TT_F_* of the transition (TT_F_INFERRED, ...) */
	__u8 detail; /* TT_DETAIL_* */
};

/* 312 bytes: TT_KIND_CONN. hdr.ts_ns is the last step's time. */
struct tt_conn_event {
	struct tt_header hdr;
	struct tt_sock sk; /* tuple (lport remembered), owner, on-CPU task at the last step */
	__u64 bytes_acked; /* tcp_sock counters at the last step */
	__u64 bytes_received;
	__u32 isn_local;  /* if TT_F_ISN_LOCAL in flags */
	__u32 isn_remote; /* if TT_F_ISN_REMOTE in flags */
	__u32 total_retrans;
	__u32 accepted; /* listener: children that reached ESTABLISHED, if TT_CF_ACCEPTED */
	__u16 error;    /* sk_err at the last step (positive errno) */
	__u16 resets_sent;
	__u16 resets_received;
	__u8 n_steps;       /* valid entries of steps, in order */
	__u8 steps_dropped; /* steps dropped after the first (path longer than the array) */
	__u8 flags;         /* TT_F_ACTIVE, TT_F_PASSIVE, TT_F_OWNER, TT_F_ISN_* */
	__u8 conn_flags;    /* TT_CF_* */
	__u8 _pad[6];
	struct tt_conn_step steps[TT_CONN_MAX_STEPS];
};

/*
 * Snapshot records: written by the BPF iterators (bpf/iter.bpf.c) with
 * bpf_seq_write and read from the iterator's fd, never from the ring. They
 * start with tt_header too (ts_ns: when the record was dumped).
 */
#define TT_KIND_ITER_SOCK 16 /* struct tt_iter_sock, from iter/tcp */
#define TT_KIND_ITER_FILE 17 /* struct tt_iter_file, from iter/task_file */

/* tt_iter_file.flags */
#define TT_FF_LISTENER (1U << 0) /* a listener the owner seeding's walk seeded */

/* tt_iter_sock.sk_kind: which kind of socket the iterator saw */
#define TT_SK_FULL 1     /* struct tcp_sock */
#define TT_SK_TIMEWAIT 2 /* struct tcp_timewait_sock: state is tw_substate */
#define TT_SK_REQUEST 3  /* struct request_sock: NEW_SYN_RECV */

/* tt_iter_sock.flags */
#define TT_IF_OWNER (1U << 0)    /* pid/comm from socket storage (tracer's owner) */
#define TT_IF_STATE_TS (1U << 1) /* state_ts: storage saw the current state entered */
#define TT_IF_ORPHAN (1U << 2)   /* SOCK_DEAD: no file refers to it */
#define TT_IF_ACTIVITY (1U << 3) /* rcv_tstamp, mstamp_ns valid (full socket) */

/* 160 bytes: one TCP socket of the iterator's network namespace. */
struct tt_iter_sock {
	struct tt_header hdr; /* cookie: bpf_get_socket_cookie() */
	__u8 laddr[TT_ADDR_LEN];
	__u8 raddr[TT_ADDR_LEN];
	__u16 lport; /* host byte order */
	__u16 rport;
	__u8 af;      /* 4 or 6 */
	__u8 state;   /* TCP state (timewait: tw_substate) */
	__u8 sk_kind; /* TT_SK_* */
	__u8 flags;   /* TT_IF_* */
	__u32 netns;  /* network namespace inode */
	__u32 pid;    /* owner tgid from storage if TT_IF_OWNER */
	__u64 ino;    /* socket inode (sock_i_ino), 0 when orphaned */
	__u32 rx_queue; /* as ss: LISTEN: accept backlog; else unread bytes */
	__u32 tx_queue; /* LISTEN: max backlog; else unacked + unsent bytes */
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 rcv_tstamp; /* tcp_sock.rcv_tstamp: jiffies (u32) of the last ACK taken */
	__u32 uid;        /* sock_i_uid */
	__u32 hz;         /* CONFIG_HZ as libbpf found it, 0 when unknown */
	__u64 state_ts;   /* bpf_ktime_get_ns() the state was entered, if TT_IF_STATE_TS */
	__u64 jiffies;    /* bpf_jiffies64() at dump time */
	__u64 mstamp_ns;  /* tcp_sock.tcp_mstamp (CLOCK_MONOTONIC us) * 1000 */
	char comm[TT_COMM_LEN]; /* owner comm from storage if TT_IF_OWNER */
	/* Full sockets: the owner's cgroup (v2) id from storage if TT_IF_OWNER,
	 * else the socket's creator's (sk_cgrp_data); 0 when unknown. */
	__u64 cgroup_id;
};

/* 72 bytes: one socket file descriptor of a process (iter/task_file). */
struct tt_iter_file {
	struct tt_header hdr; /* cookie: the socket's */
	__u32 pid;            /* tgid */
	__u32 fd;
	__u64 ino;   /* socket inode */
	__u32 netns; /* the socket's network namespace inode */
	__u32 flags; /* TT_FF_* */
	char comm[TT_COMM_LEN];
	__u64 cgroup_id; /* the process's cgroup (v2) id, 0 when unknown */
};

/*
 * tcptrail serve: counters and histograms aggregated in the kernel, in the
 * per-CPU array serve_stats (one entry, one struct per CPU). A scrape reads
 * every CPU's copy and adds them up; nothing goes through the ring.
 */
#define TT_SERVE_STATES 16 /* transitions[from][to], TCP state values */
#define TT_SERVE_ROLES 3   /* ends[role][...]: TT_ROLE_* */
#define TT_SERVE_ENDS 8    /* ends[...][end]: TT_END_* */
#define TT_SERVE_HISTS 5   /* hist[h][...]: TT_HIST_* */
#define TT_SERVE_BUCKETS 64 /* hist[...][b]: ns in [2^b, 2^(b+1)), b = 0: < 2 ns */
#define TT_SERVE_SEGS 8    /* segs[]: TT_SEG_* */

/* ends[role]: who opened the connection (history's ConnRole) */
#define TT_ROLE_UNKNOWN 0
#define TT_ROLE_ACTIVE 1
#define TT_ROLE_PASSIVE 2

/* ends[][end]: how it ended; history's ConnEnd values (user/history/record.h) */
#define TT_END_CLOSED 0
#define TT_END_RESET_SENT 1
#define TT_END_RESET_RECEIVED 2
#define TT_END_REFUSED 3
#define TT_END_TIMEOUT 4
#define TT_END_ORPHAN_FIN_WAIT2 6

/* hist[h] */
#define TT_HIST_HANDSHAKE_ACTIVE 0  /* SYN_SENT -> ESTABLISHED */
#define TT_HIST_HANDSHAKE_PASSIVE 1 /* SYN_RECV -> ESTABLISHED */
#define TT_HIST_LIFETIME 2          /* SYN_SENT / SYN_RECV entered -> end */
#define TT_HIST_CLOSE_WAIT 3        /* time in CLOSE_WAIT */
#define TT_HIST_FIN_WAIT2 4         /* time in FIN_WAIT2 */

/* segs[] */
#define TT_SEG_RETRANS_DATA 0
#define TT_SEG_RETRANS_SYN 1
#define TT_SEG_RETRANS_SYNACK 2
#define TT_SEG_RST_SENT 3
#define TT_SEG_RST_RECEIVED 4

/* 4,928 bytes per CPU. */
struct tt_serve_stats {
	__u64 transitions[TT_SERVE_STATES][TT_SERVE_STATES];
	__u64 ends[TT_SERVE_ROLES][TT_SERVE_ENDS];
	__u64 segs[TT_SERVE_SEGS];
	__u64 hist_sum_ns[TT_SERVE_HISTS];
	__u64 _pad[3];
	__u64 hist[TT_SERVE_HISTS][TT_SERVE_BUCKETS];
};

#endif /* TCPTRAIL_EVENTS_H */
