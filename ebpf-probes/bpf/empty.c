// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark control: classifiers that do nothing, under the probes' program names, so a
 * benchmark can measure what the TC hook itself costs apart from the probes' work.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int from_container(struct __sk_buff *skb __attribute__((unused)))
{
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int to_container(struct __sk_buff *skb __attribute__((unused)))
{
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "Dual BSD/GPL";
