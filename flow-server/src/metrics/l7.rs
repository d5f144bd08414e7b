//! The dns and http plugins, with Hubble's metric names and labels. They are registered and
//! parse their options now; they count only when L7 observations are fed to them, which
//! happens once the datapath produces L7 records (none exist yet, and none are invented).
//! L7 events are rare next to L3/L4 ones, so these build label sets per call without caching.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::context::ContextOptions;
use super::observer::context_labels;
use super::options::{PluginConfig, PluginKind};
use super::{AnyFamily, CounterFamily, LabelSet, Shared};
use crate::record::{FlowRecord, direction, reply, verdict};

/// Prometheus' default histogram buckets, as Hubble's Go client uses.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn new_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

pub(crate) type HistogramFamily = Family<LabelSet, Histogram, fn() -> Histogram>;

/// The DNS part of an L7 record.
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsObservation<'a> {
    pub query: &'a str,
    pub qtypes: &'a [&'a str],
    /// Resource record types in a response.
    pub rrtypes: &'a [&'a str],
    pub ips_returned: usize,
    pub rcode: u32,
}

/// Whether an HTTP L7 record is the request or the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    Request,
    Response,
}

/// The HTTP part of an L7 record.
#[derive(Debug, Clone, Copy)]
pub struct HttpObservation<'a> {
    pub kind: HttpKind,
    pub method: &'a str,
    /// E.g. `HTTP/1.1`.
    pub protocol: &'a str,
    pub code: u32,
    pub latency: Duration,
}

/// Hubble's DNS rcode names.
fn rcode_name(rcode: u32) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        6 => "Name Exists when it should not",
        7 => "RR Set Exists when it should not",
        8 => "RR Set that should exist does not",
        9 => "Not Authorized",
        10 => "Name not contained in zone",
        11 => "DSO-TYPE Not Implemented",
        16 => "Bad OPT Version",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY Mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad Truncation",
        23 => "Bad/missing Server Cookie",
        _ => "",
    }
}

pub(crate) struct DnsPlugin {
    ctx: ContextOptions,
    include_query: bool,
    ignore_aaaa: bool,
    queries: Registered<CounterFamily>,
    responses: Registered<CounterFamily>,
    response_types: Registered<CounterFamily>,
}

pub(crate) struct HttpPlugin {
    ctx: ContextOptions,
    v2: bool,
    requests: Registered<CounterFamily>,
    responses: Option<Registered<CounterFamily>>,
    duration: Registered<HistogramFamily>,
}

/// The L7 plugins of one observer.
#[derive(Default)]
pub struct L7Plugins {
    dns: Option<DnsPlugin>,
    http: Option<HttpPlugin>,
}

fn counter(
    registry: &mut Registry,
    families: &mut Vec<AnyFamily>,
    name: &str,
    help: &str,
) -> (CounterFamily, usize) {
    let f = CounterFamily::default();
    registry.register(name, help, f.clone());
    families.push(AnyFamily::Counter(f.clone()));
    (f, families.len() - 1)
}

fn histogram(
    registry: &mut Registry,
    families: &mut Vec<AnyFamily>,
    name: &str,
    help: &str,
) -> (HistogramFamily, usize) {
    let f = HistogramFamily::new_with_constructor(new_histogram as fn() -> Histogram);
    registry.register(name, help, f.clone());
    families.push(AnyFamily::Histogram(f.clone()));
    (f, families.len() - 1)
}

/// A registered family and its index in `Shared::families` (for expiry).
type Registered<F> = (F, usize);

#[derive(Clone)]
struct HttpFamilies {
    config: PluginConfig,
    requests: Registered<CounterFamily>,
    responses: Option<Registered<CounterFamily>>,
    duration: Registered<HistogramFamily>,
}

/// The registered L7 families, shared by every observer.
#[derive(Clone, Default)]
pub(crate) struct L7Families {
    dns: Option<(PluginConfig, [Registered<CounterFamily>; 3])>,
    http: Option<HttpFamilies>,
}

impl L7Families {
    pub(crate) fn register(
        plugins: &[PluginConfig],
        registry: &mut Registry,
        families: &mut Vec<AnyFamily>,
    ) -> Self {
        let mut out = L7Families::default();
        for p in plugins {
            match p.kind {
                PluginKind::Dns => {
                    let q = counter(
                        registry,
                        families,
                        "hubble_dns_queries",
                        "Number of DNS queries observed",
                    );
                    let r = counter(
                        registry,
                        families,
                        "hubble_dns_responses",
                        "Number of DNS responses observed",
                    );
                    let t = counter(
                        registry,
                        families,
                        "hubble_dns_response_types",
                        "Number of DNS response types",
                    );
                    out.dns = Some((p.clone(), [q, r, t]));
                }
                PluginKind::Http | PluginKind::HttpV2 => {
                    let requests = counter(
                        registry,
                        families,
                        "hubble_http_requests",
                        "Count of HTTP requests",
                    );
                    let responses = (p.kind == PluginKind::Http).then(|| {
                        counter(
                            registry,
                            families,
                            "hubble_http_responses",
                            "Count of HTTP responses",
                        )
                    });
                    let duration = histogram(
                        registry,
                        families,
                        "hubble_http_request_duration_seconds",
                        "Quantiles of HTTP request duration in seconds",
                    );
                    out.http = Some(HttpFamilies {
                        config: p.clone(),
                        requests,
                        responses,
                        duration,
                    });
                }
                _ => {}
            }
        }
        out
    }

    pub(crate) fn plugins(&self) -> L7Plugins {
        L7Plugins {
            dns: self.dns.as_ref().map(|(cfg, [q, r, t])| DnsPlugin {
                ctx: cfg.context.clone(),
                include_query: cfg.has_flag("query"),
                ignore_aaaa: cfg.has_flag("ignoreaaaa"),
                queries: q.clone(),
                responses: r.clone(),
                response_types: t.clone(),
            }),
            http: self.http.as_ref().map(|h| HttpPlugin {
                ctx: h.config.context.clone(),
                v2: h.config.kind == PluginKind::HttpV2,
                requests: h.requests.clone(),
                responses: h.responses.clone(),
                duration: h.duration.clone(),
            }),
        }
    }
}

fn inc(
    shared: &Shared,
    (family, id): &(CounterFamily, usize),
    labels: LabelSet,
    pods: &[(String, String)],
) {
    family.get_or_create(&labels).inc();
    if !pods.is_empty() {
        shared.bind(pods.to_vec(), *id, labels);
    }
}

fn reporter(rec: &FlowRecord) -> &'static str {
    match rec.direction {
        direction::EGRESS => "client",
        direction::INGRESS => "server",
        _ => "unknown",
    }
}

impl L7Plugins {
    pub(crate) fn observe_dns(
        &mut self,
        shared: &Shared,
        rec: &FlowRecord,
        dns: &DnsObservation<'_>,
    ) {
        let Some(p) = &self.dns else { return };
        if p.ignore_aaaa && dns.qtypes == ["AAAA"] {
            return;
        }
        let mut ctx = LabelSet::new();
        let pods = context_labels(&p.ctx, &shared.metadata, rec, false, &mut ctx);
        let qtypes = dns.qtypes.join(",");
        let with = |mut l: LabelSet, rcode: &str| {
            l.push(("rcode", rcode.to_string()));
            l.push(("qtypes", qtypes.clone()));
            l.push(("ips_returned", dns.ips_returned.to_string()));
            if p.include_query {
                l.push(("query", dns.query.to_string()));
            }
            l
        };
        if rec.verdict == verdict::DROPPED {
            inc(shared, &p.queries, with(ctx, "Policy denied"), &pods);
        } else if rec.is_reply != reply::YES {
            inc(shared, &p.queries, with(ctx, ""), &pods);
        } else {
            inc(
                shared,
                &p.responses,
                with(ctx.clone(), rcode_name(dns.rcode)),
                &pods,
            );
            for rr in dns.rrtypes {
                let mut l = ctx.clone();
                l.push(("type", (*rr).to_string()));
                l.push(("qtypes", qtypes.clone()));
                if p.include_query {
                    l.push(("query", dns.query.to_string()));
                }
                inc(shared, &p.response_types, l, &pods);
            }
        }
    }

    pub(crate) fn observe_http(
        &mut self,
        shared: &Shared,
        rec: &FlowRecord,
        http: &HttpObservation<'_>,
    ) {
        let Some(p) = &self.http else { return };
        if p.v2 && http.kind != HttpKind::Response {
            return;
        }
        let mut ctx = LabelSet::new();
        // v2 counts response records but labels them from the request's point of view.
        let pods = context_labels(&p.ctx, &shared.metadata, rec, p.v2, &mut ctx);
        let rep = reporter(rec).to_string();
        let status = http.code.to_string();
        let mut dur_labels = ctx.clone();
        dur_labels.push(("method", http.method.to_string()));
        dur_labels.push(("reporter", rep.clone()));
        let mut l = ctx;
        l.push(("method", http.method.to_string()));
        l.push(("protocol", http.protocol.to_string()));
        match (p.v2, http.kind, &p.responses) {
            (false, HttpKind::Request, _) => {
                l.push(("reporter", rep));
                inc(shared, &p.requests, l, &pods);
                return;
            }
            (false, HttpKind::Response, Some(responses)) => {
                l.push(("status", status));
                l.push(("reporter", rep));
                inc(shared, responses, l, &pods);
            }
            _ => {
                l.push(("status", status));
                l.push(("reporter", rep));
                inc(shared, &p.requests, l, &pods);
            }
        }
        let (family, id) = &p.duration;
        family
            .get_or_create(&dur_labels)
            .observe(http.latency.as_secs_f64());
        if !pods.is_empty() {
            shared.bind(pods, *id, dur_labels);
        }
    }
}
