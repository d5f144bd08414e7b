//! Hubble's context options: the `source`/`destination` labels (`sourceContext=namespace|pod`,
//! first non-empty identifier wins, optionally per traffic direction) and the `labelsContext`
//! list of extra labels. Label values are only computed when a new label set is first seen, so
//! this code may allocate; the hot path never calls it for a known flow shape.

use std::net::IpAddr;
use std::sync::LazyLock;

use crate::meta::EndpointInfo;
use crate::record::direction;

/// How a `source`/`destination` label value is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextId {
    Identity,
    Namespace,
    Pod,
    /// Deprecated in Hubble, kept so old option strings still parse.
    PodShort,
    PodName,
    Dns,
    Ip,
    ReservedIdentity,
    Workload,
    WorkloadName,
    App,
}

impl ContextId {
    const ALL: [(&'static str, ContextId); 11] = [
        ("identity", ContextId::Identity),
        ("namespace", ContextId::Namespace),
        ("pod", ContextId::Pod),
        ("pod-short", ContextId::PodShort),
        ("pod-name", ContextId::PodName),
        ("dns", ContextId::Dns),
        ("ip", ContextId::Ip),
        ("reserved-identity", ContextId::ReservedIdentity),
        ("workload", ContextId::Workload),
        ("workload-name", ContextId::WorkloadName),
        ("app", ContextId::App),
    ];

    fn parse(s: &str) -> Option<ContextId> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|&(_, c)| c)
    }
}

/// A `labelsContext` label, in Hubble's canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelCtx {
    SourceIp,
    SourcePod,
    SourceNamespace,
    SourceWorkload,
    SourceWorkloadKind,
    SourceApp,
    DestinationIp,
    DestinationPod,
    DestinationNamespace,
    DestinationWorkload,
    DestinationWorkloadKind,
    DestinationApp,
    TrafficDirection,
}

impl LabelCtx {
    const ALL: [LabelCtx; 13] = [
        LabelCtx::SourceIp,
        LabelCtx::SourcePod,
        LabelCtx::SourceNamespace,
        LabelCtx::SourceWorkload,
        LabelCtx::SourceWorkloadKind,
        LabelCtx::SourceApp,
        LabelCtx::DestinationIp,
        LabelCtx::DestinationPod,
        LabelCtx::DestinationNamespace,
        LabelCtx::DestinationWorkload,
        LabelCtx::DestinationWorkloadKind,
        LabelCtx::DestinationApp,
        LabelCtx::TrafficDirection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LabelCtx::SourceIp => "source_ip",
            LabelCtx::SourcePod => "source_pod",
            LabelCtx::SourceNamespace => "source_namespace",
            LabelCtx::SourceWorkload => "source_workload",
            LabelCtx::SourceWorkloadKind => "source_workload_kind",
            LabelCtx::SourceApp => "source_app",
            LabelCtx::DestinationIp => "destination_ip",
            LabelCtx::DestinationPod => "destination_pod",
            LabelCtx::DestinationNamespace => "destination_namespace",
            LabelCtx::DestinationWorkload => "destination_workload",
            LabelCtx::DestinationWorkloadKind => "destination_workload_kind",
            LabelCtx::DestinationApp => "destination_app",
            LabelCtx::TrafficDirection => "traffic_direction",
        }
    }

    fn is_source(self) -> bool {
        self <= LabelCtx::SourceApp
    }

    fn is_ip(self) -> bool {
        matches!(self, LabelCtx::SourceIp | LabelCtx::DestinationIp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("unknown context {0:?} (expected identifiers separated by '|' from: {known})", known = known_contexts())]
    UnknownContext(String),
    #[error("invalid labelsContext value {0:?} (expected labels separated by ',' from: {known})", known = known_labels())]
    InvalidLabel(String),
    #[error("needs a value")]
    MissingValue,
}

fn known_contexts() -> String {
    ContextId::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_labels() -> String {
    LabelCtx::ALL
        .iter()
        .map(|l| l.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parsed context options of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextOptions {
    pub source: Vec<ContextId>,
    pub source_ingress: Vec<ContextId>,
    pub source_egress: Vec<ContextId>,
    pub destination: Vec<ContextId>,
    pub destination_ingress: Vec<ContextId>,
    pub destination_egress: Vec<ContextId>,
    /// Sorted in Hubble's canonical order, no duplicates.
    pub labels: Vec<LabelCtx>,
}

/// What a cache key must include for label values to be a function of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub src_endpoint: bool,
    pub src_ip: bool,
    pub dst_endpoint: bool,
    pub dst_ip: bool,
    pub direction: bool,
}

/// One side (source or destination) of a flow, as label resolution sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side<'a> {
    pub endpoint: Option<&'a EndpointInfo>,
    /// The endpoint's labels, or the identity's labels when there is no endpoint.
    pub labels: &'a [String],
    pub ip: Option<IpAddr>,
}

impl Side<'_> {
    /// `(namespace, pod)` if this side is a pod.
    fn pod(&self) -> Option<(&str, &str)> {
        self.endpoint
            .filter(|e| !e.pod_name.is_empty())
            .map(|e| (e.namespace.as_str(), e.pod_name.as_str()))
    }
}

fn parse_list(value: &str) -> Result<Vec<ContextId>, ContextError> {
    if value.is_empty() {
        return Err(ContextError::MissingValue);
    }
    value
        .split('|')
        .map(|v| ContextId::parse(v).ok_or_else(|| ContextError::UnknownContext(v.to_string())))
        .collect()
}

fn parse_labels(value: &str) -> Result<Vec<LabelCtx>, ContextError> {
    if value.is_empty() {
        return Err(ContextError::MissingValue);
    }
    let mut out = value
        .split(',')
        .map(|v| {
            LabelCtx::ALL
                .into_iter()
                .find(|l| l.name() == v)
                .ok_or_else(|| ContextError::InvalidLabel(v.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

static SHORT_POD: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new("^(.+?)(-[a-z0-9]+){1,2}$").ok());

fn short_pod_name(name: &str) -> String {
    match SHORT_POD.as_ref() {
        Some(re) => re.replace(name, "${1}").into_owned(),
        None => name.to_string(),
    }
}

/// Hubble's app label precedence: the first endpoint label that is one of these wins.
const APP_LABELS: [&str; 3] = ["k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app="];

fn app_name(labels: &[String]) -> String {
    for l in labels {
        for prefix in APP_LABELS {
            if let Some(v) = l.strip_prefix(prefix)
                && !v.is_empty()
            {
                return v.to_string();
            }
        }
    }
    String::new()
}

fn reserved_identity(labels: &[String]) -> String {
    const KUBE_APISERVER: &str = "reserved:kube-apiserver";
    if labels.iter().any(|l| l == KUBE_APISERVER) {
        return KUBE_APISERVER.to_string();
    }
    labels
        .iter()
        .find(|l| l.starts_with("reserved:"))
        .cloned()
        .unwrap_or_default()
}

fn with_namespace(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

fn resolve(id: ContextId, side: &Side<'_>) -> String {
    let ep = side.endpoint;
    let workload = ep.and_then(|e| e.workloads.first());
    match id {
        ContextId::Namespace => ep.map(|e| e.namespace.clone()).unwrap_or_default(),
        ContextId::Identity => side.labels.join(","),
        ContextId::Pod => ep
            .filter(|e| !e.pod_name.is_empty())
            .map(|e| with_namespace(&e.namespace, &e.pod_name))
            .unwrap_or_default(),
        ContextId::PodShort => ep
            .filter(|e| !e.pod_name.is_empty())
            .map(|e| with_namespace(&e.namespace, &short_pod_name(&e.pod_name)))
            .unwrap_or_default(),
        ContextId::PodName => ep.map(|e| e.pod_name.clone()).unwrap_or_default(),
        // No DNS name cache yet (it comes with L7 visibility): always falls through.
        ContextId::Dns => String::new(),
        ContextId::Ip => side.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        ContextId::ReservedIdentity => reserved_identity(side.labels),
        ContextId::Workload => match (ep, workload) {
            (Some(e), Some(w)) if !w.name.is_empty() => with_namespace(&e.namespace, &w.name),
            _ => String::new(),
        },
        ContextId::WorkloadName => workload.map(|w| w.name.clone()).unwrap_or_default(),
        ContextId::App => app_name(side.labels),
    }
}

/// Identifiers whose values name one pod (their series expire with it).
fn is_pod_bound(id: ContextId) -> bool {
    matches!(id, ContextId::Pod | ContextId::PodName | ContextId::Ip)
}

impl ContextOptions {
    /// Applies one option; `Ok(false)` if `key` is not a context option.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ContextError> {
        let list = match key.to_ascii_lowercase().as_str() {
            "sourcecontext" => &mut self.source,
            "sourceingresscontext" => &mut self.source_ingress,
            "sourceegresscontext" => &mut self.source_egress,
            "destinationcontext" => &mut self.destination,
            "destinationingresscontext" => &mut self.destination_ingress,
            "destinationegresscontext" => &mut self.destination_egress,
            "labelscontext" => {
                self.labels = parse_labels(value)?;
                return Ok(true);
            }
            _ => return Ok(false),
        };
        *list = parse_list(value)?;
        Ok(true)
    }

    pub fn is_empty(&self) -> bool {
        self.label_names().is_empty()
    }

    fn has_source(&self) -> bool {
        !(self.source.is_empty() && self.source_ingress.is_empty() && self.source_egress.is_empty())
    }

    fn has_destination(&self) -> bool {
        !(self.destination.is_empty()
            && self.destination_ingress.is_empty()
            && self.destination_egress.is_empty())
    }

    /// Label names this plugin adds, in the order `values` fills them.
    pub fn label_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.labels.iter().map(|l| l.name()).collect();
        if self.has_source() {
            names.push("source");
        }
        if self.has_destination() {
            names.push("destination");
        }
        names
    }

    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        let mut note = |id: ContextId, src: bool| {
            let (ep, ip) = if src {
                (&mut n.src_endpoint, &mut n.src_ip)
            } else {
                (&mut n.dst_endpoint, &mut n.dst_ip)
            };
            match id {
                ContextId::Dns => {}
                // The endpoint is needed too, to know whether the IP belongs to a pod.
                ContextId::Ip => {
                    *ip = true;
                    *ep = true;
                }
                _ => *ep = true,
            }
        };
        for id in self
            .source
            .iter()
            .chain(&self.source_ingress)
            .chain(&self.source_egress)
        {
            note(*id, true);
        }
        for id in self
            .destination
            .iter()
            .chain(&self.destination_ingress)
            .chain(&self.destination_egress)
        {
            note(*id, false);
        }
        for l in &self.labels {
            match *l {
                LabelCtx::TrafficDirection => n.direction = true,
                l if l.is_source() => {
                    n.src_endpoint = true;
                    n.src_ip |= l.is_ip();
                }
                l => {
                    n.dst_endpoint = true;
                    n.dst_ip |= l.is_ip();
                }
            }
        }
        n.direction |= !(self.source_ingress.is_empty()
            && self.source_egress.is_empty()
            && self.destination_ingress.is_empty()
            && self.destination_egress.is_empty());
        n
    }

    fn pick<'a>(
        &'a self,
        base: &'a [ContextId],
        ingress: &'a [ContextId],
        egress: &'a [ContextId],
        dir: u8,
    ) -> &'a [ContextId] {
        match dir {
            direction::INGRESS if !ingress.is_empty() => ingress,
            direction::EGRESS if !egress.is_empty() => egress,
            _ => base,
        }
    }

    /// Appends this plugin's context label values to `out` (in `label_names` order) and the
    /// pods that any value names to `pods`.
    pub fn values(
        &self,
        src: &Side<'_>,
        dst: &Side<'_>,
        dir: u8,
        out: &mut Vec<(&'static str, String)>,
        pods: &mut Vec<(String, String)>,
    ) {
        let mut bind = |side: &Side<'_>| {
            if let Some((ns, pod)) = side.pod() {
                let p = (ns.to_string(), pod.to_string());
                if !pods.contains(&p) {
                    pods.push(p);
                }
            }
        };
        for l in &self.labels {
            let side = if l.is_source() { src } else { dst };
            let ep = side.endpoint;
            let workload = ep.and_then(|e| e.workloads.first());
            let value = match l {
                LabelCtx::SourceIp | LabelCtx::DestinationIp => {
                    bind(side);
                    side.ip.map(|ip| ip.to_string()).unwrap_or_default()
                }
                LabelCtx::SourcePod | LabelCtx::DestinationPod => {
                    bind(side);
                    ep.map(|e| e.pod_name.clone()).unwrap_or_default()
                }
                LabelCtx::SourceNamespace | LabelCtx::DestinationNamespace => {
                    ep.map(|e| e.namespace.clone()).unwrap_or_default()
                }
                LabelCtx::SourceWorkload | LabelCtx::DestinationWorkload => {
                    workload.map(|w| w.name.clone()).unwrap_or_default()
                }
                LabelCtx::SourceWorkloadKind | LabelCtx::DestinationWorkloadKind => {
                    workload.map(|w| w.kind.clone()).unwrap_or_default()
                }
                LabelCtx::SourceApp | LabelCtx::DestinationApp => app_name(side.labels),
                LabelCtx::TrafficDirection => match dir {
                    direction::INGRESS => "ingress",
                    direction::EGRESS => "egress",
                    _ => "unknown",
                }
                .to_string(),
            };
            out.push((l.name(), value));
        }
        let mut first_non_empty = |ids: &[ContextId], side: &Side<'_>| {
            for id in ids {
                let v = resolve(*id, side);
                if !v.is_empty() {
                    if is_pod_bound(*id) {
                        bind(side);
                    }
                    return v;
                }
            }
            String::new()
        };
        if self.has_source() {
            let ids = self.pick(&self.source, &self.source_ingress, &self.source_egress, dir);
            out.push(("source", first_non_empty(ids, src)));
        }
        if self.has_destination() {
            let ids = self.pick(
                &self.destination,
                &self.destination_ingress,
                &self.destination_egress,
                dir,
            );
            out.push(("destination", first_non_empty(ids, dst)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Workload;

    fn opts(s: &str) -> ContextOptions {
        let mut o = ContextOptions::default();
        for kv in s.split(';') {
            let (k, v) = kv.split_once('=').expect("k=v");
            assert!(o.set(k, v).expect("valid"), "{k}");
        }
        o
    }

    fn deathstar() -> EndpointInfo {
        EndpointInfo {
            namespace: "default".into(),
            pod_name: "deathstar-689f66b57d-kccrz".into(),
            labels: vec![
                "k8s:app.kubernetes.io/name=deathstar".into(),
                "k8s:org=empire".into(),
            ],
            workloads: vec![Workload {
                name: "deathstar".into(),
                kind: "Deployment".into(),
            }],
            ..Default::default()
        }
    }

    fn values(
        o: &ContextOptions,
        src: &Side<'_>,
        dst: &Side<'_>,
        dir: u8,
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        o.values(src, dst, dir, &mut out, &mut Vec::new());
        out
    }

    #[test]
    fn identifiers_resolve_like_hubble() {
        let ds = deathstar();
        let side = Side {
            endpoint: Some(&ds),
            labels: &ds.labels,
            ip: Some("10.0.1.9".parse().expect("ip")),
        };
        let cases = [
            (ContextId::Namespace, "default"),
            (ContextId::Pod, "default/deathstar-689f66b57d-kccrz"),
            (ContextId::PodShort, "default/deathstar"),
            (ContextId::PodName, "deathstar-689f66b57d-kccrz"),
            (ContextId::Ip, "10.0.1.9"),
            (ContextId::Workload, "default/deathstar"),
            (ContextId::WorkloadName, "deathstar"),
            (ContextId::App, "deathstar"),
            (
                ContextId::Identity,
                "k8s:app.kubernetes.io/name=deathstar,k8s:org=empire",
            ),
            (ContextId::Dns, ""),
            (ContextId::ReservedIdentity, ""),
        ];
        for (id, want) in cases {
            assert_eq!(resolve(id, &side), want, "{id:?}");
        }
        let world = ["reserved:world".to_string()];
        let api = [
            "reserved:world".to_string(),
            "reserved:kube-apiserver".to_string(),
        ];
        let w = Side {
            labels: &world,
            ..Default::default()
        };
        assert_eq!(resolve(ContextId::ReservedIdentity, &w), "reserved:world");
        assert_eq!(resolve(ContextId::Namespace, &w), "");
        let a = Side {
            labels: &api,
            ..Default::default()
        };
        assert_eq!(
            resolve(ContextId::ReservedIdentity, &a),
            "reserved:kube-apiserver"
        );
    }

    #[test]
    fn fallbacks_labels_and_direction_specific_contexts() {
        let ds = deathstar();
        let world = ["reserved:world".to_string()];
        let src = Side {
            endpoint: Some(&ds),
            labels: &ds.labels,
            ip: None,
        };
        let dst = Side {
            labels: &world,
            ip: Some("1.1.1.1".parse().expect("ip")),
            ..Default::default()
        };
        let o = opts(
            "sourceContext=namespace|reserved-identity;destinationContext=namespace|reserved-identity;\
             labelsContext=traffic_direction,destination_ip,source_workload_kind",
        );
        assert_eq!(
            values(&o, &src, &dst, direction::EGRESS),
            vec![
                ("source_workload_kind", "Deployment".to_string()),
                ("destination_ip", "1.1.1.1".to_string()),
                ("traffic_direction", "egress".to_string()),
                ("source", "default".to_string()),
                ("destination", "reserved:world".to_string()),
            ]
        );
        let o = opts("sourceContext=namespace;sourceIngressContext=pod-name");
        assert_eq!(
            values(&o, &src, &dst, direction::INGRESS)[0].1,
            "deathstar-689f66b57d-kccrz"
        );
        assert_eq!(values(&o, &src, &dst, direction::EGRESS)[0].1, "default");
        assert!(o.needs().direction);
        let n = opts("destinationContext=ip").needs();
        assert!(n.dst_ip && !n.src_endpoint && !n.direction);
    }

    #[test]
    fn pod_bound_values_are_reported() {
        let ds = deathstar();
        let src = Side {
            endpoint: Some(&ds),
            labels: &ds.labels,
            ip: None,
        };
        let mut pods = Vec::new();
        let mut out = Vec::new();
        opts("sourceContext=namespace").values(&src, &Side::default(), 0, &mut out, &mut pods);
        assert!(pods.is_empty());
        opts("sourceContext=pod").values(&src, &Side::default(), 0, &mut out, &mut pods);
        assert_eq!(
            pods,
            vec![(
                "default".to_string(),
                "deathstar-689f66b57d-kccrz".to_string()
            )]
        );
    }
}
