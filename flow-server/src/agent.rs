//! The node agent's datapath side: loads the probes, keeps the endpoint map and ipcache in sync
//! with the local cluster, attaches to every pod veth, and turns the cluster into enrichment
//! metadata. Everything here needs root except `metadata_from_cluster`.

use std::net::IpAddr;

use periscope_datapath::cluster::Cluster;
use periscope_datapath::enforce::{self, ConntrackGc, EnforceError};
use periscope_datapath::identity::IpLookup;
use periscope_datapath::loader::{Datapath, LoaderConfig, LoaderError};
use periscope_datapath::maps::Endpoint;
use periscope_datapath::perf::{PerfConfig, PerfReader};

use crate::meta::{ClusterMetadata, EndpointInfo, ServiceInfo, Workload};

/// Enrichment metadata for every pod and service of a local cluster.
pub fn metadata_from_cluster(cluster: &Cluster, node_ips: &[IpAddr]) -> ClusterMetadata {
    let endpoints = cluster
        .pods
        .iter()
        .map(|p| {
            let info = EndpointInfo {
                endpoint_id: u32::from(p.endpoint_id),
                identity: p.identity,
                namespace: p.namespace.clone(),
                pod_name: p.name.clone(),
                labels: p.identity_labels.clone(),
                workloads: p
                    .workload
                    .iter()
                    .map(|w| Workload {
                        name: w.name.clone(),
                        kind: w.kind.clone(),
                    })
                    .collect(),
                cluster_name: cluster.spec.cluster_name.clone(),
                node_name: p.node.clone(),
            };
            (vec![IpAddr::V4(p.ip)], info)
        })
        .collect();
    let services = cluster
        .services
        .iter()
        .flat_map(|s| {
            s.ports.iter().map(move |port| {
                let info = ServiceInfo {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                };
                (IpAddr::V4(s.cluster_ip), port.port, info)
            })
        })
        .collect();
    ClusterMetadata {
        endpoints,
        services,
        node_ips: node_ips.to_vec(),
        identities: vec![],
    }
}

/// A loaded and attached datapath for one cluster.
pub struct AttachedDatapath {
    pub datapath: Datapath,
    /// Expires conntrack entries of closed and idle connections.
    _ct_gc: ConntrackGc,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Enforce(#[from] EnforceError),
    #[error(transparent)]
    Maps(#[from] periscope_datapath::maps::MapsError),
}

/// How often closed/idle conntrack entries are collected.
const CT_GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl AttachedDatapath {
    /// Loads the probes, fills the endpoint map and ipcache, and attaches to every pod's veth.
    pub fn attach(
        cluster: &Cluster,
        node_ips: &[IpAddr],
        config: &LoaderConfig,
    ) -> Result<Self, AttachError> {
        let mut datapath = Datapath::load(config)?;
        for pod in &cluster.pods {
            let ep = Endpoint {
                ip: IpAddr::V4(pod.ip),
                id: pod.endpoint_id,
                ifindex: pod.host_ifindex,
                identity: pod.identity,
            };
            datapath.endpoints_mut().insert(&ep)?;
        }
        for (net, identity) in IpLookup::from_cluster(cluster, node_ips).ipcache_entries() {
            datapath
                .ipcache_mut()
                .insert(net.addr(), net.prefix_len(), identity)?;
        }
        // Policies applied earlier (`periscope policy apply`) hold again before traffic flows.
        let repo = enforce::load_repository(cluster)?;
        datapath.apply_policy(repo.resolved())?;
        for pod in &cluster.pods {
            datapath.attach_endpoint(&pod.host_ifname)?;
        }
        let ct_gc = ConntrackGc::spawn(datapath.pin_dir(), CT_GC_INTERVAL)?;
        Ok(Self {
            datapath,
            _ct_gc: ct_gc,
        })
    }

    pub fn perf_reader(&self, config: &PerfConfig) -> Result<PerfReader, LoaderError> {
        self.datapath.perf_reader(config)
    }
}
