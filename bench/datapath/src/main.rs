//! Datapath benchmark (root only): packets/s with nothing attached, with the probes at
//! aggregation `none`, at `medium`, and at `medium` with the Star Wars `rule1` L3-L4 policy
//! enforced, in one run, plus the highest event rate the perf reader sustains without loss.
//!
//! Topology, all in namespaces this program creates (and removes, also after a crash on the next
//! run): a "node" netns routing between two "pod" netns, each pod attached by a veth pair like
//! the local cluster (/32 pod address, default route via 169.254.1.1), with fixed MACs and
//! permanent neighbours so no ARP runs during a measurement. Two paths are measured:
//! - `pod-to-pod`: pod A → node → pod B. Each packet crosses `from_container` on A's host-side
//!   veth and `to_container` on B's: two probe runs (and, at `none`, two events) per packet.
//! - `node-to-pod`: node → pod B through one veth pair: one probe run per packet.
//!
//! A UDP blaster sends for a fixed time; throughput is what pod B's eth0 received (B holds an
//! unread socket, so packets are dropped cheaply at the socket). The sender is pinned to CPU 0
//! (the whole path runs in its softirq context there) and the perf reader to CPU 1, draining
//! events meanwhile and decoding each header as a consumer would. Modes are interleaved round by
//! round and the ratio is taken per round against that round's bare run, so slow drifts in
//! background load cancel out.
//!
//! The `rule1` mode gives pod A the tiefighter's identity and pod B the deathstar's (from the
//! Star Wars plan) and enforces rule1 (`fromEndpoints: org=empire` to the deathstar) with its
//! port retargeted to the blaster's UDP port, so the traffic is allowed by an L3-L4 rule: each
//! flow's first packet is judged by policy at B's `to_container` (a verdict event), the rest
//! pass on their conntrack entries.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use periscope_datapath::cluster::{self, ClusterSpec};
use periscope_datapath::loader::{Datapath, LoaderConfig};
use periscope_datapath::maps::Endpoint;
use periscope_datapath::perf::{PerfConfig, PerfReader};
use periscope_datapath::policy::{EndpointInfo, PolicyContext, PolicyRepository};
use periscope_probes::abi::{self, TraceNotify, message_type};
use periscope_probes::probes::Aggregation;
use periscope_probes::source::{EventSink, EventSource, RawEvent};

const NS_NODE: &str = "psbench-node";
const NS_A: &str = "psbench-a";
const NS_B: &str = "psbench-b";
const IF_A: &str = "psb-a";
const IF_B: &str = "psb-b";
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 1);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 2);
/// The node's own address (on its loopback), the source of `node-to-pod` traffic.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 255, 1);
const GATEWAY: &str = "169.254.1.1";
const DST_PORT: u16 = 9000;
const INSTANCE: &str = "bench-datapath";
/// The seed L3-L4 policy (the same file as /work/shared/examples/rule1-l3-l4.yaml).
const RULE1: &str = include_str!("../../../datapath/tests/policies/rule1-l3-l4.yaml");

#[derive(Parser, Debug)]
#[command(about = "Packets/s through a pod veth path: bare vs. probes (aggregation none / medium)")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Rounds of (bare, none, medium); the median of each mode is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// UDP flows (distinct source ports) the blaster cycles through.
    #[arg(long, default_value_t = 64)]
    flows: u16,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Perf ring pages per CPU.
    #[arg(long, default_value_t = 64)]
    pages: usize,
    /// Bytes a perf ring must hold before the reader is woken (default: a quarter of the ring).
    #[arg(long)]
    wakeup_bytes: Option<u32>,
    /// Reader poll timeout (flush tick) in milliseconds.
    #[arg(long, default_value_t = 10)]
    flush_ms: u64,
    /// Paced send rates (packets/s) for the lossless event-rate sweep (pod-to-pod, aggregation
    /// none: two events per packet), run in ascending order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25000,50000,100000,150000,200000,250000"
    )]
    sweep: Vec<u64>,
    /// Enable BPF run-time stats and print the average cost per program run (adds ~2 clock
    /// reads per run, so throughput numbers of such a run are slightly pessimistic).
    #[arg(long)]
    prog_stats: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-datapath needs root (network namespaces, BPF)");
    }
    if !(0.1..=60.0).contains(&args.duration)
        || args.rounds == 0
        || args.rounds > 20
        || args.flows == 0
    {
        bail!("--duration must be 0.1..60 s, --rounds 1..20, --flows > 0");
    }
    let duration = Duration::from_secs_f64(args.duration);

    let topo = Topology::create()?;
    let _sink = sink_socket()?;
    // Everything below (loading, attaching, map updates) happens in the node's namespace.
    enter_netns(NS_NODE)?;

    let mut results: Vec<Run> = Vec::new();
    for round in 0..args.rounds {
        for path in [Path::PodToPod, Path::NodeToPod] {
            for &mode in path.modes() {
                let m = measure(path, mode, &args, duration, None)?;
                eprintln!(
                    "round {} {:<11} {:<6} {:>10.0} pps (sent {:>8.0}/s)  events {:>8}  lost {}",
                    round + 1,
                    path.name(),
                    mode.name(),
                    m.pps,
                    m.sent as f64 / m.secs,
                    m.events,
                    m.lost
                );
                results.push(Run {
                    round,
                    path,
                    mode,
                    m,
                });
            }
        }
    }

    println!();
    println!(
        "UDP {} B payload, {} flows, {:.1} s x {} rounds (medians), perf ring {} pages/CPU, wakeup {}, flush tick {} ms",
        args.payload,
        args.flows,
        args.duration,
        args.rounds,
        args.pages,
        args.wakeup_bytes
            .map_or("1/4 ring".to_owned(), |b| format!("{b} B")),
        args.flush_ms
    );
    for path in [Path::PodToPod, Path::NodeToPod] {
        print_path_table(&results, path);
    }

    if !args.sweep.is_empty() {
        println!();
        println!(
            "lossless event rate (pod-to-pod, aggregation none, paced sender, 2 events per packet):"
        );
        println!(
            "{:>12} {:>12} {:>12} {:>10}",
            "target pps", "pps", "events/s", "lost"
        );
        // Sustained = the highest level such that it and every lower level lost nothing.
        let mut levels = args.sweep.clone();
        levels.sort_unstable();
        let mut sustained: Option<f64> = None;
        let mut clean_so_far = true;
        for rate in levels {
            let m = measure(Path::PodToPod, Mode::None, &args, duration, Some(rate))?;
            let ev_rate = m.events as f64 / m.secs;
            println!(
                "{:>12} {:>12.0} {:>12.0} {:>10}",
                rate, m.pps, ev_rate, m.lost
            );
            clean_so_far &= m.lost == 0;
            if clean_so_far {
                sustained = Some(ev_rate);
            }
        }
        match sustained {
            Some(r) => println!("highest event rate sustained with 0 lost events: {r:.0}/s"),
            None => println!("the lowest rate already lost events; try more --pages"),
        }
        let unpaced_clean = results
            .iter()
            .filter(|r| r.mode == Mode::None && r.m.lost == 0)
            .map(|r| r.m.events as f64 / r.m.secs)
            .fold(None, |best: Option<f64>, r| {
                Some(best.map_or(r, |b| b.max(r)))
            });
        if let Some(r) = unpaced_clean {
            println!("(best unpaced `none` run without loss: {r:.0} events/s)");
        }
    }
    drop(topo);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    PodToPod,
    NodeToPod,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Self::PodToPod => "pod-to-pod",
            Self::NodeToPod => "node-to-pod",
        }
    }

    /// The modes measured on this path. rule1 only admits pod A (an empire ship), so the node's
    /// traffic would be dropped: the policy row is pod-to-pod only.
    fn modes(self) -> &'static [Mode] {
        match self {
            Self::PodToPod => &Mode::ALL,
            Self::NodeToPod => &Mode::ALL[..4],
        }
    }

    /// Namespace and source address of the sender.
    fn sender(self) -> (&'static str, Ipv4Addr) {
        match self {
            Self::PodToPod => (NS_A, POD_A),
            Self::NodeToPod => (NS_NODE, NODE_IP),
        }
    }
}

struct Run {
    round: usize,
    path: Path,
    mode: Mode,
    m: Measurement,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_path_table(results: &[Run], path: Path) {
    let runs = |mode: Mode| {
        results
            .iter()
            .filter(move |r| r.path == path && r.mode == mode)
    };
    let bare_of_round = |round: usize| {
        runs(Mode::Bare)
            .find(|r| r.round == round)
            .map_or(0.0, |r| r.m.pps)
    };
    println!();
    println!(
        "{} ({} probe run{} per packet)",
        path.name(),
        if path == Path::PodToPod { 2 } else { 1 },
        if path == Path::PodToPod { "s" } else { "" }
    );
    println!(
        "{:<8} {:>10} {:>8} {:>8} {:>11} {:>9} {:>10}",
        "mode", "pps", "ratio", "target", "events/s", "lost", "reader/ev"
    );
    for &mode in path.modes() {
        let pps = median(runs(mode).map(|r| r.m.pps).collect());
        // Per-round ratio against the same round's bare run, then the median.
        let ratio = median(
            runs(mode)
                .map(|r| {
                    let bare = bare_of_round(r.round);
                    if bare > 0.0 { r.m.pps / bare } else { 0.0 }
                })
                .collect(),
        );
        let (target, events, lost, per_event) = if matches!(mode, Mode::Bare | Mode::Hook) {
            (
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            )
        } else {
            let want = match mode {
                Mode::None => 0.85,
                Mode::Rule1 => 0.90,
                _ => 0.95,
            };
            let events: u64 = runs(mode).map(|r| r.m.events).sum();
            let secs: f64 = runs(mode).map(|r| r.m.secs).sum();
            let lost: u64 = runs(mode).map(|r| r.m.lost).sum();
            let cpu: Duration = runs(mode).map(|r| r.m.reader_cpu).sum();
            (
                format!("{}{want}", if ratio >= want { ">=" } else { "<" }),
                format!("{:.0}", events as f64 / secs.max(1e-9)),
                lost.to_string(),
                if events == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.0} ns", cpu.as_nanos() as f64 / events as f64)
                },
            )
        };
        println!(
            "{:<8} {:>10.0} {:>8.3} {:>8} {:>11} {:>9} {:>10}",
            mode.name(),
            pps,
            ratio,
            target,
            events,
            lost,
            per_event
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    /// Classifiers that do nothing, on the same hooks: the TC hook's own cost.
    Hook,
    None,
    Medium,
    /// `medium` with rule1 enforced on pod B (see the module docs).
    Rule1,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Bare,
        Mode::Hook,
        Mode::None,
        Mode::Medium,
        Mode::Rule1,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Hook => "hook",
            Self::None => "none",
            Self::Medium => "medium",
            Self::Rule1 => "rule1",
        }
    }
}

#[derive(Debug, Clone)]
struct Measurement {
    pps: f64,
    secs: f64,
    sent: u64,
    events: u64,
    lost: u64,
    /// CPU time of the perf reader thread.
    reader_cpu: Duration,
}

struct ReaderResult {
    events: u64,
    lost: u64,
    cpu: Duration,
}

const SENDER_CPU: usize = 0;
const READER_CPU: usize = 1;

/// Best effort: on a single-CPU machine the second pin simply fails and the thread floats.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it for the calling thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec * 1000) as u32);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One timed run: load + attach for the mode, blast, count, detach.
fn measure(
    path: Path,
    mode: Mode,
    args: &Args,
    duration: Duration,
    rate: Option<u64>,
) -> Result<Measurement> {
    let aggregation = match mode {
        Mode::Bare | Mode::Hook => None,
        Mode::None => Some(Aggregation::None),
        Mode::Medium | Mode::Rule1 => Some(Aggregation::Medium),
    };
    let probes = aggregation
        .map(|a| Probes::start(a, args, args.prog_stats, mode == Mode::Rule1))
        .transpose()?;
    let hooks = if mode == Mode::Hook {
        Some(EmptyHooks::attach()?)
    } else {
        None
    };

    // Warm up routes and neighbours so ARP does not eat into the measurement.
    blast(&BlastConfig {
        path,
        flows: args.flows,
        payload: args.payload,
        duration: Duration::from_millis(100),
        rate: Some(1000),
    })?;
    std::thread::sleep(Duration::from_millis(50));

    let rx_before = rx_packets(NS_B, "eth0")?;
    let (sent, secs) = blast(&BlastConfig {
        path,
        flows: args.flows,
        payload: args.payload,
        duration,
        rate,
    })?;
    let rx_after = rx_packets(NS_B, "eth0")?;
    let reader = match probes {
        Some(p) => p.stop()?,
        None => ReaderResult {
            events: 0,
            lost: 0,
            cpu: Duration::ZERO,
        },
    };
    drop(hooks);
    let delivered = rx_after.saturating_sub(rx_before);
    Ok(Measurement {
        pps: delivered as f64 / secs,
        secs,
        sent,
        events: reader.events,
        lost: reader.lost,
        reader_cpu: reader.cpu,
    })
}

/// The do-nothing classifiers on the same hooks as the probes (TCX, ingress and egress of both
/// host-side veths).
struct EmptyHooks {
    _ebpf: aya::Ebpf,
}

impl EmptyHooks {
    fn attach() -> Result<Self> {
        use aya::programs::tc::TcAttachOptions;
        use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
        let mut ebpf = aya::Ebpf::load(periscope_probes::probes::EMPTY_OBJECT)?;
        for (name, direction) in [
            ("from_container", TcAttachType::Ingress),
            ("to_container", TcAttachType::Egress),
        ] {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .context("program missing from the empty object")?
                .try_into()?;
            program.load()?;
            for ifname in [IF_A, IF_B] {
                program.attach_with_options(
                    ifname,
                    direction,
                    TcAttachOptions::TcxOrder(LinkOrder::first()),
                )?;
            }
        }
        Ok(Self { _ebpf: ebpf })
    }
}

/// Probes loaded and attached to both pods' host-side veths, with a reader thread draining events.
struct Probes {
    datapath: Datapath,
    stop: Arc<AtomicBool>,
    reader: JoinHandle<Result<CountingSink>>,
    lost_before: u64,
    stats: Arc<periscope_datapath::perf::PerfStats>,
    /// Keeps BPF run-time stats enabled while open.
    stats_fd: Option<OwnedFd>,
    enforce_rule1: bool,
}

impl Probes {
    fn start(
        aggregation: Aggregation,
        args: &Args,
        prog_stats: bool,
        enforce_rule1: bool,
    ) -> Result<Self> {
        let stats_fd = if prog_stats { Some(aya_stats()?) } else { None };
        let config = LoaderConfig {
            instance: INSTANCE.to_owned(),
            aggregation,
            ..Default::default()
        };
        let mut datapath = Datapath::load(&config).context("loading probes")?;
        let pods = bench_pods()?;
        for (i, ((ip, ifname), pod)) in [(POD_A, IF_A), (POD_B, IF_B)]
            .into_iter()
            .zip(&pods)
            .enumerate()
        {
            datapath.endpoints_mut().insert(&Endpoint {
                ip: ip.into(),
                id: 100 + i as u16,
                ifindex: ifindex(ifname)?,
                identity: pod.identity,
            })?;
            datapath.ipcache_mut().insert(ip.into(), 32, pod.identity)?;
        }
        if enforce_rule1 {
            let stats = enforce_rule1_on(&mut datapath, &pods)?;
            if stats.endpoints_changed != 1 {
                bail!("rule1 should select pod B only: {stats:?}");
            }
        }
        datapath
            .ipcache_mut()
            .insert(NODE_IP.into(), 32, periscope_probes::abi::identity::HOST)?;
        let mut reader: PerfReader = datapath.perf_reader(&PerfConfig {
            pages_per_cpu: args.pages,
            wakeup_bytes: args.wakeup_bytes,
            flush_interval: Duration::from_millis(args.flush_ms),
        })?;
        let stats = reader.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("perf-reader".into())
                .spawn(move || -> Result<CountingSink> {
                    pin_to_cpu(READER_CPU);
                    let mut sink = CountingSink::default();
                    reader.run(&mut sink, &stop)?;
                    sink.cpu = thread_cpu_time();
                    Ok(sink)
                })?
        };
        datapath.attach_endpoint(IF_A)?;
        datapath.attach_endpoint(IF_B)?;
        Ok(Self {
            datapath,
            stop,
            reader,
            lost_before: stats.lost(),
            stats,
            stats_fd,
            enforce_rule1,
        })
    }

    /// Detaches, stops the reader after it drained, and returns (events read, events lost).
    fn stop(mut self) -> Result<ReaderResult> {
        if self.stats_fd.take().is_some() {
            for p in self.datapath.program_stats() {
                if p.run_count > 0 {
                    eprintln!(
                        "  {:<15} {:>10} runs  {:>6.0} ns/run",
                        p.program,
                        p.run_count,
                        p.run_time.as_nanos() as f64 / p.run_count as f64
                    );
                }
            }
        }
        self.datapath.detach_all();
        // One more tick so the reader drains what was written before the detach.
        std::thread::sleep(Duration::from_millis(30));
        self.stop.store(true, Ordering::Relaxed);
        let sink = self
            .reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        let lost = self.stats.lost() - self.lost_before;
        drop(self.datapath);
        if sink.traces + sink.verdicts != sink.events {
            eprintln!(
                "warning: {} of {} events were neither traces nor policy verdicts ({} drops)",
                sink.events - sink.traces - sink.verdicts,
                sink.events,
                sink.drops
            );
        }
        if self.enforce_rule1 && sink.verdicts == 0 {
            eprintln!("warning: rule1 is enforced but no policy verdict was reported");
        }
        Ok(ReaderResult {
            events: sink.events,
            lost: lost.max(sink.lost),
            cpu: sink.cpu,
        })
    }
}

/// Pod A as the tiefighter and pod B as a deathstar: endpoint ids 100 and 101, identities and
/// labels from the Star Wars plan.
fn bench_pods() -> Result<[EndpointInfo; 2]> {
    let plan = cluster::plan(
        &ClusterSpec::starwars(),
        "bench",
        None,
        std::path::Path::new("/nonexistent"),
    )?;
    let pod = |prefix: &str, id: u16| -> Result<EndpointInfo> {
        let p = plan
            .pods_named(prefix)
            .next()
            .with_context(|| format!("no {prefix} in the Star Wars spec"))?;
        let mut info = EndpointInfo::from(p);
        info.endpoint_id = id;
        Ok(info)
    };
    Ok([pod("tiefighter", 100)?, pod("deathstar", 101)?])
}

/// Enforces rule1 with its port retargeted to the blaster's (UDP `DST_PORT`).
fn enforce_rule1_on(
    datapath: &mut Datapath,
    pods: &[EndpointInfo; 2],
) -> Result<periscope_datapath::enforce::SyncStats> {
    let text = RULE1
        .replace("port: \"80\"", &format!("port: \"{DST_PORT}\""))
        .replace("protocol: TCP", "protocol: UDP");
    if text == RULE1 {
        bail!("rule1-l3-l4.yaml changed shape: cannot retarget its port");
    }
    let mut repo = PolicyRepository::new(PolicyContext::new("default", pods.to_vec()));
    repo.apply_text(&text, "rule1-l3-l4.yaml (UDP 9000)")?;
    let ingress = &repo
        .resolved()
        .endpoint(101)
        .context("pod B has no policy")?
        .ingress;
    if !ingress.enforced || !ingress.verdict(pods[0].identity, 17, DST_PORT).is_allowed() {
        bail!("rule1 does not allow pod A → pod B: {ingress:?}");
    }
    Ok(datapath.apply_policy(repo.resolved())?)
}

fn aya_stats() -> Result<OwnedFd> {
    Ok(periscope_datapath::loader::enable_run_time_stats()?)
}

/// Counts events and touches each header the way a decoder would.
#[derive(Default)]
struct CountingSink {
    events: u64,
    cpu: Duration,
    /// Events that decoded as trace notifications with captured bytes.
    traces: u64,
    /// Policy-verdict and drop notifications (rule1 mode).
    verdicts: u64,
    drops: u64,
    lost: u64,
}

impl EventSink for CountingSink {
    fn push(&mut self, event: RawEvent<'_>) {
        match event {
            RawEvent::Sample { data, .. } => {
                self.events += 1;
                match data.first() {
                    Some(&message_type::TRACE) => {
                        if let Some(h) = abi::read_header::<TraceNotify>(data) {
                            self.traces += u64::from(h.hdr.len_cap > 0);
                        }
                    }
                    Some(&message_type::POLICY_VERDICT) => self.verdicts += 1,
                    Some(&message_type::DROP) => self.drops += 1,
                    _ => {}
                }
            }
            RawEvent::Lost { count, .. } => self.lost += count,
        }
    }
}

struct BlastConfig {
    path: Path,
    flows: u16,
    payload: usize,
    duration: Duration,
    /// Packets/s; None = as fast as possible.
    rate: Option<u64>,
}

/// Sends UDP to pod B from the path's sender namespace. Returns (sent, seconds).
fn blast(cfg: &BlastConfig) -> Result<(u64, f64)> {
    let flows = cfg.flows;
    let payload = vec![0x5au8; cfg.payload];
    let duration = cfg.duration;
    let rate = cfg.rate;
    let (ns, src) = cfg.path.sender();
    std::thread::spawn(move || -> Result<(u64, f64)> {
        enter_netns(ns)?;
        // The whole send path (UDP, veth, forwarding, both probes) runs in this thread's
        // softirq context; pinning it keeps runs comparable.
        pin_to_cpu(SENDER_CPU);
        let sockets: Vec<std::net::UdpSocket> = (0..flows)
            .map(|_| std::net::UdpSocket::bind(SocketAddrV4::new(src, 0)))
            .collect::<io::Result<_>>()
            .context("binding blaster sockets")?;
        let dst = SocketAddrV4::new(POD_B, DST_PORT);
        for s in &sockets {
            s.connect(dst)?;
        }
        const BATCH: usize = 32;
        let mut sent: u64 = 0;
        let start = Instant::now();
        let mut flow = 0usize;
        // A hard cap keeps the loop bounded even if time stood still.
        let max_packets = 50_000_000u64;
        while start.elapsed() < duration && sent < max_packets {
            if let Some(rate) = rate {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                if sent >= due {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
            }
            let n = send_batch(&sockets[flow], &payload, BATCH);
            sent += n;
            flow = (flow + 1) % sockets.len();
        }
        Ok((sent, start.elapsed().as_secs_f64()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("blaster thread panicked"))?
}

/// Sends up to `n` copies of `payload` with one sendmmsg; returns how many went out.
fn send_batch(sock: &std::net::UdpSocket, payload: &[u8], n: usize) -> u64 {
    let mut iov: Vec<libc::iovec> = (0..n)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain data; zero is a valid "no name, no control" header.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs points at n initialised headers whose iovecs reference live memory.
    let rc = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    u64::try_from(rc).unwrap_or(0)
}

/// A UDP socket in pod B that is never read: the stack has a listener (no ICMP port-unreachable
/// replies), and once its small buffer is full each packet is dropped at the socket without
/// waking anyone, so no receiver competes with the perf reader for the second CPU.
fn sink_socket() -> Result<std::net::UdpSocket> {
    std::thread::spawn(|| -> Result<std::net::UdpSocket> {
        enter_netns(NS_B)?;
        Ok(std::net::UdpSocket::bind(SocketAddrV4::new(
            POD_B, DST_PORT,
        ))?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sink socket thread panicked"))?
}

/// Moves the calling thread into a named network namespace (/run/netns/<name>).
fn enter_netns(name: &str) -> Result<()> {
    let file = File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("opening netns {name}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET only affects this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("setns into {name}"));
    }
    Ok(())
}

/// `rx_packets` of `ifname` in namespace `ns`, read from a thread inside it.
fn rx_packets(ns: &str, ifname: &str) -> Result<u64> {
    let ns = ns.to_owned();
    let ifname = ifname.to_owned();
    std::thread::spawn(move || -> Result<u64> {
        enter_netns(&ns)?;
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
        for line in dev.lines().skip(2) {
            if let Some((name, rest)) = line.split_once(':')
                && name.trim() == ifname
            {
                // Receive columns: bytes packets errs drop ...
                let packets = rest
                    .split_whitespace()
                    .nth(1)
                    .context("short /proc/net/dev line")?;
                return Ok(packets.parse()?);
            }
        }
        bail!("{ifname} not found in {ns}")
    })
    .join()
    .map_err(|_| anyhow::anyhow!("rx counter thread panicked"))?
}

fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name)?;
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("interface {name} not found");
    }
    Ok(idx)
}

fn run(cmd: &[&str]) -> Result<()> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The three namespaces and two veth pairs; removed on drop (deleting a netns deletes its veths).
struct Topology {
    // Keeps the node namespace alive even if its /run/netns entry is removed early.
    _node: OwnedFd,
}

impl Topology {
    fn create() -> Result<Self> {
        Self::remove();
        let topo = (|| -> Result<Self> {
            for ns in [NS_NODE, NS_A, NS_B] {
                run(&["ip", "netns", "add", ns])?;
            }
            // Fixed MACs and permanent neighbours: no ARP in the measured path.
            for (ns, ifname, ip, n) in [(NS_A, IF_A, POD_A, 0x0a), (NS_B, IF_B, POD_B, 0x0b)] {
                let host_mac = format!("02:00:00:00:00:{n:02x}");
                let pod_mac = format!("02:00:00:00:01:{n:02x}");
                let cidr = format!("{ip}/32");
                let ip = ip.to_string();
                let host_v6 = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
                #[rustfmt::skip]
                let steps: [&[&str]; 12] = [
                    &["ip", "-n", NS_NODE, "link", "add", ifname, "address", &host_mac, "type", "veth",
                      "peer", "name", "eth0", "address", &pod_mac, "netns", ns],
                    &["ip", "netns", "exec", NS_NODE, "sysctl", "-qw", &host_v6],
                    &["ip", "-n", NS_NODE, "link", "set", ifname, "up"],
                    &["ip", "-n", NS_NODE, "route", "add", &cidr, "dev", ifname],
                    &["ip", "-n", NS_NODE, "neigh", "replace", &ip, "lladdr", &pod_mac, "dev", ifname,
                      "nud", "permanent"],
                    &["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                    &["ip", "-n", ns, "link", "set", "lo", "up"],
                    &["ip", "-n", ns, "addr", "add", &cidr, "dev", "eth0"],
                    &["ip", "-n", ns, "link", "set", "eth0", "up"],
                    &["ip", "-n", ns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link"],
                    &["ip", "-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0"],
                    &["ip", "-n", ns, "neigh", "replace", GATEWAY, "lladdr", &host_mac, "dev", "eth0",
                      "nud", "permanent"],
                ];
                for step in steps {
                    run(step)?;
                }
            }
            run(&[
                "ip",
                "netns",
                "exec",
                NS_NODE,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])?;
            let node_cidr = format!("{NODE_IP}/32");
            run(&["ip", "-n", NS_NODE, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", NS_NODE, "addr", "add", &node_cidr, "dev", "lo"])?;
            let node = OwnedFd::from(File::open(format!("/run/netns/{NS_NODE}"))?);
            Ok(Self { _node: node })
        })();
        if topo.is_err() {
            Self::remove();
        }
        topo
    }

    fn remove() {
        for ns in [NS_A, NS_B, NS_NODE] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        Self::remove();
    }
}
