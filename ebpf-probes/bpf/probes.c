// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Periscope TC probes: identity-based L3/L4 policy, conntrack, and trace / drop / policy-verdict
 * notifications for every pod veth (and, without policy, the node uplink).
 *
 * Each program runs the same pipeline, in this order:
 *   1. parse      - L3/L4 headers into a 5-tuple (IPv4, IPv6 without extension headers)
 *   2. conntrack  - look the connection up: established and reply packets of a known connection
 *                   are forwarded without any policy lookup; otherwise the packet opens a new
 *                   connection (or reopens a closed one) and the identities are resolved
 *   3. policy     - new connections only, at endpoint hooks whose direction is enforced:
 *                   egress policy of the source endpoint in from_container, ingress policy of
 *                   the destination endpoint in to_container; a policy-verdict notification per
 *                   evaluation; on deny a drop notification and TC_ACT_SHOT, and no conntrack
 *                   entry. Allowed (or unenforced) new connections get their conntrack entry.
 *   4. notify     - a trace notification with the identities and endpoint ids cached in the
 *                   conntrack entry (resolved from ipcache / endpoints once per second),
 *                   followed by the first CAPTURE_LEN bytes of the packet; subject to
 *                   aggregation. Drops and verdicts are never aggregated.
 * Without policy (no endpoint enforced) every program hands the packet on unchanged.
 *
 * Programs are attached to the host side of a pod's veth pair, so "ingress" there means the
 * packet is leaving the pod (from_container) and "egress" means it is entering it
 * (to_container).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "notify.h"

/* TC_ACT_UNSPEC: TCX_NEXT under TCX, "continue / default action" under clsact. Lets any other
 * program attached after us run, and passes the packet if there is none. */
#define CTX_ACT_NEXT TC_ACT_UNSPEC

#define CTX_ACT_DROP TC_ACT_SHOT

#define WORLD_ID 2
#define IP_FRAG_OFFSET_MASK 0x1fff
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* ---- load-time settings (aya EbpfLoader::override_global) ---- */

/* MONITOR_AGGREGATION_NONE or MONITOR_AGGREGATION_MEDIUM. */
volatile const __u32 monitor_aggregation = MONITOR_AGGREGATION_MEDIUM;
/* Under aggregation, a connection direction is reported at most once per interval unless a
 * new TCP flag shows up. */
volatile const __u64 monitor_interval_ns = MONITOR_REPORT_INTERVAL_NS;
/* TCP flags whose first appearance in a direction is always reported. */
volatile const __u32 monitor_tcp_flags = 0xff;

/* ---- maps (pinned by name under the instance's bpffs directory) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, ENDPOINTS_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, POLICY_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct policy_state);
	__uint(max_entries, POLICY_STATE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, CT_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

/* ---- 1. parse ---- */

/* Why a packet's L4 ports could not be read (PKT_* in pkt_info.l4_error). */
#define PKT_L4_TRUNCATED 1 /* a protocol with ports, but the header is cut short */
#define PKT_L4_FRAGMENT 2  /* a later IPv4 fragment: no L4 header at all */
#define PKT_L4_EXTHDR 3    /* IPv6 extension headers, which we do not walk */

struct pkt_info {
	struct ct_key tuple; /* as seen on the wire: saddr is the packet's source */
	__u8 family;         /* 0 = not IP (or too short to tell) */
	__u8 tcp_flags;
	__u8 l4_error;       /* PKT_L4_*; only enforced directions act on it */
};

/* Makes the first `need` bytes directly readable; pulls non-linear data only when the
 * headers are not already in the linear area (rare on veth). */
static __always_inline int ensure_linear(struct __sk_buff *skb, __u32 need)
{
	if ((long)skb->data + need <= (long)skb->data_end)
		return 1;
	if (need > skb->len)
		return 0;
	return bpf_skb_pull_data(skb, need) == 0;
}

static __always_inline void parse_l4(struct __sk_buff *skb, struct pkt_info *p, __u32 off)
{
	__u8 proto = p->tuple.proto;
	__u32 need;

	switch (proto) {
	case IPPROTO_TCP:
		need = 14; /* through the flags byte */
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		need = 8;
		break;
	default:
		return;
	}
	p->l4_error = PKT_L4_TRUNCATED; /* until the header is read below */
	/* Bounds the variable offset for the verifier: ETH + IPv4 with options, or ETH + IPv6. */
	if (off > ETH_HLEN + 60)
		return;
	if (!ensure_linear(skb, off + need))
		return;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *l4 = data + off;

	if ((void *)(l4 + 8) > data_end)
		return;
	if (proto != IPPROTO_TCP)
		p->l4_error = 0;

	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		__u8 echo_request = proto == IPPROTO_ICMP ? ICMP_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
		__u8 echo_reply = proto == IPPROTO_ICMP ? ICMP_ECHO_REPLY : ICMPV6_ECHO_REPLY;
		__u16 id = *(__u16 *)(l4 + 4);

		/* Request and reply share the identifier; placing it in sport for requests and
		 * dport for replies makes the reply's tuple the reverse of the request's. Other
		 * ICMP messages are tracked by address pair only. */
		if (l4[0] == echo_request)
			p->tuple.sport = id;
		else if (l4[0] == echo_reply)
			p->tuple.dport = id;
		return;
	}
	p->tuple.sport = *(__u16 *)l4;
	p->tuple.dport = *(__u16 *)(l4 + 2);
	if (proto == IPPROTO_TCP && (void *)(l4 + 14) <= data_end) {
		p->tcp_flags = l4[13];
		p->l4_error = 0;
	}
}

static __always_inline void parse_ipv4(struct __sk_buff *skb, struct pkt_info *p)
{
	if (!ensure_linear(skb, ETH_HLEN + sizeof(struct iphdr)))
		return;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return;
	__u32 ihl = (__u32)ip->ihl * 4;
	if (ihl < sizeof(struct iphdr))
		return;

	p->family = ADDR_FAMILY_IPV4;
	p->tuple.family = ADDR_FAMILY_IPV4;
	p->tuple.saddr[0] = ip->saddr;
	p->tuple.daddr[0] = ip->daddr;
	p->tuple.proto = ip->protocol;
	/* Later fragments carry no L4 header: track them by addresses and protocol. */
	if (ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)) {
		p->l4_error = PKT_L4_FRAGMENT;
		return;
	}
	parse_l4(skb, p, ETH_HLEN + ihl);
}

static __always_inline void parse_ipv6(struct __sk_buff *skb, struct pkt_info *p)
{
	if (!ensure_linear(skb, ETH_HLEN + sizeof(struct ipv6hdr)))
		return;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;

	if ((void *)(ip6 + 1) > data_end)
		return;

	p->family = ADDR_FAMILY_IPV6;
	p->tuple.family = ADDR_FAMILY_IPV6;
	__builtin_memcpy(p->tuple.saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->tuple.daddr, &ip6->daddr, 16);
	/* Extension headers are not walked: the tuple then carries the first next-header value
	 * and no ports. */
	p->tuple.proto = ip6->nexthdr;
	switch (ip6->nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
		p->l4_error = PKT_L4_EXTHDR;
		return;
	}
	parse_l4(skb, p, ETH_HLEN + sizeof(struct ipv6hdr));
}

static __always_inline void parse_packet(struct __sk_buff *skb, struct pkt_info *p)
{
	/* Probes sit on Ethernet devices (veths, the uplink), so L3 starts at ETH_HLEN. */
	if (skb->protocol == bpf_htons(ETH_P_IP))
		parse_ipv4(skb, p);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		parse_ipv6(skb, p);
}

/* ---- identities (ipcache, endpoints) ---- */

static __always_inline __u32 ipcache_identity(const __u32 *addr, __u8 family)
{
	struct ipcache_key key = {
		.prefixlen = IPCACHE_PREFIX_BITS(family == ADDR_FAMILY_IPV4 ? 32 : 128),
		.data.family = family,
	};
	__builtin_memcpy(key.data.addr, addr, 16);

	struct ipcache_value *v = bpf_map_lookup_elem(&ipcache, &key);
	return v ? v->sec_identity : WORLD_ID;
}

static __always_inline __u16 endpoint_id(const __u32 *addr, __u8 family)
{
	struct endpoint_key key = { .family = family };
	__builtin_memcpy(key.addr, addr, 16);

	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &key);
	return ep ? ep->lxc_id : 0;
}

/* Identities and endpoint ids of a connection's originating source and destination. */
struct conn_ids {
	__u32 src_sec_id;
	__u32 dst_sec_id;
	__u16 src_ep_id;
	__u16 dst_ep_id;
};

static __always_inline void resolve_ids(struct conn_ids *ids, const __u32 *saddr,
					const __u32 *daddr, __u8 family)
{
	ids->src_sec_id = ipcache_identity(saddr, family);
	ids->dst_sec_id = ipcache_identity(daddr, family);
	ids->src_ep_id = endpoint_id(saddr, family);
	ids->dst_ep_id = endpoint_id(daddr, family);
}

static __always_inline void ids_to_entry(struct ct_entry *e, const struct conn_ids *ids,
					 __u64 now)
{
	e->src_sec_id = ids->src_sec_id;
	e->dst_sec_id = ids->dst_sec_id;
	e->src_ep_id = ids->src_ep_id;
	e->dst_ep_id = ids->dst_ep_id;
	e->ids_resolved_ns = now;
}

static __always_inline void ids_from_entry(struct conn_ids *ids, const struct ct_entry *e)
{
	ids->src_sec_id = e->src_sec_id;
	ids->dst_sec_id = e->dst_sec_id;
	ids->src_ep_id = e->src_ep_id;
	ids->dst_ep_id = e->dst_ep_id;
}

/* ---- 2. conntrack and aggregation ---- */

/* What conntrack concluded about one packet. */
struct ct_result {
	struct conn_ids ids; /* of the originating direction */
	__u8 reason;         /* TRACE_REASON_* */
	__u8 reply;          /* the packet flows against the originating direction */
	__u8 report;         /* aggregation says: emit a trace */
	__u8 is_new;         /* no live entry: the packet opens (or reopens) a connection */
};

static __always_inline __u64 ct_lifetime(const struct ct_entry *e, __u8 proto)
{
	if (e->flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING_NS;
	return proto == IPPROTO_TCP ? CT_LIFETIME_TCP_NS : CT_LIFETIME_NONTCP_NS;
}

/* Decides whether this packet is reported, updating the direction's aggregation state. */
static __always_inline __u8 should_report(__u8 *flags_seen, __u64 *last_report, __u8 tcp_flags,
					  __u64 now)
{
	__u8 new_flags = tcp_flags & ~*flags_seen;
	__u8 report = monitor_aggregation == MONITOR_AGGREGATION_NONE;

	if (new_flags) {
		*flags_seen |= tcp_flags;
		if (new_flags & (__u8)monitor_tcp_flags)
			report = 1;
	}
	if (now - *last_report >= monitor_interval_ns)
		report = 1;
	if (report)
		*last_report = now;
	return report;
}

/* A packet without a live entry: resolve the identities policy needs; the entry itself is
 * created by ct_create() once policy has allowed the connection. */
static __always_inline void ct_new(struct pkt_info *p, __u8 reason, struct ct_result *res)
{
	resolve_ids(&res->ids, p->tuple.saddr, p->tuple.daddr, p->family);
	res->reason = reason;
	res->reply = 0;
	res->report = 1;
	res->is_new = 1;
}

/* Records an allowed new connection under the tuple ct_process() set up. Returns 0 or the
 * map update's error (map full of entries locked by other CPUs). */
static __always_inline long ct_create(const struct pkt_info *p, __u64 now, __u32 len,
				      const struct conn_ids *ids)
{
	struct ct_entry e = {
		.created_ns = now,
		.last_seen_ns = now,
		.tx_packets = 1,
		.tx_bytes = len,
		.tx_last_report_ns = now,
		.tx_flags_seen = p->tcp_flags,
	};

	ids_to_entry(&e, ids, now);
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e.flags |= CT_F_CLOSING;
	return bpf_map_update_elem(&conntrack, &p->tuple, &e, BPF_ANY);
}

/* Counts a packet on an existing entry and hands out the entry's (refreshed) identities.
 * Counters and timestamps are plain stores: a rare lost update between CPUs is harmless. */
static __always_inline void ct_hit(struct ct_entry *e, struct pkt_info *p, __u64 now, __u32 len,
				   __u8 reply, struct ct_result *res)
{
	e->last_seen_ns = now;
	if (reply) {
		e->rx_packets++;
		e->rx_bytes += len;
		res->report = should_report(&e->rx_flags_seen, &e->rx_last_report_ns, p->tcp_flags,
					    now);
	} else {
		e->tx_packets++;
		e->tx_bytes += len;
		res->report = should_report(&e->tx_flags_seen, &e->tx_last_report_ns, p->tcp_flags,
					    now);
	}
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e->flags |= CT_F_CLOSING;
	res->reply = reply;
	if (!res->report)
		return;

	if (now - e->ids_resolved_ns >= CT_IDS_REFRESH_NS) {
		/* The entry's tuple is the originating one: for a reply, the packet reversed. */
		if (reply)
			resolve_ids(&res->ids, p->tuple.daddr, p->tuple.saddr, p->family);
		else
			resolve_ids(&res->ids, p->tuple.saddr, p->tuple.daddr, p->family);
		ids_to_entry(e, &res->ids, now);
	} else {
		ids_from_entry(&res->ids, e);
	}
}

/*
 * Looks up the packet's connection in `scope` (CT_DIR_* | CT_SCOPE_*): a hit on the tuple as
 * seen is established, a hit on the reversed tuple in the opposite direction is a reply,
 * otherwise a new entry is created.
 */
static __always_inline void ct_process(struct pkt_info *p, __u8 scope, __u64 now, __u32 len,
				       struct ct_result *res)
{
	struct ct_entry *e;
	__u8 proto = p->tuple.proto;

	p->tuple.scope = scope;
	e = bpf_map_lookup_elem(&conntrack, &p->tuple);
	if (e) {
		if (now - e->last_seen_ns > ct_lifetime(e, proto)) {
			ct_new(p, TRACE_REASON_POLICY, res);
			return;
		}
		if ((e->flags & CT_F_CLOSING) &&
		    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
			ct_new(p, TRACE_REASON_CT_REOPENED, res);
			return;
		}
		res->reason = TRACE_REASON_CT_ESTABLISHED;
		ct_hit(e, p, now, len, 0, res);
		return;
	}

	struct ct_key rev = {
		.sport = p->tuple.dport,
		.dport = p->tuple.sport,
		.proto = proto,
		.family = p->tuple.family,
		.scope = (scope & CT_SCOPE_NETDEV) |
			 ((scope & CT_DIR_EGRESS) ? CT_DIR_INGRESS : CT_DIR_EGRESS),
	};
	__builtin_memcpy(rev.saddr, p->tuple.daddr, 16);
	__builtin_memcpy(rev.daddr, p->tuple.saddr, 16);
	e = bpf_map_lookup_elem(&conntrack, &rev);
	if (e && now - e->last_seen_ns <= ct_lifetime(e, proto)) {
		res->reason = TRACE_REASON_CT_REPLY;
		ct_hit(e, p, now, len, 1, res);
		return;
	}
	ct_new(p, TRACE_REASON_POLICY, res);
}

/* ---- 4. notify ---- */

static __always_inline __u64 capture_len(const struct __sk_buff *skb)
{
	__u64 len = skb->len;
	return len < CAPTURE_LEN ? len : CAPTURE_LEN;
}

/* Writes `hdr` and the first `cap` packet bytes as one perf sample on this CPU. */
static __always_inline void emit(struct __sk_buff *skb, void *hdr, __u64 hdr_size, __u64 cap)
{
	bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU | (cap << 32), hdr, hdr_size);
}

static __always_inline void fill_capture_hdr(struct notify_capture_hdr *h,
					     const struct __sk_buff *skb, __u8 type,
					     __u8 subtype, __u16 source, __u16 version, __u64 cap)
{
	h->type = type;
	h->subtype = subtype;
	h->source = source;
	h->hash = skb->hash;
	h->len_orig = skb->len;
	h->len_cap = cap;
	h->version = version;
}

struct trace_args {
	__u8 obs_point;
	__u8 reason;
	__u16 source;
	__u16 dst_ep;
	__u32 src_label;
	__u32 dst_label;
};

static __always_inline void send_trace_notify(struct __sk_buff *skb, const struct trace_args *a,
					      __u8 family)
{
	__u64 cap = capture_len(skb);
	struct trace_notify msg = {
		.src_label = a->src_label,
		.dst_label = a->dst_label,
		.dst_id = a->dst_ep,
		.reason = a->reason,
		.flags = family == ADDR_FAMILY_IPV6 ? TRACE_NOTIFY_FLAG_IPV6 : 0,
		.ifindex = skb->ifindex,
	};
	fill_capture_hdr(&msg.hdr, skb, CILIUM_NOTIFY_TRACE, a->obs_point, a->source,
			 TRACE_NOTIFY_VERSION, cap);
	emit(skb, &msg, sizeof(msg), cap);
}

/* Same framing as the trace, Cilium's drop layout (v2). Never aggregated. */
static __always_inline void send_drop_notify(struct __sk_buff *skb, __u8 reason, __u16 source,
					     __u32 src_label, __u32 dst_label, __u32 dst_ep,
					     __u8 family)
{
	__u64 cap = capture_len(skb);
	struct drop_notify msg = {
		.src_label = src_label,
		.dst_label = dst_label,
		.dst_id = dst_ep,
		.ifindex = skb->ifindex,
		.flags = family == ADDR_FAMILY_IPV6 ? TRACE_NOTIFY_FLAG_IPV6 : 0,
	};
	fill_capture_hdr(&msg.hdr, skb, CILIUM_NOTIFY_DROP, reason, source, DROP_NOTIFY_VERSION,
			 cap);
	emit(skb, &msg, sizeof(msg), cap);
}

/* One per policy decision on a new connection; `dport` in host byte order. */
static __always_inline void send_policy_verdict_notify(struct __sk_buff *skb, __u16 source,
						       __u32 remote_label, __s32 verdict,
						       __u16 dport, __u8 proto, __u8 pv_flags)
{
	__u64 cap = capture_len(skb);
	struct policy_verdict_notify msg = {
		.remote_label = remote_label,
		.verdict = verdict,
		.dst_port = dport,
		.proto = proto,
		.flags = pv_flags,
	};
	fill_capture_hdr(&msg.hdr, skb, CILIUM_NOTIFY_POLICY_VERDICT, 0, source,
			 POLICY_VERDICT_NOTIFY_VERSION, cap);
	emit(skb, &msg, sizeof(msg), cap);
}

/* ---- 3. policy ---- */

/* Lookup precedence of a match type, most specific first (Cilium's __policy_can_access order:
 * id/proto/port, ANY/proto/port, id/proto/ANY, ANY/proto/ANY, id/ANY/ANY, ANY/ANY/ANY). */
static __always_inline __u8 match_precedence(__u8 match_type)
{
	switch (match_type) {
	case POLICY_MATCH_L3_L4:
		return 0;
	case POLICY_MATCH_L4_ONLY:
		return 1;
	case POLICY_MATCH_L3_PROTO:
		return 2;
	case POLICY_MATCH_PROTO_ONLY:
		return 3;
	case POLICY_MATCH_L3_ONLY:
		return 4;
	case POLICY_MATCH_ALL:
		return 5;
	default:
		return 6;
	}
}

/*
 * The entry a packet hits in one endpoint's policy for one direction: within each of the two
 * lookups (remote identity, any identity) the trie picks the longest prefix, i.e. the most
 * specific protocol/port; between them the match type's precedence decides. Returns 0 (allow)
 * or -DROP_POLICY (no entry) / -DROP_POLICY_DENY (deny entry), with the match type.
 */
static __always_inline __s32 policy_lookup(__u16 ep_id, __u8 dir, __u32 remote, __u8 proto,
					   __u16 dport_be, __u8 *match_type)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.data = {
			.sec_label = remote,
			.endpoint_id = ep_id,
			.dir = dir,
			.protocol = proto,
			.dport = dport_be,
		},
	};
	struct policy_entry *hit = bpf_map_lookup_elem(&policy, &key);

	key.data.sec_label = 0;
	struct policy_entry *any = bpf_map_lookup_elem(&policy, &key);

	if (!hit || (any && match_precedence(any->match_type) < match_precedence(hit->match_type)))
		hit = any;
	if (!hit) {
		*match_type = POLICY_MATCH_NONE;
		return -DROP_POLICY;
	}
	*match_type = hit->match_type;
	return (hit->flags & POLICY_F_DENY) ? -DROP_POLICY_DENY : 0;
}

/*
 * Policy for a packet opening a connection at an endpoint hook: the egress policy of the source
 * endpoint, or the ingress policy of the destination endpoint. Returns 0 to forward or -DROP_*;
 * sets *enforced when the direction is enforced (a verdict notification was sent, unless the
 * packet could not be classified at all).
 */
static __always_inline __s32 policy_check(struct __sk_buff *skb, const struct pkt_info *p,
					  const struct conn_ids *ids, __u8 egress,
					  __u8 *enforced)
{
	__u16 ep_id = egress ? ids->src_ep_id : ids->dst_ep_id;
	__u32 remote = egress ? ids->dst_sec_id : ids->src_sec_id;
	__u32 idx = ep_id;

	if (!ep_id)
		return 0;
	struct policy_state *st = bpf_map_lookup_elem(&policy_state, &idx);
	if (!st)
		return 0;
	__u32 flags = st->flags;
	if (!(flags & (egress ? POLICY_ENFORCE_EGRESS : POLICY_ENFORCE_INGRESS)))
		return 0;
	*enforced = 1;

	/* No ports to decide on: drop, as Cilium does when it cannot track the packet. */
	switch (p->l4_error) {
	case PKT_L4_TRUNCATED:
		return -DROP_CT_INVALID_HDR;
	case PKT_L4_FRAGMENT:
		return -DROP_FRAG_NOSUPPORT;
	case PKT_L4_EXTHDR:
		return -DROP_CT_UNKNOWN_PROTO;
	}

	__u8 proto = p->tuple.proto;
	/* ICMP identifiers live in the tuple's port fields; policy sees ICMP as portless. */
	__u16 dport = (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) ? 0 : p->tuple.dport;
	__u8 dir = (egress ? POLICY_DIR_EGRESS : POLICY_DIR_INGRESS) |
		   ((flags & POLICY_STATE_SLOT) ? 1 << POLICY_DIR_SLOT_SHIFT : 0);
	__u8 match_type;
	__s32 verdict = policy_lookup(ep_id, dir, remote, proto, dport, &match_type);

	__u8 pv_flags = (egress ? PV_FLAG_DIR_EGRESS : PV_FLAG_DIR_INGRESS) |
			((match_type << PV_FLAG_MATCH_SHIFT) & PV_FLAG_MATCH_MASK) |
			(p->family == ADDR_FAMILY_IPV6 ? PV_FLAG_IPV6 : 0);
	send_policy_verdict_notify(skb, ep_id, remote, verdict, bpf_ntohs(dport), proto, pv_flags);
	return verdict;
}

/* ---- the pipeline shared by all programs ---- */

static __always_inline int handle(struct __sk_buff *skb, __u8 obs_point, __u8 ct_scope)
{
	struct pkt_info p = {};
	struct ct_result ct = {
		.ids = { .src_sec_id = WORLD_ID, .dst_sec_id = WORLD_ID },
		.reason = TRACE_REASON_UNKNOWN,
		.report = 1,
	};
	__u64 now = bpf_ktime_get_coarse_ns();

	parse_packet(skb, &p);
	if (p.family)
		ct_process(&p, ct_scope, now, skb->len, &ct);

	if (ct.is_new) {
		__u8 enforced = 0;
		__s32 ret = 0;

		/* Endpoint hooks only: the uplink has no policy of its own. */
		if (obs_point == TRACE_FROM_LXC)
			ret = policy_check(skb, &p, &ct.ids, 1, &enforced);
		else if (obs_point == TRACE_TO_LXC)
			ret = policy_check(skb, &p, &ct.ids, 0, &enforced);

		/* Without state, replies of an enforced connection would be judged as new ones:
		 * drop instead, as Cilium does. Unenforced traffic only loses its trace state. */
		if (ret == 0 && ct_create(&p, now, skb->len, &ct.ids) != 0 && enforced)
			ret = -DROP_CT_CREATE_FAILED;

		if (ret < 0) {
			__u8 egress = obs_point == TRACE_FROM_LXC;

			send_drop_notify(skb, (__u8)-ret, egress ? ct.ids.src_ep_id : ct.ids.dst_ep_id,
					 ct.ids.src_sec_id, ct.ids.dst_sec_id,
					 egress ? 0 : ct.ids.dst_ep_id, p.family);
			return CTX_ACT_DROP;
		}
	}

	if (!ct.report)
		return CTX_ACT_NEXT;

	/* ct.ids describe the originating direction; a reply travels the other way. */
	__u32 src_sec_id = ct.reply ? ct.ids.dst_sec_id : ct.ids.src_sec_id;
	__u32 dst_sec_id = ct.reply ? ct.ids.src_sec_id : ct.ids.dst_sec_id;
	__u16 src_ep_id = ct.reply ? ct.ids.dst_ep_id : ct.ids.src_ep_id;
	__u16 dst_ep_id = ct.reply ? ct.ids.src_ep_id : ct.ids.dst_ep_id;
	struct trace_args a = {
		.obs_point = obs_point,
		.reason = ct.reason,
		.src_label = src_sec_id,
		.dst_label = dst_sec_id,
		.dst_ep = dst_ep_id,
		/* The endpoint the probe belongs to: the pod the packet leaves or enters. */
		.source = obs_point == TRACE_FROM_LXC ? src_ep_id
			  : obs_point == TRACE_TO_LXC ? dst_ep_id
						      : 0,
	};
	send_trace_notify(skb, &a, p.family);
	return CTX_ACT_NEXT;
}

/* Host-side veth ingress: packets leaving the pod. */
SEC("classifier")
int from_container(struct __sk_buff *skb)
{
	return handle(skb, TRACE_FROM_LXC, CT_DIR_EGRESS);
}

/* Host-side veth egress: packets entering the pod. */
SEC("classifier")
int to_container(struct __sk_buff *skb)
{
	return handle(skb, TRACE_TO_LXC, CT_DIR_INGRESS);
}

/* Node uplink ingress. */
SEC("classifier")
int from_netdev(struct __sk_buff *skb)
{
	return handle(skb, TRACE_FROM_NETWORK, CT_SCOPE_NETDEV | CT_DIR_INGRESS);
}

/* Node uplink egress. */
SEC("classifier")
int to_netdev(struct __sk_buff *skb)
{
	return handle(skb, TRACE_TO_NETWORK, CT_SCOPE_NETDEV | CT_DIR_EGRESS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
