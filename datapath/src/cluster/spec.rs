//! The cluster spec: what "Kubernetes" is on one machine. Pure parsing and validation, no I/O
//! beyond reading the file, so every error can be tested without root.
//!
//! Errors name the file, the line and the field: syntax and type errors come from serde_yaml (which
//! carries the location), and cross-reference errors (unknown node, duplicate pod, IP outside the
//! pod CIDR, …) are located by scanning the YAML text for the offending list item.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The Star Wars demo (deathstar ×2, tiefighter, xwing), built in as the default cluster.
pub const STARWARS_YAML: &str = include_str!("starwars.yaml");

/// Name used in errors for the built-in spec.
pub const STARWARS_SOURCE: &str = "<built-in starwars spec>";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name; becomes the `io.cilium.k8s.policy.cluster` label (Cilium's default is `default`).
    pub cluster_name: String,
    /// Pods get /32 addresses from this range, in a deterministic order.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Ipv4Net,
    pub nodes: Vec<NodeSpec>,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// The node's uplink device, where probes for to/from-network are attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub node: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Becomes the `io.cilium.k8s.policy.serviceaccount` label; Kubernetes' default is `default`.
    #[serde(default = "default_service_account")]
    pub service_account: String,
    /// The controller owning the pod, as Hubble's `workloads` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// A fixed address inside the pod CIDR; otherwise one is allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// A demo server the builder starts inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeRole>,
}

fn default_service_account() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeRole {
    /// The Star Wars deathstar HTTP API on port 80.
    Deathstar,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub namespace: String,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServicePort>,
    /// Pods in the service's namespace whose labels include all of these are its backends.
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    /// Defaults to `port`, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    #[serde(default)]
    pub protocol: Protocol,
}

impl ServicePort {
    pub fn target(&self) -> u16 {
        self.target_port.unwrap_or(self.port)
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid YAML, or a field of the wrong type / unknown / missing.
    Syntax,
    /// Well-formed but inconsistent (unknown node, duplicate pod, IP outside the CIDR, …).
    Invalid,
}

/// A spec error that names where it is: `file:line:column: field: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub kind: SpecErrorKind,
    pub file: String,
    /// 1-based; `None` when the location is unknown (I/O errors, flow-style YAML).
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Path of the field, e.g. `pods[2].node`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ClusterSpec {
    /// The built-in Star Wars demo.
    pub fn starwars() -> ClusterSpec {
        match ClusterSpec::parse(STARWARS_YAML, STARWARS_SOURCE) {
            Ok(spec) => spec,
            // The embedded text is covered by a unit test; reaching this is a build defect.
            Err(e) => unreachable!("built-in spec is invalid: {e}"),
        }
    }

    /// Read and validate a spec file.
    pub fn from_file(path: &Path) -> Result<ClusterSpec, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            kind: SpecErrorKind::Io,
            file: file.clone(),
            line: None,
            column: None,
            field: None,
            message: e.to_string(),
        })?;
        ClusterSpec::parse(&text, &file)
    }

    /// Parse and validate YAML text; `source` names it in errors (usually the file path).
    pub fn parse(text: &str, source: &str) -> Result<ClusterSpec, SpecError> {
        let spec: ClusterSpec = serde_yaml::from_str(text).map_err(|e| syntax_error(&e, source))?;
        spec.validate().map_err(|inv| {
            let (line, column) = locate(text, &inv.path);
            SpecError {
                kind: SpecErrorKind::Invalid,
                file: source.to_string(),
                line,
                column,
                field: Some(inv.path.to_string()),
                message: inv.message,
            }
        })?;
        Ok(spec)
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings, maps and numbers cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// Backends of `svc`: pods in its namespace whose labels include the whole selector.
    /// An empty selector selects nothing (as for Kubernetes services without a selector).
    pub fn backends<'a>(&'a self, svc: &'a ServiceSpec) -> impl Iterator<Item = &'a PodSpec> + 'a {
        self.pods.iter().filter(move |p| {
            p.namespace == svc.namespace
                && !svc.selector.is_empty()
                && svc.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        })
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodSpec> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    fn validate(&self) -> Result<(), Invalid> {
        check_dns_label(&self.cluster_name, FieldPath::top("clusterName"))?;
        if self.pod_cidr.prefix_len() > 30 {
            return Err(Invalid::new(
                FieldPath::top("podCIDR"),
                format!("{} is too small: need at least a /30", self.pod_cidr),
            ));
        }
        if self.nodes.is_empty() {
            return Err(Invalid::new(
                FieldPath::top("nodes"),
                "at least one node is required",
            ));
        }
        let mut nodes = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let at = FieldPath::item("nodes", i, "name");
            check_dns_label(&n.name, at.clone())?;
            if !nodes.insert(n.name.as_str()) {
                return Err(Invalid::new(at, format!("duplicate node {:?}", n.name)));
            }
            if let Some(up) = &n.uplink
                && (up.is_empty() || up.len() > 15 || up.contains(['/', ' ']))
            {
                return Err(Invalid::new(
                    FieldPath::item("nodes", i, "uplink"),
                    format!("{up:?} is not a valid interface name"),
                ));
            }
        }
        let mut namespaces = BTreeSet::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let at = FieldPath::index("namespaces", i);
            check_dns_label(ns, at.clone())?;
            if !namespaces.insert(ns.as_str()) {
                return Err(Invalid::new(at, format!("duplicate namespace {ns:?}")));
            }
        }
        let mut pods = BTreeSet::new();
        let mut ips = BTreeMap::new();
        for (i, p) in self.pods.iter().enumerate() {
            check_dns_label(&p.name, FieldPath::item("pods", i, "name"))?;
            if !namespaces.contains(p.namespace.as_str()) {
                return Err(Invalid::new(
                    FieldPath::item("pods", i, "namespace"),
                    format!("namespace {:?} is not listed in `namespaces`", p.namespace),
                ));
            }
            if !pods.insert((p.namespace.as_str(), p.name.as_str())) {
                return Err(Invalid::new(
                    FieldPath::item("pods", i, "name"),
                    format!("duplicate pod {}/{}", p.namespace, p.name),
                ));
            }
            if !nodes.contains(p.node.as_str()) {
                return Err(Invalid::new(
                    FieldPath::item("pods", i, "node"),
                    format!("node {:?} is not listed in `nodes`", p.node),
                ));
            }
            for (k, v) in &p.labels {
                check_label(k, v, FieldPath::item("pods", i, "labels"))?;
            }
            if let Some(ip) = p.ip {
                let at = FieldPath::item("pods", i, "ip");
                if !crate::cluster::plan::usable(&self.pod_cidr, ip) {
                    return Err(Invalid::new(
                        at,
                        format!(
                            "{ip} is not a usable host address of podCIDR {}",
                            self.pod_cidr
                        ),
                    ));
                }
                if let Some(other) = ips.insert(ip, &p.name) {
                    return Err(Invalid::new(
                        at,
                        format!("{ip} is already the address of {other}"),
                    ));
                }
            }
        }
        let mut services = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            check_dns_label(&s.name, FieldPath::item("services", i, "name"))?;
            if !namespaces.contains(s.namespace.as_str()) {
                return Err(Invalid::new(
                    FieldPath::item("services", i, "namespace"),
                    format!("namespace {:?} is not listed in `namespaces`", s.namespace),
                ));
            }
            if !services.insert((s.namespace.as_str(), s.name.as_str())) {
                return Err(Invalid::new(
                    FieldPath::item("services", i, "name"),
                    format!("duplicate service {}/{}", s.namespace, s.name),
                ));
            }
            if s.ports.is_empty() {
                return Err(Invalid::new(
                    FieldPath::item("services", i, "ports"),
                    "a service needs at least one port",
                ));
            }
            let mut seen = BTreeSet::new();
            for p in &s.ports {
                let at = FieldPath::item("services", i, "ports");
                if p.port == 0 || p.target() == 0 {
                    return Err(Invalid::new(at, "port 0 is not a valid service port"));
                }
                if !seen.insert((p.port, p.protocol)) {
                    return Err(Invalid::new(
                        at,
                        format!("duplicate port {}/{}", p.port, p.protocol),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn syntax_error(e: &serde_yaml::Error, source: &str) -> SpecError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            // serde_yaml appends the location to its message; it is reported separately here.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    // Messages about a nested value start with its path, e.g. "pods[1].labels: invalid type…".
    let mut field = None;
    if let Some((path, rest)) = message.split_once(": ")
        && !path.is_empty()
        && !path.contains(' ')
    {
        field = Some(path.to_string());
        message = rest.to_string();
    }
    if field.is_none() {
        // "missing field `x`" / "unknown field `x`" name the field only inside the message.
        if let Some(name) = message.split('`').nth(1)
            && (message.starts_with("missing field") || message.starts_with("unknown field"))
        {
            field = Some(name.to_string());
        }
    }
    SpecError {
        kind: SpecErrorKind::Syntax,
        file: source.to_string(),
        line,
        column,
        field,
        message,
    }
}

/// Where an invalid value sits: a top-level key, optionally an item of its list and a key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    section: &'static str,
    index: Option<usize>,
    key: Option<&'static str>,
}

impl FieldPath {
    fn top(section: &'static str) -> Self {
        FieldPath {
            section,
            index: None,
            key: None,
        }
    }
    fn index(section: &'static str, index: usize) -> Self {
        FieldPath {
            section,
            index: Some(index),
            key: None,
        }
    }
    fn item(section: &'static str, index: usize, key: &'static str) -> Self {
        FieldPath {
            section,
            index: Some(index),
            key: Some(key),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        if let Some(k) = self.key {
            write!(f, ".{k}")?;
        }
        Ok(())
    }
}

struct Invalid {
    path: FieldPath,
    message: String,
}

impl Invalid {
    fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Invalid {
            path,
            message: message.into(),
        }
    }
}

/// Best-effort line/column of a field in block-style YAML: find the top-level key, then the
/// n-th `- ` item under it, then `key:` inside that item. Falls back to the closest level found.
fn locate(text: &str, path: &FieldPath) -> (Option<usize>, Option<usize>) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let section_key = format!("{}:", path.section);
    let Some(start) = lines
        .iter()
        .position(|l| indent(l) == 0 && l.starts_with(&section_key))
    else {
        return (None, None);
    };
    let section_end = lines[start + 1..]
        .iter()
        .position(|l| is_content(l) && indent(l) == 0 && !l.starts_with('-'))
        .map_or(lines.len(), |p| start + 1 + p);
    let Some(index) = path.index else {
        return (Some(start + 1), Some(1));
    };
    // Items are the `-` lines at the shallowest indentation used for dashes in this section.
    let dashes: Vec<usize> = (start + 1..section_end)
        .filter(|&i| lines[i].trim_start().starts_with('-'))
        .collect();
    let Some(item_indent) = dashes.iter().map(|&i| indent(lines[i])).min() else {
        return (Some(start + 1), Some(1));
    };
    let items: Vec<usize> = dashes
        .into_iter()
        .filter(|&i| indent(lines[i]) == item_indent)
        .collect();
    let Some(&item) = items.get(index) else {
        return (Some(start + 1), Some(1));
    };
    let item_end = items.get(index + 1).copied().unwrap_or(section_end);
    let Some(key) = path.key else {
        return (Some(item + 1), Some(item_indent + 1));
    };
    let key_colon = format!("{key}:");
    for (i, line) in lines.iter().enumerate().take(item_end).skip(item) {
        let body = if i == item {
            line.trim_start().trim_start_matches('-')
        } else {
            line
        };
        let trimmed = body.trim_start();
        if trimmed.starts_with(&key_colon) {
            let col = line.len() - trimmed.len() + 1;
            return (Some(i + 1), Some(col));
        }
    }
    (Some(item + 1), Some(item_indent + 1))
}

/// Kubernetes object names here must be DNS labels (lowercase alphanumerics and '-').
fn check_dns_label(name: &str, at: FieldPath) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            at,
            format!("{name:?} is not a valid name (lowercase letters, digits and '-', at most 63)"),
        ))
    }
}

/// Label keys may carry a DNS prefix (`app.kubernetes.io/name`); '=' and whitespace would make
/// the `k8s:key=value` form ambiguous.
fn check_label(key: &str, value: &str, at: FieldPath) -> Result<(), Invalid> {
    let bad = |s: &str| s.contains(['=', ' ', '\t', '\n', ':']);
    if key.is_empty() || bad(key) || bad(value) || key.len() > 253 || value.len() > 63 {
        return Err(Invalid::new(at, format!("invalid label {key:?}={value:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_starwars_parses() {
        let spec = ClusterSpec::parse(STARWARS_YAML, STARWARS_SOURCE).unwrap();
        assert_eq!(spec.cluster_name, "default");
        assert_eq!(spec.namespaces, vec!["default"]);
        let names: Vec<&str> = spec.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "deathstar-689f66b57d-kccrz",
                "deathstar-689f66b57d-t99c9",
                "tiefighter",
                "xwing"
            ]
        );
        let ds = spec.pod("default", "deathstar-689f66b57d-kccrz").unwrap();
        assert_eq!(ds.labels["org"], "empire");
        assert_eq!(ds.labels["class"], "deathstar");
        assert_eq!(ds.serve, Some(ServeRole::Deathstar));
        assert_eq!(
            spec.pod("default", "xwing").unwrap().labels["org"],
            "alliance"
        );
        assert_eq!(
            spec.pod("default", "tiefighter").unwrap().labels["class"],
            "tiefighter"
        );
        let svc = &spec.services[0];
        assert_eq!(svc.name, "deathstar");
        assert_eq!(svc.ports[0].port, 80);
        assert_eq!(svc.ports[0].protocol, Protocol::Tcp);
        let backends: Vec<&str> = spec.backends(svc).map(|p| p.name.as_str()).collect();
        assert_eq!(
            backends,
            ["deathstar-689f66b57d-kccrz", "deathstar-689f66b57d-t99c9"]
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let spec = ClusterSpec::starwars();
        let again = ClusterSpec::parse(&spec.to_yaml(), "x").unwrap();
        assert_eq!(spec, again);
    }

    const SMALL: &str = "\
clusterName: test
podCIDR: 10.1.0.0/24
nodes:
  - name: n1
namespaces: [default, other]
pods:
  - name: a
    namespace: default
    node: n1
    labels: {app: a}
  - name: b
    namespace: other
    node: n1
    ip: 10.1.0.9
    labels:
      app: b
services:
  - name: svc
    namespace: default
    clusterIP: 10.96.0.1
    ports:
      - port: 8080
        targetPort: 80
    selector: {app: a}
";

    #[test]
    fn parses_small_spec_with_defaults() {
        let spec = ClusterSpec::parse(SMALL, "small.yaml").unwrap();
        assert_eq!(spec.pods[0].service_account, "default");
        assert_eq!(spec.pods[1].ip, Some(Ipv4Addr::new(10, 1, 0, 9)));
        let port = &spec.services[0].ports[0];
        assert_eq!(
            (port.port, port.target(), port.protocol),
            (8080, 80, Protocol::Tcp)
        );
    }

    fn err(text: &str) -> SpecError {
        ClusterSpec::parse(text, "bad.yaml").unwrap_err()
    }

    #[test]
    fn type_error_names_line_and_field() {
        let text = SMALL.replace("port: 8080", "port: eighty");
        let e = err(&text);
        assert_eq!(e.kind, SpecErrorKind::Syntax);
        assert_eq!(e.line, Some(22), "{e}");
        assert_eq!(e.field.as_deref(), Some("services[0].ports[0].port"), "{e}");
        assert!(e.to_string().starts_with("bad.yaml:22:"), "{e}");
    }

    #[test]
    fn unknown_field_is_rejected_with_location() {
        let text = SMALL.replace(
            "    node: n1\n    labels: {app: a}",
            "    node: n1\n    lables: {app: a}",
        );
        let e = err(&text);
        assert_eq!(e.kind, SpecErrorKind::Syntax);
        assert_eq!(e.line, Some(10), "{e}");
        assert!(e.message.contains("unknown field `lables`"), "{e}");
    }

    #[test]
    fn missing_field_is_reported() {
        let text = SMALL.replace("    namespace: other\n", "");
        let e = err(&text);
        assert_eq!(e.kind, SpecErrorKind::Syntax);
        assert!(e.message.contains("missing field `namespace`"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn bad_cidr_and_bad_ip_are_syntax_errors() {
        let e = err(&SMALL.replace("10.1.0.0/24", "10.1.0.0/33"));
        assert_eq!((e.kind, e.line), (SpecErrorKind::Syntax, Some(2)), "{e}");
        assert_eq!(e.field.as_deref(), Some("podCIDR"), "{e}");
        let e = err(&SMALL.replace("ip: 10.1.0.9", "ip: 10.1.0.999"));
        assert_eq!((e.kind, e.line), (SpecErrorKind::Syntax, Some(14)), "{e}");
    }

    #[test]
    fn invalid_yaml_has_location() {
        let e = err("clusterName: x\npods: [\n  - a\n");
        assert_eq!(e.kind, SpecErrorKind::Syntax);
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn unknown_node_is_located() {
        let e = err(&SMALL.replace("    node: n1\n    ip:", "    node: n2\n    ip:"));
        assert_eq!(e.kind, SpecErrorKind::Invalid);
        assert_eq!(e.field.as_deref(), Some("pods[1].node"));
        assert_eq!((e.line, e.column), (Some(13), Some(5)), "{e}");
        assert_eq!(
            e.to_string(),
            "bad.yaml:13:5: pods[1].node: node \"n2\" is not listed in `nodes`"
        );
    }

    #[test]
    fn ip_outside_cidr_is_located() {
        let e = err(&SMALL.replace("ip: 10.1.0.9", "ip: 10.2.0.9"));
        assert_eq!(e.kind, SpecErrorKind::Invalid);
        assert_eq!(e.line, Some(14), "{e}");
        // Network and broadcast addresses are not usable either.
        let e = err(&SMALL.replace("ip: 10.1.0.9", "ip: 10.1.0.255"));
        assert_eq!(e.field.as_deref(), Some("pods[1].ip"), "{e}");
    }

    #[test]
    fn duplicates_and_unknown_namespace_are_rejected() {
        let e = err(&SMALL.replace(
            "  - name: b\n    namespace: other",
            "  - name: a\n    namespace: default",
        ));
        assert_eq!(e.field.as_deref(), Some("pods[1].name"), "{e}");
        assert_eq!(e.line, Some(11), "{e}");
        let e = err(&SMALL.replace("namespace: other", "namespace: nope"));
        assert_eq!(e.field.as_deref(), Some("pods[1].namespace"), "{e}");
        let e = err(&SMALL.replace("pods:\n  - name: a", "pods:\n  - name: A"));
        assert_eq!(e.field.as_deref(), Some("pods[0].name"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn empty_nodes_and_tiny_cidr_are_rejected() {
        let e = err(&SMALL.replace("10.1.0.0/24", "10.1.0.0/31"));
        assert_eq!(
            (e.field.as_deref(), e.line),
            (Some("podCIDR"), Some(2)),
            "{e}"
        );
        let e = err(&SMALL.replace("nodes:\n  - name: n1\n", "nodes: []\n"));
        assert_eq!(e.field.as_deref(), Some("nodes"), "{e}");
    }

    #[test]
    fn missing_file_is_io_error() {
        let e = ClusterSpec::from_file(Path::new("/nonexistent/periscope.yaml")).unwrap_err();
        assert_eq!(e.kind, SpecErrorKind::Io);
        assert!(
            e.to_string().starts_with("/nonexistent/periscope.yaml: "),
            "{e}"
        );
    }
}
