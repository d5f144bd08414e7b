/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys and values of the maps userspace shares with the probes, and the load-time settings.
 *
 * Mirrored in ebpf-probes/src/probes.rs; bpf/layout.c exports the sizes and offsets so a Rust
 * test proves both sides agree. Addresses are stored in network byte order; IPv4 uses the first
 * word of a 16-byte address and leaves the rest zero. Compiles for BPF and the host.
 */
#ifndef PERISCOPE_MAPS_H
#define PERISCOPE_MAPS_H

#include <linux/types.h>

/* Address family tags used in map keys (Cilium's ENDPOINT_KEY_IPV4/IPV6 values). */
#define ADDR_FAMILY_IPV4 1
#define ADDR_FAMILY_IPV6 2

/* Capacities of the shared maps. */
#define ENDPOINTS_MAP_SIZE 65536
#define IPCACHE_MAP_SIZE 512000
#define CT_MAP_SIZE 262144

/* Monitor aggregation levels (value of the `monitor_aggregation` global). */
#define MONITOR_AGGREGATION_NONE 0
#define MONITOR_AGGREGATION_MEDIUM 3

/* Default report interval of an otherwise quiet connection under aggregation (ns). */
#define MONITOR_REPORT_INTERVAL_NS 5000000000ULL

/* TCP flag bits as they appear in the 14th byte of the TCP header. */
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_URG 0x20
#define TCP_FLAG_ECE 0x40
#define TCP_FLAG_CWR 0x80

/* Endpoint map: pod IP -> the endpoint (pod) it belongs to. */
struct endpoint_key {
	__u32 addr[4];
	__u8 family; /* ADDR_FAMILY_* */
	__u8 pad[3];
};

struct endpoint_info {
	__u32 ifindex;   /* host-side veth */
	__u16 lxc_id;    /* endpoint id */
	__u16 flags;     /* reserved */
	__u32 sec_identity;
	__u32 pad;
};

/*
 * ipcache (LPM trie): prefix -> security identity. The trie matches `prefixlen` bits of
 * everything after the prefixlen field, so prefixlen = 32 (pad + family word) + the IP prefix
 * length; an IPv4 entry can never match an IPv6 lookup.
 */
struct ipcache_prefix {
	__u8 pad[3];
	__u8 family; /* ADDR_FAMILY_* */
	__u32 addr[4];
};

struct ipcache_key {
	__u32 prefixlen;
	struct ipcache_prefix data;
};

#define IPCACHE_PREFIX_BITS(ip_prefix_len) (32 + (ip_prefix_len))

struct ipcache_value {
	__u32 sec_identity;
	__u32 flags; /* reserved */
};

/*
 * Policy (LPM trie, one for all endpoints): (remote identity, endpoint, direction + slot,
 * protocol, destination port prefix) -> allow/deny. The trie matches `prefixlen` bits of what
 * follows the prefixlen field: identity, endpoint and direction are always matched in full
 * (POLICY_PREFIX_FIXED bits), then 8 bits of protocol if the entry names one, then as many
 * leading bits of the port (network byte order) as the port prefix has. An identity of 0 is the
 * entry for any remote identity: the probes look up twice, with the packet's remote identity and
 * with 0, and take the more specific match type of the two (Cilium's lookup order).
 *
 * Every endpoint has two slots of entries; policy_state names the live one. Userspace writes a
 * new policy into the idle slot and then flips the slot with one array update, so the probes
 * see an endpoint's old policy or its new one, never a mix.
 */
#define POLICY_MAP_SIZE 65536
#define POLICY_STATE_MAP_SIZE 65536 /* endpoints with policy */

#define POLICY_DIR_INGRESS 0
#define POLICY_DIR_EGRESS 1
#define POLICY_DIR_SLOT_SHIFT 1 /* policy_key.dir = direction | slot << 1 */

#define POLICY_PREFIX_FIXED 56 /* sec_label + endpoint_id + dir */
#define POLICY_PREFIX_PROTO 64 /* ... + protocol */
#define POLICY_PREFIX_FULL 80  /* ... + dport */

struct policy_prefix {
	__u32 sec_label;   /* remote identity; 0 = any */
	__u16 endpoint_id; /* the local endpoint whose policy this is */
	__u8 dir;          /* POLICY_DIR_* | slot << POLICY_DIR_SLOT_SHIFT */
	__u8 protocol;     /* 0 = any (then the port is not matched either) */
	__u16 dport;       /* network byte order; first port of the prefix */
	__u16 pad;
};

struct policy_key {
	__u32 prefixlen;
	struct policy_prefix data;
};

#define POLICY_F_DENY 0x01

struct policy_entry {
	__u8 flags;      /* POLICY_F_* */
	__u8 match_type; /* POLICY_MATCH_* reported in verdict notifications */
	__u16 pad;
	__u32 pad2;
};

/* policy_state.flags */
#define POLICY_ENFORCE_INGRESS 0x01
#define POLICY_ENFORCE_EGRESS 0x02
#define POLICY_STATE_SLOT 0x04 /* the live slot of the endpoint's entries */

/* Per endpoint (hash keyed by the __u32 endpoint id; absent = nothing enforced): whether each
 * direction is enforced, and which slot of policy entries is live. */
struct policy_state {
	__u32 flags;
};

/* Conntrack scope bits: which direction of the endpoint (or netdev) created the entry. */
#define CT_DIR_EGRESS 0x01  /* packets leaving a pod (from_container) or the node (to_netdev) */
#define CT_DIR_INGRESS 0x02 /* packets entering a pod (to_container) or the node (from_netdev) */
#define CT_SCOPE_NETDEV 0x04

/* Conntrack (LRU hash): one entry per connection and scope, keyed by the originating tuple. */
struct ct_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* network byte order; ICMP echo: identifier (request sport, reply dport) */
	__u16 dport;
	__u8 proto;
	__u8 family; /* ADDR_FAMILY_* */
	__u8 scope;  /* CT_DIR_* | CT_SCOPE_* */
	__u8 pad;
};

#define CT_F_CLOSING 0x01 /* FIN or RST seen: short lifetime, a new SYN reopens */

/*
 * Times are CLOCK_MONOTONIC in ns at tick resolution (bpf_ktime_get_coarse_ns): plenty for
 * lifetimes and report intervals, and much cheaper per packet than a precise clock read.
 * The identities and endpoint ids of the originating direction are cached here so reports of
 * established connections need no ipcache/endpoint lookups; they are looked up again once they
 * are older than CT_IDS_REFRESH_NS, which bounds how stale a report can be after a change.
 */
struct ct_entry {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 tx_packets; /* originating direction */
	__u64 tx_bytes;
	__u64 rx_packets; /* reply direction */
	__u64 rx_bytes;
	__u64 tx_last_report_ns;
	__u64 rx_last_report_ns;
	__u64 ids_resolved_ns;
	__u32 src_sec_id; /* identity of the originating source */
	__u32 dst_sec_id;
	__u16 src_ep_id; /* endpoint ids; 0 = not a local endpoint */
	__u16 dst_ep_id;
	__u8 tx_flags_seen; /* OR of the TCP flags seen per direction */
	__u8 rx_flags_seen;
	__u8 flags; /* CT_F_* */
	__u8 pad;
};

#define CT_IDS_REFRESH_NS (1ULL * 1000000000ULL)
#define CT_LIFETIME_TCP_NS (21600ULL * 1000000000ULL)
#define CT_LIFETIME_NONTCP_NS (60ULL * 1000000000ULL)
#define CT_LIFETIME_CLOSING_NS (10ULL * 1000000000ULL)

#endif /* PERISCOPE_MAPS_H */
