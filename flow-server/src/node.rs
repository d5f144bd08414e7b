//! Assembles one node's flow server: ring + metadata + pipeline on a source thread + gRPC state.
//! Used by the agent binary, the relay's tests and benchmarks alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use periscope_probes::source::{EventSource, SourceError};

use crate::meta::{ClusterMetadata, Metadata};
use crate::metrics::{Metrics, MetricsConfig, MetricsError};
use crate::pipeline::{FlowObserver, Pipeline, PipelineStats};
use crate::ring::{CapacityError, Ring};
use crate::server::{FlowServer, ServerConfig};

pub struct NodeConfig {
    pub server: ServerConfig,
    pub ring_capacity: usize,
    pub metadata: ClusterMetadata,
    /// Hubble-style metrics to export, if any.
    pub metrics: Option<MetricsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("starting the source thread: {0}")]
    Thread(std::io::Error),
}

/// A running node: the source thread feeding the ring, and the server state reading it.
pub struct Node {
    pub server: Arc<FlowServer>,
    pub metrics: Option<Metrics>,
    stop: Arc<AtomicBool>,
    source: Option<JoinHandle<Result<(), SourceError>>>,
}

impl Node {
    pub fn start(
        cfg: NodeConfig,
        mut source: Box<dyn EventSource>,
        observers: Vec<Box<dyn FlowObserver>>,
    ) -> Result<Node, NodeError> {
        let (ring, writer) = Ring::new(cfg.ring_capacity)?;
        let metadata = Arc::new(Metadata::new());
        let stats = Arc::new(PipelineStats::default());
        let server = FlowServer::new(ring.clone(), metadata.clone(), stats.clone(), cfg.server);
        let metrics = cfg
            .metrics
            .as_ref()
            .map(|m| Metrics::new(m, metadata.clone()))
            .transpose()?;
        if let Some(m) = &metrics {
            server.set_metrics(m.clone());
        }
        // Metadata first, so the very first events are enriched.
        server.update_metadata(&cfg.metadata);
        let mut pipeline = Pipeline::new(writer, metadata, stats.clone());
        if let Some(m) = &metrics {
            pipeline.add_observer(Box::new(m.observer(source.name())));
            m.watch_pipeline(source.name(), stats, ring);
        }
        for o in observers {
            pipeline.add_observer(o);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let name = format!("source-{}", source.name());
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let r = source.run(&mut pipeline, &thread_stop);
                if let Err(e) = &r {
                    tracing::error!(source = source.name(), error = %e, "event source failed");
                }
                r
            })
            .map_err(NodeError::Thread)?;
        Ok(Node {
            server,
            metrics,
            stop,
            source: Some(handle),
        })
    }

    /// Whether the source thread is still running.
    pub fn source_running(&self) -> bool {
        self.source.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the source and returns how it ended.
    pub fn stop(self) -> Result<(), SourceError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the source to end by itself (e.g. a replay file without `linger`).
    pub fn join(mut self) -> Result<(), SourceError> {
        self.server.ring.wake_all();
        match self.source.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(SourceError::Format("source thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
