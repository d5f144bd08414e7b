//! The compact, fixed-size form a flow is stored in. Decoding fills it without allocating;
//! `Flow` protobufs are only materialized when a client reads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a ring slot holds.
pub mod kind {
    pub const EMPTY: u8 = 0;
    pub const FLOW: u8 = 1;
    /// A perf-buffer loss report (count in `lost_count`).
    pub const LOST: u8 = 2;
}

/// TCP flag bits as stored in `FlowRecord::tcp_flags` (same bit positions as the TCP header,
/// plus NS in bit 8).
pub mod tcp {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const NS: u16 = 0x100;
}

/// Stored verdicts use the `flow.Verdict` enum numbers.
pub mod verdict {
    pub const UNKNOWN: u8 = 0;
    pub const FORWARDED: u8 = 1;
    pub const DROPPED: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const AUDIT: u8 = 4;
    pub const REDIRECTED: u8 = 5;
    pub const TRACED: u8 = 6;
    pub const TRANSLATED: u8 = 7;
}

/// Stored traffic directions use the `flow.TrafficDirection` enum numbers.
pub mod direction {
    pub const UNKNOWN: u8 = 0;
    pub const INGRESS: u8 = 1;
    pub const EGRESS: u8 = 2;
}

/// `is_reply` is tri-state, as in Hubble (unknown for drops).
pub mod reply {
    pub const UNKNOWN: u8 = 0;
    pub const NO: u8 = 1;
    pub const YES: u8 = 2;
}

/// L4 protocol numbers.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// One flow (or loss report) in compact form: plain integers only, no padding, no pointers,
/// so it can be stored word by word in the lock-free ring. Endpoint and service details are
/// indexes into the metadata table (0 = none).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub time_ns: u64,
    /// Position in the ring's write order; gives each flow a stable id.
    pub seq: u64,
    pub lost_count: u64,
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    /// Original (pre-translation) IP from trace notifications v1, or zero.
    pub orig_ip: [u8; 16],
    pub src_identity: u32,
    pub dst_identity: u32,
    pub src_meta: u32,
    pub dst_meta: u32,
    pub src_service: u32,
    pub dst_service: u32,
    pub ifindex: u32,
    pub orig_len: u32,
    pub cpu: u32,
    /// Policy-verdict notification: proxy port for redirects.
    pub proxy_port: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Datapath endpoint id that emitted the event (`source` in the header).
    pub source_ep: u16,
    pub dst_ep: u16,
    pub tcp_flags: u16,
    pub kind: u8,
    /// Cilium message type (1 drop, 4 trace, 9 policy verdict, 12 trace-sock).
    pub msg_type: u8,
    pub subtype: u8,
    pub verdict: u8,
    pub drop_reason: u8,
    /// `flow.TraceObservationPoint` number.
    pub obs_point: u8,
    /// `flow.TraceReason` number.
    pub trace_reason: u8,
    pub direction: u8,
    /// Policy match type (Cilium's `match_type` numbering).
    pub match_type: u8,
    pub is_reply: u8,
    /// 0 unknown, 4 or 6.
    pub ip_version: u8,
    /// 0 when there is no L4 header.
    pub l4_proto: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub has_ethernet: u8,
    pub audited: u8,
    /// Trace-sock translation point (`flow.SocketTranslationPoint`).
    pub sock_xlate: u8,
    pub _pad: [u8; 1],
}

pub const RECORD_WORDS: usize = size_of::<FlowRecord>() / 8;

impl Default for FlowRecord {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl FlowRecord {
    pub const EMPTY: FlowRecord = FlowRecord {
        time_ns: 0,
        seq: 0,
        lost_count: 0,
        src_ip: [0; 16],
        dst_ip: [0; 16],
        orig_ip: [0; 16],
        src_identity: 0,
        dst_identity: 0,
        src_meta: 0,
        dst_meta: 0,
        src_service: 0,
        dst_service: 0,
        ifindex: 0,
        orig_len: 0,
        cpu: 0,
        proxy_port: 0,
        src_port: 0,
        dst_port: 0,
        source_ep: 0,
        dst_ep: 0,
        tcp_flags: 0,
        kind: kind::EMPTY,
        msg_type: 0,
        subtype: 0,
        verdict: 0,
        drop_reason: 0,
        obs_point: 0,
        trace_reason: 0,
        direction: 0,
        match_type: 0,
        is_reply: 0,
        ip_version: 0,
        l4_proto: 0,
        icmp_type: 0,
        icmp_code: 0,
        src_mac: [0; 6],
        dst_mac: [0; 6],
        has_ethernet: 0,
        audited: 0,
        sock_xlate: 0,
        _pad: [0; 1],
    };

    pub fn to_words(&self) -> [u64; RECORD_WORDS] {
        let mut words = [0u64; RECORD_WORDS];
        // SAFETY: FlowRecord is #[repr(C)] plain integers with no implicit padding (checked by
        // `record_has_no_padding`), and its size is exactly RECORD_WORDS * 8.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self as *const Self).cast::<u8>(),
                words.as_mut_ptr().cast::<u8>(),
                size_of::<Self>(),
            );
        }
        words
    }

    pub fn from_words(words: &[u64; RECORD_WORDS]) -> Self {
        let mut out = Self::EMPTY;
        // SAFETY: every bit pattern is a valid FlowRecord (integers and byte arrays only).
        unsafe {
            std::ptr::copy_nonoverlapping(
                words.as_ptr().cast::<u8>(),
                (&mut out as *mut Self).cast::<u8>(),
                size_of::<Self>(),
            );
        }
        out
    }

    pub fn src_addr(&self) -> Option<IpAddr> {
        ip_from_bytes(self.ip_version, &self.src_ip)
    }

    pub fn dst_addr(&self) -> Option<IpAddr> {
        ip_from_bytes(self.ip_version, &self.dst_ip)
    }

    pub fn is_flow(&self) -> bool {
        self.kind == kind::FLOW
    }
}

pub fn ip_from_bytes(version: u8, bytes: &[u8; 16]) -> Option<IpAddr> {
    match version {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    }
}

pub fn ip_to_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_has_no_padding_and_fits_budget() {
        // Sum of field sizes == struct size means the compiler added no padding bytes,
        // which `to_words` relies on.
        let fields = 8 * 3 + 16 * 3 + 4 * 10 + 2 * 5 + 14 + 6 * 2 + 3 + 1;
        assert_eq!(size_of::<FlowRecord>(), fields);
        assert_eq!(size_of::<FlowRecord>() % 8, 0);
        assert!(size_of::<FlowRecord>() <= 512);
    }

    #[test]
    fn words_round_trip() {
        let mut r = FlowRecord {
            time_ns: 7,
            src_port: 49446,
            dst_port: 80,
            kind: kind::FLOW,
            ..FlowRecord::EMPTY
        };
        r.src_ip[..4].copy_from_slice(&[10, 0, 0, 1]);
        r.ip_version = 4;
        assert_eq!(FlowRecord::from_words(&r.to_words()), r);
        assert_eq!(r.src_addr(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    }
}
