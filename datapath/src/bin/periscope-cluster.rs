//! `periscope-cluster`: build, inspect and remove the local netns cluster (the Star Wars demo by
//! default), run commands inside its pods, and serve the deathstar demo API inside a pod.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ipnet::Ipv4Net;
use periscope_datapath::cluster::{
    self, BuildOptions, Cluster, ClusterSpec, DEFAULT_PREFIX, DEFAULT_STATE_ROOT, ServerMode,
    deathstar,
};

#[derive(Parser)]
#[command(
    name = "periscope-cluster",
    version,
    about = "Local netns cluster for Periscope"
)]
struct Cli {
    /// Instance prefix: names of every netns and link of the instance derive from it.
    #[arg(long, global = true, env = "PERISCOPE_CLUSTER_PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
    /// Directory holding each instance's state (cluster.json, pid files, server logs).
    #[arg(long, global = true, env = "PERISCOPE_CLUSTER_STATE", default_value = DEFAULT_STATE_ROOT)]
    state_root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the cluster (idempotent) and print its pods.
    Up {
        /// Cluster spec YAML; the built-in Star Wars demo when omitted.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Use this pod CIDR instead of the spec's (parallel instances need disjoint ones).
        #[arg(long)]
        pod_cidr: Option<Ipv4Net>,
        /// Do not start the deathstar demo servers.
        #[arg(long)]
        no_servers: bool,
    },
    /// Remove the instance: servers, netns, links, routes, /etc/netns dirs, state.
    Down,
    /// Run a command inside a pod: `exec tiefighter -- curl -s deathstar/v1/…`.
    Exec {
        /// Pod name or namespace/name.
        pod: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the instance's pods, services and whether they are healthy.
    Status,
    /// Print the built-in Star Wars spec (a starting point for your own).
    Spec,
    /// Serve the deathstar demo API (started inside deathstar pods by `up`).
    ServeDeathstar {
        #[arg(long, default_value_t = deathstar::PORT)]
        port: u16,
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
        /// Names the pod netns this server belongs to (lets teardown recognise it).
        #[arg(long)]
        instance: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("periscope-cluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Up {
            spec,
            pod_cidr,
            no_servers,
        } => {
            let spec = match spec {
                Some(path) => ClusterSpec::from_file(&path)?,
                None => ClusterSpec::starwars(),
            };
            let server = if no_servers {
                ServerMode::Disabled
            } else {
                let exe =
                    std::env::current_exe().context("locating this binary to serve deathstar")?;
                ServerMode::Process(exe)
            };
            let opts = BuildOptions {
                prefix: cli.prefix.clone(),
                pod_cidr,
                server,
                state_root: cli.state_root,
            };
            let built = cluster::build(&spec, &opts).with_context(|| {
                format!(
                    "building instance {:?} (it may be partly built: `periscope-cluster down --prefix {}` removes it)",
                    cli.prefix, cli.prefix
                )
            })?;
            print_cluster(&built);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down => {
            let report = cluster::teardown(&cli.prefix, &cli.state_root)?;
            println!(
                "instance {}: killed {} process(es), deleted {} netns, {} link(s), {} dir(s)",
                cli.prefix,
                report.processes_killed.len(),
                report.netns_deleted.len(),
                report.links_deleted.len(),
                report.dirs_removed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { pod, command } => {
            let c = load(&cli.prefix, &cli.state_root)?;
            let status = c
                .exec_command(&pod, &command)?
                .stdin(Stdio::inherit())
                .status()
                .with_context(|| format!("running {command:?} in {pod}"))?;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Cmd::Status => {
            let c = load(&cli.prefix, &cli.state_root)?;
            print_cluster(&c);
            let mut healthy = true;
            println!();
            for h in c.health()? {
                healthy &= h.ok();
                let server = match h.server {
                    None => "-",
                    Some(true) => "running",
                    Some(false) => "NOT RUNNING",
                };
                println!(
                    "{:<40} netns:{:<5} link-up:{:<5} ifindex-ok:{:<5} server:{server}",
                    h.pod, h.netns, h.link_up, h.ifindex_matches
                );
            }
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Spec => {
            print!("{}", cluster::spec::STARWARS_YAML);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ServeDeathstar {
            port,
            bind,
            instance,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let addr = SocketAddr::new(bind, port);
                let listener =
                    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
                tracing::info!(%addr, instance = instance.as_deref().unwrap_or("-"), "deathstar serving");
                deathstar::serve(listener).await.context("serving")
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(prefix: &str, state_root: &Path) -> Result<Cluster> {
    match Cluster::load(prefix, state_root)? {
        Some(c) => Ok(c),
        None => bail!(
            "no cluster instance {prefix:?} under {} (run `periscope-cluster up`)",
            state_root.display()
        ),
    }
}

fn print_cluster(c: &Cluster) {
    println!(
        "cluster {} (instance {}), node {}, pod CIDR {}, gateway {}",
        c.spec.cluster_name,
        c.prefix,
        c.node().map_or("-", |n| n.name.as_str()),
        c.pod_cidr,
        c.gateway
    );
    println!(
        "{:<36} {:<12} {:>8} {:>8}  {:<15} {:>7}  {:<17}  SERVER",
        "POD", "IP", "IDENTITY", "ENDPOINT", "HOST-IF", "IFINDEX", "MAC"
    );
    for p in &c.pods {
        let server = match (p.serve, p.server_pid) {
            (None, _) => "-".to_string(),
            (Some(_), Some(pid)) => format!("deathstar :{} (pid {pid})", deathstar::PORT),
            (Some(_), None) => format!("deathstar :{}", deathstar::PORT),
        };
        println!(
            "{:<36} {:<12} {:>8} {:>8}  {:<15} {:>7}  {:<17}  {server}",
            p.qualified_name(),
            p.ip.to_string(),
            p.identity,
            p.endpoint_id,
            p.host_ifname,
            p.host_ifindex,
            p.mac.to_string()
        );
    }
    for s in &c.services {
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|p| format!("{}→{}/{}", p.port, p.target(), p.protocol))
            .collect();
        // Names resolve to the first backend until the datapath load-balances ClusterIPs.
        println!(
            "service {}/{} clusterIP {} ports {} backends [{}] (name resolves to {})",
            s.namespace,
            s.name,
            s.cluster_ip,
            ports.join(","),
            s.backend_pods.join(", "),
            s.backends
                .first()
                .map_or("nothing".to_string(), |ip| ip.to_string())
        );
    }
}
