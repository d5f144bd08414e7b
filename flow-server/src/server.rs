//! The gRPC face of the flow server: Hubble's Observer and Peer services (plus health and
//! reflection) over the ring. Each GetFlows stream runs in its own task with a bounded queue, so a
//! slow client only falls behind (and is told how many flows it lost), never slows the writer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use parking_lot::Mutex;
use periscope_proto::flow::{self as pb, AgentEvent, AgentEventType};
use periscope_proto::observer::observer_server::{Observer, ObserverServer};
use periscope_proto::observer::{
    self as obs, GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest,
    GetDebugEventsResponse, GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest,
    GetNamespacesResponse, GetNodesRequest, GetNodesResponse, ServerStatusRequest,
    ServerStatusResponse, get_flows_response::ResponseTypes,
};
use periscope_proto::peer::peer_server::{Peer, PeerServer};
use periscope_proto::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest};
use periscope_proto::{FILE_DESCRIPTOR_SET, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::filter::{EvalCtx, FilterSet};
use crate::materialize::{Materializer, new_uuid_prefix, timestamp};
use crate::meta::{Metadata, MetadataChange};
use crate::pipeline::PipelineStats;
use crate::query::{FlowQuery, Item, Progress};
use crate::record::FlowRecord;
use crate::replay::now_ns;
use crate::ring::Ring;

/// Hubble's default listen address for a node's Observer API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4244";
const STREAM_QUEUE: usize = 256;
const BATCH: usize = 256;
const AGENT_EVENT_HISTORY: usize = 1024;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub node_name: String,
    pub cluster_name: String,
    /// Address peers (the relay) should dial, announced by Peer.Notify.
    pub advertise_address: String,
}

/// Shared state behind the gRPC services.
pub struct FlowServer {
    pub ring: Arc<Ring>,
    pub metadata: Arc<Metadata>,
    pub stats: Arc<PipelineStats>,
    pub config: ServerConfig,
    uuid_prefix: String,
    started: Instant,
    agent_events: Mutex<VecDeque<(u64, AgentEvent)>>,
    agent_tx: broadcast::Sender<(u64, AgentEvent)>,
    /// Flows overwritten before a client read them (Hubble's HUBBLE_RING_BUFFER losses).
    pub ring_lost: AtomicU64,
    /// Open GetFlows streams.
    pub grpc_clients: AtomicI64,
    metrics: std::sync::OnceLock<crate::metrics::Metrics>,
}

fn ts_ns(t: &Timestamp, field: &'static str) -> Result<u64, Status> {
    let ns = t.as_unix_nanos();
    u64::try_from(ns).map_err(|_| Status::invalid_argument(format!("invalid {field}: before 1970")))
}

fn nodes_name(config: &ServerConfig) -> String {
    if config.cluster_name.is_empty() {
        config.node_name.clone()
    } else {
        format!("{}/{}", config.cluster_name, config.node_name)
    }
}

impl FlowServer {
    pub fn new(
        ring: Arc<Ring>,
        metadata: Arc<Metadata>,
        stats: Arc<PipelineStats>,
        config: ServerConfig,
    ) -> Arc<Self> {
        let (agent_tx, _) = broadcast::channel(AGENT_EVENT_HISTORY);
        let server = Arc::new(Self {
            ring,
            metadata,
            stats,
            config,
            uuid_prefix: new_uuid_prefix(),
            started: Instant::now(),
            agent_events: Mutex::new(VecDeque::new()),
            agent_tx,
            ring_lost: AtomicU64::new(0),
            grpc_clients: AtomicI64::new(0),
            metrics: std::sync::OnceLock::new(),
        });
        server.publish_agent_event(AgentEvent {
            r#type: AgentEventType::AgentStarted as i32,
            notification: Some(pb::agent_event::Notification::AgentStart(
                pb::TimeNotification {
                    time: Some(timestamp(now_ns())),
                },
            )),
        });
        server
    }

    pub fn publish_agent_event(&self, ev: AgentEvent) {
        let t = now_ns();
        let mut log = self.agent_events.lock();
        if log.len() == AGENT_EVENT_HISTORY {
            log.pop_front();
        }
        log.push_back((t, ev.clone()));
        drop(log);
        // No receivers is fine: nobody is following.
        let _ = self.agent_tx.send((t, ev));
    }

    /// The retained agent events, oldest first (what GetAgentEvents without follow returns).
    pub fn recent_agent_events(&self) -> Vec<AgentEvent> {
        self.agent_events
            .lock()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Reports ring losses and client counts to the metrics exporter (set once).
    pub fn set_metrics(&self, metrics: crate::metrics::Metrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Installs new metadata and reports endpoint/service changes as agent events.
    pub fn update_metadata(&self, md: &crate::meta::ClusterMetadata) {
        let changes = self.metadata.update(md);
        for change in &changes {
            self.publish_agent_event(agent_event_for(change));
        }
        if let Some(m) = self.metrics.get() {
            m.on_metadata_changes(&changes);
        }
    }

    fn client_count_changed(&self, delta: i64) {
        let n = self.grpc_clients.fetch_add(delta, Ordering::Relaxed) + delta;
        if let Some(m) = self.metrics.get() {
            m.grpc_clients().set(n);
        }
    }

    fn with_ctx<R>(&self, f: impl FnOnce(&EvalCtx<'_>) -> R) -> R {
        let md = &*self.metadata;
        md.table.with_endpoints(|endpoints| {
            md.table.with_services(|services| {
                f(&EvalCtx {
                    endpoints,
                    services,
                    metadata: md,
                    node_name: &self.config.node_name,
                    uuid_prefix: &self.uuid_prefix,
                })
            })
        })
    }

    fn materializer(&self) -> Materializer<'_> {
        Materializer {
            metadata: &self.metadata,
            node_name: &self.config.node_name,
            uuid_prefix: &self.uuid_prefix,
        }
    }

    fn response(&self, item: Item) -> GetFlowsResponse {
        let m = self.materializer();
        let (rt, time) = match item {
            Item::Flow(r) => (ResponseTypes::Flow(m.flow(&r)), timestamp(r.time_ns)),
            Item::PerfLost(r) => (
                ResponseTypes::LostEvents(m.lost_event(&r)),
                timestamp(r.time_ns),
            ),
            Item::RingLost { count } => {
                self.ring_lost.fetch_add(count, Ordering::Relaxed);
                if let Some(m) = self.metrics.get() {
                    m.add_lost(crate::metrics::LostSource::HubbleRingBuffer, count);
                }
                let now = timestamp(now_ns());
                let ev = pb::LostEvent {
                    source: pb::LostEventSource::HubbleRingBuffer as i32,
                    num_events_lost: count,
                    cpu: None,
                    first: Some(now),
                    last: Some(now),
                };
                (ResponseTypes::LostEvents(ev), now)
            }
        };
        GetFlowsResponse {
            response_types: Some(rt),
            node_name: self.config.node_name.clone(),
            time: Some(time),
        }
    }

    /// Flows per second over the last minute of stored flows.
    fn flows_rate(&self) -> f64 {
        let now = now_ns();
        let window = 60_000_000_000u64;
        let (head, oldest) = (self.ring.head(), self.ring.oldest());
        let mut count = 0u64;
        let mut n = head;
        while n > oldest {
            n -= 1;
            match self.ring.read(n) {
                crate::ring::Read::Record(r) if r.time_ns + window >= now => count += 1,
                _ => break,
            }
        }
        count as f64 / 60.0
    }

    pub fn status(&self) -> ServerStatusResponse {
        ServerStatusResponse {
            num_flows: self.ring.len(),
            max_flows: self.ring.capacity() as u64,
            seen_flows: self.ring.head(),
            uptime_ns: self.started.elapsed().as_nanos() as u64,
            version: format!("periscope v{}", env!("CARGO_PKG_VERSION")),
            flows_rate: self.flows_rate(),
            ..Default::default()
        }
    }

    /// Parses and validates a GetFlows request.
    pub fn flow_query(req: &GetFlowsRequest) -> Result<FlowQuery, Status> {
        if req.first && req.follow {
            return Err(Status::invalid_argument(
                "first cannot be combined with follow",
            ));
        }
        let filters = FilterSet::compile(&req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let since_ns = req.since.as_ref().map(|t| ts_ns(t, "since")).transpose()?;
        let until_ns = req.until.as_ref().map(|t| ts_ns(t, "until")).transpose()?;
        if let (Some(s), Some(u)) = (since_ns, until_ns)
            && s > u
        {
            return Err(Status::invalid_argument("since must not be after until"));
        }
        Ok(FlowQuery {
            filters,
            number: req.number,
            first: req.first,
            follow: req.follow,
            since_ns,
            until_ns,
        })
    }

    /// Runs one GetFlows request, sending responses into `tx` until done or the client leaves.
    pub async fn run_flow_query(
        self: Arc<Self>,
        q: FlowQuery,
        tx: mpsc::Sender<Result<GetFlowsResponse, Status>>,
    ) {
        let mut cur = self.with_ctx(|ctx| q.start(&self.ring, ctx));
        let mut items: Vec<Item> = Vec::with_capacity(BATCH);
        loop {
            items.clear();
            let progress =
                self.with_ctx(|ctx| q.next_batch(&self.ring, &mut cur, ctx, &mut items, BATCH));
            for item in items.drain(..) {
                if tx.send(Ok(self.response(item))).await.is_err() {
                    return;
                }
            }
            match progress {
                Progress::More => {}
                Progress::Done => return,
                Progress::CaughtUp => {
                    tokio::select! {
                        _ = self.ring.wait_beyond(cur.next) => {}
                        _ = tx.closed() => return,
                        // Bounded wait: re-check even if a wake-up was missed.
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
            }
        }
    }
}

fn agent_event_for(change: &MetadataChange) -> AgentEvent {
    use pb::agent_event::Notification as N;
    match change {
        MetadataChange::EndpointCreated(e) | MetadataChange::EndpointDeleted(e) => {
            let created = matches!(change, MetadataChange::EndpointCreated(_));
            AgentEvent {
                r#type: if created {
                    AgentEventType::EndpointCreated
                } else {
                    AgentEventType::EndpointDeleted
                } as i32,
                notification: Some(N::EndpointUpdate(pb::EndpointUpdateNotification {
                    id: u64::from(e.endpoint_id),
                    labels: e.labels.clone(),
                    error: String::new(),
                    pod_name: e.pod_name.clone(),
                    namespace: e.namespace.clone(),
                })),
            }
        }
        MetadataChange::ServiceUpserted(s, ip, port) => AgentEvent {
            r#type: AgentEventType::ServiceUpserted as i32,
            notification: Some(N::ServiceUpsert(pb::ServiceUpsertNotification {
                frontend_address: Some(pb::ServiceUpsertNotificationAddr {
                    ip: ip.to_string(),
                    port: u32::from(*port),
                }),
                r#type: "ClusterIP".into(),
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                ..Default::default()
            })),
        },
        MetadataChange::ServiceDeleted(..) => AgentEvent {
            r#type: AgentEventType::ServiceDeleted as i32,
            notification: Some(N::ServiceDelete(pb::ServiceDeleteNotification { id: 0 })),
        },
    }
}

/// Decrements the client gauge when a stream task ends, however it ends.
struct ClientGuard(Arc<FlowServer>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.client_count_changed(-1);
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct ObserverService(pub Arc<FlowServer>);

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;
    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;
    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let q = FlowServer::flow_query(request.get_ref())?;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let server = self.0.clone();
        server.client_count_changed(1);
        let guard = ClientGuard(server.clone());
        tokio::spawn(async move {
            let _guard = guard;
            server.run_flow_query(q, tx).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_agent_events(
        &self,
        request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        let req = request.into_inner();
        let since = req.since.as_ref().map(|t| ts_ns(t, "since")).transpose()?;
        let until = req.until.as_ref().map(|t| ts_ns(t, "until")).transpose()?;
        let in_time = move |t: u64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u);
        // Subscribe before reading history so nothing falls between the two.
        let mut live = self.0.agent_tx.subscribe();
        let history: Vec<(u64, AgentEvent)> = {
            let log = self.0.agent_events.lock();
            let matching: Vec<_> = log.iter().filter(|(t, _)| in_time(*t)).cloned().collect();
            let n = if req.number == 0 {
                matching.len()
            } else {
                (req.number as usize).min(matching.len())
            };
            if req.first {
                matching[..n].to_vec()
            } else {
                matching[matching.len() - n..].to_vec()
            }
        };
        let node = self.0.config.node_name.clone();
        let last_seen = history.last().map(|(t, _)| *t).unwrap_or(0);
        let follow = req.follow;
        let resp = move |(t, ev): (u64, AgentEvent)| GetAgentEventsResponse {
            agent_event: Some(ev),
            node_name: node.clone(),
            time: Some(timestamp(t)),
        };
        let stream = async_stream_from(
            move |tx: mpsc::Sender<Result<GetAgentEventsResponse, Status>>| async move {
                for h in history {
                    if tx.send(Ok(resp(h))).await.is_err() {
                        return;
                    }
                }
                if !follow {
                    return;
                }
                loop {
                    tokio::select! {
                        ev = live.recv() => match ev {
                            Ok((t, e)) if t > last_seen && in_time(t) => {
                                if tx.send(Ok(resp((t, e)))).await.is_err() { return; }
                            }
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = tx.closed() => return,
                    }
                }
            },
        );
        Ok(Response::new(stream))
    }

    async fn get_debug_events(
        &self,
        request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        // The datapath emits no debug events yet: an empty stream, held open for followers.
        let follow = request.get_ref().follow;
        let stream = async_stream_from(
            move |tx: mpsc::Sender<Result<GetDebugEventsResponse, Status>>| async move {
                if follow {
                    tx.closed().await;
                }
            },
        );
        Ok(Response::new(stream))
    }

    async fn get_nodes(
        &self,
        _: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let s = self.0.status();
        let node = obs::Node {
            name: nodes_name(&self.0.config),
            version: s.version.clone(),
            address: self.0.config.advertise_address.clone(),
            state: periscope_proto::relay::NodeState::NodeConnected as i32,
            tls: None,
            uptime_ns: s.uptime_ns,
            num_flows: s.num_flows,
            max_flows: s.max_flows,
            seen_flows: s.seen_flows,
        };
        Ok(Response::new(GetNodesResponse { nodes: vec![node] }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let namespaces = self
            .0
            .metadata
            .table
            .seen_namespaces()
            .into_iter()
            .map(|(cluster, namespace)| obs::Namespace { cluster, namespace })
            .collect();
        Ok(Response::new(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(
        &self,
        _: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(self.0.status()))
    }
}

/// Runs `f` as a task feeding a bounded channel, returned as a stream.
fn async_stream_from<T, F, Fut>(f: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(f(tx));
    Box::pin(ReceiverStream::new(rx))
}

#[derive(Clone)]
pub struct PeerService(pub Arc<FlowServer>);

#[tonic::async_trait]
impl Peer for PeerService {
    type NotifyStream = BoxStream<ChangeNotification>;

    async fn notify(
        &self,
        _: Request<NotifyRequest>,
    ) -> Result<Response<Self::NotifyStream>, Status> {
        let me = ChangeNotification {
            name: nodes_name(&self.0.config),
            address: self.0.config.advertise_address.clone(),
            r#type: ChangeNotificationType::PeerAdded as i32,
            tls: None,
        };
        let stream = async_stream_from(
            move |tx: mpsc::Sender<Result<ChangeNotification, Status>>| async move {
                if tx.send(Ok(me)).await.is_ok() {
                    // A single node never changes membership; keep the stream open like Hubble does.
                    tx.closed().await;
                }
            },
        );
        Ok(Response::new(stream))
    }
}

/// Serves Observer, Peer, health and reflection on `listener` until `shutdown` resolves.
pub async fn serve(
    server: Arc<FlowServer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_tls(server, listener, None, shutdown).await
}

/// TLS for a gRPC listener (a node's or the relay's); with a client CA, clients must present a
/// certificate it signed (mTLS).
pub fn server_tls_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> ServerTlsConfig {
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
    if let Some(ca) = client_ca_pem {
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    tls
}

/// [`server_tls_from_pem`] from PEM files.
pub fn server_tls_from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> anyhow::Result<ServerTlsConfig> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
    };
    let ca = client_ca.map(read).transpose()?;
    Ok(server_tls_from_pem(
        &read(cert)?,
        &read(key)?,
        ca.as_deref(),
    ))
}

/// [`serve`], optionally over TLS.
pub async fn serve_tls(
    server: Arc<FlowServer>,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ObserverServer<ObserverService>>()
        .await;
    health.set_serving::<PeerServer<PeerService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let ring = server.ring.clone();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ObserverServer::new(ObserverService(server.clone())))
        .add_service(PeerServer::new(PeerService(server)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            ring.wake_all();
        })
        .await?;
    Ok(())
}

/// The record a test or benchmark gets back from a query, without gRPC.
pub fn query_records(server: &FlowServer, q: &FlowQuery) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    let mut items = Vec::new();
    let mut cur = server.with_ctx(|ctx| q.start(&server.ring, ctx));
    loop {
        let p = server.with_ctx(|ctx| q.next_batch(&server.ring, &mut cur, ctx, &mut items, BATCH));
        out.extend(
            items
                .drain(..)
                .filter_map(|i| if let Item::Flow(r) = i { Some(r) } else { None }),
        );
        if p != Progress::More {
            return out;
        }
    }
}
