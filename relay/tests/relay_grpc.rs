//! The relay over real gRPC on loopback: three in-process flow-server nodes (test event
//! sources) behind one relay.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use periscope_proto::flow::{FlowFilter, LostEventSource};
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::{
    GetAgentEventsRequest, GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest,
    GetNodesRequest, ServerStatusRequest,
};
use periscope_proto::relay::NodeState;
use periscope_relay::backoff::RetryPolicy;
use periscope_relay::{ConnState, Relay, RelayConfig, ServeOptions, serve};
use support::{TestNode, flow_time, node_status, now_ns};
use tokio::net::TcpListener;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn test_config() -> RelayConfig {
    RelayConfig {
        retry: RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            ..RetryPolicy::default()
        },
        dial_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(3),
        status_interval: Duration::from_millis(500),
        sort_buffer_drain_timeout: Duration::from_millis(200),
        peer_update_interval: Duration::from_millis(500),
        ..RelayConfig::default()
    }
}

struct TestRelay {
    relay: Relay,
    addr: SocketAddr,
    health_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestRelay {
    async fn start(cfg: RelayConfig, expect_nodes: usize) -> TestRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let health = TcpListener::bind("127.0.0.1:0").await.expect("bind health");
        let (addr, health_addr) = (
            listener.local_addr().expect("addr"),
            health.local_addr().expect("addr"),
        );
        let relay = Relay::start(cfg);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(
            relay.clone(),
            listener,
            ServeOptions {
                tls: None,
                health_listener: Some(health),
            },
            async move {
                let _ = rx.await;
            },
        ));
        let all_up = relay
            .pool()
            .wait_until(Duration::from_secs(10), |nodes| {
                nodes.len() == expect_nodes && nodes.iter().all(|n| n.state == ConnState::Connected)
            })
            .await;
        assert!(all_up, "nodes never connected: {:?}", relay.pool().list());
        TestRelay {
            relay,
            addr,
            health_addr,
            stop: Some(tx),
        }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect relay")
    }

    async fn client(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel().await)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn start_nodes(n: usize, capacity: usize) -> Vec<TestNode> {
    (1..=n)
        .map(|i| TestNode::start(&format!("node-{i}"), None, capacity))
        .collect()
}

async fn collect(
    client: &mut ObserverClient<Channel>,
    req: GetFlowsRequest,
) -> Vec<GetFlowsResponse> {
    let mut stream = client.get_flows(req).await.expect("get_flows").into_inner();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(m))) => out.push(m),
            Ok(Ok(None)) => return out,
            other => panic!("stream failed or stalled: {other:?}"),
        }
    }
}

fn flows_of(items: &[GetFlowsResponse]) -> Vec<(i128, String)> {
    items
        .iter()
        .filter_map(|r| flow_time(r).map(|t| (t, r.node_name.clone())))
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits (bounded) until every node serves `streams` GetFlows streams for the relay, so flows
/// sent next are seen by a plain follow (which only reports flows newer than its start).
async fn wait_for_node_streams(nodes: &[TestNode], streams: i64) {
    for _ in 0..250 {
        if nodes.iter().all(|n| {
            n.server()
                .grpc_clients
                .load(std::sync::atomic::Ordering::Relaxed)
                >= streams
        }) {
            // The stream's query task takes its starting point right after the count moves.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nodes never got {streams} GetFlows stream(s) each from the relay");
}

/// Next message that satisfies `pred`, skipping others (bounded by `timeout`).
async fn next_matching(
    stream: &mut Streaming<GetFlowsResponse>,
    timeout: Duration,
    mut pred: impl FnMut(&GetFlowsResponse) -> bool,
) -> GetFlowsResponse {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(m))) if pred(&m) => return m,
            Ok(Ok(Some(_))) => {}
            other => panic!("no matching message: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_order_per_node_last_and_aggregates() {
    let nodes = start_nodes(3, 4095);
    // node-1 via its peer service, the others listed statically.
    let cfg = RelayConfig {
        peer_services: vec![nodes[0].addr.to_string()],
        static_nodes: vec![nodes[1].addr.to_string(), nodes[2].addr.to_string()],
        ..test_config()
    };
    for (i, n) in nodes.iter().enumerate() {
        let times: Vec<u64> = (0..20).map(|k| T0 + (k * 3 + i as u64) * MS).collect();
        n.send_flows(&times);
    }
    for n in &nodes {
        n.wait_head(20).await;
    }
    let relay = TestRelay::start(cfg, 3).await;
    let mut c = relay.client().await;

    let all = collect(&mut c, GetFlowsRequest::default()).await;
    assert_eq!(
        node_status(&all[0]),
        Some((
            NodeState::NodeConnected,
            names(&["default/node-1", "default/node-2", "default/node-3"])
        ))
    );
    let f = flows_of(&all);
    let want: Vec<(i128, String)> = (0..60u64)
        .map(|j| ((T0 + j * MS) as i128, format!("node-{}", j % 3 + 1)))
        .collect();
    assert_eq!(
        f, want,
        "all flows, merged in time order, each with its node's name"
    );

    // `--last 5` is per node, like Hubble: 15 flows, each node's newest 5, merged.
    let last = flows_of(
        &collect(
            &mut c,
            GetFlowsRequest {
                number: 5,
                ..Default::default()
            },
        )
        .await,
    );
    let want_last: Vec<i128> = (45..60u64).map(|j| (T0 + j * MS) as i128).collect();
    assert_eq!(last.iter().map(|x| x.0).collect::<Vec<_>>(), want_last);

    let first = flows_of(
        &collect(
            &mut c,
            GetFlowsRequest {
                number: 2,
                first: true,
                ..Default::default()
            },
        )
        .await,
    );
    let want_first: Vec<i128> = (0..6u64).map(|j| (T0 + j * MS) as i128).collect();
    assert_eq!(first.iter().map(|x| x.0).collect::<Vec<_>>(), want_first);

    // Invalid requests: the node's InvalidArgument, as is.
    let err = c
        .get_flows(GetFlowsRequest {
            whitelist: vec![FlowFilter {
                source_ip: vec!["10.0.0.300".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect_err("invalid filter");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("source_ip"), "{}", err.message());
    let err = c
        .get_flows(GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .await
        .expect_err("first+follow");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let s = c
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!((s.num_flows, s.seen_flows, s.max_flows), (60, 60, 3 * 4095));
    assert_eq!(s.num_connected_nodes.map(|v| v.value), Some(3));
    assert_eq!(s.num_unavailable_nodes.map(|v| v.value), Some(0));
    assert!(s.unavailable_nodes.is_empty());
    assert!(s.version.starts_with("periscope-relay"), "{}", s.version);
    assert!(s.uptime_ns > 0);

    let ns = c
        .get_namespaces(GetNamespacesRequest {})
        .await
        .expect("ns")
        .into_inner();
    let ns: Vec<(String, String)> = ns
        .namespaces
        .into_iter()
        .map(|n| (n.cluster, n.namespace))
        .collect();
    assert_eq!(
        ns,
        vec![("default".to_string(), "default".to_string())],
        "merged and deduped"
    );

    let got = c
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    assert_eq!(got.len(), 3);
    for (n, want) in got.iter().zip(&nodes) {
        assert_eq!(n.name, format!("default/{}", want.name));
        assert_eq!(n.address, want.addr.to_string());
        assert_eq!(n.state(), NodeState::NodeConnected);
        assert!(n.version.starts_with("periscope v"), "{}", n.version);
        assert_eq!((n.num_flows, n.seen_flows, n.max_flows), (20, 20, 4095));
        assert!(n.uptime_ns > 0);
        assert_eq!(n.tls.as_ref().map(|t| t.enabled), Some(false));
    }

    let err = c
        .get_agent_events(GetAgentEventsRequest::default())
        .await
        .expect_err("relay has no agent events");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    for addr in [relay.addr, relay.health_addr] {
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let resp = HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: "observer.Observer".into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_node_kill_and_picks_the_node_up_again() {
    let mut nodes = start_nodes(3, 4095);
    let cfg = RelayConfig {
        static_nodes: nodes.iter().map(|n| n.addr.to_string()).collect(),
        ..test_config()
    };
    let relay = TestRelay::start(cfg, 3).await;
    let mut c = relay.client().await;
    let mut follow = c
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let first = next_matching(&mut follow, Duration::from_secs(5), |_| true).await;
    assert_eq!(
        node_status(&first).map(|s| s.0),
        Some(NodeState::NodeConnected)
    );
    wait_for_node_streams(&nodes, 1).await;

    let t = now_ns();
    for (i, n) in nodes.iter().enumerate() {
        n.send_flows(&[t + i as u64]);
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = next_matching(&mut follow, Duration::from_secs(5), |m| {
            flow_time(m).is_some()
        })
        .await;
        seen.push(m.node_name);
    }
    assert_eq!(
        seen,
        names(&["node-1", "node-2", "node-3"]),
        "in time order"
    );

    // Kill node-2: the follower hears about it and keeps getting the others' flows.
    let node2_addr = nodes[1].addr;
    nodes[1].kill();
    let ev = next_matching(&mut follow, Duration::from_secs(10), |m| {
        node_status(m).is_some()
    })
    .await;
    assert_eq!(
        node_status(&ev),
        Some((NodeState::NodeUnavailable, names(&["default/node-2"])))
    );
    let t = now_ns();
    nodes[0].send_flows(&[t]);
    nodes[2].send_flows(&[t + 1]);
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = next_matching(&mut follow, Duration::from_secs(5), |m| {
            flow_time(m).is_some()
        })
        .await;
        seen.push(m.node_name);
    }
    assert_eq!(seen, names(&["node-1", "node-3"]));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "others kept streaming promptly"
    );

    let gone = relay
        .relay
        .pool()
        .wait_until(Duration::from_secs(5), |ns| {
            ns.iter()
                .filter(|n| n.state != ConnState::Connected)
                .count()
                == 1
        })
        .await;
    assert!(gone);
    let got = c
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    let states: Vec<(String, NodeState)> =
        got.iter().map(|n| (n.name.clone(), n.state())).collect();
    assert_eq!(
        states,
        vec![
            ("default/node-1".into(), NodeState::NodeConnected),
            ("default/node-2".into(), NodeState::NodeUnavailable),
            ("default/node-3".into(), NodeState::NodeConnected),
        ]
    );
    let s = c
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(s.num_connected_nodes.map(|v| v.value), Some(2));
    assert_eq!(s.num_unavailable_nodes.map(|v| v.value), Some(1));
    assert_eq!(s.unavailable_nodes, names(&["default/node-2"]));
    // A new request is told up front which node is missing.
    let snapshot = collect(&mut c, GetFlowsRequest::default()).await;
    assert!(
        snapshot
            .iter()
            .any(|m| node_status(m)
                == Some((NodeState::NodeUnavailable, names(&["default/node-2"]))))
    );

    // Restart node-2 on the same address: the follower is told and gets its flows again.
    nodes[1] = TestNode::start("node-2", Some(node2_addr), 4095);
    let ev = next_matching(&mut follow, Duration::from_secs(10), |m| {
        node_status(m).is_some()
    })
    .await;
    assert_eq!(
        node_status(&ev),
        Some((NodeState::NodeConnected, names(&["default/node-2"])))
    );
    nodes[1].send_flows(&[now_ns()]);
    let m = next_matching(&mut follow, Duration::from_secs(5), |m| {
        flow_time(m).is_some()
    })
    .await;
    assert_eq!(m.node_name, "node-2");
    let got = c
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    assert!(
        got.iter().all(|n| n.state() == NodeState::NodeConnected),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_delay_another() {
    // ~520 bytes per flow: 18k flows (~9 MB) are well past what the socket buffers, HTTP/2
    // windows and the relay's 1024-response queue absorb for the stuck client.
    const PER_NODE: u64 = 6_000;
    const BATCH: u64 = 30;
    let nodes = start_nodes(3, 65535);
    let cfg = RelayConfig {
        static_nodes: nodes.iter().map(|n| n.addr.to_string()).collect(),
        client_queue_len: 1024,
        ..test_config()
    };
    let relay = TestRelay::start(cfg, 3).await;

    // The stuck client: its own connection with minimal HTTP/2 windows, and it stops reading.
    let stuck_ch = Endpoint::from_shared(format!("http://{}", relay.addr))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let mut stuck = ObserverClient::new(stuck_ch)
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let hello = stuck.message().await.expect("ok").expect("status");
    assert!(node_status(&hello).is_some());

    let mut live = relay
        .client()
        .await
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let total = PER_NODE * nodes.len() as u64;
    wait_for_node_streams(&nodes, 2).await;
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut lost = 0;
        while (latencies.len() as u64) + lost < total {
            match tokio::time::timeout(Duration::from_secs(10), live.message()).await {
                Ok(Ok(Some(m))) => {
                    if let Some(t) = flow_time(&m) {
                        latencies.push(now_ns() as i128 - t);
                    }
                    if let Some(ResponseTypes::LostEvents(l)) = &m.response_types {
                        lost += l.num_events_lost;
                    }
                }
                other => panic!(
                    "live client stalled after {} flows, {lost} lost: {other:?}",
                    latencies.len()
                ),
            }
        }
        (latencies, lost)
    });

    for _ in 0..PER_NODE / BATCH {
        let t = now_ns();
        for n in &nodes {
            n.send_flows(&(0..BATCH).map(|k| t + k).collect::<Vec<_>>());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut lat, lost) = reader.await.expect("reader");
    assert_eq!(lost, 0, "the reading client lost nothing");
    lat.sort_unstable();
    let p99 = lat[lat.len() * 99 / 100] as f64 / 1e6;
    println!("live client: {} flows, p99 latency {p99:.1} ms", lat.len());
    assert!(p99 < 1000.0, "p99 {p99} ms while another client is stuck");

    // The stuck client now reads: it is told what it lost, and flows + losses add up (after a
    // stall the relay paused its node streams, so later gaps would be the nodes' to report).
    let (mut flows, mut queue_lost, mut ring_lost) = (0u64, 0u64, 0u64);
    while let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(2), stuck.message()).await
    {
        match &m.response_types {
            Some(ResponseTypes::Flow(_)) => flows += 1,
            Some(ResponseTypes::LostEvents(l)) => match l.source() {
                LostEventSource::ObserverEventsQueue => queue_lost += l.num_events_lost,
                LostEventSource::HubbleRingBuffer => ring_lost += l.num_events_lost,
                other => panic!("unexpected loss source {other:?}"),
            },
            _ => {}
        }
        if flows + queue_lost + ring_lost >= total {
            break;
        }
    }
    println!(
        "stuck client: {flows} flows, {queue_lost} dropped by the relay, {ring_lost} by nodes"
    );
    assert!(queue_lost > 0, "no lost event reported ({flows} flows)");
    let drops = relay
        .relay
        .stats()
        .client_queue_drops
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        queue_lost, drops,
        "every drop was the stuck client's, and reported"
    );
    assert_eq!(flows + queue_lost + ring_lost, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_follow_streams() {
    let nodes = start_nodes(1, 1024);
    let relay = Relay::start(RelayConfig {
        static_nodes: vec![nodes[0].addr.to_string()],
        ..test_config()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        relay.clone(),
        listener,
        ServeOptions::default(),
        async move {
            let _ = rx.await;
        },
    ));
    assert!(
        relay
            .pool()
            .wait_until(Duration::from_secs(10), |n| n
                .iter()
                .all(|x| x.state == ConnState::Connected)
                && n.len() == 1)
            .await
    );
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut follow = ObserverClient::new(ch)
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    assert!(follow.message().await.expect("ok").is_some());
    let _ = tx.send(());
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = follow.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "follow stream still open after shutdown");
    let done = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server drained")
        .expect("task");
    assert!(done.is_ok(), "{done:?}");
}
