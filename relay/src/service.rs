//! The relay's Observer service. GetFlows is served with a pass-through codec (see
//! [`crate::codec`]) by [`RelayObserverServer`]; every other method goes through the generated
//! server. GetNodes, ServerStatus and GetNamespaces ask every connected node concurrently, each
//! call bounded by the call timeout.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::join_all;
use futures::{Stream, StreamExt};
use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::observer_server::{Observer, ObserverServer};
use periscope_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse,
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
    GetNodesRequest, GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse,
    Tls,
};
use periscope_proto::pbjson_types::UInt32Value;
use periscope_proto::relay::NodeState;
use prost::Message;
use prost::bytes::Bytes;
use tonic::body::Body as TonicBody;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::codec::RelayFlowsCodec;
use crate::flows::{self, ClientStream};
use crate::pool::{ConnState, NodeSnapshot, is_connection_error};

/// Hubble reports at most this many names in ServerStatus.unavailable_nodes.
const UNAVAILABLE_NODES_MAX: usize = 10;

pub fn relay_version() -> String {
    format!("periscope-relay v{}", env!("CARGO_PKG_VERSION"))
}

/// The Observer API over the node pool.
#[derive(Clone)]
pub struct RelayObserver {
    pub(crate) shared: Arc<Shared>,
}

type BoxStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl RelayObserver {
    /// Starts a merged GetFlows; the stream yields encoded `GetFlowsResponse`s.
    pub async fn get_flows_raw(&self, req: GetFlowsRequest) -> Result<ClientStream, Status> {
        flows::open(self.shared.clone(), req).await
    }

    /// Runs `call` on every connected node concurrently; `None` for a node whose call failed
    /// (a connection error also marks the node unavailable in the pool).
    async fn fan_out<T, F, Fut>(&self, call: F) -> Vec<(NodeSnapshot, Option<Result<T, Status>>)>
    where
        F: Fn(ObserverClient<tonic::transport::Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let timeout = self.shared.cfg.call_timeout;
        let nodes = self.shared.pool.list();
        let calls = nodes.into_iter().map(|n| {
            let fut = n.channel.clone().map(|ch| call(ObserverClient::new(ch)));
            async move {
                let res = match fut {
                    Some(f) if n.state == ConnState::Connected => {
                        Some(match tokio::time::timeout(timeout, f).await {
                            Ok(r) => r.map(Response::into_inner),
                            Err(_) => Err(Status::deadline_exceeded("node call timed out")),
                        })
                    }
                    _ => None,
                };
                (n, res)
            }
        });
        let results = join_all(calls).await;
        for (n, r) in &results {
            if let Some(Err(s)) = r {
                tracing::warn!(node = %n.name, error = %s.message(), "node call failed");
                if is_connection_error(s) {
                    self.shared.pool.report_failure(n.id, n.epoch, s.message());
                }
            }
        }
        results
    }
}

fn decode_stream(s: ClientStream) -> BoxStream<GetFlowsResponse> {
    Box::pin(s.map(|r| {
        r.and_then(|b| {
            GetFlowsResponse::decode(b).map_err(|e| Status::internal(format!("decode: {e}")))
        })
    }))
}

#[tonic::async_trait]
impl Observer for RelayObserver {
    type GetFlowsStream = BoxStream<GetFlowsResponse>;
    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;
    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    /// Decoded variant for in-process users of the trait; the served path stays encoded.
    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let s = self.get_flows_raw(request.into_inner()).await?;
        Ok(Response::new(decode_stream(s)))
    }

    async fn get_agent_events(
        &self,
        _: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented(
            "GetAgentEvents is not implemented by the relay",
        ))
    }

    async fn get_debug_events(
        &self,
        _: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented(
            "GetDebugEvents is not implemented by the relay",
        ))
    }

    async fn get_nodes(
        &self,
        _: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let results = self
            .fan_out(|mut c| async move { c.server_status(ServerStatusRequest {}).await })
            .await;
        let nodes = results
            .into_iter()
            .map(|(n, r)| {
                let mut node = Node {
                    name: n.name.clone(),
                    version: n
                        .last_status
                        .as_ref()
                        .map(|s| s.version.clone())
                        .unwrap_or_default(),
                    address: n.address.clone(),
                    state: n.state.api_state() as i32,
                    tls: Some(Tls {
                        enabled: n.tls_enabled,
                        server_name: n.tls_server_name.clone(),
                    }),
                    ..Default::default()
                };
                match r {
                    Some(Ok(s)) => {
                        node.version = s.version;
                        node.uptime_ns = s.uptime_ns;
                        node.num_flows = s.num_flows;
                        node.max_flows = s.max_flows;
                        node.seen_flows = s.seen_flows;
                    }
                    Some(Err(s)) => {
                        node.state = if is_connection_error(&s) {
                            NodeState::NodeUnavailable
                        } else {
                            NodeState::NodeError
                        } as i32;
                    }
                    None => {}
                }
                node
            })
            .collect();
        Ok(Response::new(GetNodesResponse { nodes }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let results = self
            .fan_out(|mut c| async move { c.get_namespaces(GetNamespacesRequest {}).await })
            .await;
        // Partial answers over failing: nodes that did not answer are skipped.
        let set: BTreeSet<(String, String)> = results
            .into_iter()
            .filter_map(|(_, r)| r.and_then(Result::ok))
            .flat_map(|r| r.namespaces)
            .map(|ns| (ns.cluster, ns.namespace))
            .collect();
        let namespaces = set
            .into_iter()
            .map(|(cluster, namespace)| Namespace { cluster, namespace })
            .collect();
        Ok(Response::new(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(
        &self,
        _: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let results = self
            .fan_out(|mut c| async move { c.server_status(ServerStatusRequest {}).await })
            .await;
        let mut resp = ServerStatusResponse {
            version: relay_version(),
            ..Default::default()
        };
        let (mut connected, mut unavailable) = (0u32, 0u32);
        for (n, r) in results {
            match r {
                Some(Ok(s)) => {
                    connected += 1;
                    resp.num_flows = resp.num_flows.saturating_add(s.num_flows);
                    resp.max_flows = resp.max_flows.saturating_add(s.max_flows);
                    resp.seen_flows = resp.seen_flows.saturating_add(s.seen_flows);
                    resp.uptime_ns = resp.uptime_ns.max(s.uptime_ns);
                    resp.flows_rate += s.flows_rate;
                }
                _ => {
                    unavailable += 1;
                    if resp.unavailable_nodes.len() < UNAVAILABLE_NODES_MAX {
                        resp.unavailable_nodes.push(n.name);
                    }
                }
            }
        }
        resp.num_connected_nodes = Some(UInt32Value { value: connected });
        resp.num_unavailable_nodes = Some(UInt32Value { value: unavailable });
        Ok(Response::new(resp))
    }
}

/// `observer.Observer` as served by the relay: GetFlows streams encoded node responses as they
/// came; all other methods are the generated [`ObserverServer`] over [`RelayObserver`].
#[derive(Clone)]
pub struct RelayObserverServer {
    observer: RelayObserver,
    inner: ObserverServer<RelayObserver>,
}

impl RelayObserverServer {
    pub fn new(observer: RelayObserver) -> Self {
        Self {
            inner: ObserverServer::new(observer.clone()),
            observer,
        }
    }
}

impl NamedService for RelayObserverServer {
    const NAME: &'static str = <ObserverServer<RelayObserver> as NamedService>::NAME;
}

struct GetFlowsRaw(RelayObserver);

impl ServerStreamingService<GetFlowsRequest> for GetFlowsRaw {
    type Response = Bytes;
    type ResponseStream = ClientStream;
    type Future = BoxFuture<Response<ClientStream>, Status>;

    fn call(&mut self, request: Request<GetFlowsRequest>) -> Self::Future {
        let obs = self.0.clone();
        Box::pin(async move {
            let s = obs.get_flows_raw(request.into_inner()).await?;
            Ok(Response::new(s))
        })
    }
}

impl<B> Service<http::Request<B>> for RelayObserverServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == "/observer.Observer/GetFlows" {
            let svc = GetFlowsRaw(self.observer.clone());
            Box::pin(async move {
                let mut grpc = Grpc::new(RelayFlowsCodec);
                Ok(grpc.server_streaming(svc, req).await)
            })
        } else {
            self.inner.call(req)
        }
    }
}
