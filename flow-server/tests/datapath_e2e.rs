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
use periscope_flow_server::agent::{DatapathAgent, DatapathAgentConfig};
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

/// Builds a Star Wars instance with its own prefix and pod CIDR (10.<octet>.<pid>.0/24) and a
/// guard that tears it down however the test ends.
fn build_instance(tag: &str, octet: u8) -> (ClusterGuard, Cluster) {
    let pid = std::process::id();
    let prefix = format!("{tag}{}", pid % 100_000);
    let root = std::env::temp_dir().join("periscope-flow-e2e");
    let mut opts = BuildOptions::new(&prefix);
    opts.pod_cidr =
        Some(Ipv4Net::new(Ipv4Addr::new(10, octet, (pid % 256) as u8, 0), 24).expect("cidr"));
    opts.server = ServerMode::InProcess;
    opts.state_root = root.clone();
    let mut guard = ClusterGuard {
        prefix,
        root,
        cluster: None,
    };
    let c = cluster::build(&ClusterSpec::starwars(), &opts).expect("build Star Wars cluster");
    guard.cluster = Some(c.clone());
    (guard, c)
}

/// A running agent (the same assembly the agent binary and the demo use), gRPC on loopback.
struct Agent {
    agent: Option<DatapathAgent>,
    client: ObserverClient<tonic::transport::Channel>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Agent {
    async fn start(c: &Cluster, instance: &str, aggregation: Aggregation) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cfg = DatapathAgentConfig {
            loader: LoaderConfig {
                instance: instance.into(),
                aggregation,
                ..Default::default()
            },
            perf: PerfConfig::default(),
            server: ServerConfig {
                node_name: "node-1".into(),
                cluster_name: "default".into(),
                advertise_address: addr.to_string(),
            },
            ring_capacity: 65_536,
            metrics: None,
        };
        let agent = DatapathAgent::start(c, cfg).expect("start the datapath agent");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(agent.node.server.clone(), listener, async move {
            let _ = rx.await;
        }));
        let client = ObserverClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        Agent {
            agent: Some(agent),
            client,
            shutdown: Some(tx),
        }
    }

    fn datapath(&mut self) -> &mut periscope_datapath::loader::Datapath {
        &mut self.agent.as_mut().expect("running").datapath.datapath
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
        if let Some(a) = self.agent.take()
            && let Err(e) = a.stop()
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
    let (mut guard, c) = build_instance("fse", 230);
    let (prefix, root) = (guard.prefix.clone(), guard.root.clone());
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

fn curl_landing(c: &Cluster, pod: &str, ip: &str) -> Option<String> {
    let url = format!("http://{ip}/v1/request-landing");
    let out = c
        .exec_timeout(
            pod,
            &["curl", "-s", "--max-time", "2", "-XPOST", &url],
            Duration::from_secs(10),
        )
        .expect("exec");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Issue "datapath II" through the flow server: rule1 makes xwing's SYNs DROPPED flows with
/// reason Policy denied, tiefighter's connection FORWARDED with replies, policy-verdict flows for
/// both; deleting the policy lets xwing land again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule1_drops_become_flows() {
    use periscope_datapath::policy::{PolicyContext, PolicyRepository};
    use periscope_proto::flow::DropReason;

    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED rule1_drops_become_flows: {why}");
        return;
    }
    let (mut guard, c) = build_instance("fsp", 231);
    let prefix = guard.prefix.clone();
    let ds = c.pods_named("deathstar").next().expect("deathstar").clone();
    let ds_ip = ds.ip.to_string();
    let mut agent = Agent::start(&c, &prefix, Aggregation::Medium).await;

    let mut repo = PolicyRepository::new(PolicyContext::from_cluster(&c));
    let rule1 = include_str!("../../examples/starwars/rule1-l3-l4.yaml");
    repo.apply_text(rule1, "rule1-l3-l4.yaml")
        .expect("rule1 compiles");
    agent
        .datapath()
        .apply_policy(repo.resolved())
        .expect("apply rule1");

    assert_eq!(
        curl_landing(&c, "tiefighter", &ds_ip).as_deref(),
        Some("Ship landed")
    );
    assert_eq!(
        curl_landing(&c, "xwing", &ds_ip),
        None,
        "xwing must time out under rule1"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let dropped = agent
        .flows(FlowFilter {
            source_pod: vec!["default/xwing".into()],
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        })
        .await;
    let drops: Vec<&Flow> = dropped
        .iter()
        .filter(|f| f.event_type.as_ref().is_some_and(|e| e.r#type == 1))
        .collect();
    assert!(!drops.is_empty(), "no drop flows for xwing");
    for f in &drops {
        assert_eq!(f.drop_reason_desc(), DropReason::PolicyDenied);
        assert_eq!(f.summary, "TCP Flags: SYN");
        assert_eq!(reply(f), None, "drops have unknown reply state (<>)");
        let dst = f.destination.as_ref().expect("dst");
        assert_eq!(
            (dst.pod_name.as_str(), dst.identity),
            (ds.name.as_str(), ds.identity)
        );
        assert!(
            matches!(f.l4.as_ref().and_then(|l| l.protocol.as_ref()), Some(Protocol::Tcp(t)) if t.destination_port == 80)
        );
    }
    let verdicts = |pod: &str| FlowFilter {
        source_pod: vec![format!("default/{pod}")],
        event_type: vec![periscope_proto::flow::EventTypeFilter {
            r#type: 5,
            ..Default::default()
        }],
        ..Default::default()
    };
    let denied = agent.flows(verdicts("xwing")).await;
    assert!(!denied.is_empty() && denied.iter().all(|f| f.verdict() == Verdict::Dropped));
    let allowed = agent.flows(verdicts("tiefighter")).await;
    assert_eq!(
        allowed.len(),
        1,
        "one verdict for tiefighter's one connection"
    );
    assert_eq!(allowed[0].verdict(), Verdict::Forwarded);
    assert_eq!(allowed[0].policy_match_type, 2, "L3-L4 match");
    let replies = agent
        .flows(FlowFilter {
            source_pod: vec![ds.qualified_name()],
            destination_pod: vec!["default/tiefighter".into()],
            reply: vec![true],
            ..Default::default()
        })
        .await;
    assert!(replies.iter().all(|f| f.verdict() == Verdict::Forwarded) && !replies.is_empty());

    repo.delete("rule1").expect("delete rule1");
    agent
        .datapath()
        .apply_policy(repo.resolved())
        .expect("remove rule1");
    assert_eq!(
        curl_landing(&c, "xwing", &ds_ip).as_deref(),
        Some("Ship landed")
    );
    drop(agent);
    let c = guard.cluster.take().expect("cluster");
    c.teardown().expect("teardown");
}
