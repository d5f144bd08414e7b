//! Numeric security identities, as Cilium allocates them: one identity per distinct set of
//! security-relevant labels (namespace included), reserved identities for host, world, …, and a
//! lookup from an IP to its identity and endpoint for enrichment and for the ipcache/endpoint maps.
//!
//! Allocation is deterministic without a kvstore: each label set hashes into
//! `MIN_ALLOCATED..=MAX_ALLOCATED`, and collisions are resolved by probing upwards while visiting
//! the label sets in sorted order, so the same cluster gives the same numbers on every run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::cluster::spec::{PodSpec, Protocol};
use crate::cluster::{Cluster, PodInfo, ServiceInfo};

/// Reserved identities (host = 1, world = 2, …) and the start of the allocated range.
pub use periscope_probes::abi::identity as reserved;

/// Highest identity handed out for label sets (Cilium's cluster-local range ends here too).
pub const MAX_ALLOCATED: u32 = 65535;

/// Label source prefix Hubble shows for Kubernetes labels.
pub const K8S_SOURCE: &str = "k8s";

/// Labels Cilium adds to every pod's identity.
pub const LABEL_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_NAMESPACE_NAME: &str = "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name";
pub const LABEL_CLUSTER: &str = "io.cilium.k8s.policy.cluster";
pub const LABEL_SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";

/// The label list Hubble shows for a reserved identity (e.g. `reserved:world`), or `None` for
/// identities outside the reserved range.
pub fn reserved_labels(id: u32) -> Option<&'static str> {
    Some(match id {
        reserved::HOST => "reserved:host",
        reserved::WORLD => "reserved:world",
        reserved::UNMANAGED => "reserved:unmanaged",
        reserved::HEALTH => "reserved:health",
        reserved::INIT => "reserved:init",
        reserved::REMOTE_NODE => "reserved:remote-node",
        reserved::KUBE_APISERVER => "reserved:kube-apiserver",
        reserved::INGRESS => "reserved:ingress",
        _ => return None,
    })
}

/// Whether a pod label key takes part in the identity. Mirrors Cilium's default filter: keys
/// that change per pod or belong to Kubernetes internals (hashes, `*.kubernetes.io`, `k8s.io`,
/// annotations) are left out; `app.kubernetes.io/*` stays in.
pub fn is_security_relevant(key: &str) -> bool {
    const EXCLUDED_KEYS: [&str; 4] = [
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "etcd_node",
    ];
    if EXCLUDED_KEYS.contains(&key) || key.starts_with("annotation.") {
        return false;
    }
    if key.starts_with("io.kubernetes") {
        return false;
    }
    if let Some((prefix, _)) = key.split_once('/') {
        if prefix == "app.kubernetes.io" {
            return true;
        }
        let k8s_owned = |domain: &str| prefix == domain || prefix.ends_with(&format!(".{domain}"));
        if k8s_owned("kubernetes.io") || k8s_owned("k8s.io") {
            return false;
        }
    }
    true
}

/// The identity labels of a pod as Hubble shows them (`k8s:org=empire`, …), sorted: the
/// security-relevant pod labels plus namespace, namespace name, cluster and service account.
pub fn security_labels(pod: &PodSpec, cluster_name: &str) -> Vec<String> {
    let mut set: BTreeSet<String> = pod
        .labels
        .iter()
        .filter(|(k, _)| is_security_relevant(k))
        .map(|(k, v)| format!("{K8S_SOURCE}:{k}={v}"))
        .collect();
    for (k, v) in [
        (LABEL_NAMESPACE, pod.namespace.as_str()),
        (LABEL_NAMESPACE_NAME, pod.namespace.as_str()),
        (LABEL_CLUSTER, cluster_name),
        (LABEL_SERVICE_ACCOUNT, pod.service_account.as_str()),
    ] {
        set.insert(format!("{K8S_SOURCE}:{k}={v}"));
    }
    set.into_iter().collect()
}

/// Label sets and the identities allocated to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    by_labels: BTreeMap<Vec<String>, u32>,
    by_id: BTreeMap<u32, Vec<String>>,
}

impl Identities {
    /// Allocate identities for every distinct label set (each set sorted, as `security_labels`
    /// returns it). Fails only when more than `MAX_ALLOCATED - MIN_ALLOCATED + 1` sets are given.
    pub fn allocate<I, S>(label_sets: I) -> Result<Identities, IdentityError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[String]>,
    {
        let sets: BTreeSet<Vec<String>> = label_sets
            .into_iter()
            .map(|s| s.as_ref().to_vec())
            .collect();
        let span = MAX_ALLOCATED - reserved::MIN_ALLOCATED + 1;
        if sets.len() > span as usize {
            return Err(IdentityError::Exhausted {
                requested: sets.len(),
            });
        }
        let mut out = Identities::default();
        for labels in sets {
            let parts: Vec<&[u8]> = labels.iter().map(|l| l.as_bytes()).collect();
            let mut offset = (stable_hash(&parts) % u64::from(span)) as u32;
            while out.by_id.contains_key(&(reserved::MIN_ALLOCATED + offset)) {
                offset = (offset + 1) % span;
            }
            let id = reserved::MIN_ALLOCATED + offset;
            out.by_id.insert(id, labels.clone());
            out.by_labels.insert(labels, id);
        }
        Ok(out)
    }

    pub fn get(&self, labels: &[String]) -> Option<u32> {
        self.by_labels.get(labels).copied()
    }

    /// The labels of an allocated identity.
    pub fn labels(&self, id: u32) -> Option<&[String]> {
        self.by_id.get(&id).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &[String])> {
        self.by_id.iter().map(|(id, l)| (*id, l.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot allocate {requested} identities: the range holds {}", MAX_ALLOCATED - reserved::MIN_ALLOCATED + 1)]
    Exhausted { requested: usize },
}

/// FNV-1a over the parts with a separator byte between them: stable across runs, platforms and
/// Rust releases (unlike `DefaultHasher`), which is what the identity and name derivation need.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What an IP address is, for enrichment: its identity and, for pods, the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub identity: u32,
    /// Set for pod addresses; `None` for host and world.
    pub pod: Option<&'a PodInfo>,
}

/// IP → identity / endpoint / service, built from the cluster (or a plan of it) and the node's
/// own addresses. Unknown addresses are `world`, node addresses are `host`.
#[derive(Debug, Clone, Default)]
pub struct IpLookup {
    pods: HashMap<IpAddr, PodInfo>,
    nodes: BTreeSet<IpAddr>,
    services: HashMap<IpAddr, ServiceInfo>,
    /// Pods' identity labels, keyed by identity, for `labels_of`.
    labels: HashMap<u32, Vec<String>>,
}

impl IpLookup {
    pub fn new(pods: &[PodInfo], services: &[ServiceInfo], node_ips: &[IpAddr]) -> IpLookup {
        IpLookup {
            pods: pods.iter().map(|p| (IpAddr::V4(p.ip), p.clone())).collect(),
            nodes: node_ips.iter().copied().collect(),
            services: services
                .iter()
                .map(|s| (IpAddr::V4(s.cluster_ip), s.clone()))
                .collect(),
            labels: pods
                .iter()
                .map(|p| (p.identity, p.identity_labels.clone()))
                .collect(),
        }
    }

    pub fn from_cluster(cluster: &Cluster, node_ips: &[IpAddr]) -> IpLookup {
        IpLookup::new(&cluster.pods, &cluster.services, node_ips)
    }

    /// Pod first, then host, else world.
    pub fn resolve(&self, ip: IpAddr) -> Resolved<'_> {
        if let Some(pod) = self.pods.get(&ip) {
            return Resolved {
                identity: pod.identity,
                pod: Some(pod),
            };
        }
        if self.nodes.contains(&ip) || ip.is_loopback() {
            return Resolved {
                identity: reserved::HOST,
                pod: None,
            };
        }
        Resolved {
            identity: reserved::WORLD,
            pod: None,
        }
    }

    /// The service whose ClusterIP and port match, if any.
    pub fn service(&self, ip: IpAddr, port: u16, protocol: Protocol) -> Option<&ServiceInfo> {
        self.services.get(&ip).filter(|s| {
            s.ports
                .iter()
                .any(|p| p.port == port && p.protocol == protocol)
        })
    }

    /// Labels to show for an identity: the pods' labels, or `reserved:…` for reserved ones.
    pub fn labels_of(&self, identity: u32) -> Vec<String> {
        if let Some(l) = self.labels.get(&identity) {
            return l.clone();
        }
        reserved_labels(identity)
            .map(|l| vec![l.to_string()])
            .unwrap_or_default()
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.values()
    }

    /// The ipcache contents: every pod /32, every node address (host), and world defaults for
    /// IPv4 and IPv6. Sorted by prefix for stable map syncs.
    pub fn ipcache_entries(&self) -> Vec<(IpNet, u32)> {
        let mut out: Vec<(IpNet, u32)> = Vec::new();
        for pod in self.pods.values() {
            out.push((IpNet::from(IpAddr::V4(pod.ip)), pod.identity));
        }
        for ip in &self.nodes {
            if !self.pods.contains_key(ip) {
                out.push((IpNet::from(*ip), reserved::HOST));
            }
        }
        for any in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ] {
            // A zero-length prefix is always valid.
            if let Ok(net) = IpNet::new(any, 0) {
                out.push((net, reserved::WORLD));
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::spec::ClusterSpec;

    fn starwars_labels() -> Vec<(String, Vec<String>)> {
        let spec = ClusterSpec::starwars();
        spec.pods
            .iter()
            .map(|p| (p.name.clone(), security_labels(p, &spec.cluster_name)))
            .collect()
    }

    #[test]
    fn labels_look_like_hubble() {
        let all = starwars_labels();
        let (_, ds) = &all[0];
        assert_eq!(
            ds,
            &[
                "k8s:app.kubernetes.io/name=deathstar",
                "k8s:class=deathstar",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=default",
                "k8s:io.kubernetes.pod.namespace=default",
                "k8s:org=empire",
            ]
        );
    }

    #[test]
    fn relevance_filter() {
        assert!(is_security_relevant("org"));
        assert!(is_security_relevant("app.kubernetes.io/name"));
        assert!(is_security_relevant("example.com/team"));
        assert!(!is_security_relevant("pod-template-hash"));
        assert!(!is_security_relevant("controller-revision-hash"));
        assert!(!is_security_relevant("statefulset.kubernetes.io/pod-name"));
        assert!(!is_security_relevant("kubernetes.io/hostname"));
        assert!(!is_security_relevant("topology.k8s.io/zone"));
        assert!(!is_security_relevant("io.kubernetes.container.name"));
        assert!(!is_security_relevant("annotation.foo"));
    }

    #[test]
    fn same_labels_same_identity_and_stable() {
        let all = starwars_labels();
        let ids = Identities::allocate(all.iter().map(|(_, l)| l)).unwrap();
        assert_eq!(ids.len(), 3, "two deathstars share one identity");
        let id = |i: usize| ids.get(&all[i].1).unwrap();
        assert_eq!(id(0), id(1));
        assert_ne!(id(0), id(2));
        assert_ne!(id(2), id(3));
        for i in 0..4 {
            assert!((reserved::MIN_ALLOCATED..=MAX_ALLOCATED).contains(&id(i)));
        }
        // Input order does not matter; the numbers are a pure function of the label sets.
        let again = Identities::allocate(all.iter().rev().map(|(_, l)| l)).unwrap();
        assert_eq!(ids, again);
        // Pinned: a change here renumbers every cluster (and the docs/tests that quote ids).
        let pinned: Vec<u32> = (0..4).map(id).collect();
        assert_eq!(pinned, [62007, 62007, 44949, 53274]);
        assert_eq!(ids.labels(id(3)).unwrap(), all[3].1.as_slice());
    }

    #[test]
    fn hash_is_pinned() {
        // FNV-1a test vectors: an accidental change of the hash would renumber every cluster.
        assert_eq!(stable_hash(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }

    #[test]
    fn collisions_probe_to_distinct_ids() {
        let sets: Vec<Vec<String>> = (0..5000).map(|i| vec![format!("k8s:n={i}")]).collect();
        let ids = Identities::allocate(&sets).unwrap();
        assert_eq!(ids.len(), 5000);
        let distinct: BTreeSet<u32> = ids.iter().map(|(id, _)| id).collect();
        assert_eq!(distinct.len(), 5000);
        assert!(distinct.iter().all(|id| (256..=65535).contains(id)));
    }

    #[test]
    fn exhaustion_is_an_error() {
        let sets: Vec<Vec<String>> = (0..65281).map(|i| vec![format!("k8s:n={i}")]).collect();
        assert_eq!(
            Identities::allocate(&sets).unwrap_err(),
            IdentityError::Exhausted { requested: 65281 }
        );
    }

    #[test]
    fn lookup_resolves_pods_hosts_world_and_services() {
        let c = crate::cluster::plan(
            &ClusterSpec::starwars(),
            "p",
            None,
            std::path::Path::new("/x"),
        )
        .unwrap();
        let node: IpAddr = "192.0.2.2".parse().unwrap();
        let lookup = IpLookup::from_cluster(&c, &[node]);
        let xwing = c.pod("xwing").unwrap();
        let r = lookup.resolve(IpAddr::V4(xwing.ip));
        assert_eq!(r.identity, xwing.identity);
        assert_eq!(r.pod.unwrap().name, "xwing");
        assert_eq!(r.pod.unwrap().endpoint_id, xwing.endpoint_id);
        assert_eq!(
            lookup.resolve(node),
            Resolved {
                identity: reserved::HOST,
                pod: None
            }
        );
        assert_eq!(
            lookup.resolve("127.0.0.1".parse().unwrap()).identity,
            reserved::HOST
        );
        assert_eq!(
            lookup.resolve("10.244.0.99".parse().unwrap()).identity,
            reserved::WORLD
        );
        assert_eq!(
            lookup.resolve("2001:db8::1".parse().unwrap()).identity,
            reserved::WORLD
        );
        assert_eq!(lookup.labels_of(reserved::WORLD), ["reserved:world"]);
        assert_eq!(lookup.labels_of(xwing.identity), xwing.identity_labels);
        assert!(lookup.labels_of(12345).is_empty());

        let svc = lookup
            .service("10.96.0.100".parse().unwrap(), 80, Protocol::Tcp)
            .unwrap();
        assert_eq!(svc.name, "deathstar");
        assert!(
            lookup
                .service("10.96.0.100".parse().unwrap(), 81, Protocol::Tcp)
                .is_none()
        );
        assert!(
            lookup
                .service("10.96.0.100".parse().unwrap(), 80, Protocol::Udp)
                .is_none()
        );

        let cache = lookup.ipcache_entries();
        assert_eq!(cache.len(), 4 + 1 + 2);
        assert!(cache.contains(&("10.244.0.4/32".parse().unwrap(), xwing.identity)));
        assert!(cache.contains(&("192.0.2.2/32".parse().unwrap(), reserved::HOST)));
        assert!(cache.contains(&("0.0.0.0/0".parse().unwrap(), reserved::WORLD)));
        assert!(cache.contains(&("::/0".parse().unwrap(), reserved::WORLD)));
    }

    #[test]
    fn reserved_names() {
        assert_eq!(reserved_labels(1), Some("reserved:host"));
        assert_eq!(reserved_labels(2), Some("reserved:world"));
        assert_eq!(reserved_labels(6), Some("reserved:remote-node"));
        assert_eq!(reserved_labels(300), None);
    }
}
