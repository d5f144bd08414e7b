//! Relay forwarding benchmark: N in-process flow-server nodes (default 8) fed by paced
//! generators, one relay, one follow client reading through the relay. Prints the flows/s the
//! client receives and the event→client latency (flow timestamp = injection time, taken just
//! before the node stores it; receipt = when the client has the response).
//!
//! `cargo bench -p periscope-relay --bench forward [-- --rate 300000 --secs 10 --nodes 8]`
//! (`--rate` is the total offered flows/s; `--decode` makes the client decode every response
//! fully, like a CLI would, instead of scanning only the time).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use periscope_flow_server::fixtures::syn_trace;
use periscope_probes::source::{EventSink, EventSource, RawEvent, SourceError};
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::{GetFlowsRequest, GetFlowsResponse};
use periscope_relay::codec::{NodeFlowsCodec, ResponseKind};
use periscope_relay::{ConnState, Relay, RelayConfig, ServeOptions, serve};
use prost::Message;
use support::{TestNode, now_ns, plaintext};
use tokio::net::TcpListener;
use tonic::transport::Endpoint;

/// Generates one xwing→deathstar SYN per event at `rate` events/s (0 = paused), stamped with
/// the wall clock when the batch is made.
struct PacedSource {
    rate: Arc<AtomicU64>,
}

const GEN_BATCH: u64 = 64;

impl EventSource for PacedSource {
    fn name(&self) -> &str {
        "bench-paced"
    }
    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError> {
        let templates: Vec<Vec<u8>> = (0..64).map(|i| syn_trace(40000 + i)).collect();
        let (mut rate, mut start, mut sent, mut i) = (0u64, Instant::now(), 0u64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            let want = self.rate.load(Ordering::Relaxed);
            if want != rate {
                (rate, start, sent) = (want, Instant::now(), 0);
            }
            if rate == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let ts = now_ns();
            for _ in 0..GEN_BATCH {
                sink.push(RawEvent::Sample {
                    cpu: 0,
                    timestamp_ns: ts,
                    data: &templates[i % templates.len()],
                });
                i += 1;
            }
            sink.flush();
            sent += GEN_BATCH;
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else if now - due > Duration::from_secs(1) {
                // Far behind (CPU saturated): don't burst to catch up.
                (start, sent) = (now, 0);
            }
        }
        Ok(())
    }
}

struct Args {
    nodes: usize,
    rate: u64,
    secs: u64,
    warmup: u64,
    decode: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        nodes: 8,
        rate: 300_000,
        secs: 10,
        warmup: 2,
        decode: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match k.as_str() {
            "--nodes" => a.nodes = num("--nodes").clamp(1, 64) as usize,
            "--rate" => a.rate = num("--rate").max(1),
            "--secs" => a.secs = num("--secs").clamp(1, 120),
            "--warmup" => a.warmup = num("--warmup").min(30),
            "--decode" => a.decode = true,
            // `cargo bench` passes --bench; anything else is ignored too.
            _ => {}
        }
    }
    a
}

/// CPU seconds used so far by (relay + client runtime, node runtimes, generators), summed
/// over this process's threads by name.
fn cpu_seconds() -> [f64; 3] {
    let mut out = [0.0; 3];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime + stime, in clock ticks (100 Hz).
        let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let slot = if comm.starts_with("node-") {
            1
        } else if comm.starts_with("source-") {
            2
        } else {
            0
        };
        out[slot] += ticks / 100.0;
    }
    out
}

#[derive(Default)]
struct Counters {
    flows: AtomicU64,
    lost: AtomicU64,
    recording: AtomicBool,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: keep that a short smoke run.
    let mut args = parse_args();
    if !std::env::args().any(|a| a == "--bench") {
        (args.nodes, args.rate, args.secs, args.warmup) = (2, 5_000, 1, 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let rate = Arc::new(AtomicU64::new(0));
    let nodes: Vec<TestNode> = (0..args.nodes)
        .map(|i| {
            let (tx, _rx) = std::sync::mpsc::channel();
            TestNode::start_source(
                &format!("node-{i}"),
                None,
                1 << 16,
                plaintext(),
                Box::new(PacedSource { rate: rate.clone() }),
                tx,
            )
        })
        .collect();
    let cfg = RelayConfig {
        static_nodes: nodes.iter().map(|n| n.addr.to_string()).collect(),
        ..RelayConfig::default()
    };
    let relay = Relay::start(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        relay.clone(),
        listener,
        ServeOptions::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let n = args.nodes;
    let up = relay
        .pool()
        .wait_until(Duration::from_secs(10), |ns| {
            ns.len() == n && ns.iter().all(|x| x.state == ConnState::Connected)
        })
        .await;
    assert!(up, "nodes did not connect");

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .expect("connect relay");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/observer.Observer/GetFlows");
    let req = GetFlowsRequest {
        follow: true,
        ..Default::default()
    };
    let mut stream = grpc
        .server_streaming(tonic::Request::new(req), path, NodeFlowsCodec)
        .await
        .expect("follow")
        .into_inner();

    let counters = Arc::new(Counters::default());
    let (lat_tx, lat_rx) = std::sync::mpsc::channel::<Vec<u64>>();
    let c = counters.clone();
    let decode = args.decode;
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(1 << 16);
        while let Ok(Some(r)) = stream.message().await {
            let now = now_ns() as i128;
            if decode {
                let _ = GetFlowsResponse::decode(r.bytes.clone());
            }
            match r.kind {
                ResponseKind::Flow if c.recording.load(Ordering::Relaxed) => {
                    c.flows.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = r.time_ns {
                        lat.push((now - t).max(0) as u64);
                    }
                    if lat.len() == lat.capacity() {
                        let _ = lat_tx.send(std::mem::take(&mut lat));
                        lat.reserve(1 << 16);
                    }
                }
                ResponseKind::LostEvents => {
                    if let Ok(GetFlowsResponse {
                        response_types: Some(ResponseTypes::LostEvents(l)),
                        ..
                    }) = GetFlowsResponse::decode(r.bytes)
                    {
                        c.lost.fetch_add(l.num_events_lost, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        let _ = lat_tx.send(lat);
    });

    println!(
        "relay bench: {} nodes, offered {} flows/s total, warmup {} s, measuring {} s, client {}",
        args.nodes,
        args.rate,
        args.warmup,
        args.secs,
        if args.decode {
            "decodes every response"
        } else {
            "scans response time only"
        }
    );
    rate.store(args.rate / args.nodes as u64, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let stored0: u64 = nodes.iter().map(|n| n.server().ring.head()).sum();
    let lost0 = counters.lost.load(Ordering::Relaxed);
    let drops0 = relay.stats().client_queue_drops.load(Ordering::Relaxed);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    counters.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    counters.recording.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds();
    let cpu: Vec<f64> = (0..3).map(|i| (cpu1[i] - cpu0[i]) / elapsed).collect();
    let stored: u64 = nodes.iter().map(|n| n.server().ring.head()).sum::<u64>() - stored0;
    let flows = counters.flows.load(Ordering::Relaxed);
    let lost = counters.lost.load(Ordering::Relaxed) - lost0;
    let drops = relay.stats().client_queue_drops.load(Ordering::Relaxed) - drops0;

    rate.store(0, Ordering::Relaxed);
    let _ = stop_tx.send(());
    relay.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let mut lat: Vec<u64> = lat_rx.try_iter().flatten().collect();
    lat.sort_unstable();

    println!("nodes stored     {:>10.0} flows/s", stored as f64 / elapsed);
    println!(
        "client received  {:>10.0} flows/s  ({flows} flows in {elapsed:.1} s)",
        flows as f64 / elapsed
    );
    println!(
        "latency event->client  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!("losses           nodes/relay lost events {lost}, relay queue drops {drops}");
    println!(
        "cpu (cores)      relay+client {:.2}  nodes {:.2}  generators {:.2}  total {:.2}",
        cpu[0],
        cpu[1],
        cpu[2],
        cpu.iter().sum::<f64>()
    );
    if flows > 0 {
        println!(
            "relay+client cpu per forwarded flow {:.2} us",
            cpu[0] * elapsed / flows as f64 * 1e6
        );
    }
    drop(nodes);
}
