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

/// One poll of a policies directory: file name → modification time.
fn policy_files(
    dir: &std::path::Path,
) -> std::collections::BTreeMap<String, std::time::SystemTime> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            name.ends_with(".yaml").then_some((name, modified))
        })
        .collect()
}

fn policy_event(
    kind: periscope_proto::flow::AgentEventType,
    file: &str,
    revision: u64,
) -> periscope_proto::flow::AgentEvent {
    use periscope_proto::flow::{AgentEvent, PolicyUpdateNotification, agent_event::Notification};
    // Saved files are named `<kind>_<namespace>_<name>.yaml`; Hubble shows policy labels.
    let stem = file.trim_end_matches(".yaml");
    AgentEvent {
        r#type: kind as i32,
        notification: Some(Notification::PolicyUpdate(PolicyUpdateNotification {
            labels: vec![format!("io.cilium.k8s.policy.name={stem}")],
            revision,
            rule_count: 1,
        })),
    }
}

/// Reports policies applied or deleted by other processes (`periscope policy …` writes the
/// cluster's policies directory) as POLICY_UPDATED / POLICY_DELETED agent events.
pub fn watch_policies(
    server: std::sync::Arc<crate::server::FlowServer>,
    dir: std::path::PathBuf,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    use periscope_proto::flow::AgentEventType;
    // The baseline is taken now, not when the task first runs, so nothing written after this
    // call goes unreported.
    let mut seen = policy_files(&dir);
    tokio::spawn(async move {
        let mut revision = 0u64;
        loop {
            tokio::time::sleep(interval).await;
            let now = policy_files(&dir);
            for (name, modified) in &now {
                if seen.get(name) != Some(modified) {
                    revision += 1;
                    server.publish_agent_event(policy_event(
                        AgentEventType::PolicyUpdated,
                        name,
                        revision,
                    ));
                }
            }
            for name in seen.keys().filter(|n| !now.contains_key(*n)) {
                revision += 1;
                server.publish_agent_event(policy_event(
                    AgentEventType::PolicyDeleted,
                    name,
                    revision,
                ));
            }
            seen = now;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Metadata;
    use crate::pipeline::PipelineStats;
    use crate::ring::Ring;
    use crate::server::{FlowServer, ServerConfig};
    use periscope_proto::flow::AgentEventType;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn policy_file_changes_become_agent_events() {
        let dir =
            std::env::temp_dir().join(format!("periscope-policy-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (ring, _w) = Ring::new(16).expect("ring");
        let cfg = ServerConfig {
            node_name: "n".into(),
            cluster_name: String::new(),
            advertise_address: String::new(),
        };
        let server = FlowServer::new(
            ring,
            Arc::new(Metadata::new()),
            Arc::new(PipelineStats::default()),
            cfg,
        );
        let task = watch_policies(server.clone(), dir.clone(), Duration::from_millis(20));
        let types = |s: &FlowServer| {
            s.recent_agent_events()
                .iter()
                .map(|e| e.r#type)
                .collect::<Vec<_>>()
        };
        std::fs::write(
            dir.join("cnp_default_rule1.yaml"),
            "kind: CiliumNetworkPolicy\n",
        )
        .expect("write");
        for _ in 0..100 {
            if types(&server).contains(&(AgentEventType::PolicyUpdated as i32)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::remove_file(dir.join("cnp_default_rule1.yaml")).expect("remove");
        for _ in 0..100 {
            if types(&server).contains(&(AgentEventType::PolicyDeleted as i32)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        std::fs::remove_dir_all(&dir).ok();
        let got = types(&server);
        assert_eq!(
            got,
            vec![
                AgentEventType::AgentStarted as i32,
                AgentEventType::PolicyUpdated as i32,
                AgentEventType::PolicyDeleted as i32
            ]
        );
    }
}

/// What a datapath agent needs besides the cluster.
pub struct DatapathAgentConfig {
    pub loader: LoaderConfig,
    pub perf: PerfConfig,
    pub server: crate::server::ServerConfig,
    pub ring_capacity: usize,
    pub metrics: Option<crate::metrics::MetricsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("finding the node's addresses: {0}")]
    NodeAddresses(#[from] periscope_datapath::cluster::ClusterError),
    #[error("loading the eBPF datapath: {0}")]
    Attach(#[from] AttachError),
    #[error("opening the perf buffers: {0}")]
    Perf(#[from] LoaderError),
    #[error("starting the flow pipeline: {0}")]
    Node(#[from] crate::node::NodeError),
}

/// A node agent on the local datapath: probes attached to every pod, the perf reader feeding
/// the flow pipeline, and policy changes reported as agent events. Serving it is the caller's.
pub struct DatapathAgent {
    pub node: crate::node::Node,
    pub datapath: AttachedDatapath,
    _policy_events: tokio::task::JoinHandle<()>,
}

impl DatapathAgent {
    /// Must be called inside a tokio runtime (the policy watcher is a task).
    pub fn start(cluster: &Cluster, cfg: DatapathAgentConfig) -> Result<Self, AgentError> {
        let node_ips = periscope_datapath::cluster::node_addresses()?;
        let datapath = AttachedDatapath::attach(cluster, &node_ips, &cfg.loader)?;
        let reader = datapath.perf_reader(&cfg.perf)?;
        let node_cfg = crate::node::NodeConfig {
            server: cfg.server,
            ring_capacity: cfg.ring_capacity,
            metadata: metadata_from_cluster(cluster, &node_ips),
            metrics: cfg.metrics,
        };
        let node = crate::node::Node::start(node_cfg, Box::new(reader), vec![])?;
        let policy_events = watch_policies(
            node.server.clone(),
            enforce::policies_dir(cluster),
            std::time::Duration::from_secs(1),
        );
        Ok(Self {
            node,
            datapath,
            _policy_events: policy_events,
        })
    }

    /// Stops the perf reader, then detaches the probes.
    pub fn stop(self) -> Result<(), periscope_probes::source::SourceError> {
        self._policy_events.abort();
        let result = self.node.stop();
        drop(self.datapath);
        result
    }
}
