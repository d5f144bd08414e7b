//! The policy documents as written: CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
//! (`cilium.io/v2`) and Kubernetes NetworkPolicy (`networking.k8s.io/v1`).
//!
//! Field names follow the upstream schemas. Unknown fields are rejected; fields Periscope knows
//! but does not implement (`toFQDNs`, `icmps`, `nodeSelector`, …) are rejected as unsupported;
//! values are checked as they are read, so every error carries the value's location.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Visitor};

use super::source::{Fault, Unsupported, invalid_value, unsupported_value, validated_mapping};

/// A field the API server adds (uid, resourceVersion, …): accepted so `kubectl get -o yaml`
/// output applies as is, and otherwise ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

/// The parts of Kubernetes' ObjectMeta a policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    uid: Option<Ignored>,
    #[serde(default)]
    resource_version: Option<Ignored>,
    #[serde(default)]
    generation: Option<Ignored>,
    #[serde(default)]
    creation_timestamp: Option<Ignored>,
    #[serde(default)]
    managed_fields: Option<Ignored>,
}
validated_mapping!(ObjectMeta, "object metadata (a mapping with a name)");

impl ObjectMeta {
    fn validate(&self) -> Result<(), Fault> {
        if !is_dns_subdomain(&self.name) {
            return Err(Fault::invalid(
                &["name"],
                format!(
                    "invalid name {:?}: use lowercase letters, digits, '-' and '.'",
                    self.name
                ),
            ));
        }
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            return Err(Fault::invalid(
                &["namespace"],
                format!("invalid namespace {ns:?}: use lowercase letters, digits and '-'"),
            ));
        }
        Ok(())
    }
}

/// CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy: one rule in `spec` or several in `specs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumNetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CiliumRule>,
    #[serde(default)]
    pub specs: Option<Vec<CiliumRule>>,
    #[serde(default)]
    status: Option<Ignored>,
}
validated_mapping!(CiliumNetworkPolicy, "a CiliumNetworkPolicy");

impl CiliumNetworkPolicy {
    fn validate(&self) -> Result<(), Fault> {
        match (&self.spec, &self.specs) {
            (Some(_), Some(_)) => Err(Fault::invalid(
                &["specs"],
                "use either spec or specs, not both",
            )),
            (None, None) => Err(Fault::invalid(&["spec"], "spec (or specs) is required")),
            (None, Some(specs)) if specs.is_empty() => {
                Err(Fault::invalid(&["specs"], "specs needs at least one rule"))
            }
            _ => Ok(()),
        }
    }

    /// The rules, whichever of `spec`/`specs` holds them.
    pub fn rules(&self) -> Vec<&CiliumRule> {
        self.spec
            .iter()
            .chain(self.specs.iter().flatten())
            .collect()
    }
}

/// One Cilium rule (`api.Rule`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumRule {
    #[serde(default)]
    pub endpoint_selector: Option<LabelSelector>,
    #[serde(default)]
    node_selector: Option<Unsupported>,
    #[serde(default)]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default)]
    pub ingress_deny: Option<Vec<IngressDenyRule>>,
    #[serde(default)]
    pub egress: Option<Vec<EgressRule>>,
    #[serde(default)]
    pub egress_deny: Option<Vec<EgressDenyRule>>,
    #[serde(default)]
    pub enable_default_deny: Option<DefaultDeny>,
    #[serde(default)]
    pub labels: Vec<RuleLabel>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    log: Option<Unsupported>,
}
validated_mapping!(CiliumRule, "a Cilium rule");

impl CiliumRule {
    fn validate(&self) -> Result<(), Fault> {
        if self.endpoint_selector.is_none() {
            return Err(Fault::invalid(
                &["endpointSelector"],
                "endpointSelector is required",
            ));
        }
        if self.ingress.is_none()
            && self.ingress_deny.is_none()
            && self.egress.is_none()
            && self.egress_deny.is_none()
        {
            return Err(Fault::invalid(
                &[],
                "a rule needs at least one of ingress, ingressDeny, egress, egressDeny",
            ));
        }
        Ok(())
    }
}

/// `enableDefaultDeny`: whether a rule puts the endpoints it selects into default deny
/// (both default to true, as in Cilium).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultDeny {
    #[serde(default)]
    pub ingress: Option<bool>,
    #[serde(default)]
    pub egress: Option<bool>,
}

/// A rule label (`{key, value, source}`), recorded and shown, never matched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleLabel {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default)]
    pub from_endpoints: Vec<LabelSelector>,
    #[serde(default)]
    pub from_entities: Vec<Entity>,
    #[serde(default, rename = "fromCIDR")]
    pub from_cidr: Vec<Cidr>,
    #[serde(default, rename = "fromCIDRSet")]
    pub from_cidr_set: Vec<CidrRule>,
    #[serde(default)]
    pub to_ports: Vec<PortRule>,
    #[serde(default)]
    from_requires: Option<Unsupported>,
    #[serde(default)]
    from_groups: Option<Unsupported>,
    #[serde(default)]
    from_nodes: Option<Unsupported>,
    #[serde(default)]
    icmps: Option<Unsupported>,
    #[serde(default)]
    authentication: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressDenyRule {
    #[serde(default)]
    pub from_endpoints: Vec<LabelSelector>,
    #[serde(default)]
    pub from_entities: Vec<Entity>,
    #[serde(default, rename = "fromCIDR")]
    pub from_cidr: Vec<Cidr>,
    #[serde(default, rename = "fromCIDRSet")]
    pub from_cidr_set: Vec<CidrRule>,
    #[serde(default)]
    pub to_ports: Vec<PortDenyRule>,
    #[serde(default)]
    from_requires: Option<Unsupported>,
    #[serde(default)]
    from_groups: Option<Unsupported>,
    #[serde(default)]
    from_nodes: Option<Unsupported>,
    #[serde(default)]
    icmps: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default)]
    pub to_endpoints: Vec<LabelSelector>,
    #[serde(default)]
    pub to_entities: Vec<Entity>,
    #[serde(default, rename = "toCIDR")]
    pub to_cidr: Vec<Cidr>,
    #[serde(default, rename = "toCIDRSet")]
    pub to_cidr_set: Vec<CidrRule>,
    #[serde(default)]
    pub to_ports: Vec<PortRule>,
    #[serde(default)]
    to_requires: Option<Unsupported>,
    #[serde(default)]
    to_services: Option<Unsupported>,
    #[serde(default, rename = "toFQDNs")]
    to_fqdns: Option<Unsupported>,
    #[serde(default)]
    to_groups: Option<Unsupported>,
    #[serde(default)]
    to_nodes: Option<Unsupported>,
    #[serde(default)]
    icmps: Option<Unsupported>,
    #[serde(default)]
    authentication: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressDenyRule {
    #[serde(default)]
    pub to_endpoints: Vec<LabelSelector>,
    #[serde(default)]
    pub to_entities: Vec<Entity>,
    #[serde(default, rename = "toCIDR")]
    pub to_cidr: Vec<Cidr>,
    #[serde(default, rename = "toCIDRSet")]
    pub to_cidr_set: Vec<CidrRule>,
    #[serde(default)]
    pub to_ports: Vec<PortDenyRule>,
    #[serde(default)]
    to_requires: Option<Unsupported>,
    #[serde(default)]
    to_services: Option<Unsupported>,
    #[serde(default)]
    to_groups: Option<Unsupported>,
    #[serde(default)]
    to_nodes: Option<Unsupported>,
    #[serde(default)]
    icmps: Option<Unsupported>,
}

/// `toPorts[]` of an allow rule: ports plus optional L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    #[serde(default)]
    pub ports: Vec<PortProtocol>,
    #[serde(default)]
    pub rules: Option<L7RulesSpec>,
    #[serde(default)]
    listener: Option<Unsupported>,
    #[serde(default)]
    server_names: Option<Unsupported>,
    #[serde(default, rename = "originatingTLS")]
    originating_tls: Option<Unsupported>,
    #[serde(default, rename = "terminatingTLS")]
    terminating_tls: Option<Unsupported>,
}
validated_mapping!(PortRule, "a port rule");

impl PortRule {
    fn validate(&self) -> Result<(), Fault> {
        if self.ports.is_empty() {
            return Err(Fault::invalid(&["ports"], "at least one port is required"));
        }
        if self.rules.as_ref().is_some_and(|r| !r.http.is_empty()) {
            for p in &self.ports {
                if !matches!(p.protocol, Protocol::Tcp | Protocol::Any) {
                    return Err(Fault::invalid(
                        &["rules"],
                        format!("HTTP rules apply to TCP only, not {}", p.protocol),
                    ));
                }
                if p.port.0 == 0 || p.end_port.is_some_and(|e| e.0 != 0 && e.0 != p.port.0) {
                    return Err(Fault::invalid(
                        &["rules"],
                        "HTTP rules need single, non-zero ports (no ranges)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `toPorts[]` of a deny rule: ports only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct PortDenyRule {
    #[serde(default)]
    pub ports: Vec<PortProtocol>,
}
validated_mapping!(PortDenyRule, "a port rule");

impl PortDenyRule {
    fn validate(&self) -> Result<(), Fault> {
        if self.ports.is_empty() {
            return Err(Fault::invalid(&["ports"], "at least one port is required"));
        }
        Ok(())
    }
}

/// One port or port range with its protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    #[serde(default)]
    pub port: Port,
    #[serde(default)]
    pub end_port: Option<Port>,
    #[serde(default)]
    pub protocol: Protocol,
}
validated_mapping!(PortProtocol, "a port (port, endPort, protocol)");

impl PortProtocol {
    fn validate(&self) -> Result<(), Fault> {
        check_range(self.port, self.end_port)
    }

    /// The inclusive range; `(0, 0)` is every port.
    pub fn range(&self) -> (u16, u16) {
        match self.end_port {
            Some(Port(e)) if e != 0 && self.port.0 != 0 => (self.port.0, e),
            _ => (self.port.0, self.port.0),
        }
    }
}

fn check_range(port: Port, end: Option<Port>) -> Result<(), Fault> {
    match end {
        Some(Port(e)) if e != 0 && port.0 == 0 => Err(Fault::invalid(
            &["endPort"],
            format!("endPort {e} needs a non-zero port"),
        )),
        Some(Port(e)) if e != 0 && e < port.0 => Err(Fault::invalid(
            &["endPort"],
            format!("endPort {e} is below port {}", port.0),
        )),
        _ => Ok(()),
    }
}

/// A port number, written as a string (`"80"`, Cilium's schema) or an integer. 0 is every port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port)
                    .map_err(|_| invalid_value(format!("invalid port {v}: out of range 0-65535")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port)
                    .map_err(|_| invalid_value(format!("invalid port {v}: out of range 0-65535")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                if v.is_empty() {
                    return Ok(Port(0));
                }
                if !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid_value(format!(
                        "invalid port {v:?}: expected a number 0-65535 (named ports are not supported)"
                    )));
                }
                v.parse::<u16>()
                    .map(Port)
                    .map_err(|_| invalid_value(format!("invalid port {v:?}: out of range 0-65535")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The protocol of a port rule. Parsed case-insensitively, as Cilium does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// IP protocol number; 0 for ANY.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Any => 0,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Any => "ANY",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Protocol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a protocol (TCP, UDP, SCTP or ANY)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Protocol, E> {
                match v.to_ascii_uppercase().as_str() {
                    "TCP" => Ok(Protocol::Tcp),
                    "UDP" => Ok(Protocol::Udp),
                    "SCTP" => Ok(Protocol::Sctp),
                    "ANY" => Ok(Protocol::Any),
                    "ICMP" | "ICMPV6" | "VRRP" | "IGMP" => Err(unsupported_value(format!(
                        "protocol {v} is not supported by periscope"
                    ))),
                    _ => Err(invalid_value(format!(
                        "invalid protocol {v:?}: expected TCP, UDP, SCTP or ANY"
                    ))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// `fromEntities` / `toEntities` values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    All,
    World,
    #[serde(rename = "world-ipv4")]
    WorldIpv4,
    #[serde(rename = "world-ipv6")]
    WorldIpv6,
    Cluster,
    Host,
    Init,
    Ingress,
    Unmanaged,
    RemoteNode,
    Health,
    None,
    KubeApiserver,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::All => "all",
            Entity::World => "world",
            Entity::WorldIpv4 => "world-ipv4",
            Entity::WorldIpv6 => "world-ipv6",
            Entity::Cluster => "cluster",
            Entity::Host => "host",
            Entity::Init => "init",
            Entity::Ingress => "ingress",
            Entity::Unmanaged => "unmanaged",
            Entity::RemoteNode => "remote-node",
            Entity::Health => "health",
            Entity::None => "none",
            Entity::KubeApiserver => "kube-apiserver",
        })
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (a host prefix). Host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cidr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CIDR such as 10.0.0.0/8")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cidr, E> {
                if let Ok(net) = v.parse::<IpNet>() {
                    return Ok(Cidr(net.trunc()));
                }
                if let Ok(ip) = v.parse::<std::net::IpAddr>() {
                    return Ok(Cidr(IpNet::from(ip)));
                }
                Err(invalid_value(format!("invalid CIDR {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

fn check_except(cidr: IpNet, except: &[Cidr]) -> Result<(), Fault> {
    for e in except {
        if !cidr.contains(&e.0) {
            return Err(Fault::invalid(
                &["except"],
                format!("{} is not inside {cidr}", e.0),
            ));
        }
    }
    Ok(())
}

/// `fromCIDRSet` / `toCIDRSet` item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    #[serde(default)]
    pub cidr: Option<Cidr>,
    #[serde(default)]
    pub except: Vec<Cidr>,
    #[serde(default)]
    cidr_group_ref: Option<Unsupported>,
    #[serde(default)]
    cidr_group_selector: Option<Unsupported>,
}
validated_mapping!(CidrRule, "a CIDR rule (cidr, except)");

impl CidrRule {
    fn validate(&self) -> Result<(), Fault> {
        match self.cidr {
            None => Err(Fault::invalid(&["cidr"], "cidr is required")),
            Some(c) => check_except(c.0, &self.except),
        }
    }
}

/// A Kubernetes label selector. In Cilium policies keys may carry a source prefix
/// (`k8s:app`, `any:app`, `reserved:host`); without one they match any source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}
validated_mapping!(
    LabelSelector,
    "a label selector (matchLabels, matchExpressions)"
);

impl LabelSelector {
    fn validate(&self) -> Result<(), Fault> {
        for (k, v) in &self.match_labels {
            if let Err(why) = check_label_key(k, true) {
                return Err(Fault::invalid(&["matchLabels", k], why));
            }
            if !is_label_value(v) {
                return Err(Fault::invalid(
                    &["matchLabels", k],
                    format!("invalid label value {v:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether some key carries a `source:` prefix (not valid in Kubernetes selectors).
    pub(crate) fn prefixed_key(&self) -> Option<&str> {
        self.match_labels
            .keys()
            .chain(self.match_expressions.iter().map(|e| &e.key))
            .map(String::as_str)
            .find(|k| k.contains(':'))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}
validated_mapping!(
    LabelSelectorRequirement,
    "a selector requirement (key, operator, values)"
);

impl LabelSelectorRequirement {
    fn validate(&self) -> Result<(), Fault> {
        if let Err(why) = check_label_key(&self.key, true) {
            return Err(Fault::invalid(&["key"], why));
        }
        match self.operator {
            Operator::In | Operator::NotIn if self.values.is_empty() => Err(Fault::invalid(
                &["values"],
                format!("operator {:?} needs at least one value", self.operator),
            )),
            Operator::Exists | Operator::DoesNotExist if !self.values.is_empty() => {
                Err(Fault::invalid(
                    &["values"],
                    format!("operator {:?} takes no values", self.operator),
                ))
            }
            _ => match self.values.iter().find(|v| !is_label_value(v)) {
                Some(v) => Err(Fault::invalid(
                    &["values"],
                    format!("invalid label value {v:?}"),
                )),
                None => Ok(()),
            },
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// `toPorts[].rules`: only HTTP is implemented (recorded for the L7 proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L7RulesSpec {
    #[serde(default)]
    pub http: Vec<HttpRuleSpec>,
    #[serde(default)]
    kafka: Option<Unsupported>,
    #[serde(default)]
    dns: Option<Unsupported>,
    #[serde(default, rename = "l7proto")]
    l7proto: Option<Unsupported>,
    #[serde(default)]
    l7: Option<Unsupported>,
}

/// One HTTP rule; `method`, `path` and `host` are regular expressions matched against the whole
/// value, `headers` are `Name: value` lines that must be present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRuleSpec {
    #[serde(default)]
    pub method: Option<HttpRegex>,
    #[serde(default)]
    pub path: Option<HttpRegex>,
    #[serde(default)]
    pub host: Option<HttpRegex>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    header_matches: Option<Unsupported>,
}

/// A regular expression, checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRegex(pub String);

impl<'de> Deserialize<'de> for HttpRegex {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HttpRegex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a regular expression")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HttpRegex, E> {
                match regex::Regex::new(v) {
                    Ok(_) => Ok(HttpRegex(v.to_string())),
                    Err(e) => {
                        // The regex crate's message spans several lines; the last says why.
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or_default().trim().to_string();
                        Err(invalid_value(format!(
                            "invalid regular expression {v:?}: {why}"
                        )))
                    }
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// Kubernetes NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: NetworkPolicySpec,
    #[serde(default)]
    status: Option<Ignored>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default)]
    pub policy_types: Option<Vec<PolicyType>>,
    #[serde(default)]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    #[serde(default)]
    pub egress: Vec<NetworkPolicyEgressRule>,
}
validated_mapping!(NetworkPolicySpec, "a NetworkPolicy spec");

impl NetworkPolicySpec {
    fn validate(&self) -> Result<(), Fault> {
        check_k8s_selector(&self.pod_selector).map_err(|f| f.under("podSelector"))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum PolicyType {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyIngressRule {
    #[serde(default)]
    pub from: Vec<NetworkPolicyPeer>,
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyEgressRule {
    #[serde(default)]
    pub to: Vec<NetworkPolicyPeer>,
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}
validated_mapping!(
    NetworkPolicyPeer,
    "a peer (podSelector, namespaceSelector, ipBlock)"
);

impl NetworkPolicyPeer {
    fn validate(&self) -> Result<(), Fault> {
        let selectors = self.pod_selector.is_some() || self.namespace_selector.is_some();
        if self.ip_block.is_some() && selectors {
            return Err(Fault::invalid(
                &["ipBlock"],
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        if self.ip_block.is_none() && !selectors {
            return Err(Fault::invalid(
                &[],
                "a peer needs podSelector, namespaceSelector or ipBlock",
            ));
        }
        if let Some(s) = &self.pod_selector {
            check_k8s_selector(s).map_err(|f| f.under("podSelector"))?;
        }
        if let Some(s) = &self.namespace_selector {
            check_k8s_selector(s).map_err(|f| f.under("namespaceSelector"))?;
        }
        Ok(())
    }
}

fn check_k8s_selector(s: &LabelSelector) -> Result<(), Fault> {
    match s.prefixed_key() {
        Some(k) => Err(Fault::invalid(
            &[],
            format!("invalid label key {k:?}: Kubernetes selectors take no source prefix"),
        )),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: Cidr,
    #[serde(default)]
    pub except: Vec<Cidr>,
}
validated_mapping!(IpBlock, "an ipBlock (cidr, except)");

impl IpBlock {
    fn validate(&self) -> Result<(), Fault> {
        check_except(self.cidr.0, &self.except)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPort {
    #[serde(default)]
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub port: Option<Port>,
    #[serde(default)]
    pub end_port: Option<Port>,
}
validated_mapping!(NetworkPolicyPort, "a port (protocol, port, endPort)");

impl NetworkPolicyPort {
    fn validate(&self) -> Result<(), Fault> {
        if self.protocol == Some(Protocol::Any) {
            return Err(Fault::invalid(
                &["protocol"],
                "invalid protocol \"ANY\": expected TCP, UDP or SCTP",
            ));
        }
        check_range(self.port.unwrap_or_default(), self.end_port)
    }
}

/// `[source:][prefix/]name`, Kubernetes' qualified-name rules (the source only where allowed).
pub(crate) fn check_label_key(key: &str, allow_source: bool) -> Result<(), String> {
    let mut rest = key;
    if allow_source && let Some((source, k)) = key.split_once(':') {
        if source.is_empty()
            || !source
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("invalid label source in key {key:?}"));
        }
        rest = k;
    }
    let (prefix, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, rest),
    };
    let name_ok = !name.is_empty() && name.len() <= 63 && is_label_value(name);
    let prefix_ok = prefix.is_none_or(|p| is_dns_subdomain(&p.to_ascii_lowercase()));
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

/// Empty, or ≤ 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub(crate) fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let b = v.as_bytes();
    v.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values() {
        assert!(check_label_key("org", false).is_ok());
        assert!(check_label_key("app.kubernetes.io/name", false).is_ok());
        assert!(check_label_key("k8s:io.kubernetes.pod.namespace", true).is_ok());
        assert!(
            check_label_key(
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                true
            )
            .is_ok()
        );
        assert!(check_label_key("reserved:host", true).is_ok());
        assert!(check_label_key("k8s:org", false).is_err());
        assert!(check_label_key("", true).is_err());
        assert!(check_label_key("bad key", true).is_err());
        assert!(check_label_key(":x", true).is_err());
        assert!(is_label_value(""));
        assert!(is_label_value("empire"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(is_dns_subdomain("rule1.example"));
        assert!(!is_dns_subdomain("Rule1"));
    }

    #[test]
    fn ports_parse_from_strings_and_integers() {
        let p: PortProtocol = serde_yaml::from_str("port: \"80\"\nprotocol: tcp").unwrap();
        assert_eq!(p.port, Port(80));
        assert_eq!(p.protocol, Protocol::Tcp);
        assert_eq!(p.range(), (80, 80));
        let p: PortProtocol = serde_yaml::from_str("port: 8000\nendPort: 8080").unwrap();
        assert_eq!((p.range(), p.protocol), ((8000, 8080), Protocol::Any));
        let p: PortProtocol = serde_yaml::from_str("protocol: UDP").unwrap();
        assert_eq!(p.range(), (0, 0));
        assert!(serde_yaml::from_str::<PortProtocol>("port: \"8o\"").is_err());
        assert!(serde_yaml::from_str::<PortProtocol>("port: 65536").is_err());
        assert!(serde_yaml::from_str::<PortProtocol>("port: -1").is_err());
        assert!(serde_yaml::from_str::<PortProtocol>("port: 80\nendPort: 79").is_err());
        assert!(serde_yaml::from_str::<PortProtocol>("endPort: 79").is_err());
    }

    #[test]
    fn cidrs_are_truncated_and_hosts_accepted() {
        let c: Cidr = serde_yaml::from_str("10.1.2.3/8").unwrap();
        assert_eq!(c.0.to_string(), "10.0.0.0/8");
        let c: Cidr = serde_yaml::from_str("192.0.2.1").unwrap();
        assert_eq!(c.0.to_string(), "192.0.2.1/32");
        assert!(serde_yaml::from_str::<Cidr>("10.0.0.0/33").is_err());
    }
}
