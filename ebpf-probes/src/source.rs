//! Where raw notifications come from: the contract between event producers (the datapath's perf
//! reader, the flow server's replay file) and the flow server's pipeline.
//!
//! It is synchronous on purpose: a source drains whatever it has in a batch and hands each record
//! to the sink by reference, so the hot path copies nothing and allocates nothing.

use std::sync::atomic::AtomicBool;

/// One record as read from a source.
#[derive(Debug, Clone, Copy)]
pub enum RawEvent<'a> {
    /// A notification (first byte = message type) as written by the datapath.
    Sample {
        cpu: u32,
        /// Wall-clock time the record was read (or recorded), in ns since the Unix epoch.
        timestamp_ns: u64,
        data: &'a [u8],
    },
    /// The kernel overwrote or dropped `count` records on `cpu` before we read them.
    Lost {
        cpu: u32,
        count: u64,
        timestamp_ns: u64,
    },
}

/// Receives records from a source; implemented by the flow server's pipeline.
pub trait EventSink {
    fn push(&mut self, event: RawEvent<'_>);
    /// Called after each batch (e.g. when a perf poll returns), so the sink can publish.
    fn flush(&mut self) {}
}

/// A producer of raw notifications. `run` blocks until the source ends or `stop` becomes true.
pub trait EventSource: Send {
    /// Short name used in logs and loss counters (e.g. "perf", "replay").
    fn name(&self) -> &str;
    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}
