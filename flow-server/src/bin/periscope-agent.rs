//! The node agent: runs the flow pipeline from an event source and serves the Observer API.
//!
//! By default it attaches the eBPF datapath to the local cluster (built from a cluster spec,
//! or loaded if `periscope-cluster up` built it) and reads the perf event array.
//! `--replay FILE` feeds it from a recorded replay file instead (tests, benchmarks, UI demos);
//! `--write-fixture FILE` writes a synthetic Star Wars replay file and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use periscope_flow_server::fixtures::{starwars_metadata, starwars_round};
use periscope_flow_server::metrics::{MetricsConfig, serve_metrics};
use periscope_flow_server::node::{Node, NodeConfig};
use periscope_flow_server::replay::{Pacing, ReplaySource, ReplayWriter, now_ns};
use periscope_flow_server::ring::DEFAULT_CAPACITY;
use periscope_flow_server::server::{ServerConfig, serve_tls, server_tls_from_files};
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
    /// Prometheus /metrics listen address (Hubble's port); empty disables the exporter.
    #[arg(long, default_value = "127.0.0.1:9965")]
    metrics_address: String,
    /// Hubble metric plugins and options, e.g. "drop;sourceContext=namespace tcp flow".
    #[arg(long, default_value = periscope_flow_server::metrics::DEFAULT_METRICS)]
    metrics: String,
    /// TLS certificate (PEM) for the Observer/Peer listener.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS with the relay).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
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
    /// Cluster spec YAML for the datapath source (default: the built-in Star Wars spec).
    #[arg(long, value_name = "FILE")]
    cluster_spec: Option<PathBuf>,
    /// Local cluster instance prefix.
    #[arg(long, default_value = periscope_datapath::cluster::DEFAULT_PREFIX)]
    prefix: String,
    #[arg(long, default_value = periscope_datapath::cluster::DEFAULT_STATE_ROOT)]
    state_root: PathBuf,
    /// Monitor aggregation level of the probes: none | medium.
    #[arg(long, default_value = "medium")]
    aggregation: periscope_probes::probes::Aggregation,
    /// Perf buffer pages per CPU (power of two).
    #[arg(long, default_value_t = 64)]
    perf_pages: usize,
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
    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("binding {}", args.listen_address))?;
    let advertise = args.advertise_address.clone().unwrap_or_else(|| {
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    });
    let metrics_listener = if args.metrics_address.is_empty() {
        None
    } else {
        let addr = &args.metrics_address;
        Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics {addr}"))?,
        )
    };
    let metrics_cfg = match metrics_listener {
        Some(_) => Some(MetricsConfig::from_hubble(&args.metrics).context("--metrics")?),
        None => None,
    };
    let server_cfg = ServerConfig {
        node_name: args.node_name.clone(),
        cluster_name: args.cluster_name.clone(),
        advertise_address: advertise,
    };
    let Some(replay) = &args.replay else {
        return run_datapath(&args, server_cfg, listener, metrics_cfg, metrics_listener).await;
    };
    let mut source = ReplaySource::new(replay);
    source.loops = args.replay_loops;
    source.restamp = args.replay_restamp;
    source.linger = true;
    if let Some(rate) = args.replay_rate {
        anyhow::ensure!(rate > 0.0, "--replay-rate must be positive");
        source.pacing = Pacing::Rate(rate);
    }
    let cfg = NodeConfig {
        server: server_cfg,
        ring_capacity: args.ring_capacity,
        metadata: starwars_metadata(&args.node_name),
        metrics: metrics_cfg,
    };
    let node = Node::start(cfg, Box::new(source), vec![]).context("starting the flow pipeline")?;
    tracing::info!(addr = %args.listen_address, node = %args.node_name, "serving Observer API");
    serve_until_ctrl_c(&args, &node, listener, metrics_listener).await?;
    node.stop().context("event source")?;
    Ok(())
}

/// Serves flows from the eBPF datapath attached to the local cluster.
async fn run_datapath(
    args: &Args,
    server: ServerConfig,
    listener: tokio::net::TcpListener,
    metrics: Option<MetricsConfig>,
    metrics_listener: Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    use periscope_datapath::cluster::{self, BuildOptions, Cluster, ClusterSpec};
    use periscope_datapath::loader::LoaderConfig;
    use periscope_datapath::perf::PerfConfig;
    use periscope_flow_server::agent::{DatapathAgent, DatapathAgentConfig};

    let cluster = match Cluster::load(&args.prefix, &args.state_root)? {
        Some(c) => c,
        None => {
            let spec = match &args.cluster_spec {
                Some(path) => ClusterSpec::from_file(path)?,
                None => ClusterSpec::starwars(),
            };
            let mut opts = BuildOptions::new(&args.prefix);
            opts.state_root = args.state_root.clone();
            tracing::info!(prefix = %args.prefix, "building the local cluster");
            cluster::build(&spec, &opts).context("building the local cluster")?
        }
    };
    let agent = DatapathAgent::start(
        &cluster,
        DatapathAgentConfig {
            loader: LoaderConfig {
                instance: args.prefix.clone(),
                aggregation: args.aggregation,
                ..Default::default()
            },
            perf: PerfConfig {
                pages_per_cpu: args.perf_pages,
                ..Default::default()
            },
            server,
            ring_capacity: args.ring_capacity,
            metrics,
        },
    )?;
    tracing::info!(addr = %args.listen_address, pods = cluster.pods.len(), "datapath attached; serving Observer API");
    serve_until_ctrl_c(args, &agent.node, listener, metrics_listener).await?;
    agent.stop().context("perf reader")?;
    Ok(())
}

/// Serves gRPC (and /metrics when configured) until Ctrl-C.
async fn serve_until_ctrl_c(
    args: &Args,
    node: &Node,
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let (Some(l), Some(m)) = (metrics_listener, node.metrics.clone()) {
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(l, m, async move {
                let _ = rx.changed().await;
            })
            .await
            {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server_tls_from_files(
            cert,
            key,
            args.tls_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let mut rx = stop_rx;
    let grpc = serve_tls(node.server.clone(), listener, tls, async move {
        let _ = rx.changed().await;
    });
    tokio::pin!(grpc);
    tokio::select! {
        r = &mut grpc => r?,
        _ = tokio::signal::ctrl_c() => {
            let _ = stop_tx.send(true);
            grpc.await?;
        }
    }
    Ok(())
}
