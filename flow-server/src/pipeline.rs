//! The writer side: raw events → decode → enrich → observers (metrics) → ring.
//! Runs on the source's thread; every place a record can be lost has a counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use periscope_probes::source::{EventSink, RawEvent};

use crate::decoder::{DecodeError, decode};
use crate::meta::{Enricher, Metadata};
use crate::record::{FlowRecord, kind};
use crate::ring::RingWriter;

/// Counters shared with the server (ServerStatus) and metrics.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub events_read: AtomicU64,
    pub flows_stored: AtomicU64,
    /// Samples the kernel reported lost before we could read them.
    pub perf_lost: AtomicU64,
    pub decode_errors: DecodeErrorCounts,
}

#[derive(Debug, Default)]
pub struct DecodeErrorCounts {
    pub empty: AtomicU64,
    pub unknown_type: AtomicU64,
    pub not_a_flow: AtomicU64,
    pub truncated: AtomicU64,
    pub unsupported_version: AtomicU64,
}

impl DecodeErrorCounts {
    fn count(&self, e: &DecodeError) {
        let c = match e {
            DecodeError::Empty => &self.empty,
            DecodeError::UnknownType(_) => &self.unknown_type,
            DecodeError::NotAFlow(_) => &self.not_a_flow,
            DecodeError::Truncated { .. } => &self.truncated,
            DecodeError::UnsupportedVersion { .. } => &self.unsupported_version,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        [
            &self.empty,
            &self.unknown_type,
            &self.not_a_flow,
            &self.truncated,
            &self.unsupported_version,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub fn by_label(&self) -> [(&'static str, u64); 5] {
        [
            ("empty", self.empty.load(Ordering::Relaxed)),
            ("unknown_type", self.unknown_type.load(Ordering::Relaxed)),
            ("not_a_flow", self.not_a_flow.load(Ordering::Relaxed)),
            ("truncated", self.truncated.load(Ordering::Relaxed)),
            (
                "unsupported_version",
                self.unsupported_version.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// Sees every stored record before readers do (metrics exporters implement this).
pub trait FlowObserver: Send {
    fn on_record(&mut self, rec: &FlowRecord);
}

pub struct Pipeline {
    writer: RingWriter,
    enricher: Enricher,
    stats: Arc<PipelineStats>,
    observers: Vec<Box<dyn FlowObserver>>,
    scratch: FlowRecord,
}

impl Pipeline {
    pub fn new(writer: RingWriter, metadata: Arc<Metadata>, stats: Arc<PipelineStats>) -> Self {
        Self {
            writer,
            enricher: Enricher::new(metadata),
            stats,
            observers: Vec::new(),
            scratch: FlowRecord::EMPTY,
        }
    }

    pub fn add_observer(&mut self, o: Box<dyn FlowObserver>) {
        self.observers.push(o);
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    fn store(&mut self) {
        for o in &mut self.observers {
            o.on_record(&self.scratch);
        }
        self.writer.push(&mut self.scratch);
        self.stats.flows_stored.fetch_add(1, Ordering::Relaxed);
    }
}

impl EventSink for Pipeline {
    fn push(&mut self, event: RawEvent<'_>) {
        self.stats.events_read.fetch_add(1, Ordering::Relaxed);
        match event {
            RawEvent::Sample {
                cpu,
                timestamp_ns,
                data,
            } => match decode(data, timestamp_ns, cpu, &mut self.scratch) {
                Ok(()) => {
                    self.enricher.enrich(&mut self.scratch);
                    self.store();
                }
                Err(e) => self.stats.decode_errors.count(&e),
            },
            RawEvent::Lost {
                cpu,
                count,
                timestamp_ns,
            } => {
                self.stats.perf_lost.fetch_add(count, Ordering::Relaxed);
                self.scratch = FlowRecord {
                    kind: kind::LOST,
                    cpu,
                    lost_count: count,
                    time_ns: timestamp_ns,
                    ..FlowRecord::EMPTY
                };
                self.store();
            }
        }
    }

    fn flush(&mut self) {
        self.writer.publish();
    }
}
