/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Monitor notification layouts shared by the probes and userspace.
 *
 * These are Cilium's datapath monitor messages (trace v1, drop v2, policy verdict v1, trace-sock),
 * byte for byte, so that Hubble tooling and our decoder read the same bytes. The Rust mirror is
 * ebpf-probes/src/abi.rs; bpf/layout.c exports every size, offset and constant below so a Rust
 * test can compare both sides. Change them together or not at all.
 *
 * This header compiles for the BPF target and for the host (layout check): it needs only
 * <linux/types.h>.
 */
#ifndef PERISCOPE_NOTIFY_H
#define PERISCOPE_NOTIFY_H

#include <linux/types.h>

/* Message types: the first byte of every notification. */
#define CILIUM_NOTIFY_UNSPEC 0
#define CILIUM_NOTIFY_DROP 1
#define CILIUM_NOTIFY_DBG_MSG 2
#define CILIUM_NOTIFY_DBG_CAPTURE 3
#define CILIUM_NOTIFY_TRACE 4
#define CILIUM_NOTIFY_POLICY_VERDICT 5
#define CILIUM_NOTIFY_RECORDER_CAPTURE 6
#define CILIUM_NOTIFY_TRACE_SOCK 7

/* Observation points, carried as the trace notification's subtype. */
#define TRACE_TO_LXC 0
#define TRACE_TO_PROXY 1
#define TRACE_TO_HOST 2
#define TRACE_TO_STACK 3
#define TRACE_TO_OVERLAY 4
#define TRACE_FROM_LXC 5
#define TRACE_FROM_PROXY 6
#define TRACE_FROM_HOST 7
#define TRACE_FROM_STACK 8
#define TRACE_FROM_OVERLAY 9
#define TRACE_FROM_NETWORK 10
#define TRACE_TO_NETWORK 11
#define TRACE_FROM_CRYPTO 12
#define TRACE_TO_CRYPTO 13

/* Trace reasons: the connection-tracking state the packet was forwarded in. */
#define TRACE_REASON_POLICY 0 /* new connection */
#define TRACE_REASON_CT_ESTABLISHED 1
#define TRACE_REASON_CT_REPLY 2
#define TRACE_REASON_CT_RELATED 3
#define TRACE_REASON_CT_REOPENED 4
#define TRACE_REASON_UNKNOWN 5
#define TRACE_REASON_ENCRYPTED 0x80

/* trace_notify.flags and drop_notify.flags */
#define TRACE_NOTIFY_FLAG_IPV6 (1 << 0)
#define TRACE_NOTIFY_FLAG_L3_DEVICE (1 << 1)

/* Drop reasons (Cilium's DROP_* codes as the positive subtype byte). */
#define DROP_INVALID_SIP 132
#define DROP_POLICY 133
#define DROP_INVALID 134
#define DROP_CT_INVALID_HDR 135
#define DROP_CT_UNKNOWN_PROTO 137
#define DROP_UNKNOWN_L3 139
#define DROP_UNKNOWN_L4 142
#define DROP_UNROUTABLE 151
#define DROP_CT_CREATE_FAILED 155
#define DROP_FRAG_NOSUPPORT 157
#define DROP_NO_SERVICE 158
#define DROP_UNKNOWN_CT 163
#define DROP_NO_FIB 169
#define DROP_POLICY_DENY 181

/* policy_verdict_notify.flags bit fields (Cilium declares them as C bitfields in this order). */
#define PV_FLAG_DIR_MASK 0x03
#define PV_FLAG_DIR_INGRESS 1
#define PV_FLAG_DIR_EGRESS 2
#define PV_FLAG_IPV6 0x04
#define PV_FLAG_MATCH_SHIFT 3
#define PV_FLAG_MATCH_MASK 0x38
#define PV_FLAG_AUDITED 0x40

#define POLICY_MATCH_NONE 0
#define POLICY_MATCH_L3_ONLY 1
#define POLICY_MATCH_L3_L4 2
#define POLICY_MATCH_L4_ONLY 3
#define POLICY_MATCH_ALL 4
#define POLICY_MATCH_L3_PROTO 5
#define POLICY_MATCH_PROTO_ONLY 6

#define TRACE_NOTIFY_VERSION 1
#define DROP_NOTIFY_VERSION 2
#define POLICY_VERDICT_NOTIFY_VERSION 1

/* Bytes of packet appended after a notification header. */
#define CAPTURE_LEN 128

/* NOTIFY_CAPTURE_HDR: common to every packet-carrying notification. */
struct notify_capture_hdr {
	__u8 type;
	__u8 subtype;
	__u16 source;   /* endpoint id of the source endpoint */
	__u32 hash;
	__u32 len_orig; /* length of the packet on the wire */
	__u16 len_cap;  /* packet bytes that follow the header */
	__u16 version;
};

struct trace_notify {
	struct notify_capture_hdr hdr;
	__u32 src_label;
	__u32 dst_label;
	__u16 dst_id;
	__u8 reason;
	__u8 flags;
	__u32 ifindex;
	__u8 orig_ip[16]; /* pre-NAT address; IPv4 in the first 4 bytes */
};

struct drop_notify {
	struct notify_capture_hdr hdr;
	__u32 src_label;
	__u32 dst_label;
	__u32 dst_id; /* 0 for egress drops */
	__u16 line;
	__u8 file;
	__s8 ext_error;
	__u32 ifindex;
	__u8 flags;
	__u8 pad[3];
};

struct policy_verdict_notify {
	struct notify_capture_hdr hdr;
	__u32 remote_label;
	__s32 verdict; /* 0 allow, -DROP_* deny, >0 proxy port */
	__u16 dst_port;
	__u8 proto;
	__u8 flags;    /* PV_FLAG_* */
	__u8 auth_type;
	__u8 pad[3];
};

struct trace_sock_notify {
	__u8 type;
	__u8 xlate_point;
	__u8 l4_proto;
	__u8 flags;
	__u16 dst_port;
	__u16 pad;
	__u64 sock_cookie;
	__u64 cgroup_id;
	__u8 dst_ip[16];
};

#endif /* PERISCOPE_NOTIFY_H */
