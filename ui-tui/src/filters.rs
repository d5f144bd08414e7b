//! Hubble's filter-flag semantics: [`FilterArgs`] → whitelist/blacklist `FlowFilter`s.
//!
//! - Flags that name both directions (`--pod`, `--ip`, `--label`, `--port`, …) build two filters:
//!   a "left" one with the source-side field and a "right" one with the destination-side field,
//!   so the request matches either side (two filters OR). Every other flag is applied to both.
//! - Several values of one flag OR (they go into one repeated field); different flags AND (they
//!   are fields of the same filter).
//! - `--not` sends the next filter flag to the blacklist instead of the whitelist.
//! - `-n/--namespace` (and `--from/to-namespace`, `-A`) qualify pod and service names; a name that
//!   is still unqualified afterwards gets the `default` namespace, as Hubble's server assumes.
//! - Combinations Hubble refuses (`--ip` with `--pod`, `--pod` with `--from-pod`, …) are errors.

use std::net::IpAddr;

use periscope_probes::abi::{message_type, obs_point};
use periscope_proto::flow::{
    DropReason, EventTypeFilter, FlowFilter, HttpHeader, IpVersion, NetworkInterface, TcpFlags,
    TrafficDirection, Verdict, Workload,
};

use crate::cli::{FilterArgs, FilterFlag};

/// The filters a request carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub whitelist: Vec<FlowFilter>,
    pub blacklist: Vec<FlowFilter>,
}

/// A filter flag value or combination that cannot be turned into filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("invalid --{flag} value {value:?}: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("filters --{0} and --{1} cannot be combined")]
    Conflict(&'static str, &'static str),
    #[error("namespace conflict: {0}")]
    Namespace(String),
    #[error("consecutive --not statements")]
    ConsecutiveNot,
    #[error("trailing --not found in the arguments")]
    TrailingNot,
    #[error("invalid --{flag} JSON filter: {reason}")]
    RawFilter { flag: &'static str, reason: String },
}

/// Namespace used for pod and service names that name none (Hubble's server default).
pub const DEFAULT_NAMESPACE: &str = "default";

use FilterFlag as F;

/// Flags that may not be combined within one list (white or black), Hubble's table.
#[rustfmt::skip]
const CONFLICTS: &[&[FilterFlag]] = &[
    &[F::FromFqdn, F::FromIp, F::Ip, F::Fqdn, F::FromNamespace, F::Namespace, F::FromAllNamespaces, F::AllNamespaces],
    &[F::FromFqdn, F::FromIp, F::Ip, F::Fqdn, F::FromPod, F::Pod],
    &[F::ToFqdn, F::ToIp, F::Ip, F::Fqdn, F::ToNamespace, F::Namespace, F::ToAllNamespaces, F::AllNamespaces],
    &[F::ToFqdn, F::ToIp, F::Ip, F::Fqdn, F::ToPod, F::Pod],
    &[F::ToPod, F::Namespace, F::AllNamespaces],
    &[F::FromPod, F::Namespace, F::AllNamespaces],
    &[F::ToService, F::Namespace, F::AllNamespaces],
    &[F::FromService, F::Namespace, F::AllNamespaces],
    &[F::SnatIp],
    &[F::Label, F::FromLabel],
    &[F::Label, F::ToLabel],
    &[F::Service, F::FromService],
    &[F::Service, F::ToService],
    &[F::Verdict],
    &[F::DropReasonDesc],
    &[F::Type],
    &[F::HttpStatus],
    &[F::HttpMethod],
    &[F::HttpPath],
    &[F::HttpUrl],
    &[F::HttpHeader],
    &[F::Protocol],
    &[F::Port, F::ToPort],
    &[F::Port, F::FromPort],
    &[F::Identity, F::ToIdentity],
    &[F::Identity, F::FromIdentity],
    &[F::Workload, F::ToWorkload],
    &[F::Workload, F::FromWorkload],
    &[F::NodeName, F::Cluster],
    &[F::NodeLabel],
    &[F::TcpFlags],
    &[F::Uuid],
    &[F::TrafficDirection],
];

/// Protocols Hubble's server filters on (L4 and L7).
const PROTOCOLS: &[&str] = &[
    "tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6", "vrrp", "igmp", "http", "dns", "kafka",
];

/// Reserved identities that `--identity` accepts by name (Cilium's numbering).
pub const RESERVED_IDENTITIES: &[(&str, u32)] = &[
    ("host", 1),
    ("world", 2),
    ("unmanaged", 3),
    ("health", 4),
    ("init", 5),
    ("remote-node", 6),
    ("kube-apiserver", 7),
    ("ingress", 8),
    ("world-ipv4", 9),
    ("world-ipv6", 10),
];

/// `-t` type names and the monitor message numbers our datapath uses.
pub const EVENT_TYPES: &[(&str, u8)] = &[
    ("drop", message_type::DROP),
    ("debug", message_type::DEBUG),
    ("capture", message_type::CAPTURE),
    ("trace", message_type::TRACE),
    ("policy-verdict", message_type::POLICY_VERDICT),
    ("recorder", message_type::RECORDER_CAPTURE),
    ("trace-sock", message_type::TRACE_SOCK),
    ("l7", message_type::ACCESS_LOG),
    ("agent", message_type::AGENT),
];

/// Trace observation point names (`-t trace:to-endpoint`), Cilium's spelling.
pub const TRACE_SUBTYPES: &[(&str, u8)] = &[
    ("to-endpoint", obs_point::TO_LXC),
    ("to-proxy", obs_point::TO_PROXY),
    ("to-host", obs_point::TO_HOST),
    ("to-stack", obs_point::TO_STACK),
    ("to-overlay", obs_point::TO_OVERLAY),
    ("from-endpoint", obs_point::FROM_LXC),
    ("from-proxy", obs_point::FROM_PROXY),
    ("from-host", obs_point::FROM_HOST),
    ("from-stack", obs_point::FROM_STACK),
    ("from-overlay", obs_point::FROM_OVERLAY),
    ("from-network", obs_point::FROM_NETWORK),
    ("to-network", obs_point::TO_NETWORK),
    ("from-crypto", obs_point::FROM_CRYPTO),
    ("to-crypto", obs_point::TO_CRYPTO),
];

/// Agent event subtype names (`-t agent:policy-updated`), Cilium's numbering.
const AGENT_SUBTYPES: &[(&str, i32)] = &[
    ("unspecified", 0),
    ("message", 1),
    ("agent-started", 2),
    ("endpoint-regenerate-success", 3),
    ("endpoint-regenerate-failure", 4),
    ("policy-updated", 5),
    ("policy-deleted", 6),
    ("endpoint-created", 7),
    ("endpoint-deleted", 8),
    ("ipcache-upserted", 9),
    ("ipcache-deleted", 10),
    ("service-upserted", 11),
    ("service-deleted", 12),
];

/// Builds the whitelist and blacklist from filter flags, with Hubble's semantics.
pub fn build(args: &FilterArgs) -> Result<Filters, FilterError> {
    let mut white = Tracker::default();
    let mut black = Tracker::default();
    let mut negate_next = false;
    for op in &args.ops {
        if op.flag == F::Not {
            if negate_next {
                return Err(FilterError::ConsecutiveNot);
            }
            negate_next = true;
            continue;
        }
        let tracker = if std::mem::take(&mut negate_next) {
            &mut black
        } else {
            &mut white
        };
        tracker.set(op.flag, &op.value)?;
    }
    if negate_next {
        return Err(FilterError::TrailingNot);
    }
    let mut filters = Filters {
        whitelist: white.flow_filters(),
        blacklist: black.flow_filters(),
    };
    filters
        .whitelist
        .extend(parse_raw("allowlist", &args.allowlist)?);
    filters
        .blacklist
        .extend(parse_raw("denylist", &args.denylist)?);
    Ok(filters)
}

fn parse_raw(flag: &'static str, raw: &[String]) -> Result<Vec<FlowFilter>, FilterError> {
    raw.iter()
        .map(|s| {
            serde_json::from_str::<FlowFilter>(s).map_err(|e| FilterError::RawFilter {
                flag,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// One list (white or black) under construction: `left OR right`.
#[derive(Debug, Default)]
struct Tracker {
    left: Option<FlowFilter>,
    right: Option<FlowFilter>,
    /// Namespaces from `-n`/`-A` (both sides), `--from-namespace`, `--to-namespace`.
    ns: Vec<String>,
    src_ns: Vec<String>,
    dst_ns: Vec<String>,
    changed: Vec<FilterFlag>,
}

enum Side {
    Both,
    Left,
    Right,
}

impl Tracker {
    fn apply(&mut self, side: Side, update: impl Fn(&mut FlowFilter)) {
        if matches!(side, Side::Both | Side::Left) {
            update(self.left.get_or_insert_with(FlowFilter::default));
        }
        if matches!(side, Side::Both | Side::Right) {
            update(self.right.get_or_insert_with(FlowFilter::default));
        }
    }

    /// `--x` (both sides: source on the left, destination on the right).
    fn either(&mut self, src: impl Fn(&mut FlowFilter), dst: impl Fn(&mut FlowFilter)) {
        self.apply(Side::Left, src);
        self.apply(Side::Right, dst);
    }

    fn check_conflicts(&self) -> Result<(), FilterError> {
        for group in CONFLICTS {
            for &a in group.iter() {
                if !self.changed.contains(&a) {
                    continue;
                }
                if let Some(&b) = group.iter().find(|&&b| b != a && self.changed.contains(&b)) {
                    return Err(FilterError::Conflict(a.name(), b.name()));
                }
            }
        }
        Ok(())
    }

    fn set(&mut self, flag: FilterFlag, val: &str) -> Result<(), FilterError> {
        if !self.changed.contains(&flag) {
            self.changed.push(flag);
        }
        self.check_conflicts()?;
        let v = val.to_string();
        match flag {
            F::Not => {}
            F::Uuid => self.apply(Side::Both, |f| f.uuid.push(v.clone())),
            F::NodeName => self.apply(Side::Both, |f| f.node_name.push(v.clone())),
            F::NodeLabel => self.apply(Side::Both, |f| f.node_labels.push(v.clone())),
            F::Cluster => self.either(
                |f| f.source_cluster_name.push(v.clone()),
                |f| f.destination_cluster_name.push(v.clone()),
            ),
            F::FromCluster => self.apply(Side::Both, |f| f.source_cluster_name.push(v.clone())),
            F::ToCluster => self.apply(Side::Both, |f| f.destination_cluster_name.push(v.clone())),
            F::Protocol => {
                if !PROTOCOLS.contains(&val.to_ascii_lowercase().as_str()) {
                    return Err(invalid(
                        flag,
                        val,
                        format!("expected one of {}", PROTOCOLS.join(", ")),
                    ));
                }
                self.apply(Side::Both, |f| f.protocol.push(v.clone()))
            }
            F::TcpFlags => {
                let flags = parse_tcp_flags(val).map_err(|reason| invalid(flag, val, reason))?;
                self.apply(Side::Both, |f| f.tcp_flags.push(flags))
            }
            F::Type => {
                let t = parse_event_type(val).map_err(|reason| invalid(flag, val, reason))?;
                self.apply(Side::Both, |f| f.event_type.push(t))
            }
            F::Verdict => {
                let verdict = Verdict::from_str_name(&val.to_ascii_uppercase())
                    .filter(|v| *v != Verdict::Unknown)
                    .ok_or_else(|| {
                        invalid(flag, val, "expected one of FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED")
                    })?;
                self.apply(Side::Both, |f| f.verdict.push(verdict as i32))
            }
            F::DropReasonDesc => {
                let reason = DropReason::from_str_name(&val.to_ascii_uppercase())
                    .filter(|r| *r != DropReason::Unknown)
                    .ok_or_else(|| {
                        invalid(flag, val, "expected a drop reason name like POLICY_DENIED")
                    })?;
                self.apply(Side::Both, |f| f.drop_reason_desc.push(reason as i32))
            }
            F::HttpStatus => {
                check_http_status(val).map_err(|reason| invalid(flag, val, reason))?;
                self.apply(Side::Both, |f| f.http_status_code.push(v.clone()))
            }
            F::HttpMethod => {
                if val.is_empty() || !val.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(invalid(flag, val, "expected an HTTP method like GET"));
                }
                self.apply(Side::Both, |f| f.http_method.push(v.clone()))
            }
            F::HttpPath => {
                check_regex(val).map_err(|reason| invalid(flag, val, reason))?;
                self.apply(Side::Both, |f| f.http_path.push(v.clone()))
            }
            F::HttpUrl => {
                check_regex(val).map_err(|reason| invalid(flag, val, reason))?;
                self.apply(Side::Both, |f| f.http_url.push(v.clone()))
            }
            F::HttpHeader => {
                let (key, value) = val
                    .split_once(':')
                    .ok_or_else(|| invalid(flag, val, "expected KEY:VALUE"))?;
                let header = HttpHeader {
                    key: key.to_string(),
                    value: value.to_string(),
                };
                self.apply(Side::Both, |f| f.http_header.push(header.clone()))
            }
            F::TraceId => self.apply(Side::Both, |f| f.trace_id.push(v.clone())),
            F::Fqdn => self.either(
                |f| f.source_fqdn.push(v.clone()),
                |f| f.destination_fqdn.push(v.clone()),
            ),
            F::FromFqdn => self.apply(Side::Both, |f| f.source_fqdn.push(v.clone())),
            F::ToFqdn => self.apply(Side::Both, |f| f.destination_fqdn.push(v.clone())),
            F::Ip | F::FromIp | F::ToIp | F::SnatIp => {
                check_ip_or_cidr(val).map_err(|reason| invalid(flag, val, reason))?;
                match flag {
                    F::Ip => self.either(
                        |f| f.source_ip.push(v.clone()),
                        |f| f.destination_ip.push(v.clone()),
                    ),
                    F::FromIp => self.apply(Side::Both, |f| f.source_ip.push(v.clone())),
                    F::ToIp => self.apply(Side::Both, |f| f.destination_ip.push(v.clone())),
                    _ => self.apply(Side::Both, |f| f.source_ip_xlated.push(v.clone())),
                }
            }
            F::Ipv4 => self.apply(Side::Both, |f| f.ip_version.push(IpVersion::IPv4 as i32)),
            F::Ipv6 => self.apply(Side::Both, |f| f.ip_version.push(IpVersion::IPv6 as i32)),
            F::IpVersion => {
                let version = match val.to_ascii_lowercase().as_str() {
                    "4" | "v4" | "ipv4" | "ip4" => IpVersion::IPv4,
                    "6" | "v6" | "ipv6" | "ip6" => IpVersion::IPv6,
                    "none" | "0" => IpVersion::IpNotUsed,
                    _ => return Err(invalid(flag, val, "expected v4, v6 or none")),
                };
                self.apply(Side::Both, |f| f.ip_version.push(version as i32))
            }
            F::Pod => self.either(
                |f| f.source_pod.push(v.clone()),
                |f| f.destination_pod.push(v.clone()),
            ),
            F::FromPod => self.apply(Side::Both, |f| f.source_pod.push(v.clone())),
            F::ToPod => self.apply(Side::Both, |f| f.destination_pod.push(v.clone())),
            F::Namespace | F::FromNamespace | F::ToNamespace => {
                if val.is_empty() || val.contains('/') {
                    return Err(invalid(flag, val, "expected a namespace name"));
                }
                match flag {
                    F::Namespace => self.ns.push(v),
                    F::FromNamespace => self.src_ns.push(v),
                    _ => self.dst_ns.push(v),
                }
            }
            // An empty namespace means "any namespace" to Hubble's server (`/pod`).
            F::AllNamespaces => self.ns.push(String::new()),
            F::FromAllNamespaces => self.src_ns.push(String::new()),
            F::ToAllNamespaces => self.dst_ns.push(String::new()),
            F::Label => self.either(
                |f| f.source_label.push(v.clone()),
                |f| f.destination_label.push(v.clone()),
            ),
            F::FromLabel => self.apply(Side::Both, |f| f.source_label.push(v.clone())),
            F::ToLabel => self.apply(Side::Both, |f| f.destination_label.push(v.clone())),
            F::Service => self.either(
                |f| f.source_service.push(v.clone()),
                |f| f.destination_service.push(v.clone()),
            ),
            F::FromService => self.apply(Side::Both, |f| f.source_service.push(v.clone())),
            F::ToService => self.apply(Side::Both, |f| f.destination_service.push(v.clone())),
            F::Port | F::FromPort | F::ToPort => {
                if val.parse::<u16>().is_err() {
                    return Err(invalid(flag, val, "expected a port number 0-65535"));
                }
                match flag {
                    F::Port => self.either(
                        |f| f.source_port.push(v.clone()),
                        |f| f.destination_port.push(v.clone()),
                    ),
                    F::FromPort => self.apply(Side::Both, |f| f.source_port.push(v.clone())),
                    _ => self.apply(Side::Both, |f| f.destination_port.push(v.clone())),
                }
            }
            F::Workload | F::FromWorkload | F::ToWorkload => {
                let w = parse_workload(val).map_err(|reason| invalid(flag, val, reason))?;
                match flag {
                    F::Workload => self.either(
                        |f| f.source_workload.push(w.clone()),
                        |f| f.destination_workload.push(w.clone()),
                    ),
                    F::FromWorkload => {
                        self.apply(Side::Both, |f| f.source_workload.push(w.clone()))
                    }
                    _ => self.apply(Side::Both, |f| f.destination_workload.push(w.clone())),
                }
            }
            F::Identity | F::FromIdentity | F::ToIdentity => {
                let id = parse_identity(val).ok_or_else(|| {
                    let names: Vec<&str> = RESERVED_IDENTITIES.iter().map(|(n, _)| *n).collect();
                    invalid(
                        flag,
                        val,
                        format!("expected a number or one of {}", names.join(", ")),
                    )
                })?;
                match flag {
                    F::Identity => self.either(
                        |f| f.source_identity.push(id),
                        |f| f.destination_identity.push(id),
                    ),
                    F::FromIdentity => self.apply(Side::Both, |f| f.source_identity.push(id)),
                    _ => self.apply(Side::Both, |f| f.destination_identity.push(id)),
                }
            }
            F::TrafficDirection => {
                let dir = match val.to_ascii_lowercase().as_str() {
                    "ingress" => TrafficDirection::Ingress,
                    "egress" => TrafficDirection::Egress,
                    _ => return Err(invalid(flag, val, "expected ingress or egress")),
                };
                self.apply(Side::Both, |f| f.traffic_direction.push(dir as i32))
            }
            F::Interface => {
                let iface = NetworkInterface {
                    index: 0,
                    name: v.clone(),
                };
                self.apply(Side::Both, |f| f.interface.push(iface.clone()))
            }
        }
        self.check_namespace_conflicts()
    }

    fn check_namespace_conflicts(&self) -> Result<(), FilterError> {
        for f in [&self.left, &self.right].into_iter().flatten() {
            for (mods, names) in [
                (&self.ns, &f.source_pod),
                (&self.ns, &f.source_service),
                (&self.ns, &f.destination_pod),
                (&self.ns, &f.destination_service),
                (&self.src_ns, &f.source_pod),
                (&self.src_ns, &f.source_service),
                (&self.dst_ns, &f.destination_pod),
                (&self.dst_ns, &f.destination_service),
            ] {
                for ns in mods {
                    for name in names {
                        if let Some((name_ns, _)) = name.split_once('/')
                            && name_ns != ns
                        {
                            return Err(FilterError::Namespace(format!(
                                "{ns:?} does not contain {name:?}"
                            )));
                        }
                    }
                }
            }
            for (pods, services) in [
                (&f.source_pod, &f.source_service),
                (&f.destination_pod, &f.destination_service),
            ] {
                for pod in pods {
                    let Some((pod_ns, _)) = pod.split_once('/') else {
                        continue;
                    };
                    for svc in services {
                        let svc_ns = svc.split_once('/').map_or("", |(ns, _)| ns);
                        if svc_ns != pod_ns {
                            return Err(FilterError::Namespace(format!(
                                "namespace of service {svc:?} conflicts with pod {pod:?}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Materialises the list: applies namespaces, qualifies bare names with `default`, and
    /// collapses `left OR right` to one filter when both are the same.
    fn flow_filters(mut self) -> Vec<FlowFilter> {
        if self.left.is_none()
            && self.right.is_none()
            && self.ns.is_empty()
            && self.src_ns.is_empty()
            && self.dst_ns.is_empty()
        {
            return Vec::new();
        }
        let mut left = self.left.take().unwrap_or_default();
        let mut right = self.right.take().unwrap_or_default();
        if !self.dst_ns.is_empty() {
            apply_dst_namespaces(&mut left, &self.dst_ns);
            apply_dst_namespaces(&mut right, &self.dst_ns);
        }
        if !self.src_ns.is_empty() {
            apply_src_namespaces(&mut left, &self.src_ns);
            apply_src_namespaces(&mut right, &self.src_ns);
        }
        if !self.ns.is_empty() {
            apply_src_namespaces(&mut left, &self.ns);
            apply_dst_namespaces(&mut right, &self.ns);
        }
        for f in [&mut left, &mut right] {
            for names in [
                &mut f.source_pod,
                &mut f.destination_pod,
                &mut f.source_service,
                &mut f.destination_service,
            ] {
                qualify_with_default(names);
            }
        }
        if left == right {
            vec![left]
        } else {
            vec![left, right]
        }
    }
}

fn apply_src_namespaces(f: &mut FlowFilter, ns: &[String]) {
    if f.source_pod.is_empty() && f.source_service.is_empty() {
        f.source_pod = vec![String::new()];
    }
    f.source_pod = add_namespaces(&f.source_pod, ns);
    f.source_service = add_namespaces(&f.source_service, ns);
}

fn apply_dst_namespaces(f: &mut FlowFilter, ns: &[String]) {
    if f.destination_pod.is_empty() && f.destination_service.is_empty() {
        f.destination_pod = vec![String::new()];
    }
    f.destination_pod = add_namespaces(&f.destination_pod, ns);
    f.destination_service = add_namespaces(&f.destination_service, ns);
}

/// `name` × namespaces → `ns/name`; names that already carry a namespace are kept as they are.
fn add_namespaces(names: &[String], ns: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len() * ns.len().max(1));
    for name in names {
        if name.contains('/') {
            out.push(name.clone());
        } else {
            out.extend(ns.iter().map(|n| format!("{n}/{name}")));
        }
    }
    out
}

fn qualify_with_default(names: &mut [String]) {
    for name in names.iter_mut() {
        if !name.contains('/') {
            *name = format!("{DEFAULT_NAMESPACE}/{name}");
        }
    }
}

fn invalid(flag: FilterFlag, value: &str, reason: impl Into<String>) -> FilterError {
    FilterError::InvalidValue {
        flag: flag.name(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_tcp_flags(val: &str) -> Result<TcpFlags, String> {
    let mut flags = TcpFlags::default();
    for part in val.split(',') {
        match part.to_ascii_uppercase().as_str() {
            "SYN" => flags.syn = true,
            "FIN" => flags.fin = true,
            "RST" => flags.rst = true,
            "PSH" => flags.psh = true,
            "ACK" => flags.ack = true,
            "URG" => flags.urg = true,
            "ECE" => flags.ece = true,
            "CWR" => flags.cwr = true,
            "NS" => flags.ns = true,
            _ => {
                return Err(format!(
                    "unknown tcp flag {part:?} (expected SYN, FIN, RST, PSH, ACK, URG, ECE, CWR, NS)"
                ));
            }
        }
    }
    Ok(flags)
}

fn parse_event_type(val: &str) -> Result<EventTypeFilter, String> {
    let (type_part, sub_part) = match val.split_once(':') {
        Some((t, s)) => (t, Some(s)),
        None => (val, None),
    };
    let type_names = || {
        EVENT_TYPES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ty: i32 = match EVENT_TYPES.iter().find(|(n, _)| *n == type_part) {
        Some((_, t)) => i32::from(*t),
        None => type_part.parse::<u8>().map(i32::from).map_err(|_| {
            format!(
                "unknown type {type_part:?} (expected one of {} or a number)",
                type_names()
            )
        })?,
    };
    let mut filter = EventTypeFilter {
        r#type: ty,
        match_sub_type: false,
        sub_type: 0,
    };
    if let Some(sub) = sub_part {
        let named = if ty == i32::from(message_type::TRACE) {
            TRACE_SUBTYPES
                .iter()
                .find(|(n, _)| *n == sub)
                .map(|(_, s)| i32::from(*s))
        } else if ty == i32::from(message_type::AGENT) {
            AGENT_SUBTYPES
                .iter()
                .find(|(n, _)| *n == sub)
                .map(|(_, s)| *s)
        } else {
            None
        };
        let sub_type = match named {
            Some(s) => s,
            None => sub.parse::<u8>().map(i32::from).map_err(|_| {
                if ty == i32::from(message_type::TRACE) {
                    let names: Vec<&str> = TRACE_SUBTYPES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown trace subtype {sub:?} (expected one of {} or a number)",
                        names.join(", ")
                    )
                } else {
                    format!("unknown subtype {sub:?} (expected a number)")
                }
            })?,
        };
        filter.match_sub_type = true;
        filter.sub_type = sub_type;
    }
    Ok(filter)
}

fn check_http_status(val: &str) -> Result<(), &'static str> {
    let digits = val.strip_suffix('+').unwrap_or(val);
    let prefix = digits.len() < val.len();
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && if prefix {
            digits.len() <= 2
        } else {
            digits.len() == 3
        };
    if ok {
        Ok(())
    } else {
        Err("expected a status code like 404 or a prefix like 5+ or 40+")
    }
}

fn check_regex(val: &str) -> Result<(), String> {
    regex::Regex::new(val).map(|_| ()).map_err(|e| {
        e.to_string()
            .lines()
            .last()
            .unwrap_or("invalid regular expression")
            .trim()
            .to_string()
    })
}

fn check_ip_or_cidr(val: &str) -> Result<(), &'static str> {
    const MSG: &str = "expected an IP address or CIDR range (e.g. 10.0.0.1, 10.0.0.0/24)";
    match val.split_once('/') {
        None => val.parse::<IpAddr>().map(|_| ()).map_err(|_| MSG),
        Some((addr, len)) => {
            let addr: IpAddr = addr.parse().map_err(|_| MSG)?;
            let len: u8 = len.parse().map_err(|_| MSG)?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len <= max { Ok(()) } else { Err(MSG) }
        }
    }
}

/// `[kind/]name`.
fn parse_workload(val: &str) -> Result<Workload, &'static str> {
    let (kind, name) = match val.split_once('/') {
        Some((kind, name)) => (kind, name),
        None => ("", val),
    };
    if name.is_empty() || name.contains('/') {
        return Err("expected [KIND/]NAME");
    }
    Ok(Workload {
        name: name.to_string(),
        kind: kind.to_string(),
    })
}

fn parse_identity(val: &str) -> Option<u32> {
    RESERVED_IDENTITIES
        .iter()
        .find(|(n, _)| *n == val)
        .map(|(_, id)| *id)
        .or_else(|| val.parse::<u32>().ok())
}
