//! The normalized policy model every input kind is converted to (Cilium's own model, after its
//! Kubernetes translation): rules with a subject selector and per-direction peer rules whose
//! namespace scoping has already been applied.

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

use super::api::{self, Entity, Operator, Protocol};
use crate::identity::{LABEL_CLUSTER, LABEL_NAMESPACE};

/// Namespace labels appear in pod identities under this prefix (Cilium's convention), which is
/// how a NetworkPolicy `namespaceSelector` becomes a pod selector.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// Which API object a policy came from. Part of its key: a CNP and a NetworkPolicy may share a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    NetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::NetworkPolicy => "NetworkPolicy",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a policy is named: kind, namespace (`None` for clusterwide policies) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyKey {
    pub kind: PolicyKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for PolicyKey {
    /// `default/rule1`, or `rule1` for a clusterwide policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One parsed policy document, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub key: PolicyKey,
    /// Where the document was read from (file and 1-based line of its first line).
    pub file: String,
    pub line: usize,
    /// The document as written, so a daemon can persist policies and apply them again.
    #[serde(skip)]
    pub text: String,
    pub rules: Vec<Rule>,
}

/// One rule: whom it applies to and what it allows or denies per direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Selects the local endpoints the rule applies to (namespace requirement included).
    pub subject: Selector,
    pub ingress: Vec<PeerRule>,
    pub ingress_deny: Vec<PeerRule>,
    pub egress: Vec<PeerRule>,
    pub egress_deny: Vec<PeerRule>,
    /// Whether the rule puts a selected endpoint into default deny per direction (it only
    /// does in a direction where it has rules).
    pub default_deny_ingress: bool,
    pub default_deny_egress: bool,
    pub description: Option<String>,
    /// Rule labels as `source:key=value`.
    pub labels: Vec<String>,
}

impl Rule {
    /// Whether the rule has anything for the direction (even an empty rule): this is what
    /// turns enforcement on for the endpoints it selects.
    pub fn has_ingress(&self) -> bool {
        !self.ingress.is_empty() || !self.ingress_deny.is_empty()
    }

    pub fn has_egress(&self) -> bool {
        !self.egress.is_empty() || !self.egress_deny.is_empty()
    }
}

/// Peers and ports of one ingress/egress item. No peers selects nothing (`ingress: [{}]` is the
/// documented "deny all"); an item with only ports gets the [`Peer::Any`] peer when converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerRule {
    pub peers: Vec<Peer>,
    /// Empty: every port and protocol.
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// Every remote identity (remote identity 0 in the policy map).
    Any,
    Endpoints(Selector),
    Entity(Entity),
    Cidr {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

/// A port or range (`port..=end_port`; `0` = every port) with its protocol and L7 rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub port: u16,
    pub end_port: u16,
    pub l7: Option<L7Rules>,
}

/// L7 rules attached to a port, recorded for the L7 issue (not enforced by the kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct L7Rules {
    pub http: Vec<HttpRule>,
}

/// One HTTP rule; each set field is a regular expression that must match the whole value.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HttpRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = &self.method {
            parts.push(format!("method={m}"));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path={p}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("host={h}"));
        }
        for h in &self.headers {
            parts.push(format!("header={h:?}"));
        }
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// A conjunction of label requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

/// A requirement on one label key. `source: None` matches the key under any source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Requirement {
    pub source: Option<String>,
    pub key: String,
    pub operator: Operator,
    pub values: BTreeSet<String>,
}

/// An identity label split into its parts (`k8s:org=empire` → `k8s`, `org`, `empire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    pub source: &'a str,
    pub key: &'a str,
    pub value: &'a str,
}

impl<'a> Label<'a> {
    /// `source:key=value` or `source:key` (reserved labels have no value).
    pub fn parse(s: &'a str) -> Label<'a> {
        let (source, rest) = s.split_once(':').unwrap_or(("unspec", s));
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        Label { source, key, value }
    }
}

impl Requirement {
    fn new(key: &str, operator: Operator, values: impl IntoIterator<Item = String>) -> Self {
        let (source, key) = match key.split_once(':') {
            Some(("any", k)) => (None, k),
            Some((s, k)) => (Some(s.to_string()), k),
            None => (None, key),
        };
        Requirement {
            source,
            key: key.to_string(),
            operator,
            values: values.into_iter().collect(),
        }
    }

    fn with_source(source: &str, key: &str, operator: Operator, values: &[&str]) -> Self {
        Requirement {
            source: Some(source.to_string()),
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    pub fn matches(&self, labels: &[Label<'_>]) -> bool {
        let mut present = labels
            .iter()
            .filter(|l| l.key == self.key && self.source.as_deref().is_none_or(|s| s == l.source));
        match self.operator {
            Operator::In => present.any(|l| self.values.contains(l.value)),
            Operator::NotIn => present.all(|l| !self.values.contains(l.value)),
            Operator::Exists => present.next().is_some(),
            Operator::DoesNotExist => present.next().is_none(),
        }
    }

    fn names_key(&self, key: &str) -> bool {
        self.key == key && matches!(self.source.as_deref(), None | Some("k8s"))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.source {
            Some(s) => format!("{s}:{}", self.key),
            None => format!("any:{}", self.key),
        };
        let values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        match self.operator {
            Operator::In if values.len() == 1 => write!(f, "{key}={}", values[0]),
            Operator::In => write!(f, "{key} in ({})", values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", values.join(",")),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

impl Selector {
    pub fn matches(&self, labels: &[Label<'_>]) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// From a selector as written; `default_source` applies to keys without a `source:` prefix
    /// (`None` = any source, as in Cilium policies; `k8s` in Kubernetes NetworkPolicy).
    fn from_api(s: &api::LabelSelector, default_source: Option<&str>) -> Selector {
        let key = |k: &str| match (k.contains(':'), default_source) {
            (false, Some(src)) => format!("{src}:{k}"),
            _ => k.to_string(),
        };
        let mut requirements: Vec<Requirement> = s
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::new(&key(k), Operator::In, [v.clone()]))
            .collect();
        requirements.extend(
            s.match_expressions
                .iter()
                .map(|e| Requirement::new(&key(&e.key), e.operator, e.values.iter().cloned())),
        );
        Selector { requirements }.normalized()
    }

    fn normalized(mut self) -> Selector {
        self.requirements.sort();
        self.requirements.dedup();
        self
    }

    fn names_key(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| r.names_key(key))
    }

    fn selects_reserved(&self) -> bool {
        self.requirements
            .iter()
            .any(|r| r.source.as_deref() == Some("reserved"))
    }

    fn push(&mut self, r: Requirement) {
        self.requirements.push(r);
        self.requirements.sort();
        self.requirements.dedup();
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("(all)");
        }
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(", "))
    }
}

/// The subject of a CNP: the policy's namespace always applies (a namespace the user wrote
/// in the selector is overridden, as Cilium does); clusterwide policies select as written.
fn subject_selector(s: &api::LabelSelector, namespace: Option<&str>) -> Selector {
    let mut sel = Selector::from_api(s, None);
    if let Some(ns) = namespace {
        sel.requirements.retain(|r| !r.names_key(LABEL_NAMESPACE));
        sel.push(Requirement::with_source(
            "k8s",
            LABEL_NAMESPACE,
            Operator::In,
            &[ns],
        ));
    }
    sel
}

/// A peer selector of a CNP (`fromEndpoints`/`toEndpoints`): scoped to the policy's namespace
/// unless it names the namespace label or a reserved label; for clusterwide policies, scoped to
/// endpoints that have a namespace at all.
fn peer_selector(s: &api::LabelSelector, namespace: Option<&str>) -> Selector {
    let mut sel = Selector::from_api(s, None);
    if sel.selects_reserved() || sel.names_key(LABEL_NAMESPACE) {
        return sel;
    }
    match namespace {
        Some(ns) => sel.push(Requirement::with_source(
            "k8s",
            LABEL_NAMESPACE,
            Operator::In,
            &[ns],
        )),
        None => sel.push(Requirement::with_source(
            "k8s",
            LABEL_NAMESPACE,
            Operator::Exists,
            &[],
        )),
    }
    sel
}

fn ports_from_api(rules: &[api::PortRule]) -> Vec<PortSpec> {
    let mut out = Vec::new();
    for r in rules {
        let l7 = r.rules.as_ref().filter(|l| !l.http.is_empty()).map(|l| {
            let mut http: Vec<HttpRule> = l
                .http
                .iter()
                .map(|h| HttpRule {
                    method: h.method.as_ref().map(|m| m.0.clone()),
                    path: h.path.as_ref().map(|m| m.0.clone()),
                    host: h.host.as_ref().map(|m| m.0.clone()),
                    headers: h.headers.clone(),
                })
                .collect();
            http.sort();
            http.dedup();
            L7Rules { http }
        });
        for p in &r.ports {
            let (port, end_port) = p.range();
            out.push(PortSpec {
                protocol: p.protocol,
                port,
                end_port,
                l7: l7.clone(),
            });
        }
    }
    out
}

fn deny_ports_from_api(rules: &[api::PortDenyRule]) -> Vec<PortSpec> {
    rules
        .iter()
        .flat_map(|r| r.ports.iter())
        .map(|p| {
            let (port, end_port) = p.range();
            PortSpec {
                protocol: p.protocol,
                port,
                end_port,
                l7: None,
            }
        })
        .collect()
}

/// Peers of one CNP item. Only ports (no L3 field) means every peer, as in Cilium.
fn cnp_peers(
    endpoints: &[api::LabelSelector],
    entities: &[Entity],
    cidrs: &[api::Cidr],
    cidr_sets: &[api::CidrRule],
    has_ports: bool,
    namespace: Option<&str>,
) -> Vec<Peer> {
    let mut peers: Vec<Peer> = endpoints
        .iter()
        .map(|s| Peer::Endpoints(peer_selector(s, namespace)))
        .collect();
    peers.extend(entities.iter().map(|e| Peer::Entity(*e)));
    peers.extend(cidrs.iter().map(|c| Peer::Cidr {
        cidr: c.0,
        except: Vec::new(),
    }));
    peers.extend(cidr_sets.iter().filter_map(|c| {
        c.cidr.map(|cidr| Peer::Cidr {
            cidr: cidr.0,
            except: c.except.iter().map(|e| e.0).collect(),
        })
    }));
    if peers.is_empty() && has_ports {
        peers.push(Peer::Any);
    }
    peers
}

fn cnp_rule(r: &api::CiliumRule, namespace: Option<&str>) -> Rule {
    let ns = namespace;
    let subject = subject_selector(&r.endpoint_selector.clone().unwrap_or_default(), ns);
    let ingress = r
        .ingress
        .iter()
        .flatten()
        .map(|i| PeerRule {
            peers: cnp_peers(
                &i.from_endpoints,
                &i.from_entities,
                &i.from_cidr,
                &i.from_cidr_set,
                !i.to_ports.is_empty(),
                ns,
            ),
            ports: ports_from_api(&i.to_ports),
        })
        .collect();
    let ingress_deny = r
        .ingress_deny
        .iter()
        .flatten()
        .map(|i| PeerRule {
            peers: cnp_peers(
                &i.from_endpoints,
                &i.from_entities,
                &i.from_cidr,
                &i.from_cidr_set,
                !i.to_ports.is_empty(),
                ns,
            ),
            ports: deny_ports_from_api(&i.to_ports),
        })
        .collect();
    let egress = r
        .egress
        .iter()
        .flatten()
        .map(|e| PeerRule {
            peers: cnp_peers(
                &e.to_endpoints,
                &e.to_entities,
                &e.to_cidr,
                &e.to_cidr_set,
                !e.to_ports.is_empty(),
                ns,
            ),
            ports: ports_from_api(&e.to_ports),
        })
        .collect();
    let egress_deny = r
        .egress_deny
        .iter()
        .flatten()
        .map(|e| PeerRule {
            peers: cnp_peers(
                &e.to_endpoints,
                &e.to_entities,
                &e.to_cidr,
                &e.to_cidr_set,
                !e.to_ports.is_empty(),
                ns,
            ),
            ports: deny_ports_from_api(&e.to_ports),
        })
        .collect();
    let dd = r.enable_default_deny.unwrap_or_default();
    let mut labels: Vec<String> = r
        .labels
        .iter()
        .map(|l| {
            let source = if l.source.is_empty() {
                "unspec"
            } else {
                &l.source
            };
            format!("{source}:{}={}", l.key, l.value)
        })
        .collect();
    labels.sort();
    Rule {
        subject,
        ingress,
        ingress_deny,
        egress,
        egress_deny,
        default_deny_ingress: dd.ingress.unwrap_or(true),
        default_deny_egress: dd.egress.unwrap_or(true),
        description: r.description.clone(),
        labels,
    }
}

/// Rules of a CiliumNetworkPolicy (`namespace` set) or clusterwide policy (`None`).
pub(crate) fn from_cnp(p: &api::CiliumNetworkPolicy, namespace: Option<&str>) -> Vec<Rule> {
    p.rules()
        .into_iter()
        .map(|r| cnp_rule(r, namespace))
        .collect()
}

/// A NetworkPolicy peer as a Cilium selector: pod labels (k8s source) in the policy's namespace,
/// or in the namespaces whose labels match (`io.cilium.k8s.namespace.labels.*`).
fn np_peer(peer: &api::NetworkPolicyPeer, namespace: &str) -> Vec<Peer> {
    let mut out = Vec::new();
    if let Some(ns_sel) = &peer.namespace_selector {
        let mut sel = peer
            .pod_selector
            .as_ref()
            .map(|p| Selector::from_api(p, Some("k8s")))
            .unwrap_or_default();
        let meta = NAMESPACE_LABELS_PREFIX;
        for (k, v) in &ns_sel.match_labels {
            sel.push(Requirement::with_source(
                "k8s",
                &format!("{meta}{k}"),
                Operator::In,
                &[v],
            ));
        }
        for e in &ns_sel.match_expressions {
            let values: Vec<&str> = e.values.iter().map(String::as_str).collect();
            sel.push(Requirement::with_source(
                "k8s",
                &format!("{meta}{}", e.key),
                e.operator,
                &values,
            ));
        }
        if ns_sel.match_labels.is_empty() && ns_sel.match_expressions.is_empty() {
            sel.push(Requirement::with_source(
                "k8s",
                LABEL_NAMESPACE,
                Operator::Exists,
                &[],
            ));
        }
        out.push(Peer::Endpoints(sel));
    } else if let Some(pod_sel) = &peer.pod_selector {
        let mut sel = Selector::from_api(pod_sel, Some("k8s"));
        sel.requirements.retain(|r| !r.names_key(LABEL_NAMESPACE));
        sel.push(Requirement::with_source(
            "k8s",
            LABEL_NAMESPACE,
            Operator::In,
            &[namespace],
        ));
        out.push(Peer::Endpoints(sel));
    }
    if let Some(block) = &peer.ip_block {
        out.push(Peer::Cidr {
            cidr: block.cidr.0,
            except: block.except.iter().map(|e| e.0).collect(),
        });
    }
    out
}

fn np_ports(ports: &[api::NetworkPolicyPort]) -> Vec<PortSpec> {
    ports
        .iter()
        .map(|p| {
            let port = p.port.unwrap_or_default().0;
            let end_port = match p.end_port {
                Some(e) if e.0 != 0 && port != 0 => e.0,
                _ => port,
            };
            PortSpec {
                protocol: p.protocol.unwrap_or(Protocol::Tcp),
                port,
                end_port,
                l7: None,
            }
        })
        .collect()
}

/// A NetworkPolicy as one Cilium rule, the way Cilium translates it: an empty `from`/`to`
/// allows every peer; `policyTypes` without rules for a direction means deny all there.
pub(crate) fn from_network_policy(p: &api::NetworkPolicy, namespace: &str) -> Rule {
    let spec = &p.spec;
    let convert = |peers: &[api::NetworkPolicyPeer], ports: &[api::NetworkPolicyPort]| {
        let peers = if peers.is_empty() {
            vec![Peer::Any]
        } else {
            peers.iter().flat_map(|pr| np_peer(pr, namespace)).collect()
        };
        PeerRule {
            peers,
            ports: np_ports(ports),
        }
    };
    let mut ingress: Vec<PeerRule> = spec
        .ingress
        .iter()
        .map(|r| convert(&r.from, &r.ports))
        .collect();
    let mut egress: Vec<PeerRule> = spec
        .egress
        .iter()
        .map(|r| convert(&r.to, &r.ports))
        .collect();
    let types = spec.policy_types.clone().unwrap_or_default();
    let has = |t| types.contains(&t);
    if ingress.is_empty() && (has(api::PolicyType::Ingress) || !has(api::PolicyType::Egress)) {
        ingress.push(PeerRule {
            peers: Vec::new(),
            ports: Vec::new(),
        });
    }
    if egress.is_empty() && has(api::PolicyType::Egress) {
        egress.push(PeerRule {
            peers: Vec::new(),
            ports: Vec::new(),
        });
    }
    let mut subject = Selector::from_api(&spec.pod_selector, Some("k8s"));
    subject
        .requirements
        .retain(|r| !r.names_key(LABEL_NAMESPACE));
    subject.push(Requirement::with_source(
        "k8s",
        LABEL_NAMESPACE,
        Operator::In,
        &[namespace],
    ));
    Rule {
        subject,
        ingress,
        ingress_deny: Vec::new(),
        egress,
        egress_deny: Vec::new(),
        default_deny_ingress: true,
        default_deny_egress: true,
        description: None,
        labels: Vec::new(),
    }
}

/// The cluster-name label Cilium's `cluster` entity selects pods by.
pub(crate) fn cluster_requirement(cluster_name: &str) -> Selector {
    Selector {
        requirements: vec![Requirement::with_source(
            "k8s",
            LABEL_CLUSTER,
            Operator::In,
            &[cluster_name],
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ls: &[&'static str]) -> Vec<Label<'static>> {
        ls.iter().map(|l| Label::parse(l)).collect()
    }

    #[test]
    fn requirements_match_sources_and_operators() {
        let ls = labels(&[
            "k8s:org=empire",
            "k8s:io.kubernetes.pod.namespace=default",
            "reserved:host",
        ]);
        let r =
            |k: &str, op, vs: &[&str]| Requirement::new(k, op, vs.iter().map(|s| s.to_string()));
        assert!(r("org", Operator::In, &["empire"]).matches(&ls));
        assert!(r("k8s:org", Operator::In, &["empire", "alliance"]).matches(&ls));
        assert!(r("any:org", Operator::In, &["empire"]).matches(&ls));
        assert!(!r("container:org", Operator::In, &["empire"]).matches(&ls));
        assert!(r("org", Operator::NotIn, &["alliance"]).matches(&ls));
        assert!(!r("org", Operator::NotIn, &["empire"]).matches(&ls));
        assert!(
            r("class", Operator::NotIn, &["x"]).matches(&ls),
            "absent key is not in"
        );
        assert!(r("org", Operator::Exists, &[]).matches(&ls));
        assert!(r("class", Operator::DoesNotExist, &[]).matches(&ls));
        assert!(r("reserved:host", Operator::Exists, &[]).matches(&ls));
        assert!(r("reserved:host", Operator::In, &[""]).matches(&ls));
    }

    #[test]
    fn namespace_scoping_follows_cilium() {
        let sel: api::LabelSelector = serde_yaml::from_str("matchLabels: {org: empire}").unwrap();
        let s = peer_selector(&sel, Some("default"));
        assert_eq!(
            s.to_string(),
            "any:org=empire, k8s:io.kubernetes.pod.namespace=default"
        );
        let s = peer_selector(&sel, None);
        assert_eq!(
            s.to_string(),
            "any:org=empire, k8s:io.kubernetes.pod.namespace"
        );
        let sel: api::LabelSelector =
            serde_yaml::from_str("matchLabels: {k8s:io.kubernetes.pod.namespace: other}").unwrap();
        let s = peer_selector(&sel, Some("default"));
        assert_eq!(s.to_string(), "k8s:io.kubernetes.pod.namespace=other");
        // The subject always stays in the policy's namespace.
        let s = subject_selector(&sel, Some("default"));
        assert_eq!(s.to_string(), "k8s:io.kubernetes.pod.namespace=default");
        let sel: api::LabelSelector =
            serde_yaml::from_str("matchLabels: {reserved:host: ''}").unwrap();
        assert_eq!(
            peer_selector(&sel, Some("default")).to_string(),
            "reserved:host="
        );
    }
}
