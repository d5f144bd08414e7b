//! Decodes Cilium-layout monitor notifications into `FlowRecord`s, as Hubble's L3/L4 parser does.
//! Pure: no I/O, no clock, no allocation. Enrichment (endpoint metadata, direction) is separate.

use periscope_probes::abi::{
    self, DropNotify, NotifyCaptureHdr, PolicyVerdictNotify, TraceNotify, TraceSockNotify,
    message_type, notify_flags, obs_point, trace_reason, verdict_flags,
};

use crate::packet::parse_packet;
use crate::record::{FlowRecord, direction, kind, reply, verdict};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("message type {0} carries no flow")]
    NotAFlow(u8),
    #[error("{what} truncated: need {need} bytes, got {got}")]
    Truncated {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{what} version {version} is not supported")]
    UnsupportedVersion { what: &'static str, version: u16 },
}

impl DecodeError {
    /// Short label for loss counters.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::NotAFlow(_) => "not_a_flow",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// Decodes one notification into `rec` (overwriting it). On error `rec` is unspecified.
pub fn decode(
    data: &[u8],
    timestamp_ns: u64,
    cpu: u32,
    rec: &mut FlowRecord,
) -> Result<(), DecodeError> {
    let msg_type = *data.first().ok_or(DecodeError::Empty)?;
    *rec = FlowRecord::EMPTY;
    rec.kind = kind::FLOW;
    rec.time_ns = timestamp_ns;
    rec.cpu = cpu;
    rec.msg_type = msg_type;
    match msg_type {
        message_type::TRACE => decode_trace(data, rec),
        message_type::DROP => decode_drop(data, rec),
        message_type::POLICY_VERDICT => decode_policy_verdict(data, rec),
        message_type::TRACE_SOCK => decode_trace_sock(data, rec),
        message_type::DEBUG | message_type::CAPTURE | message_type::RECORDER_CAPTURE => {
            Err(DecodeError::NotAFlow(msg_type))
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

fn need(what: &'static str, data: &[u8], len: usize) -> Result<(), DecodeError> {
    if data.len() < len {
        return Err(DecodeError::Truncated {
            what,
            need: len,
            got: data.len(),
        });
    }
    Ok(())
}

fn header<T: Copy + Default + abi::AsBytes>(
    what: &'static str,
    data: &[u8],
) -> Result<T, DecodeError> {
    abi::read_header(data).ok_or(DecodeError::Truncated {
        what,
        need: size_of::<T>(),
        got: data.len(),
    })
}

/// Captured packet bytes: after the header, bounded by `len_cap` and the record's real length.
fn payload<'a>(data: &'a [u8], hdr_len: usize, cap: &NotifyCaptureHdr) -> &'a [u8] {
    let rest = data.get(hdr_len..).unwrap_or(&[]);
    &rest[..rest.len().min(usize::from(cap.len_cap))]
}

fn copy_capture_fields(hdr: &NotifyCaptureHdr, rec: &mut FlowRecord) {
    rec.subtype = hdr.subtype;
    rec.source_ep = hdr.source;
    rec.orig_len = hdr.len_orig;
}

/// Maps the datapath observation point to `flow.TraceObservationPoint` (only TO_LXC differs).
fn observation_point(raw: u8) -> u8 {
    if raw == obs_point::TO_LXC { 101 } else { raw }
}

/// Maps the datapath trace reason to `flow.TraceReason`.
fn flow_trace_reason(raw: u8) -> u8 {
    match raw & !trace_reason::ENCRYPTED_MASK {
        r @ trace_reason::POLICY..=trace_reason::CT_REOPENED => r + 1,
        r @ trace_reason::SRV6_ENCAP..=trace_reason::ENCRYPT_OVERLAY => r,
        _ => 0,
    }
}

fn decode_trace(data: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
    need("trace notification", data, abi::TRACE_NOTIFY_V0_LEN)?;
    let cap: NotifyCaptureHdr = header("trace notification", data)?;
    let hdr_len = match cap.version {
        0 => abi::TRACE_NOTIFY_V0_LEN,
        1 => abi::TRACE_NOTIFY_V1_LEN,
        v => {
            return Err(DecodeError::UnsupportedVersion {
                what: "trace notification",
                version: v,
            });
        }
    };
    need("trace notification", data, hdr_len)?;
    let mut padded = [0u8; abi::TRACE_NOTIFY_V1_LEN];
    padded[..hdr_len].copy_from_slice(&data[..hdr_len]);
    let tn: TraceNotify = header("trace notification", &padded)?;
    copy_capture_fields(&cap, rec);
    rec.src_identity = tn.src_label;
    rec.dst_identity = tn.dst_label;
    rec.dst_ep = tn.dst_id;
    rec.ifindex = tn.ifindex;
    rec.obs_point = observation_point(cap.subtype);
    rec.trace_reason = flow_trace_reason(tn.reason);
    rec.verdict = if cap.subtype == obs_point::TO_PROXY {
        verdict::REDIRECTED
    } else {
        verdict::FORWARDED
    };
    let state = tn.reason & !trace_reason::ENCRYPTED_MASK;
    rec.is_reply = match state {
        trace_reason::UNKNOWN | trace_reason::SRV6_ENCAP | trace_reason::SRV6_DECAP => {
            reply::UNKNOWN
        }
        s if s > trace_reason::ENCRYPT_OVERLAY => reply::UNKNOWN,
        trace_reason::CT_REPLY => reply::YES,
        _ => reply::NO,
    };
    parse_packet(
        payload(data, hdr_len, &cap),
        tn.flags & notify_flags::IS_L3_DEVICE != 0,
        rec,
    );
    if hdr_len == abi::TRACE_NOTIFY_V1_LEN && tn.orig_ip != [0; 16] {
        rec.orig_ip = tn.orig_ip;
    }
    Ok(())
}

fn decode_drop(data: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
    need("drop notification", data, abi::DROP_NOTIFY_V1_LEN)?;
    let cap: NotifyCaptureHdr = header("drop notification", data)?;
    let hdr_len = match cap.version {
        0 | 1 => abi::DROP_NOTIFY_V1_LEN,
        2 => abi::DROP_NOTIFY_V2_LEN,
        v => {
            return Err(DecodeError::UnsupportedVersion {
                what: "drop notification",
                version: v,
            });
        }
    };
    need("drop notification", data, hdr_len)?;
    let mut padded = [0u8; abi::DROP_NOTIFY_V2_LEN];
    padded[..hdr_len].copy_from_slice(&data[..hdr_len]);
    let dn: DropNotify = header("drop notification", &padded)?;
    copy_capture_fields(&cap, rec);
    rec.src_identity = dn.src_label;
    rec.dst_identity = dn.dst_label;
    rec.dst_ep = u16::try_from(dn.dst_id).unwrap_or(u16::MAX);
    rec.ifindex = dn.ifindex;
    rec.verdict = verdict::DROPPED;
    rec.drop_reason = cap.subtype;
    rec.is_reply = reply::UNKNOWN;
    parse_packet(
        payload(data, hdr_len, &cap),
        dn.flags & notify_flags::IS_L3_DEVICE != 0,
        rec,
    );
    Ok(())
}

fn decode_policy_verdict(data: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
    let pv: PolicyVerdictNotify = header("policy verdict notification", data)?;
    copy_capture_fields(&pv.hdr, rec);
    rec.direction = match pv.flags & verdict_flags::DIRECTION_MASK {
        verdict_flags::DIRECTION_INGRESS => direction::INGRESS,
        verdict_flags::DIRECTION_EGRESS => direction::EGRESS,
        _ => direction::UNKNOWN,
    };
    rec.match_type = (pv.flags & verdict_flags::MATCH_TYPE_MASK) >> verdict_flags::MATCH_TYPE_SHIFT;
    rec.audited = u8::from(pv.flags & verdict_flags::IS_AUDITED != 0);
    // The remote identity is the peer of the local endpoint.
    if rec.direction == direction::EGRESS {
        rec.dst_identity = pv.remote_label;
    } else {
        rec.src_identity = pv.remote_label;
    }
    rec.verdict = match pv.verdict {
        v if v < 0 => {
            rec.drop_reason = u8::try_from(-i64::from(v)).unwrap_or(0);
            if rec.audited == 1 {
                verdict::AUDIT
            } else {
                verdict::DROPPED
            }
        }
        0 => verdict::FORWARDED,
        port => {
            rec.proxy_port = port.unsigned_abs();
            verdict::REDIRECTED
        }
    };
    rec.is_reply = if pv.verdict >= 0 {
        reply::NO
    } else {
        reply::UNKNOWN
    };
    parse_packet(
        payload(data, abi::POLICY_VERDICT_NOTIFY_LEN, &pv.hdr),
        false,
        rec,
    );
    Ok(())
}

fn decode_trace_sock(data: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
    let ts: TraceSockNotify = header("trace-sock notification", data)?;
    rec.subtype = ts.xlate_point;
    // flow.SocketTranslationPoint numbers are the datapath's plus one (0 = unknown).
    rec.sock_xlate = ts.xlate_point.saturating_add(1);
    rec.verdict = match ts.xlate_point {
        // Post-translation points report the rewritten destination.
        1 | 3 => verdict::TRANSLATED,
        _ => verdict::TRACED,
    };
    rec.l4_proto = ts.l4_proto;
    rec.dst_port = ts.dst_port;
    rec.ip_version = if ts.flags & 1 != 0 { 6 } else { 4 };
    rec.dst_ip = ts.dst_ip;
    rec.is_reply = reply::UNKNOWN;
    Ok(())
}

/// Builders of raw notifications, for tests, replay files and benchmarks.
pub mod build {
    use super::*;
    use periscope_probes::abi::AsBytes;

    pub fn trace(
        obs: u8,
        source_ep: u16,
        src_id: u32,
        dst_id: u32,
        reason: u8,
        packet: &[u8],
    ) -> Vec<u8> {
        let tn = TraceNotify {
            hdr: NotifyCaptureHdr {
                msg_type: message_type::TRACE,
                subtype: obs,
                source: source_ep,
                hash: 0,
                len_orig: packet.len() as u32,
                len_cap: packet.len().min(abi::CAPTURE_LEN) as u16,
                version: abi::TRACE_NOTIFY_VERSION,
            },
            src_label: src_id,
            dst_label: dst_id,
            dst_id: 0,
            reason,
            flags: 0,
            ifindex: 7,
            orig_ip: [0; 16],
        };
        let mut v = tn.as_bytes().to_vec();
        v.extend_from_slice(&packet[..packet.len().min(abi::CAPTURE_LEN)]);
        v
    }

    pub fn drop(reason: u8, source_ep: u16, src_id: u32, dst_id: u32, packet: &[u8]) -> Vec<u8> {
        let dn = DropNotify {
            hdr: NotifyCaptureHdr {
                msg_type: message_type::DROP,
                subtype: reason,
                source: source_ep,
                hash: 0,
                len_orig: packet.len() as u32,
                len_cap: packet.len().min(abi::CAPTURE_LEN) as u16,
                version: abi::DROP_NOTIFY_VERSION,
            },
            src_label: src_id,
            dst_label: dst_id,
            ifindex: 7,
            ..Default::default()
        };
        let mut v = dn.as_bytes().to_vec();
        v.extend_from_slice(&packet[..packet.len().min(abi::CAPTURE_LEN)]);
        v
    }

    pub fn policy_verdict(
        source_ep: u16,
        remote_id: u32,
        verdict: i32,
        ingress: bool,
        match_type: u8,
        packet: &[u8],
    ) -> Vec<u8> {
        let dir = if ingress {
            verdict_flags::DIRECTION_INGRESS
        } else {
            verdict_flags::DIRECTION_EGRESS
        };
        let pv = PolicyVerdictNotify {
            hdr: NotifyCaptureHdr {
                msg_type: message_type::POLICY_VERDICT,
                subtype: 0,
                source: source_ep,
                hash: 0,
                len_orig: packet.len() as u32,
                len_cap: packet.len().min(abi::CAPTURE_LEN) as u16,
                version: abi::POLICY_VERDICT_NOTIFY_VERSION,
            },
            remote_label: remote_id,
            verdict,
            flags: dir | (match_type << verdict_flags::MATCH_TYPE_SHIFT),
            ..Default::default()
        };
        let mut v = pv.as_bytes().to_vec();
        v.extend_from_slice(&packet[..packet.len().min(abi::CAPTURE_LEN)]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::build;
    use super::*;
    use crate::packet::build as pkt;
    use crate::record::{proto, tcp};
    use periscope_probes::abi::{drop_reason, match_type};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn syn() -> Vec<u8> {
        pkt::ip_packet(
            ip("10.0.1.5"),
            ip("10.0.1.9"),
            proto::TCP,
            &pkt::tcp(49446, 80, 0x02),
        )
    }

    fn decoded(data: &[u8]) -> Result<FlowRecord, DecodeError> {
        let mut r = FlowRecord::EMPTY;
        decode(data, 1_000, 1, &mut r).map(|()| r)
    }

    #[test]
    fn trace_to_endpoint() {
        let r = decoded(&build::trace(
            obs_point::TO_LXC,
            12,
            13058,
            17839,
            trace_reason::POLICY,
            &syn(),
        ))
        .expect("decodes");
        assert_eq!(
            (r.msg_type, r.subtype, r.obs_point),
            (message_type::TRACE, 0, 101)
        );
        assert_eq!(
            (r.src_identity, r.dst_identity, r.source_ep),
            (13058, 17839, 12)
        );
        assert_eq!(
            (r.verdict, r.is_reply, r.trace_reason),
            (verdict::FORWARDED, reply::NO, 1)
        );
        assert_eq!((r.src_port, r.dst_port, r.tcp_flags), (49446, 80, tcp::SYN));
        assert_eq!(r.time_ns, 1_000);
    }

    #[test]
    fn trace_reply_and_unknown_state() {
        let r = decoded(&build::trace(
            obs_point::FROM_LXC,
            1,
            0,
            0,
            trace_reason::CT_REPLY,
            &syn(),
        ))
        .expect("ok");
        assert_eq!(
            (r.is_reply, r.obs_point, r.trace_reason),
            (reply::YES, 5, 3)
        );
        let r = decoded(&build::trace(
            obs_point::FROM_LXC,
            1,
            0,
            0,
            trace_reason::UNKNOWN,
            &syn(),
        ))
        .expect("ok");
        assert_eq!((r.is_reply, r.trace_reason), (reply::UNKNOWN, 0));
        let r = decoded(&build::trace(obs_point::TO_PROXY, 1, 0, 0, 0, &syn())).expect("ok");
        assert_eq!(r.verdict, verdict::REDIRECTED);
    }

    #[test]
    fn trace_v0_is_accepted() {
        let mut v = build::trace(obs_point::TO_STACK, 1, 2, 3, 0, &syn());
        v[14] = 0; // version 0: header ends before orig_ip
        v.drain(32..48);
        let r = decoded(&v).expect("v0 decodes");
        assert_eq!((r.dst_port, r.obs_point), (80, 3));
    }

    #[test]
    fn drop_policy_denied() {
        let r = decoded(&build::drop(
            drop_reason::POLICY_DENIED,
            3,
            13058,
            17839,
            &syn(),
        ))
        .expect("ok");
        assert_eq!(
            (r.verdict, r.drop_reason, r.is_reply),
            (verdict::DROPPED, 133, reply::UNKNOWN)
        );
        assert_eq!((r.subtype, r.tcp_flags), (133, tcp::SYN));
    }

    #[test]
    fn policy_verdicts() {
        let r = decoded(&build::policy_verdict(
            3,
            13058,
            -133,
            true,
            match_type::NONE,
            &syn(),
        ))
        .expect("ok");
        assert_eq!(
            (r.verdict, r.drop_reason, r.direction),
            (verdict::DROPPED, 133, direction::INGRESS)
        );
        assert_eq!(r.src_identity, 13058);
        let r = decoded(&build::policy_verdict(
            3,
            56650,
            0,
            true,
            match_type::L3_L4,
            &syn(),
        ))
        .expect("ok");
        assert_eq!(
            (r.verdict, r.match_type, r.is_reply),
            (verdict::FORWARDED, match_type::L3_L4, reply::NO)
        );
        let r = decoded(&build::policy_verdict(
            3,
            2,
            0,
            false,
            match_type::ALL,
            &syn(),
        ))
        .expect("ok");
        assert_eq!((r.direction, r.dst_identity), (direction::EGRESS, 2));
        let r = decoded(&build::policy_verdict(
            3,
            2,
            15001,
            false,
            match_type::L3_L4,
            &syn(),
        ))
        .expect("ok");
        assert_eq!((r.verdict, r.proxy_port), (verdict::REDIRECTED, 15001));
    }

    #[test]
    fn trace_sock() {
        use periscope_probes::abi::AsBytes;
        let mut ts = TraceSockNotify {
            msg_type: message_type::TRACE_SOCK,
            xlate_point: 1,
            l4_proto: 6,
            dst_port: 80,
            ..Default::default()
        };
        ts.dst_ip[..4].copy_from_slice(&[10, 96, 0, 10]);
        let r = decoded(ts.as_bytes()).expect("ok");
        assert_eq!(
            (r.verdict, r.sock_xlate, r.dst_port),
            (verdict::TRANSLATED, 2, 80)
        );
        assert_eq!(r.dst_addr(), Some(ip("10.96.0.10")));
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        assert_eq!(decoded(&[]), Err(DecodeError::Empty));
        assert_eq!(decoded(&[77, 0, 0]), Err(DecodeError::UnknownType(77)));
        assert_eq!(
            decoded(&[message_type::DEBUG; 40]),
            Err(DecodeError::NotAFlow(2))
        );
        let full = build::trace(obs_point::TO_LXC, 1, 2, 3, 0, &syn());
        assert!(matches!(
            decoded(&full[..20]),
            Err(DecodeError::Truncated {
                need: 32,
                got: 20,
                ..
            })
        ));
        assert!(matches!(
            decoded(&full[..40]),
            Err(DecodeError::Truncated {
                need: 48,
                got: 40,
                ..
            })
        ));
        let mut bad_version = full.clone();
        bad_version[14] = 9;
        assert!(matches!(
            decoded(&bad_version),
            Err(DecodeError::UnsupportedVersion { version: 9, .. })
        ));
        // A capture length larger than the record must not read past it.
        let mut lying = full.clone();
        lying[12] = 0xff;
        lying[13] = 0x7f;
        assert!(decoded(&lying).is_ok());
        // Every prefix and random garbage: errors or flows, never a panic.
        for len in 0..full.len() {
            let _ = decoded(&full[..len]);
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut buf = [0u8; 96];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            buf[0] = [1, 4, 9, 12][(x % 4) as usize];
            let _ = decoded(&buf[..(x as usize % 96)]);
        }
    }
}
