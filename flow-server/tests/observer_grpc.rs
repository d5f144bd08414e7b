//! The Observer API over real gRPC on loopback, fed by a test event source (not the datapath).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use periscope_flow_server::fixtures::{self, starwars_metadata, starwars_round};
use periscope_flow_server::node::{Node, NodeConfig};
use periscope_flow_server::replay::{ReplaySource, ReplayWriter};
use periscope_flow_server::server::{ServerConfig, serve};
use periscope_probes::source::{EventSink, EventSource, RawEvent, SourceError};
use periscope_proto::flow::{FlowFilter, LostEventSource, Verdict};
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::{
    GetAgentEventsRequest, GetFlowsRequest, GetNamespacesRequest, ServerStatusRequest,
};
use periscope_proto::peer::NotifyRequest;
use periscope_proto::peer::peer_client::PeerClient;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Test-only source: batches of raw events sent from the test body.
enum Msg {
    Sample(u64, Vec<u8>),
    Lost(u64),
}

struct ChannelSource(mpsc::Receiver<Vec<Msg>>);

impl EventSource for ChannelSource {
    fn name(&self) -> &str {
        "test-channel"
    }
    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError> {
        while !stop.load(Ordering::Relaxed) {
            match self.0.recv_timeout(Duration::from_millis(10)) {
                Ok(batch) => {
                    for m in &batch {
                        match m {
                            Msg::Sample(ts, d) => sink.push(RawEvent::Sample {
                                cpu: 0,
                                timestamp_ns: *ts,
                                data: d,
                            }),
                            Msg::Lost(n) => sink.push(RawEvent::Lost {
                                cpu: 1,
                                count: *n,
                                timestamp_ns: 0,
                            }),
                        }
                    }
                    sink.flush();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        Ok(())
    }
}

struct Harness {
    node: Option<Node>,
    tx: mpsc::Sender<Vec<Msg>>,
    channel: Channel,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    next_ts: u64,
}

const T0: u64 = 1_700_000_000_000_000_000;

impl Harness {
    async fn start(capacity: usize) -> Harness {
        let (tx, rx) = mpsc::channel();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cfg = NodeConfig {
            server: ServerConfig {
                node_name: "node-1".into(),
                cluster_name: "default".into(),
                advertise_address: addr.to_string(),
            },
            ring_capacity: capacity,
            metadata: starwars_metadata("node-1"),
            metrics: None,
        };
        let node = Node::start(cfg, Box::new(ChannelSource(rx)), vec![]).expect("node");
        let (stx, srx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(node.server.clone(), listener, async move {
            let _ = srx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        Harness {
            node: Some(node),
            tx,
            channel,
            shutdown: Some(stx),
            next_ts: T0,
        }
    }

    fn client(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel.clone())
    }

    /// Sends `rounds` rounds of demo traffic (10 events each), 1 ms apart, and waits until stored.
    async fn send_rounds(&mut self, rounds: u16) {
        let node = self.node.as_ref().expect("running");
        let target = node.server.ring.head() + u64::from(rounds) * 10;
        let mut batch = Vec::new();
        for r in 0..rounds {
            for ev in starwars_round(40000 + r) {
                batch.push(Msg::Sample(self.next_ts, ev));
                self.next_ts += 1_000_000;
            }
        }
        self.tx.send(batch).expect("source alive");
        self.wait_head(target).await;
    }

    async fn wait_head(&self, target: u64) {
        let ring = self.node.as_ref().expect("running").server.ring.clone();
        for _ in 0..500 {
            if ring.head() >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("ring never reached {target} (at {})", ring.head());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(n) = self.node.take() {
            let _ = n.stop();
        }
    }
}

async fn collect(client: &mut ObserverClient<Channel>, req: GetFlowsRequest) -> Vec<ResponseTypes> {
    let mut stream = client.get_flows(req).await.expect("get_flows").into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await.expect("stream") {
        out.extend(msg.response_types);
    }
    out
}

fn flows(items: &[ResponseTypes]) -> Vec<&periscope_proto::flow::Flow> {
    items
        .iter()
        .filter_map(|i| {
            if let ResponseTypes::Flow(f) = i {
                Some(f)
            } else {
                None
            }
        })
        .collect()
}

fn pod_filter(side_src: bool, pod: &str, verdict: Verdict) -> FlowFilter {
    let mut f = FlowFilter {
        verdict: vec![verdict as i32],
        ..Default::default()
    };
    if side_src {
        f.source_pod = vec![pod.into()];
    } else {
        f.destination_pod = vec![pod.into()];
    }
    f
}

#[tokio::test]
async fn last_first_filters_and_time_windows() {
    let mut h = Harness::start(4095).await;
    h.send_rounds(20).await;
    let mut c = h.client();

    let last = collect(
        &mut c,
        GetFlowsRequest {
            number: 3,
            ..Default::default()
        },
    )
    .await;
    let f = flows(&last);
    assert_eq!(f.len(), 3);
    let t =
        |f: &periscope_proto::flow::Flow| f.time.as_ref().map(|t| t.as_unix_nanos()).unwrap_or(0);
    assert_eq!(t(f[2]) as u64, T0 + 199 * 1_000_000, "newest flow last");
    assert!(t(f[0]) < t(f[1]) && t(f[1]) < t(f[2]));

    let first = collect(
        &mut c,
        GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        flows(&first)
            .iter()
            .map(|f| t(f) as u64)
            .collect::<Vec<_>>(),
        vec![T0, T0 + 1_000_000]
    );

    // `observe --pod deathstar --verdict DROPPED`, as the CLI sends it.
    let req = GetFlowsRequest {
        number: 1000,
        whitelist: vec![
            pod_filter(true, "default/deathstar", Verdict::Dropped),
            pod_filter(false, "default/deathstar", Verdict::Dropped),
        ],
        ..Default::default()
    };
    let dropped = collect(&mut c, req).await;
    let f = flows(&dropped);
    assert_eq!(f.len(), 40, "policy-verdict deny + drop per round");
    for flow in &f {
        assert_eq!(flow.verdict(), Verdict::Dropped);
        let src = flow.source.as_ref().expect("source");
        let dst = flow.destination.as_ref().expect("destination");
        assert_eq!(
            (src.pod_name.as_str(), src.identity),
            ("xwing", fixtures::XWING_ID)
        );
        assert!(dst.pod_name.starts_with("deathstar-"));
        assert_eq!(flow.summary, "TCP Flags: SYN");
        assert_eq!(flow.node_name, "node-1");
    }
    assert!(
        f.iter()
            .any(|f| f.drop_reason_desc() == periscope_proto::flow::DropReason::PolicyDenied)
    );

    // Blacklist: everything except traffic to the world.
    let req = GetFlowsRequest {
        number: 1000,
        blacklist: vec![FlowFilter {
            destination_identity: vec![2],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(flows(&collect(&mut c, req).await).len(), 160);

    // since/until select a window of 5 flows.
    let since = periscope_proto::Timestamp {
        seconds: (T0 / 1_000_000_000) as i64,
        nanos: 10_000_000,
    };
    let until = periscope_proto::Timestamp {
        seconds: since.seconds,
        nanos: 14_000_000,
    };
    let req = GetFlowsRequest {
        since: Some(since),
        until: Some(until),
        ..Default::default()
    };
    assert_eq!(flows(&collect(&mut c, req).await).len(), 5);
}

#[tokio::test]
async fn invalid_filters_name_the_field() {
    let h = Harness::start(64).await;
    let mut c = h.client();
    let cases = [
        (
            FlowFilter {
                source_ip: vec!["10.0.0.300".into()],
                ..Default::default()
            },
            "source_ip",
        ),
        (
            FlowFilter {
                source_label: vec!["org in (empire".into()],
                ..Default::default()
            },
            "source_label",
        ),
        (
            FlowFilter {
                protocol: vec!["carrier-pigeon".into()],
                ..Default::default()
            },
            "protocol",
        ),
        (
            FlowFilter {
                destination_port: vec!["http".into()],
                ..Default::default()
            },
            "destination_port",
        ),
        (
            FlowFilter {
                verdict: vec![99],
                ..Default::default()
            },
            "verdict",
        ),
        (
            FlowFilter {
                http_path: vec!["(".into()],
                ..Default::default()
            },
            "http_path",
        ),
    ];
    for (filter, field) in cases {
        let err = c
            .get_flows(GetFlowsRequest {
                whitelist: vec![filter],
                ..Default::default()
            })
            .await
            .expect_err("invalid filter must be rejected");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = c
        .get_flows(GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .await
        .expect_err("first+follow");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn follow_streams_new_flows_and_reports_perf_losses() {
    let mut h = Harness::start(4095).await;
    h.send_rounds(1).await;
    let mut c = h.client();
    let mut stream = c
        .get_flows(GetFlowsRequest {
            number: 1,
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let first = stream.message().await.expect("ok").expect("one flow");
    assert!(matches!(first.response_types, Some(ResponseTypes::Flow(_))));
    h.tx.send(vec![Msg::Lost(7)]).expect("send");
    h.send_rounds(2).await;
    let mut got_flows = 0;
    let mut lost = None;
    while got_flows < 20 || lost.is_none() {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("follow delivers promptly")
            .expect("ok")
            .expect("open");
        match msg.response_types {
            Some(ResponseTypes::Flow(_)) => got_flows += 1,
            Some(ResponseTypes::LostEvents(l)) => lost = Some(l),
            other => panic!("unexpected {other:?}"),
        }
    }
    let lost = lost.expect("lost event");
    assert_eq!(
        (lost.source(), lost.num_events_lost),
        (LostEventSource::PerfEventRingBuffer, 7)
    );
    assert_eq!(lost.cpu.map(|c| c.value), Some(1));
}

#[tokio::test]
async fn a_slow_reader_gets_ring_buffer_lost_events() {
    let mut h = Harness::start(64).await;
    let mut c = h.client();
    let mut stream = c
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    // Don't read while the writer laps the reader many times over.
    for _ in 0..10 {
        h.send_rounds(500).await;
    }
    let mut lost_total = 0;
    let mut seen = 0;
    while let Ok(Ok(Some(msg))) =
        tokio::time::timeout(Duration::from_millis(500), stream.message()).await
    {
        seen += 1;
        if let Some(ResponseTypes::LostEvents(l)) = msg.response_types {
            assert_eq!(l.source(), LostEventSource::HubbleRingBuffer);
            lost_total += l.num_events_lost;
        }
    }
    assert!(
        lost_total > 0,
        "no ring buffer losses reported after {seen} messages"
    );
    assert!(seen as u64 + lost_total <= 50_000 + 100);
    let server = &h.node.as_ref().expect("node").server;
    assert_eq!(server.ring_lost.load(Ordering::Relaxed), lost_total);
}

#[tokio::test]
async fn status_namespaces_peer_and_agent_events() {
    let mut h = Harness::start(100).await;
    h.send_rounds(20).await;
    let mut c = h.client();
    let s = c
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!((s.num_flows, s.max_flows, s.seen_flows), (100, 100, 200));
    assert!(s.uptime_ns > 0);
    let ns = c
        .get_namespaces(GetNamespacesRequest {})
        .await
        .expect("ns")
        .into_inner();
    assert_eq!(ns.namespaces.len(), 1);
    assert_eq!(
        (
            ns.namespaces[0].cluster.as_str(),
            ns.namespaces[0].namespace.as_str()
        ),
        ("default", "default")
    );

    let mut peer = PeerClient::new(h.channel.clone());
    let mut notes = peer
        .notify(NotifyRequest {})
        .await
        .expect("notify")
        .into_inner();
    let me = notes.message().await.expect("ok").expect("self");
    assert_eq!(me.name, "default/node-1");
    assert!(me.address.starts_with("127.0.0.1:"));

    let mut events = c
        .get_agent_events(GetAgentEventsRequest {
            number: 100,
            ..Default::default()
        })
        .await
        .expect("agent events")
        .into_inner();
    let mut types = Vec::new();
    while let Some(e) = events.message().await.expect("ok") {
        types.push(e.agent_event.expect("event").r#type);
    }
    use periscope_proto::flow::AgentEventType as T;
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == T::EndpointCreated as i32)
            .count(),
        4
    );
    assert!(types.contains(&(T::AgentStarted as i32)));
    assert!(types.contains(&(T::ServiceUpserted as i32)));
}

#[tokio::test]
async fn replay_file_feeds_a_node() {
    let path = std::env::temp_dir().join(format!("periscope-replay-{}.rplay", std::process::id()));
    let mut w = ReplayWriter::create(&path).expect("create");
    for (i, ev) in (0..5).flat_map(|r| starwars_round(30000 + r)).enumerate() {
        w.write(&RawEvent::Sample {
            cpu: 0,
            timestamp_ns: T0 + i as u64,
            data: &ev,
        })
        .expect("write");
    }
    w.write(&RawEvent::Sample {
        cpu: 0,
        timestamp_ns: T0 + 99,
        data: &[4, 0, 0],
    })
    .expect("garbage");
    w.finish().expect("finish");
    let cfg = NodeConfig {
        server: ServerConfig {
            node_name: "n".into(),
            cluster_name: String::new(),
            advertise_address: String::new(),
        },
        ring_capacity: 4095,
        metadata: starwars_metadata("n"),
        metrics: None,
    };
    let node = Node::start(cfg, Box::new(ReplaySource::new(&path)), vec![]).expect("node");
    let server = node.server.clone();
    node.join().expect("replay ran cleanly");
    assert_eq!(server.ring.head(), 50);
    assert_eq!(
        server.stats.decode_errors.truncated.load(Ordering::Relaxed),
        1
    );
    std::fs::remove_file(path).ok();
}
