/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel differences, resolved with CO-RE at load time. Each names the kernel
 * change it handles; none compares version numbers.
 */
#ifndef TCPTRAIL_CORE_FIXES_BPF_H
#define TCPTRAIL_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>

/*
 * struct net's inode moved into struct ns_common with commit 435d5f4bb2cc
 * ("common object embedded into various struct ....ns"), long before BTF,
 * so it is always net->ns.inum on kernels tcptrail can run on.
 */
static __always_inline __u32 net_inum(const struct net *net)
{
	return net->ns.inum;
}

/*
 * The last namespace this CPU looked up: net_cookie -> inode. ns.inum sits
 * in the cache line of the namespace's reference count, which every socket
 * created or freed in it writes: under a connection storm that load stalls
 * (80 of the state program's 1,337 perf samples
 * landed right after that load).
 * net_cookie is read-mostly, elsewhere in struct net, and never reused for
 * another namespace, so a match cannot return a stale inode.
 */
struct netns_cache_entry {
	__u64 cookie;
	__u32 inum;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netns_cache_entry);
} netns_cache SEC(".maps") __weak;

/*
 * net_cookie exists since 5.7 (an atomic64_t made on first use until 5.14,
 * so possibly still 0: then the inode is read directly, as on kernels
 * without the field).
 *
 * Another of tcptrail's programs may run nested in this one on the same CPU
 * (a softirq's RST or retransmit during a state run in process context) and
 * rewrite the entry between any two of these accesses. So the entry is
 * invalidated while it is written and checked after, and a hit reads the
 * cookie again after the inode: a pair torn by a nested writer is never
 * taken for a match, it only costs a miss.
 */
static __always_inline __u32 net_inum_cached(const struct net *net)
{
	struct netns_cache_entry *c;
	__u32 zero = 0, inum;
	__u64 cookie;

	if (!bpf_core_field_exists(net->net_cookie))
		return net_inum(net);
	cookie = *(const __u64 *)&net->net_cookie;
	c = bpf_map_lookup_elem(&netns_cache, &zero);
	if (!c || !cookie)
		return net_inum(net);
	if (c->cookie == cookie) {
		barrier();
		inum = c->inum;
		barrier();
		if (c->cookie == cookie)
			return inum;
	}
	inum = net_inum(net);
	c->cookie = 0;
	barrier();
	c->inum = inum;
	barrier();
	c->cookie = cookie;
	barrier();
	if (c->inum != inum)
		c->cookie = 0;
	return inum;
}

/*
 * Commit 5a2e2b3a3f3c ("net: tracepoint: add sk_rst_reason to
 * tcp_send_reset") added the reason argument to tcp_send_reset. On older
 * kernels the tp_btf prototype has two arguments; reading the third would be
 * rejected by the verifier, so handle_tcp_send_reset only reads it when the
 * enum exists. User space says so (cfg_rst_reason, from its BTF probe):
 * bpf_core_type_exists() on a type vmlinux lacks makes libbpf search every
 * module's BTF, which needs CAP_SYS_ADMIN on 6.1 (BPF_BTF_GET_NEXT_ID), so
 * CAP_BPF + CAP_PERFMON could not load tcptrail there.
 */
static __always_inline bool have_rst_reason(void)
{
	return cfg_rst_reason;
}

#endif /* TCPTRAIL_CORE_FIXES_BPF_H */
