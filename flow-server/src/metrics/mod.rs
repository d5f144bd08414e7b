//! Prometheus metrics with Hubble's names and labels (`hubble_flows_processed_total`,
//! `hubble_drop_total`, …) plus Periscope's own health metrics, served on `/metrics`.
//!
//! Wiring, in the server binary:
//! ```ignore
//! let config = MetricsConfig::from_hubble(DEFAULT_METRICS)?; // or the --metrics flag
//! let metrics = Metrics::new(&config, metadata.clone())?;
//! pipeline.add_observer(Box::new(metrics.observer("perf")));   // hot path, writer thread
//! metrics.watch_pipeline("perf", stats.clone(), ring.clone());  // periscope_* counters
//! tokio::spawn(serve_metrics(listener, metrics.clone(), shutdown));
//! metrics.grpc_clients().set(n);                 // as clients come and go
//! metrics.add_lost(LostSource::HubbleRingBuffer, n);
//! metrics.on_metadata_changes(&metadata.update(&snapshot)); // deleted pods' series expire
//! ```
//! Depends on the pipeline's record and metadata types only; the server depends on this, not
//! the other way round.

mod context;
mod http;
mod l7;
mod names;
mod observer;
mod options;
mod own;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use context::{ContextError, ContextId, ContextOptions, LabelCtx};
pub use http::{
    CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, DEFAULT_METRICS_ADDRESS, serve_metrics,
    wants_openmetrics,
};
pub use l7::{DnsObservation, HttpKind, HttpObservation};
pub use observer::MetricsObserver;
pub use options::{OptionsError, PluginConfig, PluginKind, parse_metrics};

use crate::meta::{Metadata, MetadataChange};
use crate::pipeline::PipelineStats;
use crate::ring::Ring;
use l7::{HistogramFamily, L7Families};
use observer::FlowPlugin;
use own::{PipelineCollector, Watched};

pub(crate) type LabelSet = Vec<(&'static str, String)>;
pub(crate) type CounterFamily = Family<LabelSet, Counter>;

/// Hubble's default delay before the series of a deleted pod are removed.
pub const DEFAULT_DELETE_DELAY: Duration = Duration::from_secs(60);

/// The plugins and contexts the Grafana dashboards expect (`periscope demo` and the Helm chart's
/// default): flow, drop, tcp, port-distribution, icmp, policy and flows-to-world, with workload
/// contexts and namespace labels.
pub const DEFAULT_METRICS: &str = "\
flow:sourceContext=workload-name|reserved-identity;destinationContext=workload-name|reserved-identity;\
labelsContext=source_namespace,destination_namespace \
drop:sourceContext=workload-name|reserved-identity;destinationContext=workload-name|reserved-identity;\
labelsContext=source_namespace,destination_namespace \
tcp port-distribution icmp \
policy:sourceContext=workload-name|reserved-identity;destinationContext=workload-name|reserved-identity;\
labelsContext=source_namespace,destination_namespace \
flows-to-world:any-drop;port;sourceContext=workload-name|reserved-identity;labelsContext=source_namespace";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid --metrics: {0}")]
    Options(#[from] OptionsError),
}

/// Where events were lost (`source` label of `hubble_lost_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostSource {
    /// The kernel's perf buffer overflowed (counted from loss records automatically).
    PerfEventRingBuffer = 0,
    /// A client's queue overflowed.
    ObserverEventsQueue = 1,
    /// Records were overwritten in the flow ring before a client read them.
    HubbleRingBuffer = 2,
}

impl LostSource {
    pub const ALL: [LostSource; 3] = [
        LostSource::PerfEventRingBuffer,
        LostSource::ObserverEventsQueue,
        LostSource::HubbleRingBuffer,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LostSource::PerfEventRingBuffer => "perf_event_ring_buffer",
            LostSource::ObserverEventsQueue => "observer_events_queue",
            LostSource::HubbleRingBuffer => "hubble_ring_buffer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Enabled Hubble plugins with their options.
    pub plugins: Vec<PluginConfig>,
    /// How long the series of a deleted pod live on (Hubble: one minute).
    pub delete_delay: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            delete_delay: DEFAULT_DELETE_DELAY,
        }
    }
}

impl MetricsConfig {
    /// Parses Hubble's `--metrics` syntax, e.g. `"drop:sourceContext=namespace tcp flow"`.
    pub fn from_hubble(metrics: &str) -> Result<Self, OptionsError> {
        Ok(Self {
            plugins: parse_metrics(metrics)?,
            ..Self::default()
        })
    }
}

/// A family series can be removed from, whatever its metric type.
#[derive(Clone)]
pub(crate) enum AnyFamily {
    Counter(CounterFamily),
    Histogram(HistogramFamily),
}

impl AnyFamily {
    fn remove(&self, labels: &LabelSet) -> bool {
        match self {
            AnyFamily::Counter(f) => f.remove(labels),
            AnyFamily::Histogram(f) => f.remove(labels),
        }
    }
}

type PodKey = (String, String);
type SeriesKey = (usize, LabelSet);

/// Which series name which pods, so they can be removed when a pod is deleted.
#[derive(Default)]
struct Bindings {
    by_pod: HashMap<PodKey, HashSet<SeriesKey>>,
    by_series: HashMap<SeriesKey, Vec<PodKey>>,
}

/// State shared by `Metrics` handles, observers and the collector.
pub(crate) struct Shared {
    pub(crate) metadata: Arc<Metadata>,
    /// Bumped whenever series are removed: observers then drop their cached handles.
    pub(crate) epoch: AtomicU64,
    families: Vec<AnyFamily>,
    bindings: Mutex<Bindings>,
    pending: Mutex<VecDeque<(Instant, PodKey)>>,
    delete_delay: Duration,
    lost: CounterFamily,
    pub(crate) lost_extra: [AtomicU64; 3],
    pub(crate) watched: Mutex<Vec<Watched>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Records that series `labels` of family `family` names `pods`.
    pub(crate) fn bind(&self, pods: Vec<PodKey>, family: usize, labels: LabelSet) {
        let key = (family, labels);
        let mut b = self.bindings.lock();
        for p in &pods {
            b.by_pod.entry(p.clone()).or_default().insert(key.clone());
        }
        let entry = b.by_series.entry(key).or_default();
        for p in pods {
            if !entry.contains(&p) {
                entry.push(p);
            }
        }
    }

    pub(crate) fn lost_counter(&self, source: LostSource) -> Counter {
        self.lost
            .get_or_create_owned(&vec![("source", source.label().to_string())])
    }

    /// Removes every series that names one of `pods`; returns how many were removed.
    fn remove_pods(&self, pods: &[PodKey]) -> usize {
        let mut removed = 0;
        let mut b = self.bindings.lock();
        for pod in pods {
            let Some(series) = b.by_pod.remove(pod) else {
                continue;
            };
            for s in series {
                if let Some(f) = self.families.get(s.0)
                    && f.remove(&s.1)
                {
                    removed += 1;
                }
                // Forget the series under the other pods it names too.
                for other in b.by_series.remove(&s).unwrap_or_default() {
                    if &other != pod
                        && let Some(set) = b.by_pod.get_mut(&other)
                    {
                        set.remove(&s);
                    }
                }
            }
        }
        removed
    }
}

struct Inner {
    registry: Registry,
    shared: Arc<Shared>,
    flow_plugins: Vec<(PluginConfig, CounterFamily, usize)>,
    l7: L7Families,
    decoded: CounterFamily,
    grpc_clients: Gauge,
    perf_reader_lag: Gauge<f64, AtomicU64>,
}

/// The metrics registry and the handles the server updates. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn flow_family_name(kind: PluginKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        PluginKind::Flow => ("hubble_flows_processed", "Total number of flows processed"),
        PluginKind::Drop => ("hubble_drop", "Number of drops"),
        PluginKind::Tcp => ("hubble_tcp_flags", "TCP flag occurrences"),
        PluginKind::PortDistribution => (
            "hubble_port_distribution",
            "Numbers of packets distributed by destination port",
        ),
        PluginKind::Icmp => ("hubble_icmp", "Number of ICMP messages"),
        PluginKind::Policy => (
            "hubble_policy_verdicts",
            "Total number of Cilium network policy verdicts",
        ),
        PluginKind::FlowsToWorld => (
            "hubble_flows_to_world",
            "Total number of flows to reserved:world",
        ),
        PluginKind::Dns | PluginKind::Http | PluginKind::HttpV2 => return None,
    })
}

impl Metrics {
    /// Registers the enabled plugins' families and Periscope's own metrics. `metadata` is what
    /// context options (`sourceContext=namespace`, …) resolve label values from.
    pub fn new(config: &MetricsConfig, metadata: Arc<Metadata>) -> Result<Self, MetricsError> {
        let mut registry = Registry::default();
        let mut families = Vec::new();
        let mut flow_plugins = Vec::new();
        for p in &config.plugins {
            if let Some((name, help)) = flow_family_name(p.kind) {
                let f = CounterFamily::default();
                registry.register(name, help, f.clone());
                families.push(AnyFamily::Counter(f.clone()));
                flow_plugins.push((p.clone(), f, families.len() - 1));
            }
        }
        let l7 = L7Families::register(&config.plugins, &mut registry, &mut families);

        let lost = CounterFamily::default();
        registry.register("hubble_lost_events", "Number of lost events", lost.clone());
        let decoded = CounterFamily::default();
        registry.register(
            "periscope_events_decoded",
            "Raw events decoded into flows",
            decoded.clone(),
        );
        let grpc_clients = Gauge::default();
        registry.register(
            "periscope_grpc_clients",
            "gRPC clients currently streaming flows",
            grpc_clients.clone(),
        );
        let perf_reader_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "periscope_perf_reader_lag_seconds",
            "Seconds from an event's timestamp (taken when the perf reader read it) to its storage in the ring, sampled",
            perf_reader_lag.clone(),
        );

        let shared = Arc::new(Shared {
            metadata,
            epoch: AtomicU64::new(0),
            families,
            bindings: Mutex::new(Bindings::default()),
            pending: Mutex::new(VecDeque::new()),
            delete_delay: config.delete_delay,
            lost,
            lost_extra: Default::default(),
            watched: Mutex::new(Vec::new()),
        });
        // Losses are always exported, at zero until something is lost.
        for s in LostSource::ALL {
            shared.lost_counter(s);
        }
        registry.register_collector(Box::new(PipelineCollector {
            shared: shared.clone(),
        }));
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                shared,
                flow_plugins,
                l7,
                decoded,
                grpc_clients,
                perf_reader_lag,
            }),
        })
    }

    /// A pipeline observer feeding the enabled plugins; `source` names the event source
    /// (`perf`, `replay`) in `periscope_events_decoded_total`.
    pub fn observer(&self, source: &str) -> MetricsObserver {
        let plugins = self
            .inner
            .flow_plugins
            .iter()
            .map(|(cfg, f, id)| FlowPlugin::new(cfg, f.clone(), *id))
            .collect();
        let decoded = self
            .inner
            .decoded
            .get_or_create_owned(&vec![("source", source.to_string())]);
        MetricsObserver::new(
            self.inner.shared.clone(),
            plugins,
            self.inner.l7.plugins(),
            decoded,
            self.inner.perf_reader_lag.clone(),
        )
    }

    /// Exports a pipeline's counters and ring occupancy under `source`.
    pub fn watch_pipeline(&self, source: &str, stats: Arc<PipelineStats>, ring: Arc<Ring>) {
        self.inner.shared.watched.lock().push(Watched {
            source: source.to_string(),
            stats,
            ring,
        });
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Set by the server as gRPC flow streams start and end.
    pub fn grpc_clients(&self) -> &Gauge {
        &self.inner.grpc_clients
    }

    /// Set by the observer every 1024 records: now minus the stored record's timestamp.
    pub fn perf_reader_lag(&self) -> &Gauge<f64, AtomicU64> {
        &self.inner.perf_reader_lag
    }

    /// Counts events lost outside the perf buffer (perf losses are counted from loss records).
    pub fn add_lost(&self, source: LostSource, n: u64) {
        self.inner.shared.lost_counter(source).inc_by(n);
        self.inner.shared.lost_extra[source as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Schedules the series naming this pod for removal after the configured delay.
    pub fn forget_endpoint(&self, namespace: &str, pod: &str) {
        let due = Instant::now() + self.inner.shared.delete_delay;
        self.inner
            .shared
            .pending
            .lock()
            .push_back((due, (namespace.to_string(), pod.to_string())));
    }

    /// Feeds metadata changes: deleted endpoints' series expire. Also runs due expiries.
    pub fn on_metadata_changes(&self, changes: &[MetadataChange]) {
        for c in changes {
            if let MetadataChange::EndpointDeleted(info) = c {
                self.forget_endpoint(&info.namespace, &info.pod_name);
            }
        }
        self.expire_due();
    }

    /// Removes the series of pods whose delay has passed; returns how many series went.
    /// Runs on every scrape; call it periodically too if nothing scrapes.
    pub fn expire_due(&self) -> usize {
        self.expire_before(Instant::now())
    }

    fn expire_before(&self, now: Instant) -> usize {
        let due: Vec<PodKey> = {
            let mut pending = self.inner.shared.pending.lock();
            let mut due = Vec::new();
            // Deadlines are pushed in order (one fixed delay), so the due ones are in front.
            while pending.front().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, pod)) = pending.pop_front() {
                    due.push(pod);
                }
            }
            due
        };
        if due.is_empty() {
            return 0;
        }
        let removed = self.inner.shared.remove_pods(&due);
        // Observers drop cached handles (some may be detached now; and their keys name old pods).
        self.inner.shared.epoch.fetch_add(1, Ordering::AcqRel);
        removed
    }

    /// Encodes every metric: OpenMetrics text if `openmetrics`, else Prometheus text 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
