//! The local cluster: what "Kubernetes" is on one machine.
//!
//! - [`spec`]: the cluster spec YAML (nodes, namespaces, pods, services, pod CIDR); pure.
//! - [`plan`]: names, addresses, MACs, endpoint ids and identities derived from a spec and an
//!   instance prefix; pure, so the flow server can build its metadata without root.
//! - [`netns`]: applies a plan to the kernel (one netns + veth pair per pod, routes, forwarding)
//!   and tears it down again; the only part that needs root.
//! - [`deathstar`]: the Star Wars demo HTTP API served inside deathstar pods.
//!
//! A [`Cluster`] describes every pod as built; it is also saved as JSON in the instance's state
//! directory so `periscope-cluster exec/status` and other processes can load it.

pub mod deathstar;
pub mod netns;
pub mod plan;
pub mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use netns::{
    BuildOptions, Leftovers, PodHealth, ServerMode, TeardownReport, build, leftovers,
    node_addresses, teardown,
};
pub use plan::{DEFAULT_PREFIX, DEFAULT_STATE_ROOT, GATEWAY, plan};
pub use spec::{ClusterSpec, ServeRole, SpecError};

use crate::identity::IdentityError;
use spec::{NodeSpec, ServicePort, Workload};

/// A built (or planned) cluster instance. Planned instances have ifindexes of 0 and no server pids.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cluster {
    /// The spec it was built from.
    pub spec: ClusterSpec,
    /// Instance prefix: every netns, link alias, /etc/netns dir and state dir carries it.
    pub prefix: String,
    /// The CIDR actually used (the spec's unless overridden in [`BuildOptions`]).
    pub pod_cidr: Ipv4Net,
    /// Link-local default gateway of every pod (answered by the host-side veth).
    pub gateway: Ipv4Addr,
    /// Where the state file, pid files and server logs live.
    pub state_dir: PathBuf,
    /// In spec order.
    pub pods: Vec<PodInfo>,
    /// In spec order.
    pub services: Vec<ServiceInfo>,
    #[serde(skip)]
    pub(crate) runtime: netns::Runtime,
}

/// A clone describes the same instance but owns none of its servers: dropping it stops nothing.
impl Clone for Cluster {
    fn clone(&self) -> Cluster {
        Cluster {
            spec: self.spec.clone(),
            prefix: self.prefix.clone(),
            pod_cidr: self.pod_cidr,
            gateway: self.gateway,
            state_dir: self.state_dir.clone(),
            pods: self.pods.clone(),
            services: self.services.clone(),
            runtime: Default::default(),
        }
    }
}

impl Cluster {
    /// A pod by `name` or `namespace/name`.
    pub fn pod(&self, name: &str) -> Option<&PodInfo> {
        match name.split_once('/') {
            Some((ns, n)) => self.pods.iter().find(|p| p.namespace == ns && p.name == n),
            None => self.pods.iter().find(|p| p.name == name),
        }
    }

    /// A pod by its pod IP.
    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&PodInfo> {
        self.pods.iter().find(|p| p.ip == ip)
    }

    /// Pods whose name starts with `prefix`, e.g. `deathstar` for both deathstar replicas.
    pub fn pods_named<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods.iter().filter(move |p| p.name.starts_with(prefix))
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The node all pods run on (this machine): the spec's first node. `None` only for a
    /// hand-edited state file, as parsed specs always have one.
    pub fn node(&self) -> Option<&NodeSpec> {
        self.spec.nodes.first()
    }
}

/// Everything the datapath and the flow server need to know about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub node: String,
    /// The pod's Kubernetes labels as written in the spec.
    pub labels: BTreeMap<String, String>,
    /// Identity labels as Hubble shows them (`k8s:org=empire`, …), sorted.
    pub identity_labels: Vec<String>,
    pub identity: u32,
    /// Small per-node endpoint id, like Cilium's (1..=4095).
    pub endpoint_id: u16,
    pub workload: Option<Workload>,
    pub service_account: String,
    /// Network namespace name (`ip netns exec <netns> …`).
    pub netns: String,
    /// Host side of the veth pair (`lxc<hash>`), where the probes attach.
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: Mac,
    /// `eth0` inside the pod.
    pub pod_ifindex: u32,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub serve: Option<ServeRole>,
    /// Set for servers running as their own process (recorded in a pid file as well).
    pub server_pid: Option<u32>,
}

impl PodInfo {
    /// `namespace/name`, as Hubble prints endpoints.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub namespace: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServicePort>,
    /// Names of the selected pods, in spec order.
    pub backend_pods: Vec<String>,
    /// Their pod IPs, in the same order.
    pub backends: Vec<Ipv4Addr>,
}

/// An Ethernet address; serialized as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let part = parts
                .next()
                .ok_or_else(|| format!("{s:?} is not a MAC address"))?;
            *b = u8::from_str_radix(part, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address"));
        }
        Ok(Mac(out))
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Mac, String> {
        s.parse()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("invalid instance prefix {0:?}: use 1-12 lowercase letters or digits")]
    InvalidPrefix(String),
    /// Addresses or names could not be assigned (CIDR exhausted, fixed IP outside an override, …).
    #[error("cannot plan the cluster: {0}")]
    Plan(String),
    #[error("building the cluster needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")]
    NotRoot,
    /// A command failed; the message has the full command line and its stderr.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Something not ours is in the way (an address already routed elsewhere, a foreign link).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("no pod {0:?} in this cluster")]
    UnknownPod(String),
    #[error("demo server in {pod}: {message}")]
    Server { pod: String, message: String },
    #[error("{what}: no result after {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
}

impl ClusterError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ClusterError {
        ClusterError::Io {
            what: what.into(),
            source,
        }
    }
}
