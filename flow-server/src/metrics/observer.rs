//! The hot path: `MetricsObserver` sees every stored record on the writer thread.
//!
//! Each flow plugin keeps a cache from a small integer key (the record fields its labels depend
//! on: event type, verdict, ports, metadata indexes, …) to the counter handle of that label set.
//! A known flow shape costs one hash lookup and one atomic add per plugin; label strings are
//! only built on a cache miss. Caches are cleared when series expire (the handles they hold may
//! be detached) and when they grow past a bound (metadata indexes grow as pods churn).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use periscope_probes::abi::{drop_reason, identity, message_type};
use prometheus_client::metrics::counter::Counter;

use super::context::{ContextOptions, Needs, Side};
use super::l7::{DnsObservation, HttpObservation, L7Plugins};
use super::names;
use super::options::{PluginConfig, PluginKind};
use super::{CounterFamily, LabelSet, Shared};
use crate::meta::{InternedEndpoint, Metadata};
use crate::pipeline::FlowObserver;
use crate::record::{FlowRecord, kind, proto, reply, tcp, verdict};

/// Entries per plugin cache before it is cleared (bounds memory as metadata indexes churn).
pub(crate) const MAX_CACHE: usize = 1 << 14;

/// FxHash: a multiply-rotate hasher; keys are our own small integers, so no DoS concern.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Everything a plugin's labels can depend on, masked down to what it actually uses.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Key {
    fixed: u64,
    src: u64,
    dst: u64,
    src_ip: u128,
    dst_ip: u128,
    dir: u8,
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.fixed);
        h.write_u64(self.src);
        h.write_u64(self.dst);
        h.write_u64(self.src_ip as u64 ^ (self.src_ip >> 64) as u64);
        h.write_u64(self.dst_ip as u64 ^ (self.dst_ip >> 64) as u64);
        h.write_u8(self.dir);
    }
}

#[inline]
fn context_key(needs: &Needs, rec: &FlowRecord, fixed: u64) -> Key {
    let side = |meta: u32, id: u32| (u64::from(meta) << 32) | u64::from(id);
    Key {
        fixed,
        src: if needs.src_endpoint {
            side(rec.src_meta, rec.src_identity)
        } else {
            0
        },
        dst: if needs.dst_endpoint {
            side(rec.dst_meta, rec.dst_identity)
        } else {
            0
        },
        src_ip: if needs.src_ip {
            u128::from_le_bytes(rec.src_ip)
        } else {
            0
        },
        dst_ip: if needs.dst_ip {
            u128::from_le_bytes(rec.dst_ip)
        } else {
            0
        },
        dir: if needs.direction { rec.direction } else { 0 },
    }
}

/// One side's metadata, held while label values are computed on a cache miss.
pub(crate) struct SideData {
    endpoint: Option<Arc<InternedEndpoint>>,
    identity_labels: Vec<String>,
    ip: Option<std::net::IpAddr>,
}

impl SideData {
    pub(crate) fn new(
        md: &Metadata,
        meta: u32,
        identity: u32,
        ip: Option<std::net::IpAddr>,
    ) -> Self {
        let endpoint = if meta != 0 {
            md.table.endpoint(meta)
        } else {
            None
        };
        let identity_labels = if endpoint.is_some() {
            Vec::new()
        } else {
            md.identity_labels(identity)
        };
        Self {
            endpoint,
            identity_labels,
            ip,
        }
    }

    pub(crate) fn side(&self) -> Side<'_> {
        match &self.endpoint {
            Some(e) => Side {
                endpoint: Some(&e.info),
                labels: &e.info.labels,
                ip: self.ip,
            },
            None => Side {
                endpoint: None,
                labels: &self.identity_labels,
                ip: self.ip,
            },
        }
    }
}

/// Appends `ctx`'s label values for `rec` to `out`; returns the pods they name.
pub(crate) fn context_labels(
    ctx: &ContextOptions,
    md: &Metadata,
    rec: &FlowRecord,
    invert: bool,
    out: &mut LabelSet,
) -> Vec<(String, String)> {
    let mut pods = Vec::new();
    if ctx.is_empty() {
        return pods;
    }
    let src = SideData::new(md, rec.src_meta, rec.src_identity, rec.src_addr());
    let dst = SideData::new(md, rec.dst_meta, rec.dst_identity, rec.dst_addr());
    let (s, d) = if invert { (&dst, &src) } else { (&src, &dst) };
    ctx.values(&s.side(), &d.side(), rec.direction, out, &mut pods);
    pods
}

/// TCP flag label ids (`extra` for the tcp plugin).
const FLAG_FIN: u8 = 0;
const FLAG_SYN: u8 = 1;
const FLAG_SYN_ACK: u8 = 2;
const FLAG_RST: u8 = 3;

fn flag_name(id: u8) -> &'static str {
    match id {
        FLAG_FIN => "FIN",
        FLAG_SYN => "SYN",
        FLAG_SYN_ACK => "SYN-ACK",
        _ => "RST",
    }
}

fn forwarded(rec: &FlowRecord) -> bool {
    rec.verdict == verdict::FORWARDED || rec.verdict == verdict::REDIRECTED
}

fn l4_port(rec: &FlowRecord) -> Option<u16> {
    matches!(rec.l4_proto, proto::TCP | proto::UDP | proto::SCTP).then_some(rec.dst_port)
}

/// A flow plugin with its family and cache.
pub(crate) struct FlowPlugin {
    kind: PluginKind,
    ctx: ContextOptions,
    needs: Needs,
    family: CounterFamily,
    family_id: usize,
    cache: FxMap<Key, Counter>,
    any_drop: bool,
    port: bool,
    syn_only: bool,
}

impl FlowPlugin {
    pub(crate) fn new(cfg: &PluginConfig, family: CounterFamily, family_id: usize) -> Self {
        Self {
            kind: cfg.kind,
            needs: cfg.context.needs(),
            ctx: cfg.context.clone(),
            family,
            family_id,
            cache: FxMap::default(),
            any_drop: cfg.has_flag("any-drop"),
            port: cfg.has_flag("port"),
            syn_only: cfg.has_flag("syn-only"),
        }
    }

    /// Labels that come before (`true`) or after (`false`) the context labels.
    fn fixed_labels(&self, rec: &FlowRecord, extra: u8, before: bool, out: &mut LabelSet) {
        let p = names::protocol_id(rec);
        match (self.kind, before) {
            (PluginKind::Flow, true) => {
                out.push(("protocol", names::protocol(p).to_string()));
                out.push(("type", names::event_type(rec.msg_type).to_string()));
                out.push(("subtype", names::event_subtype(rec).into_owned()));
                out.push(("verdict", names::verdict(rec.verdict).into_owned()));
            }
            (PluginKind::Drop, false) => {
                out.push(("reason", names::drop_reason(rec.drop_reason).into_owned()));
                out.push(("protocol", names::protocol(p).to_string()));
            }
            (PluginKind::Tcp, true) => {
                out.push(("flag", flag_name(extra).to_string()));
                out.push(("family", names::ip_family(rec.ip_version).to_string()));
            }
            (PluginKind::PortDistribution, true) => {
                out.push(("protocol", names::protocol(p).to_string()));
                out.push(("port", l4_port(rec).unwrap_or(0).to_string()));
            }
            (PluginKind::Icmp, true) => {
                let v6 = rec.l4_proto == proto::ICMPV6;
                out.push(("family", if v6 { "IPv6" } else { "IPv4" }.to_string()));
                out.push(("type", names::icmp_type(v6, rec.icmp_type, rec.icmp_code)));
            }
            (PluginKind::Policy, true) => {
                out.push((
                    "direction",
                    names::policy_direction(rec.direction).to_string(),
                ));
                out.push(("match", names::policy_match(rec.match_type).to_string()));
                out.push(("action", names::verdict(rec.verdict).to_ascii_lowercase()));
            }
            (PluginKind::FlowsToWorld, true) => {
                out.push(("protocol", names::protocol(p).to_string()));
                out.push(("verdict", names::verdict(rec.verdict).into_owned()));
                if self.port {
                    out.push((
                        "port",
                        l4_port(rec).map(|p| p.to_string()).unwrap_or_default(),
                    ));
                }
            }
            _ => {}
        }
    }

    #[cold]
    fn miss(&mut self, key: Key, rec: &FlowRecord, extra: u8, shared: &Shared) -> Counter {
        let mut labels = LabelSet::new();
        self.fixed_labels(rec, extra, true, &mut labels);
        let pods = context_labels(&self.ctx, &shared.metadata, rec, false, &mut labels);
        self.fixed_labels(rec, extra, false, &mut labels);
        let counter = self.family.get_or_create_owned(&labels);
        if !pods.is_empty() {
            shared.bind(pods, self.family_id, labels);
        }
        if self.cache.len() >= MAX_CACHE {
            self.cache.clear();
        }
        self.cache.insert(key, counter.clone());
        counter
    }

    #[inline]
    fn bump(&mut self, fixed: u64, rec: &FlowRecord, extra: u8, shared: &Shared) {
        let key = context_key(&self.needs, rec, fixed);
        match self.cache.get(&key) {
            Some(c) => {
                c.inc();
            }
            None => {
                self.miss(key, rec, extra, shared).inc();
            }
        }
    }

    fn process(&mut self, rec: &FlowRecord, shared: &Shared, world: &mut WorldCache) {
        let p = u64::from(names::protocol_id(rec));
        match self.kind {
            PluginKind::Flow => {
                let sub = if rec.msg_type == message_type::TRACE {
                    rec.subtype
                } else {
                    0
                };
                let fixed = u64::from(rec.msg_type)
                    | (u64::from(sub) << 8)
                    | (u64::from(rec.verdict) << 16)
                    | (p << 24);
                self.bump(fixed, rec, 0, shared);
            }
            PluginKind::Drop => {
                if rec.verdict == verdict::DROPPED {
                    self.bump(u64::from(rec.drop_reason) | (p << 8), rec, 0, shared);
                }
            }
            PluginKind::Tcp => {
                if forwarded(rec) && rec.l4_proto == proto::TCP && rec.ip_version != 0 {
                    let fam = u64::from(rec.ip_version) << 8;
                    let f = rec.tcp_flags;
                    if f & tcp::FIN != 0 {
                        self.bump(fam | u64::from(FLAG_FIN), rec, FLAG_FIN, shared);
                    }
                    if f & tcp::SYN != 0 {
                        let id = if f & tcp::ACK != 0 {
                            FLAG_SYN_ACK
                        } else {
                            FLAG_SYN
                        };
                        self.bump(fam | u64::from(id), rec, id, shared);
                    }
                    if f & tcp::RST != 0 {
                        self.bump(fam | u64::from(FLAG_RST), rec, FLAG_RST, shared);
                    }
                }
            }
            PluginKind::PortDistribution => {
                // Replies (and flows whose direction is unknown) would count ephemeral ports.
                if forwarded(rec) && rec.l4_proto != 0 && rec.is_reply == reply::NO {
                    let port = u64::from(l4_port(rec).unwrap_or(0));
                    self.bump(p | (port << 8), rec, 0, shared);
                }
            }
            PluginKind::Icmp => {
                if matches!(rec.l4_proto, proto::ICMP | proto::ICMPV6) {
                    let fixed =
                        p | (u64::from(rec.icmp_type) << 8) | (u64::from(rec.icmp_code) << 16);
                    self.bump(fixed, rec, 0, shared);
                }
            }
            PluginKind::Policy => {
                if rec.msg_type == message_type::POLICY_VERDICT && !names::policy_ignores(rec) {
                    let fixed = u64::from(rec.direction)
                        | (u64::from(rec.match_type) << 8)
                        | (u64::from(rec.verdict) << 16);
                    self.bump(fixed, rec, 0, shared);
                }
            }
            PluginKind::FlowsToWorld => {
                if self.counts_to_world(rec, &shared.metadata, world) {
                    let port = if self.port {
                        u64::from(l4_port(rec).unwrap_or(0)) | (1 << 16)
                    } else {
                        0
                    };
                    self.bump(
                        p | (u64::from(rec.verdict) << 8) | (port << 16),
                        rec,
                        0,
                        shared,
                    );
                }
            }
            // L7 plugins are driven by L7 observations, not L3/L4 records.
            PluginKind::Dns | PluginKind::Http | PluginKind::HttpV2 => {}
        }
    }

    fn counts_to_world(&self, rec: &FlowRecord, md: &Metadata, world: &mut WorldCache) -> bool {
        if rec.l4_proto == 0 || rec.dst_meta != 0 || !world.is_world(md, rec.dst_identity) {
            return false;
        }
        let is_reply = rec.is_reply == reply::YES;
        if rec.verdict == verdict::DROPPED {
            if !self.any_drop && rec.drop_reason != drop_reason::POLICY_DENIED {
                return false;
            }
        } else if is_reply {
            return false;
        }
        if self.syn_only
            && (rec.l4_proto != proto::TCP || rec.tcp_flags & tcp::SYN == 0 || is_reply)
        {
            return false;
        }
        true
    }
}

/// Which identities carry `reserved:world` (CIDR identities do too), cached.
#[derive(Default)]
pub(crate) struct WorldCache {
    ids: FxMap<u32, bool>,
}

impl WorldCache {
    fn is_world(&mut self, md: &Metadata, id: u32) -> bool {
        if id == identity::WORLD {
            return true;
        }
        if id < identity::MIN_ALLOCATED {
            return false;
        }
        if let Some(&w) = self.ids.get(&id) {
            return w;
        }
        let w = md.identity_labels(id).iter().any(|l| l == "reserved:world");
        if self.ids.len() >= MAX_CACHE {
            self.ids.clear();
        }
        self.ids.insert(id, w);
        w
    }
}

/// The pipeline observer that feeds Hubble's flow metrics. Create it with
/// [`Metrics::observer`](super::Metrics::observer) and hand it to `Pipeline::add_observer`.
pub struct MetricsObserver {
    shared: Arc<Shared>,
    epoch: u64,
    plugins: Vec<FlowPlugin>,
    l7: L7Plugins,
    world: WorldCache,
    decoded: Counter,
    lost_perf: Counter,
    /// Age of records when stored (`periscope_perf_reader_lag_seconds`), sampled.
    lag: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    since_lag_sample: u32,
}

/// Records between two samples of the stored-record age (one clock read each).
pub(crate) const LAG_SAMPLE_EVERY: u32 = 1024;

impl MetricsObserver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        plugins: Vec<FlowPlugin>,
        l7: L7Plugins,
        decoded: Counter,
        lag: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    ) -> Self {
        let lost_perf = shared.lost_counter(super::LostSource::PerfEventRingBuffer);
        Self {
            epoch: shared.epoch.load(Ordering::Acquire),
            shared,
            plugins,
            l7,
            world: WorldCache::default(),
            decoded,
            lost_perf,
            lag,
            since_lag_sample: 0,
        }
    }

    /// Entries currently cached across plugins (for tests and diagnostics).
    pub fn cached_label_sets(&self) -> usize {
        self.plugins.iter().map(|p| p.cache.len()).sum()
    }

    /// Feeds a DNS observation (an L7 record's DNS part) to the dns plugin, if enabled.
    /// Nothing calls this until the datapath produces L7 records.
    pub fn observe_dns(&mut self, rec: &FlowRecord, dns: &DnsObservation<'_>) {
        self.l7.observe_dns(&self.shared, rec, dns);
    }

    /// Feeds an HTTP observation to the http/httpV2 plugin, if enabled.
    pub fn observe_http(&mut self, rec: &FlowRecord, http: &HttpObservation<'_>) {
        self.l7.observe_http(&self.shared, rec, http);
    }

    fn check_epoch(&mut self) {
        let e = self.shared.epoch.load(Ordering::Acquire);
        if e != self.epoch {
            self.epoch = e;
            for p in &mut self.plugins {
                p.cache.clear();
            }
            self.world.ids.clear();
        }
    }
}

impl FlowObserver for MetricsObserver {
    fn on_record(&mut self, rec: &FlowRecord) {
        self.check_epoch();
        // How long after its timestamp (read time, for the perf reader) a record is stored.
        self.since_lag_sample += 1;
        if self.since_lag_sample >= LAG_SAMPLE_EVERY && rec.time_ns != 0 {
            self.since_lag_sample = 0;
            let now = crate::replay::now_ns();
            self.lag.set(now.saturating_sub(rec.time_ns) as f64 / 1e9);
        }
        match rec.kind {
            kind::FLOW => {
                self.decoded.inc();
                let shared = &*self.shared;
                for p in &mut self.plugins {
                    p.process(rec, shared, &mut self.world);
                }
            }
            kind::LOST => {
                self.lost_perf.inc_by(rec.lost_count);
            }
            _ => {}
        }
    }
}
