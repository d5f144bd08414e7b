//! `periscope-relay`: serves Hubble's Observer API for the whole cluster on :4245.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use periscope_relay::backoff::RetryPolicy;
use periscope_relay::config::{DEFAULT_HEALTH_LISTEN, DEFAULT_LISTEN};
use periscope_relay::tls::server_tls_from_files;
use periscope_relay::{NodeTls, Relay, RelayConfig, ServeOptions, serve};
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    name = "periscope-relay",
    version,
    about = "Cluster-wide Observer API: merges every node's flows in time order"
)]
struct Args {
    /// Address to serve the Observer API on.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "PERISCOPE_RELAY_LISTEN")]
    listen: String,
    /// Plaintext gRPC health listener ("" to disable).
    #[arg(long, default_value = DEFAULT_HEALTH_LISTEN)]
    health_listen: String,
    /// Peer service (a node's host:port) whose Peer.Notify lists the cluster's nodes. Repeatable.
    #[arg(long = "peer-service", value_name = "ADDR")]
    peer_services: Vec<String>,
    /// A node's Observer address (host:port) to dial directly. Repeatable.
    #[arg(long = "node", value_name = "ADDR")]
    nodes: Vec<String>,
    /// Name put on the relay's own node status and lost events.
    #[arg(long, default_value = "periscope-relay")]
    name: String,

    /// Listener certificate (PEM); with --tls-key enables TLS on --listen.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to (mTLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// CA (PEM) that signs the nodes' certificates; enables TLS to nodes.
    #[arg(long)]
    node_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to nodes (mTLS).
    #[arg(long, requires_all = ["node_tls_key", "node_tls_ca"])]
    node_tls_cert: Option<PathBuf>,
    #[arg(long, requires = "node_tls_cert")]
    node_tls_key: Option<PathBuf>,
    /// Name to verify node certificates against (unless a peer announces its own).
    #[arg(long, requires = "node_tls_ca")]
    node_tls_server_name: Option<String>,

    /// Most responses held for time-sorting per GetFlows.
    #[arg(long, default_value_t = 1024)]
    sort_buffer_len: usize,
    /// A node silent this long no longer holds back the merged stream.
    #[arg(long, default_value = "1s", value_parser = humantime_duration)]
    sort_buffer_drain_timeout: Duration,
    /// How long a response waits for idle nodes that may send something older.
    #[arg(long, default_value = "100ms", value_parser = humantime_duration)]
    sort_buffer_reorder_window: Duration,
    /// Responses queued per client before drops (reported as lost events).
    #[arg(long, default_value_t = 16384)]
    client_queue_len: usize,
    /// Longest wait between redials of an unreachable node.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    retry_max: Duration,
    /// Bound on a dial and on each unary node call.
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    timeout: Duration,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m)"))?;
    let n: f64 = num.parse().map_err(|_| format!("{s:?}: not a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if args.peer_services.is_empty() && args.nodes.is_empty() {
        bail!("no nodes to relay: give --peer-service ADDR and/or --node ADDR");
    }
    let node_tls = if args.node_tls_ca.is_some() {
        Some(NodeTls::from_files(
            args.node_tls_ca.as_deref(),
            args.node_tls_cert.as_deref(),
            args.node_tls_key.as_deref(),
            args.node_tls_server_name.clone(),
        )?)
    } else {
        None
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(server_tls_from_files(c, k, args.tls_client_ca.as_deref())?),
        _ => None,
    };
    let cfg = RelayConfig {
        name: args.name,
        peer_services: args.peer_services,
        static_nodes: args.nodes,
        node_tls,
        retry: RetryPolicy {
            max: args.retry_max,
            ..RetryPolicy::default()
        },
        dial_timeout: args.timeout,
        call_timeout: args.timeout,
        sort_buffer_len: args.sort_buffer_len,
        sort_buffer_drain_timeout: args.sort_buffer_drain_timeout,
        sort_buffer_reorder_window: args.sort_buffer_reorder_window,
        client_queue_len: args.client_queue_len,
        ..RelayConfig::default()
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let health_listener = if args.health_listen.is_empty() {
        None
    } else {
        Some(
            TcpListener::bind(&args.health_listen)
                .await
                .with_context(|| format!("binding {}", args.health_listen))?,
        )
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        health = ?health_listener.as_ref().and_then(|l| l.local_addr().ok()),
        tls = tls.is_some(),
        "relay serving"
    );
    let relay = Relay::start(cfg);
    serve(
        relay,
        listener,
        ServeOptions {
            tls,
            health_listener,
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        },
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(humantime_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(humantime_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(humantime_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(humantime_duration("5").is_err());
        assert!(humantime_duration("5h").is_err());
        assert!(humantime_duration("xs").is_err());
    }
}
