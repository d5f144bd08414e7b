//! Endpoint, service and identity metadata, and the enricher that attaches it to records.
//!
//! Records store small indexes into an append-only `MetaTable`, so enrichment on the hot path is
//! a hash lookup with no allocation, and a flow read later still shows the pod it came from even
//! if that pod is gone.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use periscope_probes::abi::{identity, message_type};

use crate::record::{FlowRecord, direction, reply};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    pub name: String,
    pub kind: String,
}

/// A local or remote endpoint (pod) as Hubble shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointInfo {
    pub endpoint_id: u32,
    pub identity: u32,
    pub namespace: String,
    pub pod_name: String,
    /// `source:key=value`, e.g. `k8s:org=empire`, sorted.
    pub labels: Vec<String>,
    pub workloads: Vec<Workload>,
    pub cluster_name: String,
    pub node_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    pub name: String,
    pub namespace: String,
}

/// Everything a metadata source knows at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub endpoints: Vec<(Vec<IpAddr>, EndpointInfo)>,
    /// Service frontends: (ClusterIP, port) → service.
    pub services: Vec<(IpAddr, u16, ServiceInfo)>,
    /// Addresses of cluster nodes (reserved identity host / remote-node).
    pub node_ips: Vec<IpAddr>,
    /// Labels of identities that have no local endpoint (e.g. other clusters, CIDR identities).
    pub identities: Vec<(u32, Vec<String>)>,
}

/// Where metadata comes from: the local cluster spec now, the Kubernetes API later.
pub trait MetadataSource: Send + Sync {
    fn snapshot(&self) -> ClusterMetadata;
}

/// Static metadata, e.g. built from a cluster spec.
impl MetadataSource for ClusterMetadata {
    fn snapshot(&self) -> ClusterMetadata {
        self.clone()
    }
}

/// Labels Hubble shows for reserved identities.
pub fn reserved_labels(id: u32) -> Option<&'static str> {
    Some(match id {
        identity::HOST => "reserved:host",
        identity::WORLD => "reserved:world",
        identity::UNMANAGED => "reserved:unmanaged",
        identity::HEALTH => "reserved:health",
        identity::INIT => "reserved:init",
        identity::REMOTE_NODE => "reserved:remote-node",
        identity::KUBE_APISERVER => "reserved:kube-apiserver",
        identity::INGRESS => "reserved:ingress",
        _ => return None,
    })
}

/// An interned endpoint plus whether any flow has referenced it (for GetNamespaces).
#[derive(Debug)]
pub struct InternedEndpoint {
    pub info: EndpointInfo,
    pub seen: AtomicBool,
}

/// Append-only intern table; index 0 means "none".
#[derive(Debug, Default)]
pub struct MetaTable {
    endpoints: RwLock<Vec<Arc<InternedEndpoint>>>,
    services: RwLock<Vec<Arc<ServiceInfo>>>,
}

impl MetaTable {
    pub fn endpoint(&self, index: u32) -> Option<Arc<InternedEndpoint>> {
        let i = usize::try_from(index).ok()?.checked_sub(1)?;
        self.endpoints.read().get(i).cloned()
    }

    pub fn service(&self, index: u32) -> Option<Arc<ServiceInfo>> {
        let i = usize::try_from(index).ok()?.checked_sub(1)?;
        self.services.read().get(i).cloned()
    }

    /// Namespaces of endpoints that appeared in at least one flow.
    pub fn seen_namespaces(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .endpoints
            .read()
            .iter()
            .filter(|e| e.seen.load(Ordering::Relaxed) && !e.info.namespace.is_empty())
            .map(|e| (e.info.cluster_name.clone(), e.info.namespace.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Runs `f` over endpoints with the table read-locked once (for filter evaluation).
    pub fn with_endpoints<R>(&self, f: impl FnOnce(&[Arc<InternedEndpoint>]) -> R) -> R {
        f(&self.endpoints.read())
    }

    pub fn with_services<R>(&self, f: impl FnOnce(&[Arc<ServiceInfo>]) -> R) -> R {
        f(&self.services.read())
    }
}

#[derive(Debug, Clone)]
struct EndpointRef {
    meta: u32,
    identity: u32,
    endpoint_id: u32,
    entry: Arc<InternedEndpoint>,
}

/// An immutable view used by the writer between metadata updates.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_ip: HashMap<IpAddr, EndpointRef>,
    services: HashMap<(IpAddr, u16), u32>,
    node_ips: HashSet<IpAddr>,
    identity_labels: HashMap<u32, Arc<[String]>>,
}

/// A change to the endpoint set, reported to GetAgentEvents listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataChange {
    EndpointCreated(EndpointInfo),
    EndpointDeleted(EndpointInfo),
    ServiceUpserted(ServiceInfo, IpAddr, u16),
    ServiceDeleted(ServiceInfo, IpAddr, u16),
}

/// Shared metadata state: the intern table plus the current snapshot.
#[derive(Debug, Default)]
pub struct Metadata {
    pub table: MetaTable,
    current: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
    previous: RwLock<ClusterMetadata>,
}

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs a new view of the cluster and returns what changed.
    pub fn update(&self, md: &ClusterMetadata) -> Vec<MetadataChange> {
        let mut changes = Vec::new();
        let old_snapshot = self.current.read().clone();
        let mut snap = Snapshot::default();
        {
            let mut table = self.table.endpoints.write();
            for (ips, info) in &md.endpoints {
                // Reuse the interned entry if this endpoint is unchanged.
                let existing = ips
                    .iter()
                    .filter_map(|ip| old_snapshot.by_ip.get(ip))
                    .map(|r| r.meta)
                    .find(|&m| table.get(m as usize - 1).is_some_and(|e| &e.info == info));
                let meta = match existing {
                    Some(m) => m,
                    None => {
                        table.push(Arc::new(InternedEndpoint {
                            info: info.clone(),
                            seen: AtomicBool::new(false),
                        }));
                        changes.push(MetadataChange::EndpointCreated(info.clone()));
                        u32::try_from(table.len()).unwrap_or(u32::MAX)
                    }
                };
                let Some(entry) = table.get(meta as usize - 1).cloned() else {
                    continue;
                };
                for ip in ips {
                    let r = EndpointRef {
                        meta,
                        identity: info.identity,
                        endpoint_id: info.endpoint_id,
                        entry: entry.clone(),
                    };
                    snap.by_ip.insert(*ip, r);
                }
                snap.identity_labels
                    .entry(info.identity)
                    .or_insert_with(|| info.labels.clone().into());
            }
        }
        {
            let mut table = self.table.services.write();
            for (ip, port, svc) in &md.services {
                let idx = match table.iter().position(|s| s.as_ref() == svc) {
                    Some(i) => i + 1,
                    None => {
                        table.push(Arc::new(svc.clone()));
                        table.len()
                    }
                };
                snap.services
                    .insert((*ip, *port), u32::try_from(idx).unwrap_or(u32::MAX));
            }
        }
        snap.node_ips = md.node_ips.iter().copied().collect();
        for (id, labels) in &md.identities {
            snap.identity_labels.insert(*id, labels.clone().into());
        }
        let prev = std::mem::replace(&mut *self.previous.write(), md.clone());
        for (_, old) in &prev.endpoints {
            if !md
                .endpoints
                .iter()
                .any(|(_, new)| new.pod_name == old.pod_name && new.namespace == old.namespace)
            {
                changes.push(MetadataChange::EndpointDeleted(old.clone()));
            }
        }
        for (ip, port, svc) in &md.services {
            if !prev
                .services
                .iter()
                .any(|(i, p, s)| i == ip && p == port && s == svc)
            {
                changes.push(MetadataChange::ServiceUpserted(svc.clone(), *ip, *port));
            }
        }
        for (ip, port, svc) in &prev.services {
            if !md
                .services
                .iter()
                .any(|(i, p, s)| i == ip && p == port && s == svc)
            {
                changes.push(MetadataChange::ServiceDeleted(svc.clone(), *ip, *port));
            }
        }
        *self.current.write() = Arc::new(snap);
        self.generation.fetch_add(1, Ordering::Release);
        changes
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Labels of an identity, reserved ones included.
    pub fn identity_labels(&self, id: u32) -> Vec<String> {
        if let Some(l) = reserved_labels(id) {
            return vec![l.to_string()];
        }
        self.current
            .read()
            .identity_labels
            .get(&id)
            .map(|l| l.to_vec())
            .unwrap_or_default()
    }
}

/// The writer's enricher: caches the current snapshot and refreshes it when the generation moves.
pub struct Enricher {
    metadata: Arc<Metadata>,
    snapshot: Arc<Snapshot>,
    generation: u64,
}

impl Enricher {
    pub fn new(metadata: Arc<Metadata>) -> Self {
        let generation = metadata.generation();
        let snapshot = metadata.snapshot();
        Self {
            metadata,
            snapshot,
            generation,
        }
    }

    /// One atomic load when nothing changed; the snapshot is swapped only on a new generation.
    pub fn refresh(&mut self) {
        let g = self.metadata.generation();
        if g != self.generation {
            self.snapshot = self.metadata.snapshot();
            self.generation = g;
        }
    }

    fn fallback_identity(&self, ip: IpAddr) -> u32 {
        if self.snapshot.node_ips.contains(&ip) {
            identity::HOST
        } else {
            identity::WORLD
        }
    }

    /// Attaches endpoint/service indexes, fills missing identities and derives the direction.
    pub fn enrich(&self, rec: &mut FlowRecord) {
        let src = rec.src_addr();
        let dst = rec.dst_addr();
        let mut src_endpoint_id = 0;
        if let Some(ip) = src {
            match self.snapshot.by_ip.get(&ip) {
                Some(ep) => {
                    rec.src_meta = ep.meta;
                    src_endpoint_id = ep.endpoint_id;
                    mark_seen(&ep.entry);
                    if rec.src_identity == 0 {
                        rec.src_identity = ep.identity;
                    }
                }
                None if rec.src_identity == 0 => rec.src_identity = self.fallback_identity(ip),
                None => {}
            }
            rec.src_service = self
                .snapshot
                .services
                .get(&(ip, rec.src_port))
                .copied()
                .unwrap_or(0);
        }
        if let Some(ip) = dst {
            match self.snapshot.by_ip.get(&ip) {
                Some(ep) => {
                    rec.dst_meta = ep.meta;
                    mark_seen(&ep.entry);
                    if rec.dst_identity == 0 {
                        rec.dst_identity = ep.identity;
                    }
                }
                None if rec.dst_identity == 0 => rec.dst_identity = self.fallback_identity(ip),
                None => {}
            }
            rec.dst_service = self
                .snapshot
                .services
                .get(&(ip, rec.dst_port))
                .copied()
                .unwrap_or(0);
            if rec.dst_service == 0
                && rec.orig_ip != [0; 16]
                && let Some(orig) = crate::record::ip_from_bytes(rec.ip_version, &rec.orig_ip)
            {
                rec.dst_service = self
                    .snapshot
                    .services
                    .get(&(orig, rec.dst_port))
                    .copied()
                    .unwrap_or(0);
            }
        }
        if rec.direction == direction::UNKNOWN && rec.source_ep != 0 {
            rec.direction = derive_direction(rec, src_endpoint_id);
        }
    }
}

fn mark_seen(entry: &InternedEndpoint) {
    // Load first so the common case does not dirty the cache line.
    if !entry.seen.load(Ordering::Relaxed) {
        entry.seen.store(true, Ordering::Relaxed);
    }
}

/// Hubble's rule: the event happened at endpoint `source_ep`; if that endpoint sent the packet
/// it is egress, otherwise ingress — flipped for replies of traced connections.
fn derive_direction(rec: &FlowRecord, src_endpoint_id: u32) -> u8 {
    let is_source_ep = u32::from(rec.source_ep) == src_endpoint_id;
    match rec.msg_type {
        message_type::DROP => {
            if is_source_ep {
                direction::EGRESS
            } else {
                direction::INGRESS
            }
        }
        message_type::TRACE => {
            let is_reply = rec.is_reply == reply::YES;
            if is_source_ep != is_reply {
                direction::EGRESS
            } else {
                direction::INGRESS
            }
        }
        _ => direction::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::kind;

    fn ep(name: &str, id: u32, identity: u32, labels: &[&str]) -> EndpointInfo {
        EndpointInfo {
            endpoint_id: id,
            identity,
            namespace: "default".into(),
            pod_name: name.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            node_name: "node-1".into(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn cluster() -> ClusterMetadata {
        ClusterMetadata {
            endpoints: vec![
                (
                    vec![ip("10.0.1.5")],
                    ep("xwing", 11, 13058, &["k8s:org=alliance"]),
                ),
                (
                    vec![ip("10.0.1.9")],
                    ep("deathstar-689f66b57d-kccrz", 12, 17839, &["k8s:org=empire"]),
                ),
            ],
            services: vec![(
                ip("10.96.0.10"),
                80,
                ServiceInfo {
                    name: "deathstar".into(),
                    namespace: "default".into(),
                },
            )],
            node_ips: vec![ip("192.0.2.1")],
            identities: vec![],
        }
    }

    fn record(src: &str, dst: &str) -> FlowRecord {
        let mut r = FlowRecord {
            kind: kind::FLOW,
            ip_version: 4,
            dst_port: 80,
            ..FlowRecord::EMPTY
        };
        r.src_ip = crate::record::ip_to_bytes(ip(src));
        r.dst_ip = crate::record::ip_to_bytes(ip(dst));
        r
    }

    #[test]
    fn enriches_known_endpoints_and_falls_back_to_reserved() {
        let md = Arc::new(Metadata::new());
        md.update(&cluster());
        let e = Enricher::new(md.clone());
        let mut r = record("10.0.1.5", "10.0.1.9");
        e.enrich(&mut r);
        assert_eq!((r.src_identity, r.dst_identity), (13058, 17839));
        let src = md.table.endpoint(r.src_meta).expect("interned");
        assert_eq!(src.info.pod_name, "xwing");
        assert_eq!(
            md.table.seen_namespaces(),
            vec![(String::new(), "default".to_string())]
        );

        let mut r = record("198.51.100.7", "192.0.2.1");
        e.enrich(&mut r);
        assert_eq!(
            (r.src_identity, r.dst_identity),
            (identity::WORLD, identity::HOST)
        );
        assert_eq!((r.src_meta, r.dst_meta), (0, 0));
        assert_eq!(
            md.identity_labels(identity::WORLD),
            vec!["reserved:world".to_string()]
        );

        let mut r = record("10.0.1.5", "10.96.0.10");
        e.enrich(&mut r);
        assert_eq!(
            md.table.service(r.dst_service).expect("svc").name,
            "deathstar"
        );
    }

    #[test]
    fn datapath_identities_win_over_metadata() {
        let md = Arc::new(Metadata::new());
        md.update(&cluster());
        let e = Enricher::new(md);
        let mut r = record("10.0.1.5", "10.0.1.9");
        r.src_identity = 4242;
        e.enrich(&mut r);
        assert_eq!(r.src_identity, 4242);
    }

    #[test]
    fn direction_follows_hubble_rules() {
        let md = Arc::new(Metadata::new());
        md.update(&cluster());
        let e = Enricher::new(md);
        // Trace at xwing's endpoint (11) of a packet xwing sent: egress.
        let mut r = record("10.0.1.5", "10.0.1.9");
        (r.msg_type, r.source_ep, r.is_reply) = (message_type::TRACE, 11, reply::NO);
        e.enrich(&mut r);
        assert_eq!(r.direction, direction::EGRESS);
        // Same packet seen at deathstar's endpoint (12): ingress.
        let mut r = record("10.0.1.5", "10.0.1.9");
        (r.msg_type, r.source_ep, r.is_reply) = (message_type::TRACE, 12, reply::NO);
        e.enrich(&mut r);
        assert_eq!(r.direction, direction::INGRESS);
        // A reply from deathstar seen at deathstar: belongs to an ingress connection.
        let mut r = record("10.0.1.9", "10.0.1.5");
        (r.msg_type, r.source_ep, r.is_reply) = (message_type::TRACE, 12, reply::YES);
        e.enrich(&mut r);
        assert_eq!(r.direction, direction::INGRESS);
        // A drop at deathstar of xwing's packet: ingress.
        let mut r = record("10.0.1.5", "10.0.1.9");
        (r.msg_type, r.source_ep) = (message_type::DROP, 12);
        e.enrich(&mut r);
        assert_eq!(r.direction, direction::INGRESS);
    }

    #[test]
    fn updates_report_changes_and_keep_old_entries_readable() {
        let md = Metadata::new();
        let changes = md.update(&cluster());
        assert_eq!(
            changes
                .iter()
                .filter(|c| matches!(c, MetadataChange::EndpointCreated(_)))
                .count(),
            2
        );
        let mut smaller = cluster();
        let gone = smaller.endpoints.remove(0);
        let changes = md.update(&smaller);
        assert_eq!(changes, vec![MetadataChange::EndpointDeleted(gone.1)]);
        // Interned entries stay for flows that still reference them.
        assert_eq!(md.table.endpoint(1).expect("kept").info.pod_name, "xwing");
        // Unchanged endpoints are not re-interned.
        md.update(&smaller);
        assert!(md.table.endpoint(3).is_none());
    }
}
