//! Hubble's flow filter semantics, compiled once per request and evaluated on compact records.
//!
//! Values of one field OR together, fields of one `FlowFilter` AND, filters of a list OR; a flow is
//! returned if it matches the whitelist (or the whitelist is empty) and no blacklist filter.
//! Invalid input is an error naming the field, which the server turns into `InvalidArgument`.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use periscope_proto::flow::{self as pb, FlowFilter};
use regex::Regex;

use crate::labels::Selector;
use crate::meta::{InternedEndpoint, Metadata, ServiceInfo};
use crate::record::{FlowRecord, kind, proto, reply, tcp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter field {field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> FilterError {
    FilterError {
        field,
        message: message.into(),
    }
}

/// `namespace/name-prefix`; an empty namespace (`/name` or just `name`) matches any namespace,
/// as Hubble's `--all-namespaces` filters expect.
#[derive(Debug, Clone)]
struct NamespacedPrefix {
    namespace: String,
    prefix: String,
}

impl NamespacedPrefix {
    fn parse(field: &'static str, s: &str) -> Result<Self, FilterError> {
        if s.is_empty() {
            return Err(err(field, "name must not be empty"));
        }
        Ok(match s.split_once('/') {
            Some((ns, p)) => Self {
                namespace: ns.to_string(),
                prefix: p.to_string(),
            },
            None => Self {
                namespace: String::new(),
                prefix: s.to_string(),
            },
        })
    }

    fn matches(&self, namespace: &str, name: &str) -> bool {
        (self.namespace.is_empty() || self.namespace == namespace) && name.starts_with(&self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone)]
enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv4,
    Icmpv6,
    Sctp,
    /// L7 protocols: no L7 flows are stored yet, so these match nothing.
    L7,
}

#[derive(Debug, Clone)]
enum Cond {
    Ip(Side, Vec<IpNet>),
    Pod(Side, Vec<NamespacedPrefix>),
    Service(Side, Vec<NamespacedPrefix>),
    Label(Side, Vec<Selector>),
    Workload(Side, Vec<pb::Workload>),
    Identity(Side, Vec<u32>),
    Cluster(Side, Vec<String>),
    Port(Side, Vec<u16>),
    Verdict(Vec<u8>),
    DropReason(Vec<u8>),
    Direction(Vec<u8>),
    IpVersion(Vec<u8>),
    EventType(Vec<(u8, Option<u8>)>),
    Protocol(Vec<Protocol>),
    Reply(Vec<bool>),
    TcpFlags(Vec<u16>),
    NodeName(Vec<Regex>),
    NodeLabels(Vec<Selector>),
    Interface(Vec<pb::NetworkInterface>),
    Uuid(Vec<String>),
    Encrypted(Vec<bool>),
    /// Fields that need L7, DNS names, tracing or translation data our records don't carry yet.
    NeverMatches,
}

/// One `FlowFilter`: every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    conds: Vec<Cond>,
}

/// A request's whitelist and blacklist.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    whitelist: Vec<CompiledFilter>,
    blacklist: Vec<CompiledFilter>,
}

/// What evaluating a record needs besides the record.
pub struct EvalCtx<'a> {
    pub endpoints: &'a [Arc<InternedEndpoint>],
    pub services: &'a [Arc<ServiceInfo>],
    pub metadata: &'a Metadata,
    pub node_name: &'a str,
    pub uuid_prefix: &'a str,
}

fn enum_values(
    field: &'static str,
    vals: &[i32],
    valid: impl Fn(i32) -> bool,
) -> Result<Vec<u8>, FilterError> {
    vals.iter()
        .map(|&v| {
            if valid(v) {
                u8::try_from(v).map_err(|_| err(field, format!("unsupported value {v}")))
            } else {
                Err(err(field, format!("unknown value {v}")))
            }
        })
        .collect()
}

fn parse_ips(field: &'static str, vals: &[String]) -> Result<Vec<IpNet>, FilterError> {
    vals.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| err(field, format!("{s:?} is not an IP address or CIDR")))
        })
        .collect()
}

fn parse_ports(field: &'static str, vals: &[String]) -> Result<Vec<u16>, FilterError> {
    vals.iter()
        .map(|s| {
            s.parse::<u16>()
                .map_err(|_| err(field, format!("{s:?} is not a port number")))
        })
        .collect()
}

fn parse_selectors(field: &'static str, vals: &[String]) -> Result<Vec<Selector>, FilterError> {
    vals.iter()
        .map(|s| Selector::parse(s).map_err(|m| err(field, m)))
        .collect()
}

/// Node name patterns: `*` wildcards; `cluster/node` or `node` (any cluster).
fn node_pattern(s: &str) -> Result<Regex, FilterError> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.*/".contains(c))
        || s.matches('/').count() > 1
    {
        return Err(err("node_name", format!("invalid node name pattern {s:?}")));
    }
    let (cluster, node) = s.split_once('/').unwrap_or(("*", s));
    let glob = |p: &str| regex::escape(p).replace(r"\*", "[^/]*");
    Regex::new(&format!("^(?:{}/)?{}$", glob(cluster), glob(node)))
        .map_err(|e| err("node_name", e.to_string()))
}

fn check_regexes(field: &'static str, vals: &[String]) -> Result<(), FilterError> {
    for v in vals {
        Regex::new(v).map_err(|e| err(field, format!("{v:?}: {e}")))?;
    }
    Ok(())
}

fn check_status_codes(vals: &[String]) -> Result<(), FilterError> {
    for v in vals {
        let digits = v.strip_suffix('+').unwrap_or(v);
        let ok =
            !digits.is_empty() && digits.len() <= 3 && digits.chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(err(
                "http_status_code",
                format!("invalid status code {v:?}"),
            ));
        }
    }
    Ok(())
}

fn tcp_mask(f: &pb::TcpFlags) -> u16 {
    let bits = [
        (f.fin, tcp::FIN),
        (f.syn, tcp::SYN),
        (f.rst, tcp::RST),
        (f.psh, tcp::PSH),
        (f.ack, tcp::ACK),
        (f.urg, tcp::URG),
        (f.ece, tcp::ECE),
        (f.cwr, tcp::CWR),
        (f.ns, tcp::NS),
    ];
    bits.iter().filter(|(on, _)| *on).fold(0, |m, (_, b)| m | b)
}

impl CompiledFilter {
    pub fn compile(f: &FlowFilter) -> Result<Self, FilterError> {
        use Side::*;
        let mut c = Vec::new();
        let mut push = |cond: Cond, non_empty: bool| {
            if non_empty {
                c.push(cond);
            }
        };
        push(Cond::Uuid(f.uuid.clone()), !f.uuid.is_empty());
        push(
            Cond::Ip(Source, parse_ips("source_ip", &f.source_ip)?),
            !f.source_ip.is_empty(),
        );
        push(
            Cond::Ip(Destination, parse_ips("destination_ip", &f.destination_ip)?),
            !f.destination_ip.is_empty(),
        );
        parse_ips("source_ip_xlated", &f.source_ip_xlated)?;
        push(Cond::NeverMatches, !f.source_ip_xlated.is_empty());
        let pods = |field, v: &[String]| {
            v.iter()
                .map(|s| NamespacedPrefix::parse(field, s))
                .collect::<Result<Vec<_>, _>>()
        };
        push(
            Cond::Pod(Source, pods("source_pod", &f.source_pod)?),
            !f.source_pod.is_empty(),
        );
        push(
            Cond::Pod(Destination, pods("destination_pod", &f.destination_pod)?),
            !f.destination_pod.is_empty(),
        );
        push(
            Cond::Service(Source, pods("source_service", &f.source_service)?),
            !f.source_service.is_empty(),
        );
        push(
            Cond::Service(
                Destination,
                pods("destination_service", &f.destination_service)?,
            ),
            !f.destination_service.is_empty(),
        );
        push(
            Cond::Label(Source, parse_selectors("source_label", &f.source_label)?),
            !f.source_label.is_empty(),
        );
        push(
            Cond::Label(
                Destination,
                parse_selectors("destination_label", &f.destination_label)?,
            ),
            !f.destination_label.is_empty(),
        );
        // No DNS-derived names are attached to flows yet.
        push(
            Cond::NeverMatches,
            !f.source_fqdn.is_empty() || !f.destination_fqdn.is_empty(),
        );
        push(
            Cond::Workload(Source, f.source_workload.clone()),
            !f.source_workload.is_empty(),
        );
        push(
            Cond::Workload(Destination, f.destination_workload.clone()),
            !f.destination_workload.is_empty(),
        );
        push(
            Cond::Cluster(Source, f.source_cluster_name.clone()),
            !f.source_cluster_name.is_empty(),
        );
        push(
            Cond::Cluster(Destination, f.destination_cluster_name.clone()),
            !f.destination_cluster_name.is_empty(),
        );
        push(
            Cond::Identity(Source, f.source_identity.clone()),
            !f.source_identity.is_empty(),
        );
        push(
            Cond::Identity(Destination, f.destination_identity.clone()),
            !f.destination_identity.is_empty(),
        );
        let dirs = enum_values("traffic_direction", &f.traffic_direction, |v| {
            pb::TrafficDirection::try_from(v).is_ok()
        })?;
        push(Cond::Direction(dirs), !f.traffic_direction.is_empty());
        let verdicts = enum_values("verdict", &f.verdict, |v| pb::Verdict::try_from(v).is_ok())?;
        push(Cond::Verdict(verdicts), !f.verdict.is_empty());
        let reasons = enum_values("drop_reason_desc", &f.drop_reason_desc, |v| {
            pb::DropReason::try_from(v).is_ok()
        })?;
        push(Cond::DropReason(reasons), !f.drop_reason_desc.is_empty());
        let versions = enum_values("ip_version", &f.ip_version, |v| {
            pb::IpVersion::try_from(v).is_ok()
        })?;
        push(Cond::IpVersion(versions), !f.ip_version.is_empty());
        push(
            Cond::Interface(f.interface.clone()),
            !f.interface.is_empty(),
        );
        let mut types = Vec::new();
        for t in &f.event_type {
            let ty = u8::try_from(t.r#type)
                .map_err(|_| err("event_type", format!("type {} out of range", t.r#type)))?;
            let sub = if t.match_sub_type {
                Some(u8::try_from(t.sub_type).map_err(|_| {
                    err(
                        "event_type",
                        format!("sub_type {} out of range", t.sub_type),
                    )
                })?)
            } else {
                None
            };
            types.push((ty, sub));
        }
        push(Cond::EventType(types), !f.event_type.is_empty());
        check_status_codes(&f.http_status_code)?;
        let mut protocols = Vec::new();
        for p in &f.protocol {
            protocols.push(match p.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "icmp" => Protocol::Icmp,
                "icmpv4" => Protocol::Icmpv4,
                "icmpv6" => Protocol::Icmpv6,
                "sctp" => Protocol::Sctp,
                "http" | "dns" | "kafka" | "vrrp" | "igmp" => Protocol::L7,
                other => return Err(err("protocol", format!("unknown protocol {other:?}"))),
            });
        }
        push(Cond::Protocol(protocols), !f.protocol.is_empty());
        push(
            Cond::Port(Source, parse_ports("source_port", &f.source_port)?),
            !f.source_port.is_empty(),
        );
        push(
            Cond::Port(
                Destination,
                parse_ports("destination_port", &f.destination_port)?,
            ),
            !f.destination_port.is_empty(),
        );
        push(Cond::Reply(f.reply.clone()), !f.reply.is_empty());
        check_regexes("dns_query", &f.dns_query)?;
        check_regexes("http_path", &f.http_path)?;
        check_regexes("http_url", &f.http_url)?;
        for m in &f.http_method {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(err("http_method", format!("invalid method {m:?}")));
            }
        }
        let needs_l7 = !f.http_status_code.is_empty()
            || !f.dns_query.is_empty()
            || !f.http_method.is_empty()
            || !f.http_path.is_empty()
            || !f.http_url.is_empty()
            || !f.http_header.is_empty()
            || !f.trace_id.is_empty()
            || !f.ip_trace_id.is_empty();
        push(Cond::NeverMatches, needs_l7);
        let masks: Vec<u16> = f.tcp_flags.iter().map(tcp_mask).collect();
        if masks.contains(&0) {
            return Err(err(
                "tcp_flags",
                "a TCP flags filter must set at least one flag",
            ));
        }
        push(Cond::TcpFlags(masks), !f.tcp_flags.is_empty());
        let nodes = f
            .node_name
            .iter()
            .map(|s| node_pattern(s))
            .collect::<Result<Vec<_>, _>>()?;
        push(Cond::NodeName(nodes), !f.node_name.is_empty());
        push(
            Cond::NodeLabels(parse_selectors("node_labels", &f.node_labels)?),
            !f.node_labels.is_empty(),
        );
        push(
            Cond::Encrypted(f.encrypted.clone()),
            !f.encrypted.is_empty(),
        );
        if let Some(exp) = &f.experimental
            && !exp.cel_expression.is_empty()
        {
            return Err(err(
                "experimental.cel_expression",
                "CEL expressions are not supported",
            ));
        }
        Ok(CompiledFilter { conds: c })
    }

    pub fn matches(&self, r: &FlowRecord, ctx: &EvalCtx<'_>) -> bool {
        if r.kind != kind::FLOW {
            return false;
        }
        self.conds.iter().all(|c| cond_matches(c, r, ctx))
    }
}

fn endpoint<'a>(r: &FlowRecord, side: Side, ctx: &EvalCtx<'a>) -> Option<&'a InternedEndpoint> {
    let idx = match side {
        Side::Source => r.src_meta,
        Side::Destination => r.dst_meta,
    };
    ctx.endpoints
        .get((idx as usize).checked_sub(1)?)
        .map(|a| &**a)
}

fn cond_matches(c: &Cond, r: &FlowRecord, ctx: &EvalCtx<'_>) -> bool {
    match c {
        Cond::Ip(side, nets) => {
            let ip = if *side == Side::Source {
                r.src_addr()
            } else {
                r.dst_addr()
            };
            ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
        }
        Cond::Pod(side, pods) => endpoint(r, *side, ctx).is_some_and(|e| {
            pods.iter()
                .any(|p| p.matches(&e.info.namespace, &e.info.pod_name))
        }),
        Cond::Service(side, svcs) => {
            let idx = if *side == Side::Source {
                r.src_service
            } else {
                r.dst_service
            };
            (idx as usize)
                .checked_sub(1)
                .and_then(|i| ctx.services.get(i))
                .is_some_and(|s| svcs.iter().any(|p| p.matches(&s.namespace, &s.name)))
        }
        Cond::Label(side, sels) => match endpoint(r, *side, ctx) {
            Some(e) => sels.iter().any(|s| s.matches(&e.info.labels)),
            None => {
                let id = if *side == Side::Source {
                    r.src_identity
                } else {
                    r.dst_identity
                };
                let labels = ctx.metadata.identity_labels(id);
                sels.iter().any(|s| s.matches(&labels))
            }
        },
        Cond::Workload(side, wls) => endpoint(r, *side, ctx).is_some_and(|e| {
            wls.iter().any(|w| {
                e.info
                    .workloads
                    .iter()
                    .any(|ew| ew.name == w.name && (w.kind.is_empty() || ew.kind == w.kind))
            })
        }),
        Cond::Identity(side, ids) => {
            let id = if *side == Side::Source {
                r.src_identity
            } else {
                r.dst_identity
            };
            ids.contains(&id)
        }
        Cond::Cluster(side, names) => {
            endpoint(r, *side, ctx).is_some_and(|e| names.contains(&e.info.cluster_name))
        }
        Cond::Port(side, ports) => {
            let has_ports = matches!(r.l4_proto, proto::TCP | proto::UDP | proto::SCTP);
            let port = if *side == Side::Source {
                r.src_port
            } else {
                r.dst_port
            };
            has_ports && ports.contains(&port)
        }
        Cond::Verdict(v) => v.contains(&r.verdict),
        Cond::DropReason(v) => r.drop_reason != 0 && v.contains(&r.drop_reason),
        Cond::Direction(v) => v.contains(&r.direction),
        Cond::IpVersion(v) => {
            let pv = match r.ip_version {
                4 => 1,
                6 => 2,
                _ => 0,
            };
            v.contains(&pv)
        }
        Cond::EventType(types) => types
            .iter()
            .any(|&(t, sub)| t == r.msg_type && sub.is_none_or(|s| s == r.subtype)),
        Cond::Protocol(ps) => ps.iter().any(|p| match p {
            Protocol::Tcp => r.l4_proto == proto::TCP,
            Protocol::Udp => r.l4_proto == proto::UDP,
            Protocol::Icmp => r.l4_proto == proto::ICMP || r.l4_proto == proto::ICMPV6,
            Protocol::Icmpv4 => r.l4_proto == proto::ICMP,
            Protocol::Icmpv6 => r.l4_proto == proto::ICMPV6,
            Protocol::Sctp => r.l4_proto == proto::SCTP,
            Protocol::L7 => false,
        }),
        Cond::Reply(v) => match r.is_reply {
            reply::YES => v.contains(&true),
            reply::NO => v.contains(&false),
            _ => false,
        },
        Cond::TcpFlags(masks) => {
            r.l4_proto == proto::TCP && masks.iter().any(|m| r.tcp_flags & m == *m)
        }
        Cond::NodeName(pats) => pats.iter().any(|p| p.is_match(ctx.node_name)),
        Cond::NodeLabels(sels) => sels.iter().any(|s| s.matches::<&str>(&[])),
        Cond::Interface(ifs) => ifs.iter().any(|i| i.index == r.ifindex),
        Cond::Uuid(ids) => {
            let mut buf = [0u8; 36];
            let uuid = crate::materialize::format_uuid(ctx.uuid_prefix, r.seq, &mut buf);
            ids.iter().any(|i| i == uuid)
        }
        Cond::Encrypted(v) => v.contains(&false),
        Cond::NeverMatches => false,
    }
}

impl FilterSet {
    pub fn compile(
        whitelist: &[FlowFilter],
        blacklist: &[FlowFilter],
    ) -> Result<Self, FilterError> {
        Ok(Self {
            whitelist: whitelist
                .iter()
                .map(CompiledFilter::compile)
                .collect::<Result<_, _>>()?,
            blacklist: blacklist
                .iter()
                .map(CompiledFilter::compile)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.whitelist.is_empty() && self.blacklist.is_empty()
    }

    pub fn matches(&self, r: &FlowRecord, ctx: &EvalCtx<'_>) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|f| f.matches(r, ctx)))
            && !self.blacklist.iter().any(|f| f.matches(r, ctx))
    }
}
