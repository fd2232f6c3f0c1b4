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
 * Commit 5a2e2b3a3f3c ("net: tracepoint: add sk_rst_reason to
 * tcp_send_reset") added the reason argument to tcp_send_reset. On older
 * kernels the tp_btf prototype has two arguments; reading the third would be
 * rejected by the verifier, so handle_tcp_send_reset only reads it when the
 * enum exists.
 */
static __always_inline bool have_rst_reason(void)
{
	return bpf_core_type_exists(enum sk_rst_reason);
}

#endif /* TCPTRAIL_CORE_FIXES_BPF_H */
