//! Test/bench harness: real flow-server nodes on loopback, each on its own tokio runtime so
//! that "killing" a node (dropping the runtime) closes its sockets like a crashed process,
//! fed by a channel-driven event source (not the datapath).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use periscope_flow_server::fixtures::{starwars_metadata, syn_trace};
use periscope_flow_server::node::{Node, NodeConfig};
use periscope_flow_server::server::{FlowServer, ServerConfig, serve};
use periscope_probes::source::{EventSink, EventSource, RawEvent, SourceError};
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::relay::NodeState;

/// Batches of (timestamp_ns, notification) pushed by the test body.
pub type Batch = Vec<(u64, Vec<u8>)>;

pub struct ChannelSource(pub mpsc::Receiver<Batch>);

impl EventSource for ChannelSource {
    fn name(&self) -> &str {
        "test-channel"
    }
    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError> {
        while !stop.load(Ordering::Relaxed) {
            match self.0.recv_timeout(Duration::from_millis(10)) {
                Ok(batch) => {
                    for (ts, d) in &batch {
                        sink.push(RawEvent::Sample {
                            cpu: 0,
                            timestamp_ns: *ts,
                            data: d,
                        });
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

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// How a test node serves: plaintext via the flow server's own `serve`, or a custom server.
pub type ServeFn = Arc<
    dyn Fn(
            Arc<FlowServer>,
            tokio::net::TcpListener,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

pub fn plaintext() -> ServeFn {
    Arc::new(|server, listener| {
        Box::pin(async move {
            let _ = serve(server, listener, std::future::pending()).await;
        })
    })
}

pub struct TestNode {
    pub name: String,
    pub addr: SocketAddr,
    tx: mpsc::Sender<Batch>,
    node: Option<Node>,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestNode {
    /// Starts node `name` on `addr` (127.0.0.1:0 if `None`; retried briefly so a restarted
    /// node can take its old port back).
    pub fn start(name: &str, addr: Option<SocketAddr>, capacity: usize) -> TestNode {
        Self::start_with(name, addr, capacity, plaintext())
    }

    pub fn start_with(
        name: &str,
        addr: Option<SocketAddr>,
        capacity: usize,
        serve_fn: ServeFn,
    ) -> TestNode {
        let (tx, rx) = mpsc::channel();
        Self::start_source(
            name,
            addr,
            capacity,
            serve_fn,
            Box::new(ChannelSource(rx)),
            tx,
        )
    }

    /// A node fed by any source (`tx` only matters for [`TestNode::send`]).
    pub fn start_source(
        name: &str,
        addr: Option<SocketAddr>,
        capacity: usize,
        serve_fn: ServeFn,
        source: Box<dyn EventSource>,
        tx: mpsc::Sender<Batch>,
    ) -> TestNode {
        let want = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut bound = None;
        for _ in 0..200 {
            match std::net::TcpListener::bind(want) {
                Ok(l) => {
                    bound = Some(l);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let std_listener = bound.expect("bind node listener");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("node-{name}"))
            .enable_all()
            .build()
            .expect("node runtime");
        let cfg = NodeConfig {
            server: ServerConfig {
                node_name: name.into(),
                cluster_name: "default".into(),
                advertise_address: addr.to_string(),
            },
            ring_capacity: capacity,
            metadata: starwars_metadata(name),
            metrics: None,
        };
        let node = Node::start(cfg, source, vec![]).expect("node");
        let server = node.server.clone();
        {
            let _guard = rt.enter();
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            rt.spawn(serve_fn(server, listener));
        }
        TestNode {
            name: name.into(),
            addr,
            tx,
            node: Some(node),
            rt: Some(rt),
        }
    }

    pub fn server(&self) -> &Arc<FlowServer> {
        &self.node.as_ref().expect("running").server
    }

    /// One flow (xwing → deathstar SYN) per timestamp.
    pub fn send_flows(&self, times: &[u64]) {
        let batch = times
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, syn_trace(30000 + (i % 30000) as u16)))
            .collect();
        self.tx.send(batch).expect("source alive");
    }

    pub fn send(&self, batch: Batch) {
        self.tx.send(batch).expect("source alive");
    }

    /// Waits (bounded) until the node has stored `n` records.
    pub async fn wait_head(&self, n: u64) {
        let ring = self.server().ring.clone();
        for _ in 0..1000 {
            if ring.head() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{}: ring never reached {n} (at {})", self.name, ring.head());
    }

    /// Drops the node's runtime (closing every socket it had) and stops its source.
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        if let Some(n) = self.node.take() {
            let _ = n.stop();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn flow_time(r: &GetFlowsResponse) -> Option<i128> {
    match &r.response_types {
        Some(ResponseTypes::Flow(f)) => f.time.map(|t| t.as_unix_nanos()),
        _ => None,
    }
}

pub fn node_status(r: &GetFlowsResponse) -> Option<(NodeState, Vec<String>)> {
    match &r.response_types {
        Some(ResponseTypes::NodeStatus(s)) => Some((s.state_change(), s.node_names.clone())),
        _ => None,
    }
}
