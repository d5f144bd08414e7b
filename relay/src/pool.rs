//! The node pool: every node the relay knows (from Peer.Notify or the static list), one
//! manager task per node that dials it with jittered backoff, probes it with ServerStatus and
//! tracks its state, and a change counter that open GetFlows streams watch to (re)subscribe.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::{GetNodesRequest, ServerStatusRequest, ServerStatusResponse};
use periscope_proto::peer::peer_client::PeerClient;
use periscope_proto::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest};
use periscope_proto::relay::NodeState;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::backoff::{Backoff, seed_for};
use crate::config::RelayConfig;

pub type NodeId = u64;

/// HTTP/2 windows well above the 64 KiB default, so one stream can carry ~100k flows/s.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
const MAX_FRAME: u32 = 1 << 20;

/// Where the relay stands with one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Not yet dialled successfully (reported as unavailable).
    Connecting,
    Connected,
    /// Dial or probe failed; the manager keeps retrying with backoff.
    Unavailable,
}

impl ConnState {
    pub fn api_state(self) -> NodeState {
        match self {
            ConnState::Connected => NodeState::NodeConnected,
            ConnState::Connecting | ConnState::Unavailable => NodeState::NodeUnavailable,
        }
    }
}

/// A node as the pool sees it right now.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub id: NodeId,
    /// `cluster/node` from Peer.Notify; for a static node, learned from its GetNodes once
    /// connected (its address until then).
    pub name: String,
    pub address: String,
    pub state: ConnState,
    /// Counts successful connections; a stream that failed on epoch N is only re-opened once
    /// the node has been re-dialled (epoch > N).
    pub epoch: u64,
    /// Set while connected.
    pub channel: Option<Channel>,
    pub tls_enabled: bool,
    pub tls_server_name: String,
    /// The latest ServerStatus probe answer (version, flow counts).
    pub last_status: Option<ServerStatusResponse>,
    pub last_error: Option<String>,
    /// Listed with `--node` (never removed by Peer.Notify).
    pub is_static: bool,
}

struct Entry {
    snap: NodeSnapshot,
    /// The peer-announced TLS server name, if any.
    peer_server_name: Option<String>,
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    next_id: NodeId,
    entries: BTreeMap<NodeId, Entry>,
    discovery: Vec<JoinHandle<()>>,
}

pub struct NodePool {
    cfg: Arc<RelayConfig>,
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
}

/// Whether a failed call means the connection (not just this request) is broken.
pub fn is_connection_error(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

fn endpoint_uri(address: &str, tls: bool) -> String {
    if address.contains("://") {
        address.to_string()
    } else if tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    }
}

/// Fills in the host of a peer address announced as `:port` with the peer service's host.
fn complete_address(address: &str, service: &str) -> String {
    match address.strip_prefix(':') {
        Some(port) => {
            let host = service
                .rsplit_once(':')
                .map(|(h, _)| h)
                .filter(|h| !h.is_empty())
                .unwrap_or("127.0.0.1");
            format!("{host}:{port}")
        }
        None => address.to_string(),
    }
}

/// Dials `address` (TLS per `cfg.node_tls`), bounded by the dial timeout.
pub async fn dial(
    cfg: &RelayConfig,
    address: &str,
    peer_server_name: Option<&str>,
) -> Result<Channel, String> {
    let tls = cfg.node_tls.as_ref();
    let mut ep = Endpoint::from_shared(endpoint_uri(address, tls.is_some()))
        .map_err(|e| format!("invalid address {address:?}: {e}"))?
        .connect_timeout(cfg.dial_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Fewer, larger DATA frames from busy nodes.
        .max_frame_size(MAX_FRAME)
        // Notices a node that vanished without closing its connections.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if let Some(t) = tls {
        ep = ep
            .tls_config(t.client_config(peer_server_name))
            .map_err(|e| format!("TLS config for {address}: {e}"))?;
    }
    match tokio::time::timeout(cfg.dial_timeout, ep.connect()).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(format!("dial {address}: {}", error_chain(&e))),
        Err(_) => Err(format!("dial {address}: timed out")),
    }
}

/// An error and its sources on one line (transport errors hide the useful part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl NodePool {
    pub fn new(cfg: Arc<RelayConfig>) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            inner: Mutex::new(Inner {
                next_id: 1,
                entries: BTreeMap::new(),
                discovery: Vec::new(),
            }),
            changes: watch::Sender::new(0),
        })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// Every known node, sorted by name.
    pub fn list(&self) -> Vec<NodeSnapshot> {
        let mut v: Vec<NodeSnapshot> = self
            .inner
            .lock()
            .entries
            .values()
            .map(|e| e.snap.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        v
    }

    pub fn get(&self, id: NodeId) -> Option<NodeSnapshot> {
        self.inner.lock().entries.get(&id).map(|e| e.snap.clone())
    }

    /// A receiver whose value changes whenever a node is added, removed or changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Waits (bounded) until `pred` holds for the node list; returns whether it did.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[NodeSnapshot]) -> bool,
    ) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.list()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(&self.list()),
            }
        }
    }

    /// Adds a node dialled directly (`--node`).
    pub fn add_static(self: &Arc<Self>, address: &str) -> NodeId {
        let mut inner = self.inner.lock();
        if let Some((id, e)) = inner
            .entries
            .iter_mut()
            .find(|(_, e)| e.snap.address == address)
        {
            e.snap.is_static = true;
            return *id;
        }
        let id = self.insert(&mut inner, address.to_string(), address.to_string(), None);
        if let Some(e) = inner.entries.get_mut(&id) {
            e.snap.is_static = true;
        }
        drop(inner);
        self.bump();
        id
    }

    /// Applies a Peer.Notify added/updated notification.
    pub fn upsert_peer(self: &Arc<Self>, name: &str, address: &str, tls_server_name: Option<&str>) {
        let server_name = tls_server_name
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let mut inner = self.inner.lock();
        let found = inner
            .entries
            .iter()
            .find(|(_, e)| e.snap.name == name)
            .or_else(|| {
                inner
                    .entries
                    .iter()
                    .find(|(_, e)| e.snap.address == address)
            })
            .map(|(id, _)| *id);
        match found {
            Some(id) => {
                let Some(e) = inner.entries.get_mut(&id) else {
                    return;
                };
                let redial = e.snap.address != address || e.peer_server_name != server_name;
                e.snap.name = name.to_string();
                if redial {
                    e.snap.address = address.to_string();
                    e.peer_server_name = server_name;
                    e.snap.tls_server_name = self.tls_server_name(e.peer_server_name.as_deref());
                    e.snap.state = ConnState::Connecting;
                    e.snap.channel = None;
                    if let Some(t) = e.task.take() {
                        t.abort();
                    }
                    e.task = Some(self.spawn_manager(id));
                }
            }
            None => {
                self.insert(
                    &mut inner,
                    name.to_string(),
                    address.to_string(),
                    server_name,
                );
            }
        }
        drop(inner);
        self.bump();
    }

    /// Applies a Peer.Notify deletion (static nodes stay).
    pub fn remove_peer(&self, name: &str) {
        let mut inner = self.inner.lock();
        let ids: Vec<NodeId> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.snap.name == name && !e.snap.is_static)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(mut e) = inner.entries.remove(id)
                && let Some(t) = e.task.take()
            {
                t.abort();
            }
        }
        drop(inner);
        if !ids.is_empty() {
            self.bump();
        }
    }

    /// A stream on the node's connection failed: mark it unavailable and have its manager
    /// re-dial (unless that already happened: `epoch` is the connection the stream used).
    pub fn report_failure(&self, id: NodeId, epoch: u64, reason: &str) {
        let mut inner = self.inner.lock();
        let Some(e) = inner.entries.get_mut(&id) else {
            return;
        };
        if e.snap.epoch != epoch || e.snap.state != ConnState::Connected {
            return;
        }
        tracing::warn!(node = %e.snap.name, address = %e.snap.address, reason, "node unavailable");
        e.snap.state = ConnState::Unavailable;
        e.snap.channel = None;
        e.snap.last_error = Some(reason.to_string());
        e.wake.notify_one();
        drop(inner);
        self.bump();
    }

    fn tls_server_name(&self, peer: Option<&str>) -> String {
        self.cfg
            .node_tls
            .as_ref()
            .map(|t| t.effective_server_name(peer))
            .unwrap_or_default()
    }

    fn insert(
        self: &Arc<Self>,
        inner: &mut Inner,
        name: String,
        address: String,
        peer_server_name: Option<String>,
    ) -> NodeId {
        let id = inner.next_id;
        inner.next_id += 1;
        let snap = NodeSnapshot {
            id,
            name,
            address,
            state: ConnState::Connecting,
            epoch: 0,
            channel: None,
            tls_enabled: self.cfg.node_tls.is_some(),
            tls_server_name: self.tls_server_name(peer_server_name.as_deref()),
            last_status: None,
            last_error: None,
            is_static: false,
        };
        inner.entries.insert(
            id,
            Entry {
                snap,
                peer_server_name,
                wake: Arc::new(Notify::new()),
                task: Some(self.spawn_manager(id)),
            },
        );
        id
    }

    fn spawn_manager(self: &Arc<Self>, id: NodeId) -> JoinHandle<()> {
        tokio::spawn(manage(Arc::downgrade(self), id))
    }

    /// Starts following a peer service's Peer.Notify.
    pub fn add_peer_service(self: &Arc<Self>, address: &str) {
        let task = tokio::spawn(discover(Arc::downgrade(self), address.to_string()));
        self.inner.lock().discovery.push(task);
    }

    /// Stops every manager and discovery task.
    pub fn stop(&self) {
        let mut inner = self.inner.lock();
        for t in inner.discovery.drain(..) {
            t.abort();
        }
        for e in inner.entries.values_mut() {
            if let Some(t) = e.task.take() {
                t.abort();
            }
        }
    }

    /// Applies `f` to the node's entry, returning whether it exists.
    fn update(&self, id: NodeId, f: impl FnOnce(&mut Entry)) -> bool {
        let mut inner = self.inner.lock();
        match inner.entries.get_mut(&id) {
            Some(e) => {
                f(e);
                true
            }
            None => false,
        }
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One node's lifecycle: dial, probe, stay connected while probes pass, back off and retry.
async fn manage(pool: Weak<NodePool>, id: NodeId) {
    let (cfg, address, peer_name, wake) = {
        let Some(p) = pool.upgrade() else { return };
        let inner = p.inner.lock();
        let Some(e) = inner.entries.get(&id) else {
            return;
        };
        (
            p.cfg.clone(),
            e.snap.address.clone(),
            e.peer_server_name.clone(),
            e.wake.clone(),
        )
    };
    let mut backoff = Backoff::new(cfg.retry, seed_for(&address));
    loop {
        let attempt = connect_and_probe(&cfg, &address, peer_name.as_deref()).await;
        let Some(p) = pool.upgrade() else { return };
        match attempt {
            Ok((channel, status, learned_name)) => {
                backoff.reset();
                let mut epoch = 0;
                let known = p.update(id, |e| {
                    e.snap.epoch += 1;
                    epoch = e.snap.epoch;
                    e.snap.state = ConnState::Connected;
                    e.snap.channel = Some(channel.clone());
                    e.snap.last_status = Some(status);
                    e.snap.last_error = None;
                    if let Some(n) = learned_name.filter(|_| e.snap.is_static) {
                        e.snap.name = n;
                    }
                });
                if !known {
                    return;
                }
                tracing::info!(%address, epoch, "node connected");
                p.bump();
                drop(p);
                let reason = monitor(&pool, id, epoch, &cfg, channel, &wake).await;
                let Some(p) = pool.upgrade() else { return };
                let changed = p.update(id, |e| {
                    if e.snap.epoch == epoch && e.snap.state == ConnState::Connected {
                        e.snap.state = ConnState::Unavailable;
                        e.snap.channel = None;
                        e.snap.last_error = Some(reason.clone());
                    }
                });
                if !changed {
                    return;
                }
                tracing::warn!(%address, %reason, "node connection lost");
                p.bump();
            }
            Err(err) => {
                let mut changed = false;
                let known = p.update(id, |e| {
                    changed = e.snap.state != ConnState::Unavailable;
                    e.snap.state = ConnState::Unavailable;
                    e.snap.channel = None;
                    e.snap.last_error = Some(err.clone());
                });
                if !known {
                    return;
                }
                if changed {
                    tracing::warn!(%address, error = %err, "node unavailable");
                    p.bump();
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn connect_and_probe(
    cfg: &RelayConfig,
    address: &str,
    peer_server_name: Option<&str>,
) -> Result<(Channel, ServerStatusResponse, Option<String>), String> {
    let channel = dial(cfg, address, peer_server_name).await?;
    let status = probe(cfg, channel.clone()).await?;
    // A node's GetNodes lists itself: that is how a static node gets its name.
    let mut client = ObserverClient::new(channel.clone());
    let name =
        match tokio::time::timeout(cfg.call_timeout, client.get_nodes(GetNodesRequest {})).await {
            Ok(Ok(r)) => match r.into_inner().nodes.as_slice() {
                [n] if !n.name.is_empty() => Some(n.name.clone()),
                _ => None,
            },
            _ => None,
        };
    Ok((channel, status, name))
}

async fn probe(cfg: &RelayConfig, channel: Channel) -> Result<ServerStatusResponse, String> {
    let mut client = ObserverClient::new(channel);
    match tokio::time::timeout(
        cfg.call_timeout,
        client.server_status(ServerStatusRequest {}),
    )
    .await
    {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("ServerStatus: {}", s.message())),
        Err(_) => Err("ServerStatus timed out".into()),
    }
}

/// Probes a connected node until a probe fails or a stream reports the connection broken.
async fn monitor(
    pool: &Weak<NodePool>,
    id: NodeId,
    epoch: u64,
    cfg: &RelayConfig,
    channel: Channel,
    wake: &Notify,
) -> String {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.status_interval) => {
                match probe(cfg, channel.clone()).await {
                    Ok(s) => {
                        let Some(p) = pool.upgrade() else { return "relay stopped".into() };
                        p.update(id, |e| {
                            if e.snap.epoch == epoch {
                                e.snap.last_status = Some(s);
                            }
                        });
                    }
                    Err(e) => return e,
                }
            }
            _ = wake.notified() => {
                let Some(p) = pool.upgrade() else { return "relay stopped".into() };
                let still = p.get(id).is_some_and(|s| s.epoch == epoch && s.state == ConnState::Connected);
                if !still {
                    return "stream failed".into();
                }
            }
        }
    }
}

/// Follows one peer service's Peer.Notify, re-dialling it with backoff when it goes away.
/// Known nodes are kept when the peer service is unreachable.
async fn discover(pool: Weak<NodePool>, service: String) {
    let cfg = match pool.upgrade() {
        Some(p) => p.cfg.clone(),
        None => return,
    };
    let mut backoff = Backoff::new(cfg.retry, seed_for(&service));
    loop {
        match dial(&cfg, &service, None).await {
            Ok(channel) => {
                let mut client = PeerClient::new(channel);
                match client.notify(NotifyRequest {}).await {
                    Ok(resp) => {
                        let mut stream = resp.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(n)) => {
                                    backoff.reset();
                                    let Some(p) = pool.upgrade() else { return };
                                    apply_notification(&p, &service, &n);
                                }
                                Ok(None) => {
                                    tracing::warn!(%service, "peer service closed Notify");
                                    break;
                                }
                                Err(s) => {
                                    tracing::warn!(%service, error = %s.message(), "peer service stream failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(s) => {
                        tracing::warn!(%service, error = %s.message(), "Peer.Notify failed");
                    }
                }
            }
            Err(e) => tracing::warn!(%service, error = %e, "peer service unreachable"),
        }
        if pool.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn apply_notification(pool: &Arc<NodePool>, service: &str, n: &ChangeNotification) {
    let server_name = n.tls.as_ref().map(|t| t.server_name.as_str());
    match n.r#type() {
        ChangeNotificationType::PeerAdded | ChangeNotificationType::PeerUpdated => {
            if n.address.is_empty() || n.name.is_empty() {
                tracing::warn!(name = %n.name, "peer without name or address ignored");
                return;
            }
            let address = complete_address(&n.address, service);
            pool.upsert_peer(&n.name, &address, server_name);
        }
        ChangeNotificationType::PeerDeleted => pool.remove_peer(&n.name),
        ChangeNotificationType::Unknown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(endpoint_uri("10.0.0.1:4244", false), "http://10.0.0.1:4244");
        assert_eq!(endpoint_uri("n1:4244", true), "https://n1:4244");
        assert_eq!(endpoint_uri("http://x:1", true), "http://x:1");
        assert_eq!(complete_address(":4244", "10.1.2.3:4244"), "10.1.2.3:4244");
        assert_eq!(complete_address(":4244", "[::1]:4244"), "[::1]:4244");
        assert_eq!(complete_address("1.2.3.4:5", "x:1"), "1.2.3.4:5");
    }

    #[test]
    fn connection_errors() {
        assert!(is_connection_error(&Status::unavailable("x")));
        assert!(is_connection_error(&Status::unknown("h2 protocol error")));
        assert!(!is_connection_error(&Status::invalid_argument("x")));
        assert!(!is_connection_error(&Status::internal("x")));
    }
}
