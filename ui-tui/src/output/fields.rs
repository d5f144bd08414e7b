//! The pieces every text format shows, computed as Hubble's printer does: endpoint names,
//! identities, the event-type column, verdicts and summaries.

use periscope_probes::abi::{drop_reason_text, message_type};
use periscope_proto::flow::{
    AuthType, DebugCapturePoint, Endpoint, Flow, L7FlowType, LostEventSource,
    SocketTranslationPoint, TrafficDirection, Verdict, layer4, layer7,
};
use periscope_proto::relay::NodeState;

use super::PrinterOptions;
use super::color::{Colorer, sanitize};
use crate::filters::{RESERVED_IDENTITIES, TRACE_SUBTYPES};

/// Values a printer line needs, already sanitized and (optionally) colored.
pub struct FlowFields {
    pub src: String,
    pub dst: String,
    pub src_identity: String,
    pub dst_identity: String,
    pub flow_type: String,
    pub verdict: String,
    pub summary: String,
}

impl FlowFields {
    pub fn new(f: &Flow, opts: &PrinterOptions, c: &Colorer) -> Self {
        let (src, dst) = host_names(f, opts.ip_translation, c);
        Self {
            src,
            dst,
            src_identity: c.identity(&identity_text(f.source.as_ref().map_or(0, |e| e.identity))),
            dst_identity: c.identity(&identity_text(
                f.destination.as_ref().map_or(0, |e| e.identity),
            )),
            flow_type: sanitize(&flow_type(f)),
            verdict: verdict(f, c),
            summary: summary_with_auth(f, c),
        }
    }
}

/// `(ID:n)`, or `(world)` style for reserved identities (identity 0 is `unknown`).
pub fn identity_text(id: u32) -> String {
    if id == 0 {
        return "(unknown)".to_string();
    }
    match RESERVED_IDENTITIES.iter().find(|(_, n)| *n == id) {
        Some((name, _)) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

fn ports(f: &Flow) -> (String, String) {
    match f.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => {
            (t.source_port.to_string(), t.destination_port.to_string())
        }
        Some(layer4::Protocol::Udp(u)) => {
            (u.source_port.to_string(), u.destination_port.to_string())
        }
        Some(layer4::Protocol::Sctp(s)) => {
            (s.source_port.to_string(), s.destination_port.to_string())
        }
        _ => (String::new(), String::new()),
    }
}

/// Source and destination as `namespace/pod:port`, `namespace/service:port`, DNS names, or
/// `ip:port` (always IPs with `--numeric`); MAC addresses for non-IP flows.
pub fn host_names(f: &Flow, ip_translation: bool, c: &Colorer) -> (String, String) {
    let Some(ip) = f.ip.as_ref() else {
        return match f.ethernet.as_ref() {
            Some(eth) => (
                c.host(&sanitize(&eth.source)),
                c.host(&sanitize(&eth.destination)),
            ),
            None => (String::new(), String::new()),
        };
    };
    let (src_port, dst_port) = ports(f);
    let side = |addr: &str,
                port: &str,
                ep: Option<&Endpoint>,
                svc: Option<&periscope_proto::flow::Service>,
                names: &[String]| {
        let mut namespace = ep.map_or("", |e| e.namespace.as_str());
        let pod = ep.map_or("", |e| e.pod_name.as_str());
        let mut svc_name = "";
        if let Some(s) = svc {
            namespace = &s.namespace;
            svc_name = &s.name;
        }
        let host = hostname(
            addr,
            port,
            namespace,
            pod,
            svc_name,
            names,
            ip_translation,
            c,
        );
        c.host(&host)
    };
    (
        side(
            &ip.source,
            &src_port,
            f.source.as_ref(),
            f.source_service.as_ref(),
            &f.source_names,
        ),
        side(
            &ip.destination,
            &dst_port,
            f.destination.as_ref(),
            f.destination_service.as_ref(),
            &f.destination_names,
        ),
    )
}

#[allow(clippy::too_many_arguments)]
fn hostname(
    ip: &str,
    port: &str,
    namespace: &str,
    pod: &str,
    svc: &str,
    names: &[String],
    ip_translation: bool,
    c: &Colorer,
) -> String {
    let join = |ns: &str, name: &str| {
        if ns.is_empty() {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        }
    };
    let mut host = ip.to_string();
    if ip_translation {
        if !pod.is_empty() {
            host = join(namespace, pod);
        } else if !svc.is_empty() {
            host = join(namespace, svc);
        } else if !names.is_empty() {
            host = names.join(",");
        }
    }
    let host = sanitize(&host);
    if !port.is_empty() && port != "0" {
        // Go's net.JoinHostPort brackets hosts that contain a colon (IPv6).
        if host.contains(':') {
            format!("[{host}]:{}", c.port(port))
        } else {
            format!("{host}:{}", c.port(port))
        }
    } else {
        host
    }
}

/// The event-type column: observation point for traces, drop reason for drops,
/// `policy-verdict:<match> <direction>` for verdicts, `http-request` style for L7.
pub fn flow_type(f: &Flow) -> String {
    if let Some(l7) = f.l7.as_ref() {
        let mut l7_type = L7FlowType::try_from(l7.r#type).map_or_else(
            |_| l7.r#type.to_string(),
            |t| t.as_str_name().to_ascii_lowercase(),
        );
        let protocol = match l7.record.as_ref() {
            Some(layer7::Record::Http(_)) => "http",
            Some(layer7::Record::Dns(dns)) => {
                if !dns.observation_source.is_empty() {
                    l7_type = format!("{l7_type} {}", dns.observation_source);
                }
                "dns"
            }
            Some(layer7::Record::Kafka(_)) => "kafka",
            None => "l7",
        };
        return format!("{protocol}-{l7_type}");
    }
    let Some(et) = f.event_type.as_ref() else {
        return "UNKNOWN".to_string();
    };
    let sub = et.sub_type;
    match u8::try_from(et.r#type) {
        Ok(message_type::TRACE) => u8::try_from(sub)
            .ok()
            .and_then(|s| TRACE_SUBTYPES.iter().find(|(_, p)| *p == s))
            .map_or_else(|| sub.to_string(), |(name, _)| (*name).to_string()),
        Ok(message_type::DROP) => u8::try_from(sub)
            .ok()
            .and_then(drop_reason_text)
            .map_or_else(|| sub.to_string(), str::to_string),
        Ok(message_type::POLICY_VERDICT) => format!(
            "policy-verdict:{} {}",
            policy_match_type(f.policy_match_type),
            TrafficDirection::try_from(f.traffic_direction).map_or_else(
                |_| f.traffic_direction.to_string(),
                |d| d.as_str_name().to_string()
            )
        ),
        Ok(message_type::CAPTURE) => DebugCapturePoint::try_from(f.debug_capture_point)
            .map_or_else(
                |_| f.debug_capture_point.to_string(),
                |p| p.as_str_name().to_string(),
            ),
        Ok(message_type::TRACE_SOCK) => {
            match SocketTranslationPoint::try_from(f.sock_xlate_point) {
                Ok(SocketTranslationPoint::SockXlatePointPostDirectionFwd) => {
                    "post-xlate-fwd".into()
                }
                Ok(SocketTranslationPoint::SockXlatePointPostDirectionRev) => {
                    "post-xlate-rev".into()
                }
                Ok(SocketTranslationPoint::SockXlatePointPreDirectionFwd) => "pre-xlate-fwd".into(),
                Ok(SocketTranslationPoint::SockXlatePointPreDirectionRev) => "pre-xlate-rev".into(),
                Ok(p) => p.as_str_name().to_string(),
                Err(_) => f.sock_xlate_point.to_string(),
            }
        }
        _ => "UNKNOWN".to_string(),
    }
}

/// Cilium's policy match type names.
fn policy_match_type(m: u32) -> &'static str {
    match m {
        0 => "none",
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "unknown",
    }
}

fn is_policy_verdict(f: &Flow) -> bool {
    f.event_type
        .as_ref()
        .is_some_and(|e| e.r#type == i32::from(message_type::POLICY_VERDICT))
}

/// The verdict word; policy-verdict events say ALLOWED/DENIED/AUDITED instead.
pub fn verdict(f: &Flow, c: &Colorer) -> String {
    let Ok(v) = Verdict::try_from(f.verdict) else {
        return f.verdict.to_string();
    };
    let pv = is_policy_verdict(f);
    match v {
        Verdict::Forwarded | Verdict::Redirected => {
            c.green(if pv { "ALLOWED" } else { v.as_str_name() })
        }
        Verdict::Dropped | Verdict::Error => c.red(if pv { "DENIED" } else { v.as_str_name() }),
        Verdict::Audit => c.yellow(if pv { "AUDITED" } else { v.as_str_name() }),
        Verdict::Traced | Verdict::Translated => c.yellow(v.as_str_name()),
        Verdict::Unknown => v.as_str_name().to_string(),
    }
}

/// The summary plus `; Auth: <type>` when authentication was involved.
pub fn summary_with_auth(f: &Flow, c: &Colorer) -> String {
    let summary = sanitize(&summary(f));
    match AuthType::try_from(f.auth_type) {
        Ok(AuthType::Disabled) => summary,
        Ok(AuthType::TestAlwaysFail) => {
            format!(
                "{summary}; Auth: {}",
                c.red(AuthType::TestAlwaysFail.as_str_name())
            )
        }
        Ok(a) => format!("{summary}; Auth: {}", c.green(a.as_str_name())),
        Err(_) => format!("{summary}; Auth: {}", f.auth_type),
    }
}

/// `flow.Summary` when the server filled it in, otherwise the one Hubble's parser would have
/// written (`TCP Flags: SYN, ACK`, `ICMPv4 EchoRequest`, `UDP`, `HTTP/1.1 GET http://…`).
pub fn summary(f: &Flow) -> String {
    if !f.summary.is_empty() {
        return f.summary.clone();
    }
    if let Some(l7) = f.l7.as_ref() {
        let response = l7.r#type == L7FlowType::Response as i32;
        match l7.record.as_ref() {
            Some(layer7::Record::Http(h)) => {
                let request = format!("{} {}", h.method, h.url);
                return if response {
                    format!(
                        "{} {} {}ms ({request})",
                        h.protocol,
                        h.code,
                        l7.latency_ns / 1_000_000
                    )
                } else {
                    format!("{} {request}", h.protocol)
                };
            }
            Some(layer7::Record::Dns(d)) => {
                let qtypes = d.qtypes.join(",");
                return if response {
                    let answer = if d.rcode != 0 {
                        format!("RCode: {}", dns_rcode(d.rcode))
                    } else {
                        d.ips
                            .iter()
                            .chain(&d.cnames)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    format!(
                        "DNS Answer {answer:?} TTL: {} (Proxy {} {qtypes})",
                        d.ttl, d.query
                    )
                } else {
                    format!("DNS Query {} {qtypes}", d.query)
                };
            }
            Some(layer7::Record::Kafka(k)) => {
                return format!("Kafka {} topic {}", k.api_key, k.topic);
            }
            None => {}
        }
    }
    match f.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => {
            let flags = t.flags.unwrap_or_default();
            let names: Vec<&str> = [
                (flags.syn, "SYN"),
                (flags.ack, "ACK"),
                (flags.rst, "RST"),
                (flags.fin, "FIN"),
                (flags.psh, "PSH"),
                (flags.urg, "URG"),
                (flags.ece, "ECE"),
                (flags.cwr, "CWR"),
                (flags.ns, "NS"),
            ]
            .into_iter()
            .filter_map(|(set, n)| set.then_some(n))
            .collect();
            format!("TCP Flags: {}", names.join(", "))
        }
        Some(layer4::Protocol::Udp(_)) => "UDP".to_string(),
        Some(layer4::Protocol::Sctp(_)) => "SCTP".to_string(),
        Some(layer4::Protocol::IcmPv4(i)) => format!("ICMPv4 {}", icmpv4_text(i.r#type, i.code)),
        Some(layer4::Protocol::IcmPv6(i)) => format!("ICMPv6 {}", icmpv6_text(i.r#type, i.code)),
        Some(layer4::Protocol::Vrrp(_)) => "VRRP".to_string(),
        Some(layer4::Protocol::Igmp(_)) => "IGMP".to_string(),
        None => match f.ip.as_ref().map(|ip| ip.ip_version) {
            Some(1) => "IPv4".to_string(),
            Some(2) => "IPv6".to_string(),
            _ => String::new(),
        },
    }
}

fn dns_rcode(code: u32) -> String {
    match code {
        1 => "Format Error".into(),
        2 => "Server Failure".into(),
        3 => "Non-Existent Domain".into(),
        4 => "Not Implemented".into(),
        5 => "Query Refused".into(),
        c => c.to_string(),
    }
}

/// ICMP names from the flow server's single table; values beyond a byte are printed raw.
fn icmp_text(v6: bool, t: u32, code: u32) -> String {
    match (u8::try_from(t), u8::try_from(code)) {
        (Ok(t), Ok(c)) => periscope_flow_server::icmp::icmp_type(v6, t, c),
        _ => format!("{t}({code})"),
    }
}

pub fn icmpv4_text(t: u32, code: u32) -> String {
    icmp_text(false, t, code)
}

pub fn icmpv6_text(t: u32, code: u32) -> String {
    icmp_text(true, t, code)
}

/// Name of a lost-event source (`HUBBLE_RING_BUFFER`).
pub fn lost_source(source: i32) -> String {
    LostEventSource::try_from(source)
        .map_or_else(|_| source.to_string(), |s| s.as_str_name().to_string())
}

/// Name of a node state (`NODE_UNAVAILABLE`).
pub fn node_state(state: i32) -> String {
    NodeState::try_from(state).map_or_else(|_| state.to_string(), |s| s.as_str_name().to_string())
}

/// Hubble's `joinWithCutOff`: joins names but stops adding after ~`target` characters, then
/// says how many were left out.
pub fn join_with_cutoff(elems: &[String], sep: &str, target: usize) -> String {
    let mut len = 0;
    let mut end = elems.len();
    for (i, e) in elems.iter().enumerate() {
        len += e.len() + sep.len();
        if len > target && i > 0 {
            end = i;
            break;
        }
    }
    let joined = elems[..end]
        .iter()
        .map(|e| sanitize(e))
        .collect::<Vec<_>>()
        .join(sep);
    match elems.len() - end {
        0 => joined,
        omitted => format!("{joined} (and {omitted} more)"),
    }
}

/// Hubble's `uint64Grouping`: `4095` → `4,095`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_print_reserved_names() {
        assert_eq!(identity_text(2), "(world)");
        assert_eq!(identity_text(6), "(remote-node)");
        assert_eq!(identity_text(0), "(unknown)");
        assert_eq!(identity_text(13058), "(ID:13058)");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(4095), "4,095");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn long_node_lists_are_cut() {
        let names: Vec<String> = (0..20).map(|i| format!("node-{i:02}")).collect();
        let s = join_with_cutoff(&names, ", ", 50);
        assert!(s.starts_with("node-00, node-01"));
        assert!(s.ends_with("more)"), "{s}");
        assert_eq!(join_with_cutoff(&names[..2], ", ", 50), "node-00, node-01");
    }

    #[test]
    fn icmp_names_follow_gopacket() {
        assert_eq!(icmpv4_text(8, 0), "EchoRequest");
        assert_eq!(icmpv4_text(3, 3), "DestinationUnreachable(Port)");
        assert_eq!(icmpv6_text(129, 0), "EchoReply");
        assert_eq!(icmpv4_text(200, 1), "200(1)");
    }
}
