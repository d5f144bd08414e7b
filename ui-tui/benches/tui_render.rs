//! `periscope top` under a flood: 50,000 flows/s arrive while the viewer draws 20 frames/s on a
//! 200x50 screen (ratatui's TestBackend, so the figure is the viewer's own work, not the
//! terminal's). Each simulated frame applies 2,500 flow responses to the app state (as the
//! network task delivers them) and then draws one frame.
//!
//! Prints render time per frame (mean, p50, p99, max), ingest cost per flow, and the share of
//! one core the viewer needs at that rate. Run: `cargo bench -p periscope-cli --bench tui_render`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use periscope_cli::cli::FilterArgs;
use periscope_cli::timefmt::Zone;
use periscope_cli::tui::app::{App, AppConfig};
use periscope_cli::tui::net::NetEvent;
use periscope_cli::tui::row::RowOptions;
use periscope_cli::tui::ui;
use periscope_proto::Timestamp;
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const RATE: u64 = 50_000;
const FPS: u64 = 20;
const PER_FRAME: u64 = RATE / FPS;
const SECONDS: u64 = 10;
const WARMUP_FRAMES: u64 = 10;

struct Run {
    render_us: Vec<f64>,
    ingest_ns_per_flow: f64,
    cpu_share: f64,
}

fn run(sidebar: bool) -> Run {
    let templates = common::flows();
    let origin = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(common::BASE_SECONDS as u64);
    let cfg = AppConfig {
        server: "bench:4245".into(),
        buffer: 10_000,
        last: 1_000,
        rows: RowOptions {
            zone: Zone::Utc,
            ip_translation: true,
        },
    };
    let mut app = App::with_clock(cfg, &FilterArgs::default(), origin, wall);
    if app.initial_query().is_err() {
        panic!("the empty filter is valid");
    }
    if sidebar {
        app.on_key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::NONE));
    }
    let mut term = match Terminal::new(TestBackend::new(200, 50)) {
        Ok(t) => t,
        Err(e) => match e {},
    };

    let frames = SECONDS * FPS;
    let mut render_us = Vec::with_capacity(frames as usize);
    let mut ingest = Duration::ZERO;
    let mut ingested = 0u64;
    let mut render_total = Duration::ZERO;
    for frame in 0..frames + WARMUP_FRAMES {
        // Simulated time: the flows of this frame are stamped within it.
        let sim = Duration::from_millis(frame * 1000 / FPS);
        let now = origin + sim;
        let batch: Vec<NetEvent> = (0..PER_FRAME)
            .map(|i| {
                let mut f = templates[(i as usize) % templates.len()].clone();
                let ns = sim.as_nanos() as i64 + (i as i64) * 20_000;
                f.time = Some(Timestamp {
                    seconds: common::BASE_SECONDS + ns / 1_000_000_000,
                    nanos: (ns % 1_000_000_000) as i32,
                });
                NetEvent::Response {
                    generation: app.generation,
                    response: Box::new(GetFlowsResponse {
                        response_types: Some(ResponseTypes::Flow(f)),
                        ..Default::default()
                    }),
                }
            })
            .collect();

        let t = Instant::now();
        for ev in batch {
            app.apply(ev, now);
        }
        let ingest_time = t.elapsed();

        let t = Instant::now();
        app.tick(now);
        if let Err(e) = term.draw(|f| ui::draw(f, &mut app)) {
            match e {}
        }
        let render_time = t.elapsed();

        if frame >= WARMUP_FRAMES {
            ingest += ingest_time;
            ingested += PER_FRAME;
            render_total += render_time;
            render_us.push(render_time.as_secs_f64() * 1e6);
        }
    }
    let busy = ingest + render_total;
    Run {
        render_us,
        ingest_ns_per_flow: ingest.as_secs_f64() * 1e9 / ingested as f64,
        cpu_share: busy.as_secs_f64() / SECONDS as f64,
    }
}

/// Where the ingest time goes: the buffer alone (push + eventual drop of the evicted flow) and
/// the statistics alone, over the same flows.
fn ingest_breakdown() {
    let templates = common::flows();
    let n = 200_000usize;
    let flows: Vec<_> = (0..n)
        .map(|i| templates[i % templates.len()].clone())
        .collect();
    let mut buffer = periscope_cli::tui::flows::FlowBuffer::new(10_000);
    let t = Instant::now();
    for f in flows {
        buffer.push(f);
    }
    let push = t.elapsed().as_secs_f64() * 1e9 / n as f64;

    let flows: Vec<_> = (0..n)
        .map(|i| templates[i % templates.len()].clone())
        .collect();
    let mut stats = periscope_cli::tui::stats::Stats::new();
    let t = Instant::now();
    for (i, f) in flows.iter().enumerate() {
        stats.add(f, 100 + (i / RATE as usize) as u64);
    }
    let add = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let t = Instant::now();
    drop(flows);
    let drop_hot = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    println!(
        "ingest breakdown       buffer push+evict {push:6.0} ns/flow | stats {add:6.0} ns/flow | \
         freeing a flow (in order) {drop_hot:6.0} ns/flow"
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut r: Run) {
    r.render_us.sort_by(f64::total_cmp);
    let mean = r.render_us.iter().sum::<f64>() / r.render_us.len().max(1) as f64;
    println!(
        "{name:<22} render µs/frame: mean {mean:8.1}  p50 {:8.1}  p99 {:8.1}  max {:8.1} | \
         ingest {:6.0} ns/flow | {:5.1}% of one core at {} flows/s, {} fps",
        percentile(&r.render_us, 0.5),
        percentile(&r.render_us, 0.99),
        r.render_us.last().copied().unwrap_or(0.0),
        r.ingest_ns_per_flow,
        r.cpu_share * 100.0,
        RATE,
        FPS,
    );
}

fn main() {
    // `cargo test --all-targets` runs this binary too (without `--bench`); keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("tui_render: skipped under --test");
        return;
    }
    println!(
        "periscope top at {RATE} flows/s, {FPS} fps, 200x50, {SECONDS} s simulated ({PER_FRAME} flows per frame)"
    );
    report("table", run(false));
    report("table + top sidebar", run(true));
    ingest_breakdown();
}
