//! Relay configuration: where nodes are, how to reach them, and the stream limits.

use std::time::Duration;

use crate::backoff::RetryPolicy;
use crate::tls::NodeTls;

/// Hubble relay's default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4245";
/// Hubble relay's default health port.
pub const DEFAULT_HEALTH_LISTEN: &str = "127.0.0.1:4222";

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Name put on the relay's own `node_status` responses.
    pub name: String,
    /// Peer services (`host:port`) whose Peer.Notify lists the cluster's nodes.
    pub peer_services: Vec<String>,
    /// Node Observer addresses (`host:port`) dialled directly.
    pub static_nodes: Vec<String>,
    /// TLS (and client certificate) for dialling nodes and peer services; `None` = plaintext.
    pub node_tls: Option<NodeTls>,
    pub retry: RetryPolicy,
    /// Bound on one connection attempt (TCP + TLS + HTTP/2 handshake).
    pub dial_timeout: Duration,
    /// Bound on one unary call to a node (ServerStatus, GetNodes, GetNamespaces).
    pub call_timeout: Duration,
    /// How often a connected node is probed with ServerStatus (refreshes version/flow counts
    /// and notices dead nodes that have no open stream).
    pub status_interval: Duration,
    /// Most responses a GetFlows merge holds for sorting.
    pub sort_buffer_len: usize,
    /// A node silent this long no longer holds back the merged stream.
    pub sort_buffer_drain_timeout: Duration,
    /// How long a response waits for quiet nodes that might send something older (sorts
    /// near-simultaneous flows from otherwise idle nodes; capped at the drain timeout).
    pub sort_buffer_reorder_window: Duration,
    /// Responses queued per client; when full, further ones are dropped and reported to that
    /// client as a lost event.
    pub client_queue_len: usize,
    /// A client whose queue stays full this long counts as stalled: the relay stops reading
    /// its node streams (instead of dropping everything they send) until it reads again.
    pub client_stall_timeout: Duration,
    /// Follow streams re-check the node pool at least this often (they also react at once to
    /// pool changes).
    pub peer_update_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "periscope-relay".into(),
            peer_services: Vec::new(),
            static_nodes: Vec::new(),
            node_tls: None,
            retry: RetryPolicy::default(),
            dial_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(5),
            status_interval: Duration::from_secs(5),
            sort_buffer_len: 1024,
            sort_buffer_drain_timeout: Duration::from_secs(1),
            sort_buffer_reorder_window: Duration::from_millis(100),
            client_queue_len: 16384,
            client_stall_timeout: Duration::from_secs(1),
            peer_update_interval: Duration::from_secs(2),
        }
    }
}
