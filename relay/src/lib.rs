//! The cluster-wide relay: discovers nodes through Peer.Notify, dials each node's Observer API and
//! serves the same API merged across nodes. Depends on `periscope-proto` (and may use the flow
//! server's library for shared filter logic); never on the UI.
//!
//! Layout: [`pool`] (discovery, dialling with [`backoff`], node state), [`flows`] (one client's
//! merged GetFlows over [`merge`]'s sort buffer, with bounded per-client queues), [`service`]
//! (the Observer API; GetFlows forwards node responses still encoded, see [`codec`]),
//! [`server`] (listeners, TLS from [`tls`], health).

pub mod backoff;
pub mod codec;
pub mod config;
pub mod flows;
pub mod merge;
pub mod pool;
pub mod server;
pub mod service;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use tokio::sync::watch;

pub use crate::config::RelayConfig;
pub use crate::pool::{ConnState, NodePool, NodeSnapshot};
pub use crate::server::{ServeOptions, serve};
pub use crate::service::{RelayObserver, RelayObserverServer};
pub use crate::tls::NodeTls;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Counters for every place the relay drops or moves data.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Node responses handed to client merge tasks.
    pub responses_forwarded: AtomicU64,
    /// Responses dropped because a client's queue was full (reported to it as lost events).
    pub client_queue_drops: AtomicU64,
    /// Open GetFlows streams.
    pub active_streams: AtomicI64,
}

pub(crate) struct Shared {
    pub(crate) cfg: Arc<RelayConfig>,
    pub(crate) pool: Arc<NodePool>,
    pub(crate) stats: RelayStats,
    /// Flipped once to end every open stream (shutdown).
    pub(crate) stop: watch::Sender<bool>,
}

/// A running relay: the node pool with its discovery tasks, and the state its API serves.
/// Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    /// Starts discovery (static nodes and peer services) and node dialling. Must be called
    /// inside a tokio runtime.
    pub fn start(cfg: RelayConfig) -> Relay {
        let cfg = Arc::new(cfg);
        let pool = NodePool::new(cfg.clone());
        for addr in &cfg.static_nodes {
            pool.add_static(addr);
        }
        for svc in &cfg.peer_services {
            pool.add_peer_service(svc);
        }
        Relay {
            shared: Arc::new(Shared {
                cfg,
                pool,
                stats: RelayStats::default(),
                stop: watch::Sender::new(false),
            }),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.shared.cfg
    }

    pub fn pool(&self) -> &Arc<NodePool> {
        &self.shared.pool
    }

    pub fn stats(&self) -> &RelayStats {
        &self.shared.stats
    }

    /// The Observer implementation (e.g. to call in-process).
    pub fn observer(&self) -> RelayObserver {
        RelayObserver {
            shared: self.shared.clone(),
        }
    }

    /// The tonic service to mount on a server.
    pub fn observer_server(&self) -> RelayObserverServer {
        RelayObserverServer::new(self.observer())
    }

    /// Ends every open GetFlows stream and stops dialling nodes.
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
        self.shared.pool.stop();
    }
}
