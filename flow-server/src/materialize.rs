//! Turns stored records into `flow.Flow` protobufs, as Hubble's parser would have built them.
//! This is where names, labels and summaries are attached — on read, never on the write path.

use periscope_probes::abi::message_type;
use periscope_proto::Timestamp;
use periscope_proto::flow::{self as pb, Flow};
use periscope_proto::pbjson_types::{BoolValue, Int32Value};

use crate::icmp::icmp_type;
use crate::meta::Metadata;
use crate::record::{FlowRecord, proto, reply, tcp};

pub const EMITTER: &str = "Periscope";

pub fn timestamp(ns: u64) -> Timestamp {
    Timestamp {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

/// Formats a flow's UUID from the server's random prefix (`xxxxxxxx-xxxx-4xxx`) and the record's
/// sequence number, without allocating. `buf` receives the 36-byte text.
pub fn format_uuid<'b>(prefix: &str, seq: u64, buf: &'b mut [u8; 36]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let p = prefix.as_bytes();
    let n = p.len().min(18);
    buf[..n].copy_from_slice(&p[..n]);
    buf[18] = b'-';
    // 4 hex digits: variant nibble 8 plus 12 bits of seq's high part; then 12 digits of seq.
    let hi = (seq >> 48) & 0x0fff;
    buf[19] = b'8';
    for i in 0..3 {
        buf[20 + i] = HEX[((hi >> (8 - 4 * i)) & 0xf) as usize];
    }
    buf[23] = b'-';
    for i in 0..12 {
        buf[24 + i] = HEX[((seq >> (44 - 4 * i)) & 0xf) as usize];
    }
    std::str::from_utf8(buf).unwrap_or("")
}

/// A random-enough per-process UUID prefix (`xxxxxxxx-xxxx-4xxx`).
pub fn new_uuid_prefix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let r = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}",
        r >> 32,
        (r >> 16) & 0xffff,
        r & 0x0fff
    )
}

pub fn tcp_flags_text(flags: u16) -> String {
    const ORDER: [(u16, &str); 9] = [
        (tcp::SYN, "SYN"),
        (tcp::ACK, "ACK"),
        (tcp::RST, "RST"),
        (tcp::FIN, "FIN"),
        (tcp::PSH, "PSH"),
        (tcp::URG, "URG"),
        (tcp::ECE, "ECE"),
        (tcp::CWR, "CWR"),
        (tcp::NS, "NS"),
    ];
    ORDER
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Hubble's one-line summary of the L4 layer.
pub fn summary(r: &FlowRecord) -> String {
    match r.l4_proto {
        proto::TCP => format!("TCP Flags: {}", tcp_flags_text(r.tcp_flags)),
        proto::UDP => "UDP".to_string(),
        proto::SCTP => "SCTP".to_string(),
        proto::ICMP => format!("ICMPv4 {}", icmp_type(false, r.icmp_type, r.icmp_code)),
        proto::ICMPV6 => format!("ICMPv6 {}", icmp_type(true, r.icmp_type, r.icmp_code)),
        _ => match r.ip_version {
            4 => "IPv4".to_string(),
            6 => "IPv6".to_string(),
            _ => String::new(),
        },
    }
}

fn mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn l4(r: &FlowRecord) -> Option<pb::Layer4> {
    use pb::layer4::Protocol as P;
    let (sp, dp) = (u32::from(r.src_port), u32::from(r.dst_port));
    let p = match r.l4_proto {
        proto::TCP => {
            let f = r.tcp_flags;
            P::Tcp(pb::Tcp {
                source_port: sp,
                destination_port: dp,
                flags: Some(pb::TcpFlags {
                    fin: f & tcp::FIN != 0,
                    syn: f & tcp::SYN != 0,
                    rst: f & tcp::RST != 0,
                    psh: f & tcp::PSH != 0,
                    ack: f & tcp::ACK != 0,
                    urg: f & tcp::URG != 0,
                    ece: f & tcp::ECE != 0,
                    cwr: f & tcp::CWR != 0,
                    ns: f & tcp::NS != 0,
                }),
            })
        }
        proto::UDP => P::Udp(pb::Udp {
            source_port: sp,
            destination_port: dp,
        }),
        proto::SCTP => P::Sctp(pb::Sctp {
            source_port: sp,
            destination_port: dp,
        }),
        proto::ICMP => P::IcmPv4(pb::IcmPv4 {
            r#type: u32::from(r.icmp_type),
            code: u32::from(r.icmp_code),
        }),
        proto::ICMPV6 => P::IcmPv6(pb::IcmPv6 {
            r#type: u32::from(r.icmp_type),
            code: u32::from(r.icmp_code),
        }),
        _ => return None,
    };
    Some(pb::Layer4 { protocol: Some(p) })
}

/// Builds `Flow`s and `LostEvent`s from records for one server.
pub struct Materializer<'a> {
    pub metadata: &'a Metadata,
    pub node_name: &'a str,
    pub uuid_prefix: &'a str,
}

impl Materializer<'_> {
    fn endpoint(&self, meta: u32, identity: u32) -> pb::Endpoint {
        match self.metadata.table.endpoint(meta) {
            Some(e) => pb::Endpoint {
                id: e.info.endpoint_id,
                identity,
                cluster_name: e.info.cluster_name.clone(),
                namespace: e.info.namespace.clone(),
                labels: e.info.labels.clone(),
                pod_name: e.info.pod_name.clone(),
                workloads: e
                    .info
                    .workloads
                    .iter()
                    .map(|w| pb::Workload {
                        name: w.name.clone(),
                        kind: w.kind.clone(),
                    })
                    .collect(),
            },
            None => pb::Endpoint {
                identity,
                labels: self.metadata.identity_labels(identity),
                ..Default::default()
            },
        }
    }

    fn service(&self, idx: u32) -> Option<pb::Service> {
        self.metadata.table.service(idx).map(|s| pb::Service {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
        })
    }

    pub fn flow(&self, r: &FlowRecord) -> Flow {
        let mut uuid_buf = [0u8; 36];
        let ip = match (r.src_addr(), r.dst_addr()) {
            (Some(s), Some(d)) => Some(pb::Ip {
                source: s.to_string(),
                destination: d.to_string(),
                ip_version: if r.ip_version == 6 {
                    pb::IpVersion::IPv6
                } else {
                    pb::IpVersion::IPv4
                } as i32,
                ..Default::default()
            }),
            (None, Some(d)) => Some(pb::Ip {
                destination: d.to_string(),
                ip_version: if r.ip_version == 6 {
                    pb::IpVersion::IPv6
                } else {
                    pb::IpVersion::IPv4
                } as i32,
                ..Default::default()
            }),
            _ => None,
        };
        let flow_type = if r.msg_type == message_type::TRACE_SOCK {
            pb::FlowType::Sock
        } else {
            pb::FlowType::L3L4
        };
        let is_reply = match r.is_reply {
            reply::YES => Some(BoolValue { value: true }),
            reply::NO => Some(BoolValue { value: false }),
            _ => None,
        };
        Flow {
            time: Some(timestamp(r.time_ns)),
            uuid: format_uuid(self.uuid_prefix, r.seq, &mut uuid_buf).to_string(),
            emitter: Some(pb::Emitter {
                name: EMITTER.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
            verdict: i32::from(r.verdict),
            drop_reason: u32::from(r.drop_reason),
            ethernet: (r.has_ethernet != 0).then(|| pb::Ethernet {
                source: mac(&r.src_mac),
                destination: mac(&r.dst_mac),
            }),
            ip,
            l4: l4(r),
            source: (r.msg_type != message_type::TRACE_SOCK)
                .then(|| self.endpoint(r.src_meta, r.src_identity)),
            destination: Some(self.endpoint(r.dst_meta, r.dst_identity)),
            r#type: flow_type as i32,
            node_name: self.node_name.to_string(),
            reply: r.is_reply == reply::YES,
            event_type: Some(pb::CiliumEventType {
                r#type: i32::from(r.msg_type),
                sub_type: i32::from(r.subtype),
            }),
            source_service: self.service(r.src_service),
            destination_service: self.service(r.dst_service),
            traffic_direction: i32::from(r.direction),
            policy_match_type: u32::from(r.match_type),
            trace_observation_point: i32::from(r.obs_point),
            trace_reason: i32::from(r.trace_reason),
            drop_reason_desc: i32::from(r.drop_reason),
            is_reply,
            interface: (r.ifindex != 0).then(|| pb::NetworkInterface {
                index: r.ifindex,
                name: String::new(),
            }),
            proxy_port: r.proxy_port,
            sock_xlate_point: i32::from(r.sock_xlate),
            summary: summary(r),
            ..Default::default()
        }
    }

    pub fn lost_event(&self, r: &FlowRecord) -> pb::LostEvent {
        pb::LostEvent {
            source: pb::LostEventSource::PerfEventRingBuffer as i32,
            num_events_lost: r.lost_count,
            cpu: Some(Int32Value {
                value: r.cpu as i32,
            }),
            first: Some(timestamp(r.time_ns)),
            last: Some(timestamp(r.time_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_stable_and_well_formed() {
        let mut a = [0u8; 36];
        let u = format_uuid("0123abcd-ef01-4abc", 0x1_0000_0000_0042, &mut a).to_string();
        assert_eq!(u, "0123abcd-ef01-4abc-8001-000000000042");
        let p = new_uuid_prefix();
        assert_eq!(p.len(), 18);
        assert_eq!(&p[14..15], "4");
    }

    #[test]
    fn summaries_read_like_hubble() {
        let mut r = FlowRecord {
            l4_proto: proto::TCP,
            tcp_flags: tcp::SYN | tcp::ACK,
            ..FlowRecord::EMPTY
        };
        assert_eq!(summary(&r), "TCP Flags: SYN, ACK");
        r.tcp_flags = tcp::ACK | tcp::FIN | tcp::PSH;
        assert_eq!(summary(&r), "TCP Flags: ACK, FIN, PSH");
        r = FlowRecord {
            l4_proto: proto::ICMP,
            icmp_type: 8,
            ..FlowRecord::EMPTY
        };
        assert_eq!(summary(&r), "ICMPv4 EchoRequest");
        r.icmp_type = 3;
        r.icmp_code = 3;
        assert_eq!(summary(&r), "ICMPv4 DestinationUnreachable(Port)");
        r = FlowRecord {
            l4_proto: proto::ICMPV6,
            icmp_type: 129,
            ..FlowRecord::EMPTY
        };
        assert_eq!(summary(&r), "ICMPv6 EchoReply");
        r.l4_proto = proto::UDP;
        assert_eq!(summary(&r), "UDP");
    }
}
