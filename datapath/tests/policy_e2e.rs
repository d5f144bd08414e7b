//! End-to-end policy enforcement: the Star Wars cluster (real namespaces and veths, in-process
//! deathstar servers), the probes attached to every pod, policies compiled and written into the
//! maps, real curl traffic, and the notifications read back through the perf reader.
//!
//! Needs root (network namespaces, BPF); skips with a printed reason otherwise. Each test has
//! its own instance prefix, pod CIDR (10.24x.y.0/24) and datapath instance, and a guard that
//! detaches the probes and tears the cluster down also when an assertion fails. Traffic stays
//! between the namespaces a test created.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use periscope_datapath::cluster::{self, BuildOptions, Cluster, ClusterSpec, PodInfo, ServerMode};
use periscope_datapath::enforce::{self, PinnedPolicyMaps, desired_maps};
use periscope_datapath::identity::IpLookup;
use periscope_datapath::loader::{Datapath, LoaderConfig};
use periscope_datapath::maps::{Endpoint, monotonic_ns};
use periscope_datapath::perf::PerfConfig;
use periscope_datapath::policy::{MatchType, PolicyContext, PolicyRepository, Verdict};
use periscope_probes::abi::{
    self, DropNotify, PolicyVerdictNotify, TraceNotify, drop_reason, match_type, message_type,
    obs_point, trace_reason, verdict_flags,
};
use periscope_probes::probes::{Aggregation, CT_F_CLOSING, ct_lifetime, ct_scope};
use periscope_probes::source::{EventSink, EventSource, RawEvent};

const STEP: Duration = Duration::from_secs(15);
const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, veths, BPF)");
    }
    None
}

fn require_tools() {
    for tool in ["ip", "curl"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        assert!(
            found,
            "`{tool}` is not installed (apt-get install iproute2 curl)"
        );
    }
}

fn policy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(name)
}

/// The seed policy as shipped to users; the test copy must stay identical.
fn rule1_path() -> PathBuf {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/examples/rule1-l3-l4.yaml");
    if shared.is_file() {
        shared
    } else {
        policy_file("rule1-l3-l4.yaml")
    }
}

// ---- decoding what the probes emit ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pkt {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
}

/// Ethernet + IPv4 (+ TCP/UDP ports) from the captured bytes.
fn parse_pkt(b: &[u8]) -> Option<Pkt> {
    if b.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(*b.get(14)? & 0x0f) * 4;
    let ip = |o: usize| {
        Some(Ipv4Addr::new(
            *b.get(o)?,
            *b.get(o + 1)?,
            *b.get(o + 2)?,
            *b.get(o + 3)?,
        ))
    };
    let proto = *b.get(23)?;
    let l4 = 14 + ihl;
    let port = |o: usize| Some(u16::from_be_bytes([*b.get(l4 + o)?, *b.get(l4 + o + 1)?]));
    let (sport, dport) = if proto == TCP || proto == UDP {
        (port(0)?, port(2)?)
    } else {
        (0, 0)
    };
    Some(Pkt {
        src: ip(26)?,
        dst: ip(30)?,
        proto,
        sport,
        dport,
        tcp_flags: if proto == TCP { *b.get(l4 + 13)? } else { 0 },
    })
}

#[derive(Debug, Clone)]
enum Ev {
    Trace(TraceNotify, Option<Pkt>),
    Drop(DropNotify, Option<Pkt>),
    Verdict(PolicyVerdictNotify, Option<Pkt>),
    Other(u8),
}

fn captured(data: &[u8], hdr_len: usize, len_cap: u16) -> Option<Pkt> {
    let end = hdr_len + usize::from(len_cap);
    parse_pkt(data.get(hdr_len..end)?)
}

fn decode(data: &[u8]) -> Ev {
    match data.first() {
        Some(&message_type::TRACE) => {
            let h: TraceNotify = abi::read_header(data).expect("full trace header");
            Ev::Trace(h, captured(data, abi::TRACE_NOTIFY_V1_LEN, h.hdr.len_cap))
        }
        Some(&message_type::DROP) => {
            let h: DropNotify = abi::read_header(data).expect("full drop header");
            Ev::Drop(h, captured(data, abi::DROP_NOTIFY_V2_LEN, h.hdr.len_cap))
        }
        Some(&message_type::POLICY_VERDICT) => {
            let h: PolicyVerdictNotify = abi::read_header(data).expect("full verdict header");
            Ev::Verdict(
                h,
                captured(data, abi::POLICY_VERDICT_NOTIFY_LEN, h.hdr.len_cap),
            )
        }
        Some(t) => Ev::Other(*t),
        None => Ev::Other(0),
    }
}

struct Shared {
    samples: Mutex<Vec<Vec<u8>>>,
    lost: Mutex<u64>,
}

struct Sink(Arc<Shared>);

impl EventSink for Sink {
    fn push(&mut self, event: RawEvent<'_>) {
        match event {
            RawEvent::Sample { data, .. } => {
                if let Ok(mut s) = self.0.samples.lock() {
                    s.push(data.to_vec());
                }
            }
            RawEvent::Lost { count, .. } => {
                if let Ok(mut l) = self.0.lost.lock() {
                    *l += count;
                }
            }
        }
    }
}

// ---- the harness: cluster + datapath + reader thread, torn down on drop ----

struct Harness {
    prefix: String,
    /// The datapath instance (pin directory name).
    instance: String,
    root: PathBuf,
    cluster: Option<Cluster>,
    dp: Option<Datapath>,
    events: Arc<Shared>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Harness {
    fn start(tag: u8) -> Harness {
        let pid = std::process::id();
        let prefix = format!("pol{tag}{}", pid % 100_000);
        let cidr = Ipv4Net::new(Ipv4Addr::new(10, 240 + tag, (pid % 256) as u8, 0), 24)
            .expect("valid CIDR");
        let root = std::env::temp_dir().join("periscope-policy-e2e");
        let instance = format!("e2e-pol{tag}-{pid}");
        let mut h = Harness {
            prefix: prefix.clone(),
            instance: instance.clone(),
            root: root.clone(),
            cluster: None,
            dp: None,
            events: Arc::new(Shared {
                samples: Mutex::new(Vec::new()),
                lost: Mutex::new(0),
            }),
            stop: Arc::new(AtomicBool::new(false)),
            reader: None,
        };
        let opts = BuildOptions {
            prefix,
            pod_cidr: Some(cidr),
            server: ServerMode::InProcess,
            state_root: root,
        };
        let c = cluster::build(&ClusterSpec::starwars(), &opts).expect("build the cluster");

        let config = LoaderConfig {
            instance,
            aggregation: Aggregation::Medium,
            ..Default::default()
        };
        let mut dp = Datapath::load(&config).expect("load probes");
        for pod in &c.pods {
            dp.endpoints_mut()
                .insert(&Endpoint {
                    ip: IpAddr::V4(pod.ip),
                    id: pod.endpoint_id,
                    ifindex: pod.host_ifindex,
                    identity: pod.identity,
                })
                .expect("endpoint");
        }
        let node_ips = cluster::node_addresses().expect("node addresses");
        for (net, id) in IpLookup::from_cluster(&c, &node_ips).ipcache_entries() {
            dp.ipcache_mut()
                .insert(net.addr(), net.prefix_len(), id)
                .expect("ipcache");
        }
        // The reader must exist before traffic: the probes drop output with no ring behind it.
        let mut reader = dp
            .perf_reader(&PerfConfig {
                pages_per_cpu: 16,
                ..Default::default()
            })
            .expect("perf reader");
        let sink_events = Arc::clone(&h.events);
        let stop = Arc::clone(&h.stop);
        h.reader = Some(std::thread::spawn(move || {
            let mut sink = Sink(sink_events);
            if let Err(e) = reader.run(&mut sink, &stop) {
                eprintln!("perf reader stopped: {e}");
            }
        }));
        for pod in &c.pods {
            dp.attach_endpoint(&pod.host_ifname).expect("attach");
        }
        h.cluster = Some(c);
        h.dp = Some(dp);
        h
    }

    fn c(&self) -> &Cluster {
        self.cluster.as_ref().expect("cluster built")
    }

    fn dp(&mut self) -> &mut Datapath {
        self.dp.as_mut().expect("datapath loaded")
    }

    fn pod(&self, name: &str) -> PodInfo {
        self.c()
            .pods_named(name)
            .next()
            .unwrap_or_else(|| panic!("no pod {name}"))
            .clone()
    }

    fn repo(&self) -> PolicyRepository {
        PolicyRepository::new(PolicyContext::from_cluster(self.c()))
    }

    /// Enforces the repository's policy and checks the maps now say exactly that.
    fn enforce(&mut self, repo: &PolicyRepository) -> enforce::SyncStats {
        let stats = self
            .dp()
            .apply_policy(repo.resolved())
            .expect("apply policy");
        let live = self.dp().live_policy().expect("read policy maps");
        let mut want = desired_maps(repo.resolved()).expect("desired maps");
        want.retain(|_, m| m.enforce != 0 || !m.entries.is_empty());
        assert_eq!(live.effective(), want, "live policy maps");
        assert!(live.foreign.is_empty());
        stats
    }

    /// `curl -XPOST http://<ip>/v1/request-landing` from `from`: (succeeded, body).
    fn land(&self, from: &str, ip: Ipv4Addr) -> (bool, String) {
        let url = format!("http://{ip}/v1/request-landing");
        let out = self
            .c()
            .exec_timeout(
                from,
                &["curl", "-s", "--max-time", "3", "-XPOST", &url],
                STEP,
            )
            .unwrap_or_else(|e| panic!("curl from {from}: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Forgets the events read so far.
    fn clear(&self) {
        self.events.samples.lock().expect("events").clear();
    }

    fn events(&self) -> Vec<Ev> {
        self.events
            .samples
            .lock()
            .expect("events")
            .iter()
            .map(|s| decode(s))
            .collect()
    }

    /// Waits (bounded) until `done` holds for the events read so far, and returns them.
    fn wait_for(&self, what: &str, done: impl Fn(&[Ev]) -> bool) -> Vec<Ev> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let evs = self.events();
            if done(&evs) {
                return evs;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; events: {evs:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lost(&self) -> u64 {
        *self.events.lost.lock().expect("lost")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        drop(self.dp.take());
        let result = match self.cluster.take() {
            Some(c) => c.teardown(),
            None => cluster::teardown(&self.prefix, &self.root),
        };
        if let Err(e) = result {
            eprintln!("teardown of {} failed: {e}", self.prefix);
        }
    }
}

// ---- event filters ----

fn drops(evs: &[Ev], from: Ipv4Addr) -> Vec<(&DropNotify, Pkt)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Drop(h, Some(p)) if p.src == from => Some((h, *p)),
            _ => None,
        })
        .collect()
}

fn verdicts(evs: &[Ev], from: Ipv4Addr) -> Vec<(&PolicyVerdictNotify, Pkt)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Verdict(h, Some(p)) if p.src == from => Some((h, *p)),
            _ => None,
        })
        .collect()
}

fn traces(evs: &[Ev], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<(&TraceNotify, Pkt)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Trace(h, Some(p)) if p.src == src && p.dst == dst => Some((h, *p)),
            _ => None,
        })
        .collect()
}

fn pv_match(h: &PolicyVerdictNotify) -> u8 {
    (h.flags & verdict_flags::MATCH_TYPE_MASK) >> verdict_flags::MATCH_TYPE_SHIFT
}

fn pv_dir(h: &PolicyVerdictNotify) -> u8 {
    h.flags & verdict_flags::DIRECTION_MASK
}

/// The verdict value and match type the reference lookup gives.
fn expected(v: Verdict) -> (i32, u8) {
    let code = v.drop_reason().map_or(0, |r| -i32::from(r));
    (code, v.match_type().code())
}

#[test]
fn rule1_allows_empire_ships_and_drops_the_xwing() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED rule1 e2e: {reason}");
        return;
    }
    require_tools();
    let mut h = Harness::start(1);
    let ds = h.pod("deathstar");
    let tf = h.pod("tiefighter");
    let xw = h.pod("xwing");

    // --- no policy: everyone lands, nothing is evaluated ---
    for ship in ["tiefighter", "xwing"] {
        assert_eq!(
            h.land(ship, ds.ip),
            (true, "Ship landed\n".into()),
            "{ship}"
        );
    }
    let evs = h.wait_for("traces of both ships", |e| {
        !traces(e, xw.ip, ds.ip).is_empty() && !traces(e, tf.ip, ds.ip).is_empty()
    });
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Drop(..) | Ev::Verdict(..))),
        "no drops or verdicts without policy: {evs:#?}"
    );
    assert!(h.dp().live_policy().expect("live").effective().is_empty());

    // --- rule1 ---
    let mut repo = h.repo();
    repo.apply_file(&rule1_path()).expect("rule1 compiles");
    let stats = h.enforce(&repo);
    assert_eq!(stats.endpoints_changed, 2, "both deathstars: {stats:?}");
    assert!(stats.entries_written > 0);
    // Applying the same policy again changes nothing.
    let again = h.enforce(&repo);
    assert_eq!(
        (again.endpoints_changed, again.entries_written),
        (0, 0),
        "{again:?}"
    );
    h.clear();

    assert_eq!(h.land("tiefighter", ds.ip), (true, "Ship landed\n".into()));
    let (ok, body) = h.land("xwing", ds.ip);
    assert!(
        !ok && body.is_empty(),
        "the xwing must time out, got {body:?}"
    );

    let evs = h.wait_for("xwing drops and tiefighter replies", |e| {
        !drops(e, xw.ip).is_empty()
            && traces(e, ds.ip, tf.ip)
                .iter()
                .any(|(t, _)| t.hdr.subtype == obs_point::TO_LXC)
    });
    assert_eq!(h.lost(), 0, "no samples lost");
    let unknown: Vec<u8> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Other(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "only trace, drop and verdict notifications: {unknown:?}"
    );

    // Drops: the xwing's SYNs (and their retransmissions), at the deathstar's to_container.
    let xw_drops = drops(&evs, xw.ip);
    for (d, p) in &xw_drops {
        assert_eq!(d.hdr.subtype, drop_reason::POLICY_DENIED);
        assert_eq!(d.hdr.version, abi::DROP_NOTIFY_VERSION);
        assert_eq!(d.hdr.source, ds.endpoint_id);
        assert_eq!((d.src_label, d.dst_label), (xw.identity, ds.identity));
        assert_eq!(d.dst_id, u32::from(ds.endpoint_id));
        assert_eq!(d.ifindex, ds.host_ifindex);
        assert_eq!((p.dst, p.proto, p.dport), (ds.ip, TCP, 80));
        assert_eq!(
            p.tcp_flags & (SYN | ACK),
            SYN,
            "only SYNs reach the policy: {p:?}"
        );
        assert!(usize::from(d.hdr.len_cap) >= 54 && d.hdr.len_orig >= 54);
    }
    // One verdict per evaluation: every dropped SYN was judged, denied, match none.
    let xw_verdicts = verdicts(&evs, xw.ip);
    assert_eq!(xw_verdicts.len(), xw_drops.len(), "{xw_verdicts:#?}");
    let want = expected(
        repo.resolved()
            .endpoint(ds.endpoint_id)
            .expect("ds")
            .ingress
            .verdict(xw.identity, TCP, 80),
    );
    assert_eq!(want, (-133, match_type::NONE));
    for (v, p) in &xw_verdicts {
        assert_eq!((v.verdict, pv_match(v)), want);
        assert_eq!(pv_dir(v), verdict_flags::DIRECTION_INGRESS);
        assert_eq!(v.remote_label, xw.identity);
        assert_eq!((v.dst_port, v.proto), (80, TCP));
        assert_eq!(v.hdr.source, ds.endpoint_id);
        assert_eq!(v.hdr.version, abi::POLICY_VERDICT_NOTIFY_VERSION);
        assert_eq!(p.tcp_flags & SYN, SYN);
    }

    // The tiefighter: one allowed L3-L4 verdict for its one connection, then conntrack.
    let tf_verdicts = verdicts(&evs, tf.ip);
    assert_eq!(
        tf_verdicts.len(),
        1,
        "a verdict per new connection: {tf_verdicts:#?}"
    );
    let (v, vp) = tf_verdicts[0];
    assert_eq!((v.verdict, pv_match(v)), (0, match_type::L3_L4));
    assert_eq!(
        MatchType::L3L4,
        repo.resolved()
            .endpoint(ds.endpoint_id)
            .expect("ds")
            .ingress
            .verdict(tf.identity, TCP, 80)
            .match_type()
    );
    assert_eq!(
        (pv_dir(v), v.remote_label, v.hdr.source),
        (
            verdict_flags::DIRECTION_INGRESS,
            tf.identity,
            ds.endpoint_id
        )
    );
    assert!(
        drops(&evs, tf.ip).is_empty(),
        "nothing of the tiefighter is dropped"
    );
    let to_ds = traces(&evs, tf.ip, ds.ip);
    assert!(
        to_ds.iter().any(|(t, p)| t.hdr.subtype == obs_point::TO_LXC
            && t.reason == trace_reason::POLICY
            && p.sport == vp.sport
            && p.tcp_flags & SYN != 0),
        "the allowed SYN is traced as new: {to_ds:#?}"
    );
    let replies = traces(&evs, ds.ip, tf.ip);
    for point in [obs_point::FROM_LXC, obs_point::TO_LXC] {
        assert!(
            replies.iter().any(|(t, p)| t.hdr.subtype == point
                && t.reason == trace_reason::CT_REPLY
                && p.dport == vp.sport
                && (t.src_label, t.dst_label) == (ds.identity, tf.identity)),
            "reply traced at {point} as CT_REPLY: {replies:#?}"
        );
    }
    assert!(
        replies
            .iter()
            .all(|(t, _)| t.reason == trace_reason::CT_REPLY)
    );

    // Conntrack: the tiefighter's connection is known at the deathstar, the xwing's is not.
    let ct = h.dp().conntrack().list().expect("ct");
    let port_of = |k: &periscope_probes::probes::CtKey| u16::from_be(k.dport);
    let at_ds = |ip: Ipv4Addr, sport: u16| {
        ct.iter()
            .filter(|r| {
                r.key.scope == ct_scope::INGRESS
                    && u16::from_be(r.key.sport) == sport
                    && r.key.source() == Some(IpAddr::V4(ip))
                    && r.key.destination() == Some(IpAddr::V4(ds.ip))
                    && port_of(&r.key) == 80
            })
            .count()
    };
    assert!(at_ds(tf.ip, vp.sport) == 1, "tiefighter connection tracked");
    for (_, p) in &xw_drops {
        assert_eq!(
            at_ds(xw.ip, p.sport),
            0,
            "denied connections leave no state"
        );
    }

    // Garbage collection: closed connections go once their closing lifetime has passed.
    let closed: Vec<_> = ct
        .iter()
        .filter(|r| r.entry.flags & CT_F_CLOSING != 0 && port_of(&r.key) == 80)
        .map(|r| r.key)
        .collect();
    assert!(!closed.is_empty(), "curl closed its connections: {ct:#?}");
    let now = monotonic_ns();
    let gc = h.dp().conntrack_mut().gc(now).expect("gc now");
    assert_eq!(gc.deleted, 0, "nothing expired yet");
    let later = now + ct_lifetime::CLOSING_NS + 1_000_000_000;
    let gc = h.dp().conntrack_mut().gc(later).expect("gc later");
    assert!(gc.deleted >= closed.len(), "{gc:?}");
    let left = h.dp().conntrack().list().expect("ct");
    assert!(closed.iter().all(|k| !left.iter().any(|r| r.key == *k)));

    // The background sweeper keeps live entries and stops promptly.
    let pin_dir = h.dp().pin_dir().to_path_buf();
    let before = h.dp().conntrack().list().expect("ct").len();
    let sweeper = enforce::ConntrackGc::spawn(&pin_dir, Duration::from_millis(100)).expect("gc");
    std::thread::sleep(Duration::from_millis(350));
    let stopping = Instant::now();
    drop(sweeper);
    assert!(stopping.elapsed() < Duration::from_secs(1));
    assert!(h.dp().conntrack().list().expect("ct").len() >= before.min(1));

    // --- delete rule1 as `periscope policy delete` would: saved repository + pinned maps ---
    enforce::save_repository(h.c(), &repo).expect("save");
    {
        let mut pinned = PinnedPolicyMaps::open(&h.instance).expect("open the pinned maps");
        let mut saved = enforce::load_repository(h.c()).expect("load");
        assert_eq!(
            saved.resolved(),
            repo.resolved(),
            "the saved policy reloads"
        );
        saved.delete("rule1").expect("delete");
        let stats = pinned
            .sync(saved.resolved())
            .expect("sync through the pins");
        assert_eq!(stats.endpoints_changed, 2, "{stats:?}");
        enforce::save_repository(h.c(), &saved).expect("save");
        let live = pinned.live().expect("live");
        assert!(
            live.states.is_empty() && live.slots.is_empty(),
            "maps emptied: {live:?}"
        );
    }
    assert_eq!(
        enforce::load_repository(h.c())
            .expect("load")
            .policies()
            .count(),
        0
    );
    assert!(matches!(
        PinnedPolicyMaps::open("no-such-instance"),
        Err(enforce::EnforceError::NotRunning { .. })
    ));
    h.clear();
    assert_eq!(h.land("xwing", ds.ip), (true, "Ship landed\n".into()));
    let evs = h.wait_for("xwing traces", |e| !traces(e, ds.ip, xw.ip).is_empty());
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Drop(..) | Ev::Verdict(..)))
    );
}

/// Sends one UDP datagram from inside `pod`'s namespace.
fn send_udp(pod: &PodInfo, to: SocketAddrV4) {
    let path = format!("/run/netns/{}", pod.netns);
    let from = pod.ip;
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("netns file");
        // SAFETY: a valid namespace fd; CLONE_NEWNET only affects this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        let sock = UdpSocket::bind(SocketAddrV4::new(from, 0)).expect("bind");
        sock.send_to(b"periscope", to).expect("send");
    })
    .join()
    .expect("udp sender");
}

#[test]
fn egress_rules_drop_at_the_source() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED egress e2e: {reason}");
        return;
    }
    require_tools();
    let mut h = Harness::start(2);
    let ds = h.pod("deathstar");
    let tf = h.pod("tiefighter");
    let xw = h.pod("xwing");

    let mut repo = h.repo();
    repo.apply_file(&policy_file("xwing-egress.yaml"))
        .expect("compiles");
    let stats = h.enforce(&repo);
    assert_eq!(stats.endpoints_changed, 1, "only the xwing: {stats:?}");
    // The CIDR identities are in the ipcache.
    let ipcache = h.dp().ipcache().list().expect("ipcache");
    for (prefix, id) in &repo.resolved().cidr_identities {
        assert!(
            ipcache.iter().any(|e| e.prefix == prefix.addr()
                && e.prefix_len == prefix.prefix_len()
                && e.identity == *id),
            "{prefix} missing: {ipcache:?}"
        );
    }
    assert!(!repo.resolved().cidr_identities.is_empty());
    // A pod inside 10.0.0.0/8 keeps its own identity (CIDR rules never select pods).
    assert_eq!(
        h.dp().ipcache().lookup(IpAddr::V4(ds.ip)).expect("lookup"),
        Some(ds.identity)
    );
    h.clear();

    let (ok, _) = h.land("xwing", ds.ip);
    assert!(!ok, "the xwing may not leave for the deathstar");
    assert_eq!(h.land("tiefighter", ds.ip), (true, "Ship landed\n".into()));
    // UDP/53 is allowed to anyone by port alone.
    send_udp(&xw, SocketAddrV4::new(ds.ip, 53));

    let evs = h.wait_for("xwing egress drop and DNS verdict", |e| {
        !drops(e, xw.ip).is_empty()
            && verdicts(e, xw.ip).iter().any(|(_, p)| p.proto == UDP)
            && !traces(e, ds.ip, tf.ip).is_empty()
    });
    let egress = &repo
        .resolved()
        .endpoint(xw.endpoint_id)
        .expect("xwing")
        .egress;
    for (d, p) in drops(&evs, xw.ip) {
        assert_eq!(d.hdr.subtype, drop_reason::POLICY_DENIED);
        assert_eq!(
            d.hdr.source, xw.endpoint_id,
            "dropped at the xwing's own hook"
        );
        assert_eq!(d.dst_id, 0, "egress drops carry no destination endpoint");
        assert_eq!(d.ifindex, xw.host_ifindex);
        assert_eq!((d.src_label, d.dst_label), (xw.identity, ds.identity));
        assert_eq!((p.dst, p.dport), (ds.ip, 80));
    }
    let vs = verdicts(&evs, xw.ip);
    let tcp: Vec<_> = vs.iter().filter(|(_, p)| p.proto == TCP).collect();
    assert_eq!(tcp.len(), drops(&evs, xw.ip).len());
    for (v, _) in &tcp {
        assert_eq!(
            (v.verdict, pv_match(v)),
            expected(egress.verdict(ds.identity, TCP, 80))
        );
        assert_eq!(pv_dir(v), verdict_flags::DIRECTION_EGRESS);
        assert_eq!(
            (v.remote_label, v.hdr.source),
            (ds.identity, xw.endpoint_id)
        );
    }
    let (v, _) = vs
        .iter()
        .find(|(_, p)| p.proto == UDP)
        .expect("DNS verdict");
    assert_eq!((v.verdict, pv_match(v)), (0, match_type::L4_ONLY));
    assert_eq!(
        (v.verdict, pv_match(v)),
        expected(egress.verdict(ds.identity, UDP, 53))
    );
    assert_eq!((v.dst_port, v.proto), (53, UDP));
    assert!(
        traces(&evs, xw.ip, ds.ip)
            .iter()
            .any(|(t, p)| p.proto == UDP && t.hdr.subtype == obs_point::TO_LXC),
        "the allowed datagram reached the deathstar"
    );
    // The tiefighter is not selected: no verdicts, no drops.
    assert!(verdicts(&evs, tf.ip).is_empty() && drops(&evs, tf.ip).is_empty());

    // Deleting the policy removes its CIDR identities again.
    repo.delete("xwing-egress").expect("delete");
    let stats = h.enforce(&repo);
    assert_eq!(stats.ipcache_deletes, 3, "{stats:?}");
    let ipcache = h.dp().ipcache().list().expect("ipcache");
    assert!(ipcache.iter().all(|e| e.identity < 1 << 24), "{ipcache:?}");
    assert_eq!(h.land("xwing", ds.ip), (true, "Ship landed\n".into()));
}

#[test]
fn deny_rules_win_with_reason_181() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED deny e2e: {reason}");
        return;
    }
    require_tools();
    let mut h = Harness::start(3);
    let ds = h.pod("deathstar");
    let tf = h.pod("tiefighter");
    let xw = h.pod("xwing");

    // rule1 allows the empire; the deny rule takes the tiefighter out again.
    let mut repo = h.repo();
    repo.apply_file(&rule1_path()).expect("rule1");
    repo.apply_file(&policy_file("deny-tiefighter.yaml"))
        .expect("deny");
    h.enforce(&repo);
    h.clear();
    let (ok, _) = h.land("tiefighter", ds.ip);
    assert!(!ok, "denied by rule");
    let (ok, _) = h.land("xwing", ds.ip);
    assert!(!ok, "not allowed by rule1");
    let evs = h.wait_for("both ships dropped", |e| {
        !drops(e, tf.ip).is_empty() && !drops(e, xw.ip).is_empty()
    });
    let ingress = &repo
        .resolved()
        .endpoint(ds.endpoint_id)
        .expect("ds")
        .ingress;
    assert!(
        drops(&evs, tf.ip)
            .iter()
            .all(|(d, _)| d.hdr.subtype == drop_reason::POLICY_DENY)
    );
    assert!(
        drops(&evs, xw.ip)
            .iter()
            .all(|(d, _)| d.hdr.subtype == drop_reason::POLICY_DENIED)
    );
    let tf_v = verdicts(&evs, tf.ip);
    assert!(!tf_v.is_empty());
    for (v, _) in tf_v {
        assert_eq!(
            (v.verdict, pv_match(v)),
            expected(ingress.verdict(tf.identity, TCP, 80))
        );
        assert_eq!(v.verdict, -181);
    }

    // The deny rule alone, with default deny off: the deathstar is enforced, but everyone
    // else lands (allow-all entry, match type "all").
    repo.delete("rule1").expect("delete rule1");
    repo.apply_text(
        &std::fs::read_to_string(policy_file("deny-tiefighter.yaml"))
            .expect("policy file")
            .replace("spec:\n", "spec:\n  enableDefaultDeny: {ingress: false}\n"),
        "deny-tiefighter-no-default-deny.yaml",
    )
    .expect("deny without default deny");
    let ingress = &repo
        .resolved()
        .endpoint(ds.endpoint_id)
        .expect("ds")
        .ingress;
    assert!(ingress.enforced && !ingress.default_deny);
    h.enforce(&repo);
    h.clear();
    assert_eq!(h.land("xwing", ds.ip), (true, "Ship landed\n".into()));
    let (ok, _) = h.land("tiefighter", ds.ip);
    assert!(!ok);
    let evs = h.wait_for("verdicts for both", |e| {
        !verdicts(e, xw.ip).is_empty() && !drops(e, tf.ip).is_empty()
    });
    let ingress = &repo
        .resolved()
        .endpoint(ds.endpoint_id)
        .expect("ds")
        .ingress;
    let (v, _) = verdicts(&evs, xw.ip)[0];
    assert_eq!((v.verdict, pv_match(v)), (0, match_type::ALL));
    assert_eq!(
        (v.verdict, pv_match(v)),
        expected(ingress.verdict(xw.identity, TCP, 80))
    );
    assert!(
        drops(&evs, tf.ip)
            .iter()
            .all(|(d, _)| d.hdr.subtype == drop_reason::POLICY_DENY)
    );
}
