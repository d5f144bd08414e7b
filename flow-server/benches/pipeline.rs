//! Flow-server hot paths. Run: `cargo bench -p periscope-flow-server --bench pipeline`.
//! Targets (issue: flow server core): decode+enrich+store ≤ 500 ns/flow with 0 heap allocations,
//! filtered GetFlows over a full 65,536-flow ring ≤ 5 ms, ≤ 512 bytes stored per flow.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group};
use periscope_flow_server::filter::FilterSet;
use periscope_flow_server::fixtures::{starwars_metadata, starwars_round, syn_trace};
use periscope_flow_server::meta::Metadata;
use periscope_flow_server::pipeline::{Pipeline, PipelineStats};
use periscope_flow_server::query::FlowQuery;
use periscope_flow_server::record::FlowRecord;
use periscope_flow_server::ring::Ring;
use periscope_flow_server::server::{FlowServer, ServerConfig, query_records};
use periscope_probes::source::{EventSink, RawEvent};
use periscope_proto::flow::{FlowFilter, Verdict};

/// Counts heap allocations so the bench can report allocations per flow.
struct CountingAlloc;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarding the caller's contract to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const RING: usize = 65_536;

fn pipeline() -> (Pipeline, Arc<Ring>, Arc<Metadata>, Arc<PipelineStats>) {
    let (ring, writer) = Ring::new(RING).expect("ring");
    let md = Arc::new(Metadata::new());
    md.update(&starwars_metadata("node-1"));
    let stats = Arc::new(PipelineStats::default());
    (
        Pipeline::new(writer, md.clone(), stats.clone()),
        ring,
        md,
        stats,
    )
}

fn syn_events() -> Vec<Vec<u8>> {
    (0..1024u16).map(|i| syn_trace(40000 + i)).collect()
}

fn bench_ingest(c: &mut Criterion) {
    let (mut p, _ring, _md, _stats) = pipeline();
    let events = syn_events();
    let mut i = 0usize;
    c.bench_function("decode+enrich+store (TCP SYN trace)", |b| {
        b.iter(|| {
            let data = &events[i & 1023];
            i += 1;
            p.push(RawEvent::Sample {
                cpu: 0,
                timestamp_ns: i as u64,
                data: black_box(data),
            });
        })
    });
}

fn full_server() -> Arc<FlowServer> {
    let (mut p, ring, md, stats) = pipeline();
    let round = starwars_round(40000);
    let mut t = 1_700_000_000_000_000_000u64;
    while ring.head() < RING as u64 {
        for ev in &round {
            t += 1000;
            p.push(RawEvent::Sample {
                cpu: 0,
                timestamp_ns: t,
                data: ev,
            });
        }
    }
    p.flush();
    let cfg = ServerConfig {
        node_name: "node-1".into(),
        cluster_name: "default".into(),
        advertise_address: String::new(),
    };
    FlowServer::new(ring, md, stats, cfg)
}

fn deathstar_dropped() -> FilterSet {
    let f = |src: bool| {
        let mut f = FlowFilter {
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        };
        if src {
            f.source_pod = vec!["default/deathstar".into()];
        } else {
            f.destination_pod = vec!["default/deathstar".into()];
        }
        f
    };
    FilterSet::compile(&[f(true), f(false)], &[]).expect("valid")
}

fn bench_query(c: &mut Criterion) {
    let server = full_server();
    let q = FlowQuery {
        filters: deathstar_dropped(),
        ..Default::default()
    };
    // Two of every ten demo events are drops at deathstar.
    assert!(query_records(&server, &q).len().abs_diff(RING / 5) <= 1);
    c.bench_function("GetFlows scan: pod+verdict filter over 65,536 flows", |b| {
        b.iter(|| black_box(query_records(&server, &q).len()))
    });
    let q_last = FlowQuery {
        filters: deathstar_dropped(),
        number: 20,
        ..Default::default()
    };
    c.bench_function(
        "GetFlows --last 20: pod+verdict filter over 65,536 flows",
        |b| b.iter(|| black_box(query_records(&server, &q_last).len())),
    );
}

/// Allocations per flow in steady state, and the stored size; printed next to criterion's times.
fn report_allocations_and_size() {
    let (mut p, ring, _md, _stats) = pipeline();
    let events = syn_events();
    for (i, e) in events.iter().enumerate() {
        p.push(RawEvent::Sample {
            cpu: 0,
            timestamp_ns: i as u64,
            data: e,
        });
    }
    const N: u64 = 200_000;
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..N {
        p.push(RawEvent::Sample {
            cpu: 0,
            timestamp_ns: i,
            data: &events[(i & 1023) as usize],
        });
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let per_slot = size_of::<FlowRecord>() + 8;
    println!("\n== flow-server figures ==");
    println!(
        "allocations per flow (decode+enrich+store, steady state): {:.4} ({allocs} over {N})",
        allocs as f64 / N as f64
    );
    println!(
        "stored bytes per flow: {per_slot} (record {} + seqlock word); budget 512",
        size_of::<FlowRecord>()
    );
    println!(
        "1,048,576-flow ring: {:.1} MiB (budget 512 MiB); ring head now {}",
        (per_slot * 1_048_576) as f64 / (1024.0 * 1024.0),
        ring.head()
    );
}

criterion_group!(benches, bench_ingest, bench_query);

fn main() {
    report_allocations_and_size();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
