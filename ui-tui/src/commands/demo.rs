//! `periscope demo`: the Star Wars walkthrough on this machine, end to end and for real — a
//! netns cluster, the eBPF datapath, the node agent, the relay, rule1, traffic, and the answer
//! to `periscope observe --pod deathstar --verdict DROPPED`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use periscope_datapath::cluster::{self, BuildOptions, Cluster, ClusterSpec, ServerMode};
use periscope_datapath::loader::LoaderConfig;
use periscope_datapath::perf::PerfConfig;
use periscope_flow_server::agent::{DatapathAgent, DatapathAgentConfig};
use periscope_flow_server::metrics::{DEFAULT_METRICS, MetricsConfig, serve_metrics};
use periscope_flow_server::server::{ServerConfig, serve};
use periscope_relay::{Relay, RelayConfig, ServeOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{DemoArgs, parse_observe};

const RULE1: &str = include_str!("../../../examples/starwars/rule1-l3-l4.yaml");
const NODE_NAME: &str = "periscope-node";

/// Tears the cluster down however the demo ends.
struct ClusterGuard(Option<Cluster>);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let prefix = c.prefix.clone();
            match c.teardown() {
                Ok(_) => eprintln!("demo: cluster {prefix} torn down"),
                Err(e) => eprintln!(
                    "demo: teardown of {prefix} failed: {e} (run `periscope cluster --prefix {prefix} down`)"
                ),
            }
        }
    }
}

fn say(msg: &str) {
    println!("\n\x1b[1m==> {msg}\x1b[0m");
}

fn exec_text(c: &Cluster, pod: &str, argv: &[&str]) -> String {
    match c.exec_timeout(pod, argv, Duration::from_secs(10)) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => format!(
            "failed (exit {}): {}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("failed: {e}"),
    }
}

fn landing(c: &Cluster, ship: &str) {
    let url = "http://deathstar.default.svc.cluster.local/v1/request-landing";
    let out = exec_text(c, ship, &["curl", "-s", "--max-time", "3", "-XPOST", url]);
    println!("$ periscope cluster exec {ship} -- curl -s -XPOST {url}\n{out}");
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (is another agent or relay running?)"))
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (network namespaces, eBPF): run it with sudo");
    }
    let agent_listener = bind(args.agent_address).await?;
    let relay_listener = bind(args.relay_address).await?;
    let metrics_listener = bind(args.metrics_address).await?;
    let agent_addr = agent_listener.local_addr()?;
    let relay_addr = relay_listener.local_addr()?;

    say("Building the Star Wars cluster (one network namespace per pod)");
    let mut opts = BuildOptions::new(&args.prefix);
    opts.server = ServerMode::InProcess;
    if let Some(cidr) = &args.pod_cidr {
        opts.pod_cidr = Some(
            cidr.parse()
                .with_context(|| format!("--pod-cidr {cidr:?}"))?,
        );
    }
    // A previous demo that was killed leaves its instance behind; start clean.
    cluster::teardown(&args.prefix, &opts.state_root).context("removing a stale demo instance")?;
    let built = cluster::build(&ClusterSpec::starwars(), &opts).context("building the cluster")?;
    let guard = ClusterGuard(Some(built));
    let c = guard.0.as_ref().context("cluster")?;
    for p in &c.pods {
        println!(
            "  {:<40} {:<15} identity {}",
            p.qualified_name(),
            p.ip,
            p.identity
        );
    }

    say("Loading the eBPF datapath and starting the node agent and relay");
    let agent = DatapathAgent::start(
        c,
        DatapathAgentConfig {
            loader: LoaderConfig {
                instance: args.prefix.clone(),
                ..Default::default()
            },
            perf: PerfConfig::default(),
            server: ServerConfig {
                node_name: NODE_NAME.into(),
                cluster_name: c.spec.cluster_name.clone(),
                advertise_address: agent_addr.to_string(),
            },
            ring_capacity: 65_536,
            metrics: Some(MetricsConfig::from_hubble(DEFAULT_METRICS)?),
        },
    )?;
    let node = &agent.node;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let agent_task = tokio::spawn(serve(
        node.server.clone(),
        agent_listener,
        stopped(stop_rx.clone()),
    ));
    if let Some(m) = node.metrics.clone() {
        tokio::spawn(serve_metrics(metrics_listener, m, stopped(stop_rx.clone())));
    }
    let relay = Relay::start(RelayConfig {
        static_nodes: vec![agent_addr.to_string()],
        ..Default::default()
    });
    let relay_task = tokio::spawn(periscope_relay::serve(
        relay.clone(),
        relay_listener,
        ServeOptions::default(),
        stopped(stop_rx),
    ));
    println!(
        "  agent {agent_addr} (Hubble API), relay {relay_addr}, metrics http://{}/metrics",
        args.metrics_address
    );

    say("Before any policy: both ships can land");
    landing(c, "tiefighter");
    landing(c, "xwing");

    let (policy_text, policy_name) = match &args.policy {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (RULE1.to_string(), "rule1-l3-l4.yaml".to_string()),
    };
    say(&format!(
        "Applying {policy_name}: only org=empire may reach deathstar on TCP/80"
    ));
    println!("{policy_text}");
    let ch = crate::commands::policy::apply_text(c, &args.prefix, &policy_text, &policy_name)?;
    println!(
        "applied (revision {}): {} endpoint(s) now enforce it",
        ch.revision,
        ch.endpoints.len()
    );

    say("After the policy: tiefighter lands, xwing is dropped");
    landing(c, "tiefighter");
    landing(c, "xwing");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    say("periscope observe --pod deathstar --verdict DROPPED   (through the relay)");
    let server = relay_addr.to_string();
    let observe = parse_observe([
        "--server",
        server.as_str(),
        "--pod",
        "deathstar",
        "--verdict",
        "DROPPED",
    ])
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    crate::commands::observe(
        &observe,
        stdout.lock(),
        std::io::stderr(),
        tty,
        std::future::pending::<()>(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::io::stdout().flush()?;

    if !args.no_wait {
        say("The cluster keeps running. Try, in another terminal:");
        println!("  periscope observe --server {relay_addr} -f");
        println!("  periscope top --server {relay_addr}");
        println!(
            "  sudo periscope cluster --prefix {} exec xwing -- curl -s --max-time 2 deathstar/v1/request-landing",
            args.prefix
        );
        println!(
            "  curl -s http://{}/metrics | grep hubble_drop_total",
            args.metrics_address
        );
        println!("Press Ctrl-C to tear everything down.");
        crate::commands::shutdown_signal().await;
    }

    say("Tearing down");
    let _ = stop_tx.send(true);
    relay.stop();
    let _ = agent_task.await;
    let _ = relay_task.await;
    agent.stop().context("perf reader")?;
    drop(guard);
    Ok(())
}
