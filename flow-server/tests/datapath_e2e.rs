//! End to end through the real datapath (root only; skips with a printed reason otherwise):
//! Star Wars cluster of network namespaces → eBPF probes on the pod veths → perf event array →
//! flow server → gRPC. Uses its own instance prefix, pod CIDR and pin directory, and tears
//! everything down (also on failure) via a drop guard.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use periscope_datapath::cluster::{self, BuildOptions, Cluster, ClusterSpec, ServerMode};
use periscope_datapath::loader::LoaderConfig;
use periscope_datapath::perf::PerfConfig;
use periscope_flow_server::agent::{AttachedDatapath, metadata_from_cluster};
use periscope_flow_server::node::{Node, NodeConfig};
use periscope_flow_server::server::{ServerConfig, serve};
use periscope_probes::probes::Aggregation;
use periscope_proto::flow::{Flow, FlowFilter, TraceObservationPoint, Verdict, layer4::Protocol};
use periscope_proto::observer::GetFlowsRequest;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::observer_client::ObserverClient;

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for eBPF and network namespaces");
    }
    None
}

struct ClusterGuard {
    prefix: String,
    root: PathBuf,
    cluster: Option<Cluster>,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let r = match self.cluster.take() {
            Some(c) => c.teardown().map(|_| ()),
            None => cluster::teardown(&self.prefix, &self.root).map(|_| ()),
        };
        if let Err(e) = r {
            eprintln!("teardown of {} failed: {e}", self.prefix);
        }
    }
}

/// A running agent: datapath attached, pipeline fed by the perf reader, gRPC on loopback.
struct Agent {
    node: Option<Node>,
    _datapath: AttachedDatapath,
    client: ObserverClient<tonic::transport::Channel>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Agent {
    async fn start(c: &Cluster, instance: &str, aggregation: Aggregation) -> Agent {
        let node_ips = cluster::node_addresses().expect("node addresses");
        let cfg = LoaderConfig {
            instance: instance.into(),
            aggregation,
            ..Default::default()
        };
        let dp = AttachedDatapath::attach(c, &node_ips, &cfg).expect("load and attach probes");
        let reader = dp.perf_reader(&PerfConfig::default()).expect("perf reader");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let node_cfg = NodeConfig {
            server: ServerConfig {
                node_name: "node-1".into(),
                cluster_name: "default".into(),
                advertise_address: addr.to_string(),
            },
            ring_capacity: 65_536,
            metadata: metadata_from_cluster(c, &node_ips),
            metrics: None,
        };
        let node = Node::start(node_cfg, Box::new(reader), vec![]).expect("node");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(node.server.clone(), listener, async move {
            let _ = rx.await;
        }));
        let client = ObserverClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        Agent {
            node: Some(node),
            _datapath: dp,
            client,
            shutdown: Some(tx),
        }
    }

    async fn flows(&mut self, filter: FlowFilter) -> Vec<Flow> {
        let req = GetFlowsRequest {
            number: 100_000,
            whitelist: vec![filter],
            ..Default::default()
        };
        let mut s = self
            .client
            .get_flows(req)
            .await
            .expect("get_flows")
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = s.message().await.expect("stream") {
            if let Some(ResponseTypes::Flow(f)) = m.response_types {
                out.push(f);
            }
        }
        out
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(n) = self.node.take()
            && let Err(e) = n.stop()
        {
            eprintln!("perf reader ended with error: {e}");
        }
    }
}

fn exec_ok(c: &Cluster, pod: &str, argv: &[&str]) -> String {
    let out = c
        .exec_timeout(pod, argv, Duration::from_secs(20))
        .expect("exec");
    assert!(
        out.status.success(),
        "{pod}: {argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn obs(f: &Flow) -> TraceObservationPoint {
    f.trace_observation_point()
}

fn is_icmp_echo(f: &Flow, echo_type: u32) -> bool {
    matches!(f.l4.as_ref().and_then(|l| l.protocol.as_ref()), Some(Protocol::IcmPv4(i)) if i.r#type == echo_type)
}

fn reply(f: &Flow) -> Option<bool> {
    f.is_reply.map(|b| b.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starwars_traffic_becomes_flows() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED starwars_traffic_becomes_flows: {why}");
        return;
    }
    let pid = std::process::id();
    let prefix = format!("fse{}", pid % 100_000);
    let root = std::env::temp_dir().join("periscope-flow-e2e");
    let mut opts = BuildOptions::new(&prefix);
    opts.pod_cidr =
        Some(Ipv4Net::new(Ipv4Addr::new(10, 230, (pid % 256) as u8, 0), 24).expect("cidr"));
    opts.server = ServerMode::InProcess;
    opts.state_root = root.clone();
    let mut guard = ClusterGuard {
        prefix: prefix.clone(),
        root: root.clone(),
        cluster: None,
    };
    let c = cluster::build(&ClusterSpec::starwars(), &opts).expect("build Star Wars cluster");
    guard.cluster = Some(c.clone());
    let xwing = c.pod("xwing").expect("xwing").clone();
    let tiefighter = c.pod("tiefighter").expect("tiefighter").clone();
    let deathstar = c.pods_named("deathstar").next().expect("deathstar").clone();
    let ds_ip = deathstar.ip.to_string();

    // Aggregation none: every packet is a flow.
    {
        let mut agent = Agent::start(&c, &format!("{prefix}n"), Aggregation::None).await;
        exec_ok(
            &c,
            "xwing",
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", &ds_ip],
        );
        let body = exec_ok(
            &c,
            "tiefighter",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "-XPOST",
                &format!("http://{ds_ip}/v1/request-landing"),
            ],
        );
        assert_eq!(body.trim(), "Ship landed");
        tokio::time::sleep(Duration::from_millis(300)).await;

        let pings = agent
            .flows(FlowFilter {
                source_pod: vec!["default/xwing".into()],
                protocol: vec!["icmp".into()],
                ..Default::default()
            })
            .await;
        let requests: Vec<&Flow> = pings.iter().filter(|f| is_icmp_echo(f, 8)).collect();
        assert_eq!(
            requests.len(),
            6,
            "3 echo requests × (from-endpoint at xwing + to-endpoint at deathstar)"
        );
        for f in &requests {
            let (src, dst) = (
                f.source.as_ref().expect("src"),
                f.destination.as_ref().expect("dst"),
            );
            assert_eq!(
                (src.namespace.as_str(), src.pod_name.as_str(), src.identity),
                ("default", "xwing", xwing.identity)
            );
            assert_eq!(
                (dst.pod_name.as_str(), dst.identity),
                (deathstar.name.as_str(), deathstar.identity)
            );
            assert_eq!(f.verdict(), Verdict::Forwarded);
            assert_eq!(reply(f), Some(false));
            assert_eq!(f.summary, "ICMPv4 EchoRequest");
        }
        assert_eq!(
            requests
                .iter()
                .filter(|f| obs(f) == TraceObservationPoint::FromEndpoint)
                .count(),
            3
        );
        assert_eq!(
            requests
                .iter()
                .filter(|f| obs(f) == TraceObservationPoint::ToEndpoint)
                .count(),
            3
        );
        let replies = agent
            .flows(FlowFilter {
                destination_pod: vec!["default/xwing".into()],
                protocol: vec!["icmp".into()],
                ..Default::default()
            })
            .await;
        let replies: Vec<&Flow> = replies.iter().filter(|f| is_icmp_echo(f, 0)).collect();
        assert_eq!(replies.len(), 6);
        assert!(
            replies.iter().all(|f| reply(f) == Some(true)),
            "echo replies are replies"
        );

        let http = agent
            .flows(FlowFilter {
                source_pod: vec!["default/tiefighter".into()],
                destination_port: vec!["80".into()],
                ..Default::default()
            })
            .await;
        let syns: Vec<&Flow> = http
            .iter()
            .filter(|f| f.summary == "TCP Flags: SYN")
            .collect();
        assert_eq!(
            syns.len(),
            2,
            "SYN seen leaving tiefighter and entering deathstar"
        );
        for f in &syns {
            let src = f.source.as_ref().expect("src");
            assert_eq!(
                (src.pod_name.as_str(), src.identity),
                ("tiefighter", tiefighter.identity)
            );
            assert!(
                f.source
                    .as_ref()
                    .expect("src")
                    .labels
                    .iter()
                    .any(|l| l == "k8s:org=empire")
            );
            assert_eq!(reply(f), Some(false));
        }
        let back = agent
            .flows(FlowFilter {
                source_pod: vec![deathstar.qualified_name()],
                destination_pod: vec!["default/tiefighter".into()],
                ..Default::default()
            })
            .await;
        assert!(
            back.iter()
                .any(|f| f.summary == "TCP Flags: SYN, ACK" && reply(f) == Some(true))
        );
        let ns: Vec<String> = back.iter().map(|f| f.node_name.clone()).collect();
        assert!(ns.iter().all(|n| n == "node-1"));
    }

    // Aggregation medium: repeated packets of one connection are summarised.
    {
        let mut agent = Agent::start(&c, &format!("{prefix}m"), Aggregation::Medium).await;
        exec_ok(
            &c,
            "xwing",
            &["ping", "-c", "10", "-i", "0.2", "-W", "2", &ds_ip],
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pings = agent
            .flows(FlowFilter {
                source_pod: vec!["default/xwing".into()],
                protocol: vec!["icmp".into()],
                ..Default::default()
            })
            .await;
        let n = pings.iter().filter(|f| is_icmp_echo(f, 8)).count();
        assert!(
            (2..20).contains(&n),
            "medium aggregation reports {n} of 20 echo-request observations"
        );
    }

    let c = guard.cluster.take().expect("cluster");
    c.teardown().expect("teardown");
    let left = cluster::leftovers(&prefix, &root).expect("leftovers");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        !PathBuf::from(format!("/sys/fs/bpf/periscope/{prefix}n")).exists(),
        "pins removed"
    );
    let _ = IpAddr::V4(xwing.ip);
}
