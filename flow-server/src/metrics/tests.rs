//! Label values per flow kind, pod-churn cardinality, own metrics and format negotiation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use periscope_probes::abi::{drop_reason, identity, match_type, obs_point, trace_reason};
use periscope_probes::source::{EventSink, RawEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::decoder::{build, decode};
use crate::meta::{ClusterMetadata, EndpointInfo, Enricher, Workload};
use crate::packet::build as pkt;
use crate::pipeline::{FlowObserver, Pipeline};
use crate::record::{FlowRecord, kind, proto};

const XWING_ID: u32 = 13058;
const DEATHSTAR_ID: u32 = 17839;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pod(ns: &str, name: &str, ep: u32, id: u32, app: &str) -> EndpointInfo {
    EndpointInfo {
        endpoint_id: ep,
        identity: id,
        namespace: ns.into(),
        pod_name: name.into(),
        labels: vec![
            format!("k8s:app={app}"),
            format!("k8s:io.kubernetes.pod.namespace={ns}"),
        ],
        workloads: vec![Workload {
            name: app.into(),
            kind: "Deployment".into(),
        }],
        ..Default::default()
    }
}

fn cluster() -> ClusterMetadata {
    ClusterMetadata {
        endpoints: vec![
            (
                vec![ip("10.0.1.5"), ip("fd00::5")],
                pod("default", "xwing", 11, XWING_ID, "xwing"),
            ),
            (
                vec![ip("10.0.1.9"), ip("fd00::9")],
                pod(
                    "default",
                    "deathstar-689f66b57d-kccrz",
                    12,
                    DEATHSTAR_ID,
                    "deathstar",
                ),
            ),
        ],
        ..Default::default()
    }
}

/// A metadata store, metrics, one observer and an enricher: records go decode → enrich → observe.
struct Rig {
    md: Arc<Metadata>,
    metrics: Metrics,
    obs: MetricsObserver,
    enricher: Enricher,
}

impl Rig {
    fn new(spec: &str, delay: Duration) -> Self {
        let md = Arc::new(Metadata::new());
        md.update(&cluster());
        let mut cfg = MetricsConfig::from_hubble(spec).expect("valid spec");
        cfg.delete_delay = delay;
        let metrics = Metrics::new(&cfg, md.clone()).expect("metrics");
        let obs = metrics.observer("replay");
        let enricher = Enricher::new(md.clone());
        Self {
            md,
            metrics,
            obs,
            enricher,
        }
    }

    fn feed(&mut self, raw: &[u8]) {
        let mut rec = FlowRecord::EMPTY;
        decode(raw, 1, 0, &mut rec).expect("decodes");
        self.enricher.refresh();
        self.enricher.enrich(&mut rec);
        self.obs.on_record(&rec);
    }

    fn text(&self) -> String {
        self.metrics.encode(false).expect("encodes")
    }
}

type Series = (String, BTreeMap<String, String>, f64);

/// Parses Prometheus text exposition samples (our label values contain no escapes).
fn samples(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((k, v)) = rest.split_once("=\"") {
            let end = v.find('"').expect("closing quote");
            map.insert(k.trim_start_matches(',').to_string(), v[..end].to_string());
            rest = &v[end + 1..];
        }
        out.push((name.to_string(), map, value.parse().expect("number")));
    }
    out
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples(text)
        .into_iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
}

fn count(text: &str, name: &str) -> usize {
    samples(text).iter().filter(|(n, _, _)| n == name).count()
}

fn tcp4(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    pkt::ip_packet(ip(src), ip(dst), proto::TCP, &pkt::tcp(sport, dport, flags))
}

const ALL: &str = "flow drop:sourceContext=namespace;destinationContext=pod tcp port-distribution icmp \
                   policy:sourceContext=app|reserved-identity;labelsContext=source_namespace \
                   flows-to-world:any-drop;port";

#[test]
fn drop_labels() {
    let mut r = Rig::new(ALL, DEFAULT_DELETE_DELAY);
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    r.feed(&build::drop(
        drop_reason::POLICY_DENIED,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        &syn,
    ));
    let t = r.text();
    let flow = [
        ("protocol", "TCP"),
        ("type", "Drop"),
        ("subtype", ""),
        ("verdict", "DROPPED"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &flow),
        Some(1.0),
        "{t}"
    );
    let drop = [
        ("reason", "POLICY_DENIED"),
        ("protocol", "TCP"),
        ("source", "default"),
        ("destination", "default/deathstar-689f66b57d-kccrz"),
    ];
    assert_eq!(value(&t, "hubble_drop_total", &drop), Some(1.0), "{t}");
    // Dropped packets are not TCP handshakes or service ports.
    assert_eq!(count(&t, "hubble_tcp_flags_total"), 0);
    assert_eq!(count(&t, "hubble_port_distribution_total"), 0);
}

#[test]
fn trace_to_and_from_endpoint_labels() {
    let mut r = Rig::new(ALL, DEFAULT_DELETE_DELAY);
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    let synack = tcp4("10.0.1.9", "10.0.1.5", 80, 40000, 0x12);
    let fin = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x11);
    let rst = tcp4("10.0.1.9", "10.0.1.5", 80, 40000, 0x04);
    r.feed(&build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &syn,
    ));
    r.feed(&build::trace(
        obs_point::FROM_LXC,
        12,
        DEATHSTAR_ID,
        0,
        trace_reason::CT_REPLY,
        &synack,
    ));
    r.feed(&build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::CT_ESTABLISHED,
        &fin,
    ));
    r.feed(&build::trace(
        obs_point::FROM_LXC,
        12,
        DEATHSTAR_ID,
        0,
        trace_reason::CT_REPLY,
        &rst,
    ));
    let t = r.text();
    let to = [
        ("protocol", "TCP"),
        ("type", "Trace"),
        ("subtype", "to-endpoint"),
        ("verdict", "FORWARDED"),
    ];
    let from = [
        ("protocol", "TCP"),
        ("type", "Trace"),
        ("subtype", "from-endpoint"),
        ("verdict", "FORWARDED"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &to),
        Some(2.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &from),
        Some(2.0),
        "{t}"
    );
    for (flag, n) in [("SYN", 1.0), ("SYN-ACK", 1.0), ("FIN", 1.0), ("RST", 1.0)] {
        let l = [("flag", flag), ("family", "IPv4")];
        assert_eq!(
            value(&t, "hubble_tcp_flags_total", &l),
            Some(n),
            "{flag}: {t}"
        );
    }
    // Only the non-reply packets count towards the destination port.
    let port = [("protocol", "TCP"), ("port", "80")];
    assert_eq!(
        value(&t, "hubble_port_distribution_total", &port),
        Some(2.0),
        "{t}"
    );
    assert_eq!(count(&t, "hubble_port_distribution_total"), 1);
    assert_eq!(count(&t, "hubble_drop_total"), 0);
}

#[test]
fn policy_verdict_labels() {
    let mut r = Rig::new(ALL, DEFAULT_DELETE_DELAY);
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    r.feed(&build::policy_verdict(
        12,
        XWING_ID,
        0,
        true,
        match_type::L3_L4,
        &syn,
    ));
    r.feed(&build::policy_verdict(
        12,
        XWING_ID,
        -i32::from(drop_reason::POLICY_DENIED),
        true,
        match_type::NONE,
        &syn,
    ));
    let egress = tcp4("10.0.1.9", "198.51.100.7", 40001, 443, 0x02);
    r.feed(&build::policy_verdict(
        12,
        identity::WORLD,
        0,
        false,
        match_type::ALL,
        &egress,
    ));
    // The host may reach any endpoint: its verdicts are not counted.
    let from_host = tcp4("192.0.2.1", "10.0.1.9", 40002, 80, 0x02);
    r.feed(&build::policy_verdict(
        12,
        identity::HOST,
        0,
        true,
        match_type::L3_ONLY,
        &from_host,
    ));
    let t = r.text();
    let allow = [
        ("direction", "ingress"),
        ("match", "l3-l4"),
        ("action", "forwarded"),
        ("source_namespace", "default"),
        ("source", "xwing"),
    ];
    let deny = [
        ("direction", "ingress"),
        ("match", "none"),
        ("action", "dropped"),
        ("source_namespace", "default"),
        ("source", "xwing"),
    ];
    let egress = [
        ("direction", "egress"),
        ("match", "all"),
        ("action", "forwarded"),
        ("source_namespace", "default"),
        ("source", "deathstar"),
    ];
    assert_eq!(
        value(&t, "hubble_policy_verdicts_total", &allow),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "hubble_policy_verdicts_total", &deny),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "hubble_policy_verdicts_total", &egress),
        Some(1.0),
        "{t}"
    );
    assert_eq!(count(&t, "hubble_policy_verdicts_total"), 3, "{t}");
    let pv = [
        ("protocol", "TCP"),
        ("type", "PolicyVerdict"),
        ("subtype", ""),
        ("verdict", "FORWARDED"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &pv),
        Some(3.0),
        "{t}"
    );
    // A denied verdict is a drop, as in Hubble.
    let drop = [
        ("reason", "POLICY_DENIED"),
        ("protocol", "TCP"),
        ("source", "default"),
        ("destination", "default/deathstar-689f66b57d-kccrz"),
    ];
    assert_eq!(value(&t, "hubble_drop_total", &drop), Some(1.0), "{t}");
    // The allowed egress SYN to the world.
    let world = [
        ("protocol", "TCP"),
        ("verdict", "FORWARDED"),
        ("port", "443"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_to_world_total", &world),
        Some(1.0),
        "{t}"
    );
}

#[test]
fn icmp_v4_and_v6_labels() {
    let mut r = Rig::new(ALL, DEFAULT_DELETE_DELAY);
    let v4 = pkt::ip_packet(
        ip("10.0.1.5"),
        ip("10.0.1.9"),
        proto::ICMP,
        &pkt::icmp(8, 0),
    );
    let v4_unreach = pkt::ip_packet(
        ip("10.0.1.9"),
        ip("10.0.1.5"),
        proto::ICMP,
        &pkt::icmp(3, 3),
    );
    let v6 = pkt::ip_packet(
        ip("fd00::5"),
        ip("fd00::9"),
        proto::ICMPV6,
        &pkt::icmp(128, 0),
    );
    r.feed(&build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &v4,
    ));
    r.feed(&build::trace(
        obs_point::TO_LXC,
        11,
        DEATHSTAR_ID,
        XWING_ID,
        trace_reason::CT_REPLY,
        &v4_unreach,
    ));
    r.feed(&build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &v6,
    ));
    let t = r.text();
    let cases = [
        ([("family", "IPv4"), ("type", "EchoRequest")], 1.0),
        (
            [("family", "IPv4"), ("type", "DestinationUnreachable(Port)")],
            1.0,
        ),
        ([("family", "IPv6"), ("type", "EchoRequest")], 1.0),
    ];
    for (l, n) in cases {
        assert_eq!(value(&t, "hubble_icmp_total", &l), Some(n), "{l:?}: {t}");
    }
    let flow6 = [
        ("protocol", "ICMPv6"),
        ("type", "Trace"),
        ("subtype", "to-endpoint"),
        ("verdict", "FORWARDED"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &flow6),
        Some(1.0),
        "{t}"
    );
    let port = [("protocol", "ICMPv4"), ("port", "0")];
    assert_eq!(
        value(&t, "hubble_port_distribution_total", &port),
        Some(1.0),
        "{t}"
    );
}

#[test]
fn lost_events_are_always_exported() {
    let mut r = Rig::new("", DEFAULT_DELETE_DELAY);
    let t = r.text();
    for s in [
        "perf_event_ring_buffer",
        "hubble_ring_buffer",
        "observer_events_queue",
    ] {
        assert_eq!(
            value(&t, "hubble_lost_events_total", &[("source", s)]),
            Some(0.0),
            "{t}"
        );
    }
    r.obs.on_record(&FlowRecord {
        kind: kind::LOST,
        lost_count: 7,
        ..FlowRecord::EMPTY
    });
    r.metrics.add_lost(LostSource::HubbleRingBuffer, 3);
    let t = r.text();
    assert_eq!(
        value(
            &t,
            "hubble_lost_events_total",
            &[("source", "perf_event_ring_buffer")]
        ),
        Some(7.0)
    );
    assert_eq!(
        value(
            &t,
            "hubble_lost_events_total",
            &[("source", "hubble_ring_buffer")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &t,
            "periscope_lost_events_total",
            &[("source", "hubble_ring_buffer")]
        ),
        Some(3.0)
    );
    // No plugin enabled: no flow families at all.
    assert_eq!(count(&t, "hubble_flows_processed_total"), 0);
}

#[test]
fn l7_plugins_are_ready_but_see_nothing_from_l3_l4() {
    let mut r = Rig::new(
        "dns:query;sourceContext=namespace httpV2:labelsContext=source_pod",
        DEFAULT_DELETE_DELAY,
    );
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    r.feed(&build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &syn,
    ));
    assert!(
        !r.text().contains("hubble_dns"),
        "no L7 records, no DNS series"
    );
    // Fed an L7 observation (as the L7 path will), the dns plugin counts with Hubble's labels.
    let mut rec = FlowRecord::EMPTY;
    decode(
        &build::trace(
            obs_point::TO_LXC,
            12,
            XWING_ID,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &syn,
        ),
        1,
        0,
        &mut rec,
    )
    .expect("decodes");
    r.enricher.enrich(&mut rec);
    let q = DnsObservation {
        query: "deathstar.default.svc.cluster.local.",
        qtypes: &["A"],
        ..Default::default()
    };
    r.obs.observe_dns(&rec, &q);
    let http = HttpObservation {
        kind: HttpKind::Response,
        method: "POST",
        protocol: "HTTP/1.1",
        code: 200,
        latency: Duration::from_millis(3),
    };
    r.obs.observe_http(&rec, &http);
    let t = r.text();
    let l = [
        ("source", "default"),
        ("rcode", ""),
        ("qtypes", "A"),
        ("ips_returned", "0"),
        ("query", "deathstar.default.svc.cluster.local."),
    ];
    assert_eq!(value(&t, "hubble_dns_queries_total", &l), Some(1.0), "{t}");
    // httpV2 labels the response from the request's side: the source is the responder's peer.
    let l = [
        ("source_pod", "deathstar-689f66b57d-kccrz"),
        ("method", "POST"),
        ("protocol", "HTTP/1.1"),
        ("status", "200"),
        ("reporter", "server"),
    ];
    assert_eq!(
        value(&t, "hubble_http_requests_total", &l),
        Some(1.0),
        "{t}"
    );
    assert!(
        t.contains("hubble_http_request_duration_seconds_bucket"),
        "{t}"
    );
}

/// Pods come and go; with `pod` contexts their series must go too, and caches stay bounded.
fn churn(delay: Duration, rounds: u32) -> (Rig, Vec<usize>) {
    let spec = "flow:sourceContext=pod;destinationContext=namespace;labelsContext=source_pod,source_namespace \
                drop:sourceContext=pod-name policy:sourceContext=ip";
    let mut r = Rig::new(spec, delay);
    let mut sizes = Vec::new();
    for i in 0..rounds {
        let mut md = cluster();
        let addr = format!("10.2.{}.{}", i / 250, i % 250 + 1);
        let name = format!("client-{i}");
        md.endpoints.push((
            vec![ip(&addr)],
            pod("churn", &name, 1000 + i, 5000 + i, "client"),
        ));
        r.metrics.on_metadata_changes(&r.md.update(&md));
        let syn = tcp4(&addr, "10.0.1.9", 40000, 80, 0x02);
        r.feed(&build::trace(
            obs_point::TO_LXC,
            12,
            5000 + i,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &syn,
        ));
        r.feed(&build::drop(
            drop_reason::POLICY_DENIED,
            12,
            5000 + i,
            DEATHSTAR_ID,
            &syn,
        ));
        r.feed(&build::policy_verdict(
            12,
            5000 + i,
            0,
            true,
            match_type::L3_ONLY,
            &syn,
        ));
        // A long-lived pod keeps talking too.
        let ds = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
        r.feed(&build::trace(
            obs_point::TO_LXC,
            12,
            XWING_ID,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &ds,
        ));
        // The client pod is deleted.
        r.metrics.on_metadata_changes(&r.md.update(&cluster()));
        let t = r.text();
        sizes.push(
            count(&t, "hubble_flows_processed_total")
                + count(&t, "hubble_drop_total")
                + count(&t, "hubble_policy_verdicts_total"),
        );
    }
    (r, sizes)
}

#[test]
fn cardinality_stays_bounded_when_pods_churn() {
    let (r, sizes) = churn(Duration::ZERO, 300);
    // After each deletion only the long-lived pod's series is left (the client had 3).
    assert!(sizes.iter().all(|&n| n == 1), "series per round: {sizes:?}");
    let t = r.text();
    let xwing = [
        ("protocol", "TCP"),
        ("type", "Trace"),
        ("subtype", "to-endpoint"),
        ("verdict", "FORWARDED"),
        ("source_pod", "xwing"),
        ("source_namespace", "default"),
        ("source", "default/xwing"),
        ("destination", "default"),
    ];
    assert_eq!(
        value(&t, "hubble_flows_processed_total", &xwing),
        Some(300.0),
        "long-lived series kept: {t}"
    );
    assert!(
        r.obs.cached_label_sets() <= 8,
        "cache {}",
        r.obs.cached_label_sets()
    );
    let b = r.metrics.inner.shared.bindings.lock();
    assert!(
        b.by_pod.len() <= 2 && b.by_series.len() <= 2,
        "bindings {} {}",
        b.by_pod.len(),
        b.by_series.len()
    );
    drop(b);
    // Control: without expiry, the same churn leaves a series per dead pod.
    let (_, sizes) = churn(Duration::from_secs(3600), 50);
    assert!(sizes.last().copied().unwrap_or(0) > 100, "{sizes:?}");
}

#[test]
fn expired_pod_series_come_back_when_the_pod_talks_again() {
    let mut r = Rig::new("flow:sourceContext=pod", Duration::ZERO);
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    let raw = build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &syn,
    );
    r.feed(&raw);
    r.metrics.forget_endpoint("default", "xwing");
    assert_eq!(r.metrics.expire_due(), 1);
    assert!(!r.text().contains("default/xwing"));
    r.feed(&raw);
    let l = [
        ("protocol", "TCP"),
        ("type", "Trace"),
        ("subtype", "to-endpoint"),
        ("verdict", "FORWARDED"),
        ("source", "default/xwing"),
    ];
    assert_eq!(
        value(&r.text(), "hubble_flows_processed_total", &l),
        Some(1.0)
    );
}

#[test]
fn own_metrics_follow_the_pipeline() {
    let md = Arc::new(Metadata::new());
    md.update(&cluster());
    let metrics = Metrics::new(
        &MetricsConfig::from_hubble("flow").expect("valid"),
        md.clone(),
    )
    .expect("metrics");
    let (ring, writer) = crate::ring::Ring::new(16).expect("ring");
    let stats = Arc::new(crate::pipeline::PipelineStats::default());
    let mut p = Pipeline::new(writer, md, stats.clone());
    p.add_observer(Box::new(metrics.observer("replay")));
    metrics.watch_pipeline("replay", stats, ring);
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    let raw = build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &syn,
    );
    for _ in 0..20 {
        p.push(RawEvent::Sample {
            cpu: 0,
            timestamp_ns: 1,
            data: &raw,
        });
    }
    p.push(RawEvent::Sample {
        cpu: 0,
        timestamp_ns: 1,
        data: &[77, 1, 2],
    });
    p.push(RawEvent::Lost {
        cpu: 1,
        count: 5,
        timestamp_ns: 2,
    });
    p.flush();
    metrics.grpc_clients().set(2);
    metrics.perf_reader_lag().set(0.25);
    let t = metrics.encode(false).expect("encode");
    let src = [("source", "replay")];
    assert_eq!(
        value(&t, "periscope_events_read_total", &src),
        Some(22.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "periscope_events_decoded_total", &src),
        Some(20.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "periscope_decode_errors_total",
            &[("source", "replay"), ("reason", "unknown_type")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&t, "periscope_ring_occupancy", &src), Some(16.0));
    assert_eq!(value(&t, "periscope_ring_capacity", &src), Some(16.0));
    assert_eq!(
        value(
            &t,
            "periscope_lost_events_total",
            &[("source", "perf_event_ring_buffer")]
        ),
        Some(5.0)
    );
    assert_eq!(
        value(
            &t,
            "hubble_lost_events_total",
            &[("source", "perf_event_ring_buffer")]
        ),
        Some(5.0)
    );
    assert_eq!(value(&t, "periscope_grpc_clients", &[]), Some(2.0));
    assert_eq!(
        value(&t, "periscope_perf_reader_lag_seconds", &[]),
        Some(0.25)
    );
}

async fn get(addr: std::net::SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET /metrics HTTP/1.0\r\nHost: x\r\n{accept}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    let (head, body) = buf.split_once("\r\n\r\n").expect("http response");
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .expect("content type")
        .to_string();
    (ct, body.to_string())
}

#[tokio::test]
async fn serves_text_or_openmetrics_as_asked() {
    let md = Arc::new(Metadata::new());
    let metrics = Metrics::new(
        &MetricsConfig::from_hubble(DEFAULT_METRICS).expect("valid"),
        md,
    )
    .expect("metrics");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, metrics, async {
        stopped.await.ok();
    }));
    let (ct, body) = get(addr, None).await;
    assert_eq!(ct, CONTENT_TYPE_TEXT);
    assert!(
        body.contains("# TYPE hubble_lost_events_total counter"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));
    let (ct, body) = get(
        addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .await;
    assert_eq!(ct, CONTENT_TYPE_OPENMETRICS);
    assert!(body.contains("# TYPE hubble_lost_events counter"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    stop.send(()).ok();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .expect("joins")
        .expect("serves");
}

#[test]
fn caches_stay_bounded_without_deletions() {
    let mut r = Rig::new("flow:destinationContext=ip", DEFAULT_DELETE_DELAY);
    let n = observer::MAX_CACHE as u32 + 100;
    for i in 0..n {
        let dst = std::net::Ipv4Addr::from(0x0a05_0000 + i).to_string();
        let syn = tcp4("10.0.1.5", &dst, 40000, 80, 0x02);
        r.feed(&build::trace(
            obs_point::FROM_LXC,
            11,
            XWING_ID,
            0,
            trace_reason::POLICY,
            &syn,
        ));
    }
    assert!(r.obs.cached_label_sets() <= observer::MAX_CACHE);
    // Clearing the cache loses no counts: every destination still has its series.
    assert_eq!(count(&r.text(), "hubble_flows_processed_total"), n as usize);
}

#[test]
fn default_metrics_enable_the_dashboard_plugins() {
    let kinds: Vec<PluginKind> = parse_metrics(DEFAULT_METRICS)
        .expect("valid")
        .iter()
        .map(|p| p.kind)
        .collect();
    for k in [
        PluginKind::Flow,
        PluginKind::Drop,
        PluginKind::Tcp,
        PluginKind::PortDistribution,
        PluginKind::Icmp,
        PluginKind::Policy,
        PluginKind::FlowsToWorld,
    ] {
        assert!(kinds.contains(&k), "{k:?}");
    }
}

#[test]
fn stored_record_age_is_sampled_as_reader_lag() {
    let mut rig = Rig::new("flow", Duration::from_secs(60));
    let syn = tcp4("10.0.1.5", "10.0.1.9", 40000, 80, 0x02);
    let raw = build::trace(
        obs_point::TO_LXC,
        12,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &syn,
    );
    let two_seconds_ago = crate::replay::now_ns() - 2_000_000_000;
    for _ in 0..super::observer::LAG_SAMPLE_EVERY {
        let mut rec = FlowRecord::EMPTY;
        decode(&raw, two_seconds_ago, 0, &mut rec).expect("decodes");
        rig.enricher.enrich(&mut rec);
        rig.obs.on_record(&rec);
    }
    let lag = value(&rig.text(), "periscope_perf_reader_lag_seconds", &[]).expect("exported");
    assert!((2.0..3.0).contains(&lag), "lag {lag}");
}
