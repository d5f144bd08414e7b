//! The node agent: runs the flow pipeline from an event source and serves the Observer API.
//!
//! `--replay FILE` feeds it from a recorded replay file (tests, benchmarks, demos of the UI);
//! `--write-fixture FILE` writes a synthetic Star Wars replay file and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use periscope_flow_server::fixtures::{starwars_metadata, starwars_round};
use periscope_flow_server::node::{Node, NodeConfig};
use periscope_flow_server::replay::{Pacing, ReplaySource, ReplayWriter, now_ns};
use periscope_flow_server::ring::DEFAULT_CAPACITY;
use periscope_flow_server::server::{ServerConfig, serve};
use periscope_probes::source::RawEvent;

#[derive(Parser, Debug)]
#[command(
    name = "periscope-agent",
    version,
    about = "Periscope node agent: flows from the datapath over Hubble's API"
)]
struct Args {
    /// Node name reported in flows and to peers.
    #[arg(long, env = "NODE_NAME", default_value = "periscope-node")]
    node_name: String,
    #[arg(long, default_value = "default")]
    cluster_name: String,
    /// Observer/Peer gRPC listen address.
    #[arg(long, default_value = periscope_flow_server::server::DEFAULT_LISTEN)]
    listen_address: SocketAddr,
    /// Address announced to peers (defaults to the listen address).
    #[arg(long)]
    advertise_address: Option<String>,
    /// Flows kept in the ring buffer.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    ring_capacity: usize,
    /// Feed the pipeline from a replay file instead of the datapath.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Replay pacing in events per second (default: as fast as possible).
    #[arg(long)]
    replay_rate: Option<f64>,
    /// Times to play the replay file.
    #[arg(long, default_value_t = 1)]
    replay_loops: u32,
    /// Stamp replayed events with the current time.
    #[arg(long)]
    replay_restamp: bool,
    /// Write a synthetic Star Wars replay file of N rounds (10 events each) and exit.
    #[arg(long, value_name = "FILE")]
    write_fixture: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    fixture_rounds: u16,
}

fn write_fixture(path: &std::path::Path, rounds: u16) -> anyhow::Result<()> {
    let mut w =
        ReplayWriter::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut t = now_ns();
    for r in 0..rounds {
        for ev in starwars_round(32768u16.wrapping_add(r)) {
            t += 1_000_000;
            w.write(&RawEvent::Sample {
                cpu: 0,
                timestamp_ns: t,
                data: &ev,
            })?;
        }
    }
    w.finish()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(path) = &args.write_fixture {
        return write_fixture(path, args.fixture_rounds);
    }
    let Some(replay) = &args.replay else {
        anyhow::bail!(
            "no event source: pass --replay FILE (the datapath source needs the cluster agent)"
        );
    };
    let mut source = ReplaySource::new(replay);
    source.loops = args.replay_loops;
    source.restamp = args.replay_restamp;
    source.linger = true;
    if let Some(rate) = args.replay_rate {
        anyhow::ensure!(rate > 0.0, "--replay-rate must be positive");
        source.pacing = Pacing::Rate(rate);
    }
    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("binding {}", args.listen_address))?;
    let advertise = args.advertise_address.clone().unwrap_or_else(|| {
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    });
    let cfg = NodeConfig {
        server: ServerConfig {
            node_name: args.node_name.clone(),
            cluster_name: args.cluster_name.clone(),
            advertise_address: advertise,
        },
        ring_capacity: args.ring_capacity,
        metadata: starwars_metadata(&args.node_name),
    };
    let node = Node::start(cfg, Box::new(source), vec![]).context("starting the flow pipeline")?;
    tracing::info!(addr = %args.listen_address, node = %args.node_name, "serving Observer API");
    serve(node.server.clone(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    node.stop().context("event source")?;
    Ok(())
}
