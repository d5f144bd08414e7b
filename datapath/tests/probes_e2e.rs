//! End-to-end: real probes on a real veth pair, events read through the perf reader.
//!
//! Needs root (creates a network namespace and a veth pair, loads BPF programs); skips with a
//! printed reason otherwise. Traffic stays inside the veth pair the test creates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use periscope_datapath::loader::{
    AttachMode, AttachPreference, Datapath, Hook, LoaderConfig, LoaderError, PIN_ROOT,
    tcx_attachments,
};
use periscope_datapath::maps::Endpoint;
use periscope_datapath::perf::{PerfConfig, PerfReader};
use periscope_probes::abi::{
    self, TraceNotify, message_type, notify_flags, obs_point, trace_reason,
};
use periscope_probes::probes::Aggregation;
use periscope_probes::source::{EventSink, EventSource, RawEvent};

const POD_IDENTITY: u32 = 12345;
const HOST_IDENTITY: u32 = 4242;
const POD_ENDPOINT_ID: u16 = 77;

fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: needs root (netns, veth, BPF)");
        return true;
    }
    false
}

fn run(cmd: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A netns with one end of a veth pair; the other end stays in the test's netns. Removed on drop,
/// also when the test fails.
struct PodNet {
    ns: String,
    host_if: String,
    host_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
}

impl PodNet {
    fn create(tag: u8) -> Self {
        let pid = std::process::id();
        // /24 unlikely to collide with a parallel run; interface names stay within 15 chars.
        let subnet = 20 + ((pid as u8).wrapping_mul(7).wrapping_add(tag) % 200);
        let net = Self {
            ns: format!("periscope-e2e-{pid}-{tag}"),
            host_if: format!("pe{}h{tag}", pid % 10_000_000),
            host_ip: Ipv4Addr::new(10, 213, subnet, 1),
            pod_ip: Ipv4Addr::new(10, 213, subnet, 2),
        };
        let pod_if = format!("pe{}p{tag}", pid % 10_000_000);
        let host_cidr = format!("{}/24", net.host_ip);
        let pod_cidr = format!("{}/24", net.pod_ip);
        let host_v6_off = format!("net.ipv6.conf.{}.disable_ipv6=1", net.host_if);
        let pod_v6_off = format!("net.ipv6.conf.{pod_if}.disable_ipv6=1");
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", &net.ns],
            vec![
                "ip",
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &pod_if,
            ],
            vec!["ip", "link", "set", &pod_if, "netns", &net.ns],
            vec!["sysctl", "-qw", &host_v6_off],
            vec!["ip", "addr", "add", &host_cidr, "dev", &net.host_if],
            vec!["ip", "link", "set", &net.host_if, "up"],
            vec!["ip", "netns", "exec", &net.ns, "sysctl", "-qw", &pod_v6_off],
            vec![
                "ip", "-n", &net.ns, "addr", "add", &pod_cidr, "dev", &pod_if,
            ],
            vec!["ip", "-n", &net.ns, "link", "set", &pod_if, "up"],
            vec!["ip", "-n", &net.ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = run(&step) {
                drop(net);
                panic!("setting up the test network: {e}");
            }
        }
        net
    }

    /// Pings the host side from inside the pod: `count` echo requests, bounded in time.
    fn ping(&self, count: u32, interval: &str) {
        let count = count.to_string();
        let host = self.host_ip.to_string();
        run(&[
            "ip", "netns", "exec", &self.ns, "ping", "-q", "-n", "-c", &count, "-i", interval,
            "-W", "1", "-w", "20", &host,
        ])
        .expect("ping through the veth pair");
    }

    /// Adds IPv6 addresses (no duplicate address detection, so they are usable at once).
    fn enable_ipv6(&self, tag: u8) -> (Ipv6Addr, Ipv6Addr) {
        let host: Ipv6Addr = format!("fd00:213:{tag}::1").parse().expect("v6");
        let pod: Ipv6Addr = format!("fd00:213:{tag}::2").parse().expect("v6");
        let pod_if = self.host_if.replacen('h', "p", 1);
        let (host_cidr, pod_cidr) = (format!("{host}/64"), format!("{pod}/64"));
        let host_v6_on = format!("net.ipv6.conf.{}.disable_ipv6=0", self.host_if);
        let pod_v6_on = format!("net.ipv6.conf.{pod_if}.disable_ipv6=0");
        #[rustfmt::skip]
        let steps: [&[&str]; 4] = [
            &["sysctl", "-qw", &host_v6_on],
            &["ip", "netns", "exec", &self.ns, "sysctl", "-qw", &pod_v6_on],
            &["ip", "addr", "add", &host_cidr, "dev", &self.host_if, "nodad"],
            &["ip", "-n", &self.ns, "addr", "add", &pod_cidr, "dev", &pod_if, "nodad"],
        ];
        for step in steps {
            run(step).expect("enabling IPv6 on the test pair");
        }
        (host, pod)
    }

    fn ping6(&self, target: Ipv6Addr, count: u32) {
        let count = count.to_string();
        let target = target.to_string();
        run(&[
            "ip", "netns", "exec", &self.ns, "ping", "-6", "-q", "-n", "-c", &count, "-i", "0.2",
            "-W", "1", "-w", "20", &target,
        ])
        .expect("ping6 through the veth pair");
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

#[derive(Default)]
struct Collect {
    samples: Vec<Vec<u8>>,
    lost: u64,
    flushes: usize,
}

impl EventSink for Collect {
    fn push(&mut self, event: RawEvent<'_>) {
        match event {
            RawEvent::Sample {
                data, timestamp_ns, ..
            } => {
                assert!(
                    timestamp_ns > 1_600_000_000_000_000_000,
                    "wall-clock timestamp"
                );
                self.samples.push(data.to_vec());
            }
            RawEvent::Lost { count, .. } => self.lost += count,
        }
    }

    fn flush(&mut self) {
        self.flushes += 1;
    }
}

/// Drains the reader until two consecutive polls come back empty (bounded by `limit`).
fn drain(reader: &mut PerfReader, sink: &mut Collect, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut empty = 0;
    while empty < 2 && Instant::now() < deadline {
        match reader
            .read_once(sink, Duration::from_millis(20))
            .expect("poll")
        {
            0 => empty += 1,
            _ => empty = 0,
        }
    }
}

/// A decoded trace notification plus what the captured bytes say about the packet.
#[derive(Debug)]
struct Trace {
    hdr: TraceNotify,
    ip_proto: Option<u8>,
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    icmp_type: Option<u8>,
    /// Echo sequence number: per-CPU rings do not preserve order across CPUs, this does.
    icmp_seq: Option<u16>,
}

fn decode(data: &[u8]) -> Trace {
    let hdr: TraceNotify = abi::read_header(data).expect("sample holds a full trace header");
    let cap = usize::from(hdr.hdr.len_cap);
    let pkt = data
        .get(abi::TRACE_NOTIFY_V1_LEN..abi::TRACE_NOTIFY_V1_LEN + cap)
        .expect("captured bytes present");
    let is_ipv4 = pkt.len() >= 34 && pkt[12..14] == [0x08, 0x00];
    let ip = |o: usize| Ipv4Addr::new(pkt[o], pkt[o + 1], pkt[o + 2], pkt[o + 3]);
    let icmp = (is_ipv4 && pkt[23] == 1)
        .then(|| pkt.get(14 + usize::from(pkt[14] & 0x0f) * 4..))
        .flatten()
        .filter(|l4| l4.len() >= 8);
    Trace {
        ip_proto: is_ipv4.then(|| pkt[23]),
        src: is_ipv4.then(|| ip(26)),
        dst: is_ipv4.then(|| ip(30)),
        icmp_type: icmp.map(|l4| l4[0]),
        icmp_seq: icmp.map(|l4| u16::from_be_bytes([l4[6], l4[7]])),
        hdr,
    }
}

/// ICMP traces in packet order (by echo sequence number).
fn icmp_traces(samples: &[Vec<u8>]) -> Vec<Trace> {
    let mut traces: Vec<Trace> = samples
        .iter()
        .map(|s| decode(s))
        .filter(|t| t.ip_proto == Some(1))
        .collect();
    traces.sort_by_key(|t| t.icmp_seq);
    traces
}

fn setup(
    net: &PodNet,
    instance: &str,
    aggregation: Aggregation,
    attach: AttachPreference,
) -> (Datapath, PerfReader) {
    let config = LoaderConfig {
        instance: instance.to_owned(),
        aggregation,
        attach,
        ..Default::default()
    };
    let mut dp = Datapath::load(&config).expect("load probes");
    let ifindex = nix_ifindex(&net.host_if);
    dp.endpoints_mut()
        .insert(&Endpoint {
            ip: IpAddr::V4(net.pod_ip),
            id: POD_ENDPOINT_ID,
            ifindex,
            identity: POD_IDENTITY,
        })
        .expect("endpoint insert");
    dp.ipcache_mut()
        .insert(IpAddr::V4(net.pod_ip), 32, POD_IDENTITY)
        .expect("ipcache insert");
    dp.ipcache_mut()
        .insert(IpAddr::V4(net.host_ip), 32, HOST_IDENTITY)
        .expect("ipcache insert");
    // The reader must be in place before traffic: the probes drop output with no ring behind it.
    let reader = dp
        .perf_reader(&PerfConfig {
            pages_per_cpu: 8,
            ..Default::default()
        })
        .expect("perf reader");
    (dp, reader)
}

fn nix_ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("no NUL");
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(idx, 0, "{name} exists");
    idx
}

fn our_tcx_programs(ifname: &str) -> Vec<String> {
    let mut names = Vec::new();
    for dir in [Hook::FromContainer, Hook::ToContainer] {
        for a in tcx_attachments(ifname, dir.attach_type()).expect("tcx query") {
            if let Some(p) = a
                .program
                .filter(|p| p == "from_container" || p == "to_container")
            {
                names.push(p);
            }
        }
    }
    names.sort();
    names
}

fn assert_torn_down(instance: &str, net: &PodNet) {
    let pins = Path::new("/sys/fs/bpf").join(PIN_ROOT).join(instance);
    assert!(!pins.exists(), "{} left behind", pins.display());
    assert!(
        our_tcx_programs(&net.host_if).is_empty(),
        "TCX links left on {}",
        net.host_if
    );
    for dir in ["ingress", "egress"] {
        let filters = run(&["tc", "filter", "show", "dev", &net.host_if, dir]).unwrap_or_default();
        assert!(
            !filters.contains("_container"),
            "clsact filter left on {} {dir}: {filters}",
            net.host_if
        );
    }
}

#[test]
fn traces_every_ping_then_aggregates() {
    if skip_unless_root("traces_every_ping_then_aggregates") {
        return;
    }
    let net = PodNet::create(1);
    let instance = format!("e2e-trace-{}", std::process::id());
    const PINGS: u32 = 5;

    // --- aggregation none: one trace per packet, in both directions ---
    {
        let (mut dp, mut reader) =
            setup(&net, &instance, Aggregation::None, AttachPreference::Auto);
        assert_eq!(
            dp.attach_endpoint(&net.host_if).expect("attach"),
            AttachMode::Tcx,
            "this kernel has TCX"
        );
        assert!(
            dp.pin_dir().join("events").exists() && dp.pin_dir().join("ipcache").exists(),
            "maps pinned"
        );
        assert_eq!(
            our_tcx_programs(&net.host_if),
            ["from_container", "to_container"]
        );

        assert!(
            matches!(
                dp.perf_reader(&PerfConfig::default()),
                Err(LoaderError::ReaderActive)
            ),
            "one reader per datapath"
        );

        net.ping(PINGS, "0.2");
        let mut sink = Collect::default();
        drain(&mut reader, &mut sink, Duration::from_secs(5));
        assert_eq!(sink.lost, 0);
        assert_eq!(reader.stats().lost(), 0);
        assert_eq!(reader.stats().malformed(), 0);
        assert_eq!(reader.stats().samples(), sink.samples.len() as u64);
        assert!(sink.flushes > 0, "sink flushed after reads");

        let host_ifindex = nix_ifindex(&net.host_if);
        let traces = icmp_traces(&sink.samples);
        let from: Vec<&Trace> = traces
            .iter()
            .filter(|t| t.hdr.hdr.subtype == obs_point::FROM_LXC)
            .collect();
        let to: Vec<&Trace> = traces
            .iter()
            .filter(|t| t.hdr.hdr.subtype == obs_point::TO_LXC)
            .collect();
        assert_eq!(
            from.len(),
            PINGS as usize,
            "one FROM_LXC trace per echo request: {traces:#?}"
        );
        assert_eq!(
            to.len(),
            PINGS as usize,
            "one TO_LXC trace per echo reply: {traces:#?}"
        );
        assert_eq!(traces.len(), 2 * PINGS as usize);

        for t in &traces {
            let h = &t.hdr;
            assert_eq!(h.hdr.msg_type, message_type::TRACE);
            assert_eq!(h.hdr.version, abi::TRACE_NOTIFY_VERSION);
            assert_eq!(
                u32::from(h.hdr.len_cap),
                h.hdr.len_orig.min(abi::CAPTURE_LEN as u32)
            );
            assert_eq!(h.hdr.source, POD_ENDPOINT_ID);
            assert_eq!(h.ifindex, host_ifindex);
            assert_eq!(h.flags, 0, "IPv4");
        }
        for (i, t) in from.iter().enumerate() {
            assert_eq!(t.icmp_seq, Some(i as u16 + 1), "every request seen once");
            assert_eq!((t.src, t.dst), (Some(net.pod_ip), Some(net.host_ip)));
            assert_eq!(t.icmp_type, Some(8), "echo request");
            assert_eq!(
                (t.hdr.src_label, t.hdr.dst_label),
                (POD_IDENTITY, HOST_IDENTITY)
            );
            assert_eq!(t.hdr.dst_id, 0, "the host is not an endpoint");
            let want = if i == 0 {
                trace_reason::POLICY
            } else {
                trace_reason::CT_ESTABLISHED
            };
            assert_eq!(t.hdr.reason, want, "request {i}");
        }
        for t in &to {
            assert_eq!((t.src, t.dst), (Some(net.host_ip), Some(net.pod_ip)));
            assert_eq!(t.icmp_type, Some(0), "echo reply");
            assert_eq!(
                (t.hdr.src_label, t.hdr.dst_label),
                (HOST_IDENTITY, POD_IDENTITY)
            );
            assert_eq!(t.hdr.dst_id, POD_ENDPOINT_ID);
            assert_eq!(t.hdr.reason, trace_reason::CT_REPLY);
        }

        // Conntrack holds the echo "connection" with both directions counted.
        let ct = dp.conntrack().list().expect("ct list");
        let icmp = ct
            .iter()
            .find(|r| r.key.proto == 1 && r.key.source() == Some(IpAddr::V4(net.pod_ip)))
            .expect("icmp ct entry");
        assert_eq!(icmp.entry.tx_packets, u64::from(PINGS));
        assert_eq!(icmp.entry.rx_packets, u64::from(PINGS));

        // Unknown address → WORLD; the map API round-trips.
        assert_eq!(
            dp.ipcache()
                .lookup("192.0.2.1".parse().unwrap())
                .expect("lookup"),
            None
        );
        assert_eq!(dp.ipcache().list().expect("list").len(), 2);
        assert_eq!(dp.endpoints().list().expect("list")[0].id, POD_ENDPOINT_ID);
        assert!(
            dp.ipcache_mut()
                .remove(IpAddr::V4(net.host_ip), 32)
                .expect("remove")
        );
        assert!(
            !dp.ipcache_mut()
                .remove(IpAddr::V4(net.host_ip), 32)
                .expect("remove twice")
        );
        drop(reader);
        drop(dp);
    }
    assert_torn_down(&instance, &net);

    // --- aggregation medium: the same kind of traffic, reported once per direction ---
    {
        let (mut dp, reader) = setup(&net, &instance, Aggregation::Medium, AttachPreference::Auto);
        dp.attach_endpoint(&net.host_if).expect("attach");
        let stats = reader.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let reader_thread = {
            let stop = Arc::clone(&stop);
            let mut reader = reader;
            std::thread::spawn(move || {
                let mut sink = Collect::default();
                reader.run(&mut sink, &stop).expect("reader runs");
                sink
            })
        };
        // 10 echo exchanges within well under the 5 s report interval.
        net.ping(10, "0.05");
        std::thread::sleep(Duration::from_millis(100));
        let stopped_at = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let sink = reader_thread.join().expect("reader thread");
        assert!(
            stopped_at.elapsed() < Duration::from_secs(1),
            "stop honoured within a tick"
        );
        assert_eq!(stats.lost(), 0);

        let traces = icmp_traces(&sink.samples);
        let from: Vec<&Trace> = traces
            .iter()
            .filter(|t| t.hdr.hdr.subtype == obs_point::FROM_LXC)
            .collect();
        let to: Vec<&Trace> = traces
            .iter()
            .filter(|t| t.hdr.hdr.subtype == obs_point::TO_LXC)
            .collect();
        assert_eq!(
            from.len(),
            1,
            "only the first request is reported: {traces:#?}"
        );
        assert_eq!(from[0].hdr.reason, trace_reason::POLICY);
        assert_eq!(to.len(), 1, "only the first reply is reported: {traces:#?}");
        assert_eq!(to[0].hdr.reason, trace_reason::CT_REPLY);
        drop(dp);
    }
    assert_torn_down(&instance, &net);
}

#[test]
fn restarts_replace_stale_pins_and_attachments() {
    if skip_unless_root("restarts_replace_stale_pins_and_attachments") {
        return;
    }
    let net = PodNet::create(2);
    let instance = format!("e2e-restart-{}", std::process::id());

    // clsact path: a "crashed" run leaves its filters and pins behind.
    let (mut crashed, reader) = setup(&net, &instance, Aggregation::None, AttachPreference::Clsact);
    assert_eq!(
        crashed.attach_endpoint(&net.host_if).expect("attach"),
        AttachMode::Clsact
    );
    let stale_pin = crashed.pin_dir().join("stale-marker");
    std::fs::create_dir(&stale_pin).expect("marker in the pin dir");
    drop(reader);
    std::mem::forget(crashed);
    let filters = run(&["tc", "filter", "show", "dev", &net.host_if, "ingress"]).expect("tc");
    assert!(
        filters.contains("from_container"),
        "filter present: {filters}"
    );

    let (mut restarted, mut reader) =
        setup(&net, &instance, Aggregation::None, AttachPreference::Clsact);
    assert!(!stale_pin.exists(), "stale pins removed on load");
    restarted.attach_endpoint(&net.host_if).expect("attach");
    // Re-attaching the same hook replaces our own attachment rather than adding one.
    restarted
        .attach(&net.host_if, Hook::FromContainer)
        .expect("re-attach");
    for dir in ["ingress", "egress"] {
        let filters = run(&["tc", "filter", "show", "dev", &net.host_if, dir]).expect("tc");
        assert_eq!(
            filters.lines().filter(|l| l.contains("_container")).count(),
            1,
            "exactly one filter on {dir}: {filters}"
        );
    }
    assert_eq!(restarted.attachments().len(), 2);

    // The surviving attachment works.
    net.ping(2, "0.2");
    let mut sink = Collect::default();
    drain(&mut reader, &mut sink, Duration::from_secs(5));
    assert_eq!(icmp_traces(&sink.samples).len(), 4);
    drop(reader);
    drop(restarted);
    assert_torn_down(&instance, &net);

    // TCX path: a second datapath taking over an interface removes the first one's links.
    let other = format!("{instance}-b");
    let (mut first, r1) = setup(&net, &instance, Aggregation::None, AttachPreference::Tcx);
    first.attach_endpoint(&net.host_if).expect("attach first");
    let (mut second, r2) = setup(&net, &other, Aggregation::None, AttachPreference::Tcx);
    second.attach_endpoint(&net.host_if).expect("attach second");
    assert_eq!(
        our_tcx_programs(&net.host_if),
        ["from_container", "to_container"],
        "no duplicates"
    );
    drop((r1, r2));
    drop(second);
    assert!(our_tcx_programs(&net.host_if).is_empty());
    drop(first);
    assert_torn_down(&instance, &net);
    assert_torn_down(&other, &net);
}

/// Echo requests/replies (ICMPv6 128/129) decoded from IPv6 captures: (trace, type, seq).
fn icmpv6_echoes(samples: &[Vec<u8>]) -> Vec<(TraceNotify, u8, u16, Ipv6Addr, Ipv6Addr)> {
    let mut out = Vec::new();
    for s in samples {
        let hdr: TraceNotify = abi::read_header(s).expect("trace header");
        let cap = usize::from(hdr.hdr.len_cap);
        let Some(pkt) = s.get(abi::TRACE_NOTIFY_V1_LEN..abi::TRACE_NOTIFY_V1_LEN + cap) else {
            continue;
        };
        // Ethernet, IPv6 (next header ICMPv6 = 58), ICMPv6 echo.
        if pkt.len() < 62 || pkt[12..14] != [0x86, 0xdd] || pkt[20] != 58 {
            continue;
        }
        let ty = pkt[54];
        if ty != 128 && ty != 129 {
            continue;
        }
        let addr = |o: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&pkt[o..o + 16]);
            Ipv6Addr::from(b)
        };
        let seq = u16::from_be_bytes([pkt[60], pkt[61]]);
        out.push((hdr, ty, seq, addr(22), addr(38)));
    }
    out.sort_by_key(|e| (e.2, e.1 == 129));
    out
}

#[test]
fn ipv6_and_uplink_hooks_are_traced() {
    if skip_unless_root("ipv6_and_uplink_hooks_are_traced") {
        return;
    }
    let net = PodNet::create(3);
    let (host6, pod6) = net.enable_ipv6(3);
    let instance = format!("e2e-v6-{}", std::process::id());
    let (mut dp, mut reader) = setup(&net, &instance, Aggregation::None, AttachPreference::Auto);
    // Identities for the pod /128 and, via a shorter prefix, everything else in the /64.
    dp.ipcache_mut()
        .insert(IpAddr::V6(pod6), 128, POD_IDENTITY)
        .expect("ipcache v6");
    dp.ipcache_mut()
        .insert(IpAddr::V6(host6), 64, HOST_IDENTITY)
        .expect("ipcache v6 prefix");
    assert_eq!(
        dp.ipcache().lookup(IpAddr::V6(host6)).expect("lookup"),
        Some(HOST_IDENTITY)
    );
    dp.endpoints_mut()
        .insert(&Endpoint {
            ip: IpAddr::V6(pod6),
            id: POD_ENDPOINT_ID,
            ifindex: nix_ifindex(&net.host_if),
            identity: POD_IDENTITY,
        })
        .expect("endpoint v6");

    // Pod veth hooks, IPv6.
    dp.attach_endpoint(&net.host_if).expect("attach");
    net.ping6(host6, 3);
    let mut sink = Collect::default();
    drain(&mut reader, &mut sink, Duration::from_secs(5));
    let echoes = icmpv6_echoes(&sink.samples);
    assert_eq!(echoes.len(), 6, "3 requests + 3 replies: {echoes:#?}");
    for (i, (h, ty, seq, src, dst)) in echoes.iter().enumerate() {
        assert_eq!(h.flags & notify_flags::IS_IPV6, notify_flags::IS_IPV6);
        assert_eq!(h.hdr.source, POD_ENDPOINT_ID);
        assert_eq!(*seq, (i / 2 + 1) as u16);
        if *ty == 128 {
            assert_eq!(h.hdr.subtype, obs_point::FROM_LXC);
            assert_eq!((*src, *dst), (pod6, host6));
            assert_eq!((h.src_label, h.dst_label), (POD_IDENTITY, HOST_IDENTITY));
            let want = if i == 0 {
                trace_reason::POLICY
            } else {
                trace_reason::CT_ESTABLISHED
            };
            assert_eq!(h.reason, want);
        } else {
            assert_eq!(h.hdr.subtype, obs_point::TO_LXC);
            assert_eq!((*src, *dst), (host6, pod6));
            assert_eq!((h.src_label, h.dst_label), (HOST_IDENTITY, POD_IDENTITY));
            assert_eq!(h.dst_id, POD_ENDPOINT_ID);
            assert_eq!(h.reason, trace_reason::CT_REPLY);
        }
    }

    // The same veth treated as a node uplink: network observation points, no endpoint source.
    dp.detach_interface(&net.host_if);
    assert!(dp.attachments().is_empty());
    dp.attach_netdev(&net.host_if).expect("attach uplink hooks");
    net.ping(2, "0.2");
    let mut sink = Collect::default();
    drain(&mut reader, &mut sink, Duration::from_secs(5));
    let traces = icmp_traces(&sink.samples);
    let from: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.hdr.hdr.subtype == obs_point::FROM_NETWORK)
        .collect();
    let to: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.hdr.hdr.subtype == obs_point::TO_NETWORK)
        .collect();
    assert_eq!((from.len(), to.len()), (2, 2), "{traces:#?}");
    assert!(traces.iter().all(|t| t.hdr.hdr.source == 0));
    // Netdev conntrack is its own scope: the first request is new there too.
    assert_eq!(from[0].hdr.reason, trace_reason::POLICY);
    assert_eq!(from[1].hdr.reason, trace_reason::CT_ESTABLISHED);
    assert!(to.iter().all(|t| t.hdr.reason == trace_reason::CT_REPLY));
    assert_eq!(to[0].hdr.dst_id, POD_ENDPOINT_ID);
    drop(reader);
    drop(dp);
    assert_torn_down(&instance, &net);
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        // SAFETY: a valid namespace fd; CLONE_NEWNET only affects this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f()
    })
    .join()
    .expect("netns thread")
}

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
const TCP_FIN: u8 = 0x01;

/// (trace, TCP flags) of the TCP packets in `samples`.
fn tcp_traces(samples: &[Vec<u8>]) -> Vec<(TraceNotify, u8)> {
    samples
        .iter()
        .filter_map(|s| {
            let hdr: TraceNotify = abi::read_header(s)?;
            let pkt = s.get(abi::TRACE_NOTIFY_V1_LEN..)?;
            // Ethernet + IPv4 carrying TCP.
            if pkt.get(12..14)? != [0x08, 0x00] || *pkt.get(23)? != 6 {
                return None;
            }
            let l4 = 14 + usize::from(pkt[14] & 0x0f) * 4;
            Some((hdr, *pkt.get(l4 + 13)?))
        })
        .collect()
}

#[test]
fn medium_aggregation_follows_tcp_flags_and_interval() {
    if skip_unless_root("medium_aggregation_follows_tcp_flags_and_interval") {
        return;
    }
    let net = PodNet::create(4);
    let instance = format!("e2e-medium-{}", std::process::id());
    let config = LoaderConfig {
        instance: instance.clone(),
        aggregation: Aggregation::Medium,
        report_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let mut dp = Datapath::load(&config).expect("load probes");
    let mut reader = dp.perf_reader(&PerfConfig::default()).expect("reader");
    dp.attach_endpoint(&net.host_if).expect("attach");

    // A TCP exchange from the pod to a listener on the host side of the pair.
    let listener = std::net::TcpListener::bind((net.host_ip, 0)).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).expect("request");
        conn.write_all(&buf[..n]).expect("response");
        // Wait for the client's FIN before closing, so each side's FIN is its own segment.
        while conn.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    });
    in_netns(&net.ns, move || {
        use std::io::{Read, Write};
        let mut c =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).expect("read");
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let _ = c.read(&mut buf);
    });
    server.join().expect("server");

    // 13 echo requests over 2.4 s with a 1 s report interval: reported at ~0 s, ~1 s, ~2 s.
    net.ping(13, "0.2");
    let mut sink = Collect::default();
    drain(&mut reader, &mut sink, Duration::from_secs(5));

    let tcp = tcp_traces(&sink.samples);
    let flags_of = |point: u8| -> Vec<u8> {
        let mut f: Vec<u8> = tcp
            .iter()
            .filter(|(h, _)| h.hdr.subtype == point)
            .map(|(_, f)| *f)
            .collect();
        f.sort_unstable();
        f
    };
    // Each direction reports its first packet and every packet bringing a flag not yet seen.
    let mut want_out = vec![TCP_SYN, TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK];
    want_out.sort_unstable();
    let mut want_in = vec![TCP_SYN | TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK];
    want_in.sort_unstable();
    assert_eq!(
        flags_of(obs_point::FROM_LXC),
        want_out,
        "pod → host: {tcp:?}"
    );
    assert_eq!(flags_of(obs_point::TO_LXC), want_in, "host → pod: {tcp:?}");
    for (h, f) in &tcp {
        let want = match (h.hdr.subtype, *f) {
            (obs_point::FROM_LXC, TCP_SYN) => trace_reason::POLICY,
            (obs_point::FROM_LXC, _) => trace_reason::CT_ESTABLISHED,
            _ => trace_reason::CT_REPLY,
        };
        assert_eq!(h.reason, want, "flags {f:#x}");
    }

    let icmp = icmp_traces(&sink.samples);
    let requests: Vec<u16> = icmp
        .iter()
        .filter(|t| t.hdr.hdr.subtype == obs_point::FROM_LXC)
        .filter_map(|t| t.icmp_seq)
        .collect();
    let replies = icmp
        .iter()
        .filter(|t| t.hdr.hdr.subtype == obs_point::TO_LXC)
        .count();
    assert_eq!(
        requests.len(),
        3,
        "one report per interval: seqs {requests:?}"
    );
    assert_eq!(requests[0], 1);
    assert_eq!(replies, 3);
    drop(reader);
    drop(dp);
    assert_torn_down(&instance, &net);
}
