//! Periscope's own health metrics, read from the pipeline's counters at scrape time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{LostSource, Shared};
use crate::pipeline::PipelineStats;
use crate::ring::Ring;

/// A pipeline whose counters are exported, named by its event source (`perf`, `replay`).
#[derive(Clone)]
pub(crate) struct Watched {
    pub source: String,
    pub stats: Arc<PipelineStats>,
    pub ring: Arc<Ring>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct PipelineCollector {
    pub shared: Arc<Shared>,
}

fn per_source(
    encoder: &mut DescriptorEncoder<'_>,
    watched: &[Watched],
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl Fn(&Watched) -> u64,
) -> Result<(), std::fmt::Error> {
    if watched.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for w in watched {
        let labels = [("source", w.source.as_str())];
        let v = value(w);
        match kind {
            MetricType::Counter => ConstCounter::new(v).encode(m.encode_family(&labels)?)?,
            _ => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                .encode(m.encode_family(&labels)?)?,
        }
    }
    Ok(())
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let watched = self.shared.watched.lock().clone();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        per_source(
            &mut encoder,
            &watched,
            "periscope_events_read",
            "Raw events read from the event source (samples and loss reports)",
            MetricType::Counter,
            |w| load(&w.stats.events_read),
        )?;
        per_source(
            &mut encoder,
            &watched,
            "periscope_flows_stored",
            "Records written to the flow ring (flows and loss reports)",
            MetricType::Counter,
            |w| load(&w.stats.flows_stored),
        )?;
        per_source(
            &mut encoder,
            &watched,
            "periscope_ring_occupancy",
            "Records currently held in the flow ring",
            MetricType::Gauge,
            |w| w.ring.len(),
        )?;
        per_source(
            &mut encoder,
            &watched,
            "periscope_ring_capacity",
            "Capacity of the flow ring in records",
            MetricType::Gauge,
            |w| w.ring.capacity() as u64,
        )?;
        if !watched.is_empty() {
            let mut m = encoder.encode_descriptor(
                "periscope_decode_errors",
                "Raw events that could not be decoded, by reason",
                None,
                MetricType::Counter,
            )?;
            for w in &watched {
                for (reason, v) in w.stats.decode_errors.by_label() {
                    let labels = [("source", w.source.as_str()), ("reason", reason)];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let perf: u64 = watched.iter().map(|w| load(&w.stats.perf_lost)).sum();
        let mut m = encoder.encode_descriptor(
            "periscope_lost_events",
            "Events lost before they reached a client, by where they were lost",
            None,
            MetricType::Counter,
        )?;
        for src in LostSource::ALL {
            let mut v = load(&self.shared.lost_extra[src as usize]);
            if src == LostSource::PerfEventRingBuffer {
                v += perf;
            }
            ConstCounter::new(v).encode(m.encode_family(&[("source", src.label())])?)?;
        }
        Ok(())
    }
}
