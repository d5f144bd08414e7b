//! End to end: the real `periscope` binary against an in-process Observer server on loopback
//! that serves the canned responses of `common::responses()` and records the requests it gets.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use periscope_proto::flow::{FlowFilter, Verdict};
use periscope_proto::observer::observer_server::{Observer, ObserverServer};
use periscope_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse,
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
    GetNodesRequest, GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse,
};
use periscope_proto::pbjson_types::UInt32Value;
use periscope_proto::relay::NodeState;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Default, Clone)]
struct Canned {
    requests: Arc<Mutex<Vec<GetFlowsRequest>>>,
}

#[tonic::async_trait]
impl Observer for Canned {
    type GetFlowsStream = BoxStream<GetFlowsResponse>;
    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;
    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let req = request.into_inner();
        let follow = req.follow;
        if let Ok(mut r) = self.requests.lock() {
            r.push(req);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            for r in common::responses() {
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
            }
            if follow {
                // Keep the stream open until the client goes away.
                tx.closed().await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_agent_events(
        &self,
        _: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_debug_events(
        &self,
        _: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_nodes(
        &self,
        _: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        Ok(Response::new(GetNodesResponse {
            nodes: vec![
                Node {
                    name: "kind-worker2".into(),
                    state: NodeState::NodeUnavailable as i32,
                    ..Default::default()
                },
                Node {
                    name: "kind-worker".into(),
                    state: NodeState::NodeConnected as i32,
                    uptime_ns: 60_000_000_000,
                    num_flows: 100,
                    max_flows: 4095,
                    seen_flows: 600,
                    ..Default::default()
                },
            ],
        }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse {
            namespaces: vec![Namespace {
                cluster: String::new(),
                namespace: "default".into(),
            }],
        }))
    }

    async fn server_status(
        &self,
        _: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(ServerStatusResponse {
            num_flows: 4095,
            max_flows: 4095,
            seen_flows: 9000,
            uptime_ns: 900_000_000_000,
            num_connected_nodes: Some(UInt32Value { value: 1 }),
            num_unavailable_nodes: Some(UInt32Value { value: 1 }),
            unavailable_nodes: vec!["kind-worker2".into()],
            version: "test".into(),
            flows_rate: 10.0,
        }))
    }
}

/// The server runs on its own runtime so tests can block on child processes.
struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<GetFlowsRequest>>>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let svc = Canned::default();
        let requests = svc.requests.clone();
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(ObserverServer::new(svc))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self {
            addr,
            requests,
            _rt: rt,
        }
    }

    fn server_flag(&self) -> String {
        format!("--server={}", self.addr)
    }

    fn last_request(&self) -> GetFlowsRequest {
        self.requests
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the server got a GetFlows request")
    }
}

fn periscope(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_periscope"));
    cmd.args(args)
        .env("TZ", "UTC")
        .env_remove("PERISCOPE_SERVER")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the child with a deadline, killing it if it overstays.
fn wait(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "periscope did not exit within {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn run(args: &[&str]) -> Output {
    wait(
        periscope(args).spawn().expect("spawn periscope"),
        Duration::from_secs(20),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `--- stdout ---` part of a golden file.
fn golden_stdout(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let all = std::fs::read_to_string(&path).expect("golden file");
    let body = all.strip_prefix("--- stdout ---\n").expect("golden header");
    body.split("--- stderr ---\n")
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn observe_prints_compact_lines_and_asks_for_the_last_20() {
    let server = TestServer::start();
    let out = run(&["observe", &server.server_flag(), "--color", "never"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), golden_stdout("compact"));
    assert_eq!(
        text(&out.stderr),
        "Oct 26 15:15:53.416 [relay]: 1 nodes are unavailable: kind-worker2\n"
    );
    let req = server.last_request();
    assert_eq!((req.number, req.first, req.follow), (20, false, false));
    assert!(req.whitelist.is_empty() && req.blacklist.is_empty());
}

#[test]
fn observe_sends_hubble_filters_and_prints_jsonpb() {
    let server = TestServer::start();
    let out = run(&[
        "observe",
        &server.server_flag(),
        "--pod",
        "deathstar",
        "--verdict",
        "DROPPED",
        "--not",
        "--from-pod",
        "xwing",
        "--last",
        "5",
        "-o",
        "jsonpb",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let req = server.last_request();
    assert_eq!(req.number, 5);
    let dropped = Verdict::Dropped as i32;
    assert_eq!(
        req.whitelist,
        vec![
            FlowFilter {
                source_pod: vec!["default/deathstar".into()],
                verdict: vec![dropped],
                ..Default::default()
            },
            FlowFilter {
                destination_pod: vec!["default/deathstar".into()],
                verdict: vec![dropped],
                ..Default::default()
            },
        ]
    );
    assert_eq!(
        req.blacklist,
        vec![FlowFilter {
            source_pod: vec!["default/xwing".into()],
            ..Default::default()
        }]
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout, golden_stdout("jsonpb"));
    for line in stdout.lines() {
        serde_json::from_str::<GetFlowsResponse>(line).expect("each line is a GetFlowsResponse");
    }
}

#[test]
fn observe_table_and_dict_match_golden_output() {
    let server = TestServer::start();
    for (format, golden) in [("table", "table"), ("dict", "dict"), ("json", "json")] {
        let out = run(&[
            "observe",
            &server.server_flag(),
            "-o",
            format,
            "--color",
            "never",
            "--all",
        ]);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), golden_stdout(golden), "{format}");
        assert_eq!(server.last_request().number, u64::MAX);
    }
}

#[test]
fn print_raw_filters_does_not_connect() {
    // No server at all: the port in the default address is never dialled.
    let out = run(&[
        "observe",
        "--print-raw-filters",
        "--pod",
        "deathstar",
        "--verdict",
        "DROPPED",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "whitelist": [
                {"source_pod": ["default/deathstar"], "verdict": ["DROPPED"]},
                {"destination_pod": ["default/deathstar"], "verdict": ["DROPPED"]}
            ],
            "blacklist": []
        })
    );
}

#[test]
fn bad_flag_values_fail_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["observe", "--verdict", "BOGUS"], "--verdict"),
        (&["observe", "-o", "xml"], "'xml'"),
        (&["observe", "--since", "yesterday"], "--since"),
        (&["observe", "--time-format", "Kitchen"], "'Kitchen'"),
        (&["observe", "--color", "sometimes"], "'sometimes'"),
        (
            &["observe", "--pod", "x", "--from-pod", "y"],
            "cannot be combined",
        ),
        (
            &["observe", "--first", "3", "--last", "4"],
            "--first and --last",
        ),
        (
            &["observe", "-o", "table", "--follow"],
            "not compatible with follow",
        ),
        (&["observe", "--timeout", "soon"], "--timeout"),
        (&["observe", "--not"], "trailing --not"),
        (&["observe", "--bogus-flag"], "--bogus-flag"),
        (&["observe", "--server", "https://relay:4245"], "TLS"),
    ];
    for (args, needle) in cases {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line, got {stderr:?}"
        );
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} should mention {needle:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn unreachable_server_fails_with_one_line() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let server = format!("127.0.0.1:{port}");
    for cmd in [&["observe"][..], &["status"][..], &["list", "nodes"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--server", server.as_str(), "--timeout", "2s"]);
        let started = Instant::now();
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(
            stderr.starts_with(&format!("error: cannot connect to {server}")),
            "{args:?}: {stderr:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn silent_server_hits_the_request_timeout() {
    // Accepts TCP connections and never answers, so only the timeout ends the call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..4 {
            match listener.accept() {
                Ok((c, _)) => conns.push(c),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(5));
        drop(conns);
    });
    let started = Instant::now();
    let out = run(&[
        "status",
        "--server",
        &addr.to_string(),
        "--request-timeout",
        "1s",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("timed out after 1s"), "{stderr:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(hold);
}

#[test]
fn follow_streams_until_ctrl_c_and_exits_cleanly() {
    let server = TestServer::start();
    let mut child = periscope(&[
        "observe",
        &server.server_flag(),
        "--follow",
        "--color",
        "never",
    ])
    .spawn()
    .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want = golden_stdout("compact").lines().count();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < want && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(line);
        }
    }
    assert_eq!(got.len(), want, "all canned flows arrive while following");
    assert!(server.last_request().follow);
    assert_eq!(server.last_request().number, 0);

    // SAFETY: sending a signal to our own child process by its pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let out = wait(child, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "Ctrl-C exits 0, got {:?}; stderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("error"), "{stderr}");
    let _ = reader.join();
}

#[test]
fn status_and_lists() {
    let server = TestServer::start();
    let out = run(&["status", &server.server_flag()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Healthcheck (via {}): Ok\nCurrent/Max Flows: 4,095/4,095 (100.00%)\nFlows/s: 10.00\n\
             Connected Nodes: 1/2\nUnavailable Nodes: 1\n  - kind-worker2\n",
            server.addr
        )
    );
    let out = run(&["list", "nodes", &server.server_flag()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "NAME           STATUS        AGE    FLOWS/S   CURRENT/MAX-FLOWS\n\
         kind-worker    Connected     1m0s   10.00     100/4095 (  2.44%)\n\
         kind-worker2   Unavailable   N/A    N/A       N/A\n"
    );
    let out = run(&["list", "namespaces", &server.server_flag()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "NAMESPACE\ndefault\n");
}
