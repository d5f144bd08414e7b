//! End to end: a real Prometheus (the Debian `prometheus` binary, on loopback with a temporary
//! config and storage) scrapes our `/metrics`, fed by a pipeline replaying recorded
//! notifications; then every PromQL expression in grafana/**/*.json must return data.
//!
//! Also here, because this binary owns its global allocator: the metrics hot path must not
//! allocate per flow once label sets are known.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use periscope_flow_server::decoder::{build, decode};
use periscope_flow_server::meta::{ClusterMetadata, EndpointInfo, Enricher, Metadata, Workload};
use periscope_flow_server::metrics::{DEFAULT_METRICS, Metrics, MetricsConfig, serve_metrics};
use periscope_flow_server::packet::build as pkt;
use periscope_flow_server::pipeline::{FlowObserver, Pipeline, PipelineStats};
use periscope_flow_server::record::{FlowRecord, proto};
use periscope_flow_server::replay::{Pacing, ReplaySource, ReplayWriter};
use periscope_flow_server::ring::Ring;
use periscope_probes::abi::{drop_reason, identity, match_type, obs_point, trace_reason};
use periscope_probes::source::{EventSource, RawEvent};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Allocation counting (per thread, so other threads of the test binary do not interfere).

struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Test traffic: a small cluster and one "round" of notifications covering every plugin.

const XWING_ID: u32 = 13058;
const TIEFIGHTER_ID: u32 = 56650;
const DEATHSTAR_ID: u32 = 17839;
const COREDNS_ID: u32 = 20001;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pod(ns: &str, name: &str, ep: u32, id: u32, workload: &str) -> EndpointInfo {
    EndpointInfo {
        endpoint_id: ep,
        identity: id,
        namespace: ns.into(),
        pod_name: name.into(),
        labels: vec![
            format!("k8s:app={workload}"),
            format!("k8s:io.kubernetes.pod.namespace={ns}"),
        ],
        workloads: vec![Workload {
            name: workload.into(),
            kind: "Deployment".into(),
        }],
        cluster_name: "default".into(),
        node_name: "node-1".into(),
    }
}

fn cluster() -> ClusterMetadata {
    ClusterMetadata {
        endpoints: vec![
            (
                vec![ip("10.0.1.5"), ip("fd00::5")],
                pod("default", "xwing", 101, XWING_ID, "xwing"),
            ),
            (
                vec![ip("10.0.1.6")],
                pod("default", "tiefighter", 102, TIEFIGHTER_ID, "tiefighter"),
            ),
            (
                vec![ip("10.0.1.9"), ip("fd00::9")],
                pod(
                    "default",
                    "deathstar-689f66b57d-kccrz",
                    103,
                    DEATHSTAR_ID,
                    "deathstar",
                ),
            ),
            (
                vec![ip("10.0.2.3")],
                pod(
                    "kube-system",
                    "coredns-5d78c9869d-x7x2q",
                    104,
                    COREDNS_ID,
                    "coredns",
                ),
            ),
        ],
        node_ips: vec![ip("192.0.2.1")],
        ..Default::default()
    }
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    pkt::ip_packet(ip(src), ip(dst), proto::TCP, &pkt::tcp(sport, dport, flags))
}

/// Raw notifications of one round: an allowed connection with every TCP flag, a denied one,
/// traffic to the world (allowed and denied), DNS, ICMPv4 and ICMPv6.
fn round() -> Vec<Vec<u8>> {
    let (tf, ds, xw, world) = ("10.0.1.6", "10.0.1.9", "10.0.1.5", "198.51.100.7");
    let syn = tcp(tf, ds, 40000, 80, 0x02);
    let synack = tcp(ds, tf, 80, 40000, 0x12);
    let psh = tcp(tf, ds, 40000, 80, 0x18);
    let fin = tcp(tf, ds, 40000, 80, 0x11);
    let rst = tcp(ds, tf, 80, 40000, 0x04);
    let xsyn = tcp(xw, ds, 40001, 80, 0x02);
    let https = tcp(xw, world, 40002, 443, 0x02);
    let ssh = tcp(xw, world, 40003, 22, 0x02);
    let ping = pkt::ip_packet(ip(xw), ip(world), proto::ICMP, &pkt::icmp(8, 0));
    let dns = pkt::ip_packet(ip(tf), ip("10.0.2.3"), proto::UDP, &pkt::udp(40004, 53));
    let ping6 = pkt::ip_packet(
        ip("fd00::5"),
        ip("fd00::9"),
        proto::ICMPV6,
        &pkt::icmp(128, 0),
    );
    let denied = -i32::from(drop_reason::POLICY_DENIED);
    vec![
        build::trace(
            obs_point::FROM_LXC,
            102,
            TIEFIGHTER_ID,
            0,
            trace_reason::POLICY,
            &syn,
        ),
        build::policy_verdict(103, TIEFIGHTER_ID, 0, true, match_type::L3_L4, &syn),
        build::trace(
            obs_point::TO_LXC,
            103,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &syn,
        ),
        build::trace(
            obs_point::FROM_LXC,
            103,
            DEATHSTAR_ID,
            0,
            trace_reason::CT_REPLY,
            &synack,
        ),
        build::trace(
            obs_point::TO_LXC,
            102,
            DEATHSTAR_ID,
            TIEFIGHTER_ID,
            trace_reason::CT_REPLY,
            &synack,
        ),
        build::trace(
            obs_point::TO_LXC,
            103,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            trace_reason::CT_ESTABLISHED,
            &psh,
        ),
        build::trace(
            obs_point::TO_LXC,
            103,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            trace_reason::CT_ESTABLISHED,
            &fin,
        ),
        build::trace(
            obs_point::FROM_LXC,
            103,
            DEATHSTAR_ID,
            0,
            trace_reason::CT_REPLY,
            &rst,
        ),
        build::policy_verdict(103, XWING_ID, denied, true, match_type::NONE, &xsyn),
        build::drop(
            drop_reason::POLICY_DENIED,
            103,
            XWING_ID,
            DEATHSTAR_ID,
            &xsyn,
        ),
        build::trace(
            obs_point::FROM_LXC,
            101,
            XWING_ID,
            identity::WORLD,
            trace_reason::POLICY,
            &https,
        ),
        build::policy_verdict(101, identity::WORLD, denied, false, match_type::NONE, &ssh),
        build::drop(
            drop_reason::POLICY_DENIED,
            101,
            XWING_ID,
            identity::WORLD,
            &ssh,
        ),
        build::trace(
            obs_point::FROM_LXC,
            101,
            XWING_ID,
            identity::WORLD,
            trace_reason::POLICY,
            &ping,
        ),
        build::trace(
            obs_point::FROM_LXC,
            102,
            TIEFIGHTER_ID,
            0,
            trace_reason::POLICY,
            &dns,
        ),
        build::trace(
            obs_point::TO_LXC,
            104,
            TIEFIGHTER_ID,
            COREDNS_ID,
            trace_reason::POLICY,
            &dns,
        ),
        build::trace(
            obs_point::TO_LXC,
            103,
            XWING_ID,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &ping6,
        ),
    ]
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("periscope-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write_replay(dir: &Path) -> PathBuf {
    let path = dir.join("round.rplay");
    let mut w = ReplayWriter::create(&path).expect("create replay");
    for (i, data) in round().iter().enumerate() {
        w.write(&RawEvent::Sample {
            cpu: 0,
            timestamp_ns: i as u64,
            data,
        })
        .expect("write");
    }
    w.write(&RawEvent::Lost {
        cpu: 1,
        count: 3,
        timestamp_ns: 100,
    })
    .expect("write");
    // Not a notification we know: counted as a decode error.
    w.write(&RawEvent::Sample {
        cpu: 0,
        timestamp_ns: 101,
        data: &[77, 0, 0, 0],
    })
    .expect("write");
    w.finish().expect("finish");
    path
}

// ---------------------------------------------------------------------------------------------
// Hot path.

fn records(md: &Arc<Metadata>) -> Vec<FlowRecord> {
    let enricher = Enricher::new(md.clone());
    round()
        .iter()
        .map(|raw| {
            let mut r = FlowRecord::EMPTY;
            decode(raw, 1, 0, &mut r).expect("decodes");
            enricher.enrich(&mut r);
            r
        })
        .collect()
}

/// Feeds `n` records round-robin; returns (allocations, ns per record).
fn run_observer(obs: &mut dyn FlowObserver, recs: &[FlowRecord], n: usize) -> (u64, f64) {
    let before = allocations();
    let start = Instant::now();
    for i in 0..n {
        obs.on_record(&recs[i % recs.len()]);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    (allocations() - before, ns)
}

#[test]
fn hot_path_does_not_allocate_once_label_sets_are_known() {
    let md = Arc::new(Metadata::new());
    md.update(&cluster());
    let recs = records(&md);
    for (name, spec) in [
        ("flow only", "flow"),
        ("default plugins with contexts", DEFAULT_METRICS),
    ] {
        let metrics = Metrics::new(
            &MetricsConfig::from_hubble(spec).expect("valid"),
            md.clone(),
        )
        .expect("metrics");
        let mut obs = metrics.observer("replay");
        // First sight of each flow shape builds its label sets (allocates).
        let (warm, _) = run_observer(&mut obs, &recs, recs.len());
        assert!(warm > 0);
        let (allocs, ns) = run_observer(&mut obs, &recs, 200_000);
        assert_eq!(allocs, 0, "{name}: {allocs} allocations in steady state");
        println!(
            "metrics hot path ({name}): {ns:.0} ns/record, 0 allocations (debug builds are slower)"
        );
        // The counters moved: the handles are live, not detached.
        let text = metrics.encode(false).expect("encode");
        assert!(text.contains("hubble_flows_processed_total{"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real Prometheus.

/// Kills Prometheus and stops the replay on any exit, panics included.
struct Guard {
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    replay: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.replay.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("prometheus"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin/prometheus"))
        .chain(candidates)
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A blocking HTTP/1.0 GET (no chunked encoding to deal with); returns (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let (head, body) = buf.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// Runs an instant query; returns the result array (or an error message).
fn query(prom: SocketAddr, q: &str) -> Result<Vec<Value>, String> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", url_encode(q)))?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    match v["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        }
        Some("scalar") | Some("string") => Ok(vec![v["data"]["result"].clone()]),
        other => Err(format!("unexpected result type {other:?}")),
    }
}

fn sample_value(series: &Value) -> Option<f64> {
    let v = series.get("value").unwrap_or(series);
    v.get(1)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Every PromQL expression in the dashboards: (where, expression).
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(v: &Value, file: &str, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(e) = m.get("expr").and_then(Value::as_str) {
                    out.push((format!("{file}: {title}"), e.to_string()));
                }
                for (k, child) in m {
                    walk(child, file, title, out);
                    if k == "templating" {
                        for var in child["list"].as_array().into_iter().flatten() {
                            if var["type"] == "query" {
                                let q = var["query"]["query"]
                                    .as_str()
                                    .or(var["query"].as_str())
                                    .unwrap_or("");
                                let name = var["name"].as_str().unwrap_or("?");
                                out.push((format!("{file}: variable {name}"), q.to_string()));
                            }
                        }
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, file, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for path in dashboard_files() {
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        walk(&v, &file, "", &mut out);
    }
    out
}

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

fn dashboard_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("grafana dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&grafana_dir(), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no dashboards");
    out
}

/// Grafana variables → concrete values, as a user's selection would render them.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, val) in [
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "5m"),
        ("${namespace}", "default"),
        ("$namespace", "default"),
    ] {
        e = e.replace(var, val);
    }
    e
}

/// `label_values(metric, label)` (Grafana syntax) → PromQL listing the label's values.
fn label_values_query(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (metric, label) = inner.rsplit_once(',')?;
    let label = label.trim().to_string();
    Some((format!("count by ({label}) ({})", metric.trim()), label))
}

#[test]
fn grafana_queries_return_data_from_a_real_prometheus() {
    let Some(prom_bin) = prometheus_binary() else {
        println!("SKIPPED: the prometheus binary is not installed (Debian package `prometheus`)");
        return;
    };
    let dir = temp_dir("prom-e2e");
    let mut guard = Guard {
        child: None,
        stop: Arc::new(AtomicBool::new(false)),
        replay: None,
        dir: dir.clone(),
    };

    // Pipeline fed by a paced, looping replay, so counters keep moving while we query.
    let md = Arc::new(Metadata::new());
    md.update(&cluster());
    let metrics = Metrics::new(
        &MetricsConfig::from_hubble(DEFAULT_METRICS).expect("valid"),
        md.clone(),
    )
    .expect("metrics");
    let (ring, writer) = Ring::new(4095).expect("ring");
    let stats = Arc::new(PipelineStats::default());
    let mut pipeline = Pipeline::new(writer, md, stats.clone());
    pipeline.add_observer(Box::new(metrics.observer("replay")));
    metrics.watch_pipeline("replay", stats, ring);
    let mut source = ReplaySource::new(write_replay(&dir));
    source.loops = u32::MAX;
    source.pacing = Pacing::Rate(500.0);
    source.restamp = true;
    let stop = guard.stop.clone();
    guard.replay = Some(std::thread::spawn(move || {
        if let Err(e) = source.run(&mut pipeline, &stop) {
            eprintln!("replay failed: {e}");
        }
    }));

    // Our /metrics on a loopback port.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind metrics");
    let metrics_addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve_metrics(listener, metrics.clone(), async {
        stop_rx.await.ok();
    }));

    // Prometheus scraping it every second.
    let prom_port = free_port();
    let prom: SocketAddr = format!("127.0.0.1:{prom_port}").parse().expect("addr");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: periscope\n    \
         static_configs:\n      - targets: [\"{metrics_addr}\"]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new(&prom_bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    guard.child = Some(child);
    let prom_log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();

    // Wait (bounded) until several successful scrapes are stored, so rate() has samples.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(Ok(Some(status))) = guard.child.as_mut().map(Child::try_wait) {
            panic!("prometheus exited with {status}:\n{}", prom_log());
        }
        let scraped = query(prom, "sum_over_time(up{job=\"periscope\"}[1m])")
            .ok()
            .and_then(|r| r.first().and_then(sample_value))
            .unwrap_or(0.0);
        if scraped >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no successful scrapes within 60 s:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let queries = dashboard_queries();
    assert!(queries.len() >= 30, "only {} queries found", queries.len());
    let mut failures = Vec::new();
    for (place, expr) in &queries {
        let (promql, label) = match label_values_query(expr) {
            Some((q, l)) => (q, Some(l)),
            None => (substitute(expr), None),
        };
        if promql.contains('$') {
            failures.push(format!("{place}: unsubstituted variable in {promql}"));
            continue;
        }
        match query(prom, &promql) {
            Err(e) => failures.push(format!("{place}: {promql}: {e}")),
            Ok(r) if r.is_empty() => failures.push(format!("{place}: {promql}: no data")),
            Ok(r)
                if !r
                    .iter()
                    .any(|s| sample_value(s).is_some_and(|v| !v.is_nan())) =>
            {
                failures.push(format!("{place}: {promql}: only NaN"))
            }
            Ok(r) => {
                if let Some(l) = label
                    && !r.iter().any(|s| s["metric"][&l] == "default")
                {
                    failures.push(format!("{place}: {promql}: no \"default\" value in {r:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
    println!(
        "{} dashboard queries returned data from Prometheus",
        queries.len()
    );

    // Prometheus' own linter on our text exposition (installed with Prometheus).
    let (status, exposition) = http_get(metrics_addr, "/metrics").expect("scrape ourselves");
    assert_eq!(status, 200);
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Err(e) => println!("SKIPPED promtool lint: {e}"),
        Ok(mut lint) => {
            if let Some(mut stdin) = lint.stdin.take() {
                stdin
                    .write_all(exposition.as_bytes())
                    .expect("feed promtool");
            }
            let out = lint.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    stop_tx.send(()).ok();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("metrics server stops")
            .expect("joins")
            .expect("serves");
    });
}

// ---------------------------------------------------------------------------------------------
// Provisioning files agree with the dashboards.

#[test]
fn grafana_provisioning_is_consistent() {
    let prov = grafana_dir().join("provisioning");
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(prov.join("datasources/periscope.yaml")).expect("datasource yaml"),
    )
    .expect("parses");
    let source = &ds["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    let uid = source["uid"].as_str().expect("uid");
    let dash: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(prov.join("dashboards/periscope.yaml")).expect("provider yaml"),
    )
    .expect("parses");
    let path = dash["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert!(path.starts_with('/'), "{path}");

    let mut uids = Vec::new();
    for f in dashboard_files() {
        let d: Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
        uids.push(d["uid"].as_str().expect("dashboard uid").to_string());
        let vars = d["templating"]["list"].as_array().expect("templating");
        let dsvar = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .expect("datasource variable");
        assert_eq!(
            dsvar["current"]["value"].as_str(),
            Some(uid),
            "{}",
            f.display()
        );
        for p in d["panels"].as_array().expect("panels") {
            assert_eq!(
                p["datasource"]["uid"],
                "${datasource}",
                "{}: {}",
                f.display(),
                p["title"]
            );
            assert!(!p["targets"].as_array().expect("targets").is_empty());
        }
    }
    let n = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), n, "duplicate dashboard uids");
    assert!(n >= 6);
}
