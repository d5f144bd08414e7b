//! One client's GetFlows through the relay: a forwarder task per node stream, one merge task
//! that sorts their responses by time (see [`crate::merge`]) and hands them to the client's
//! bounded queue, and node status events when nodes drop out or (in follow mode) come back.
//!
//! The merge task never waits for the client: while the client's queue is full, node responses
//! keep being read into the sort buffer, and once that holds `client_queue_len` more than its
//! sorting bound the oldest are dropped and counted; the client gets one `LostEvent` (source
//! OBSERVER_EVENTS_QUEUE) where the gap is, once it reads again. So a slow client never slows
//! the node streams (bursts are absorbed twice over), and clients share nothing but the pool. A client whose queue stays full for the stall timeout
//! is not reading at all: rather than keep every node producing flows only to drop them, the
//! relay stops reading that client's own node streams until it reads again (its nodes then
//! skip ahead and report the gap themselves, as HUBBLE_RING_BUFFER lost events).

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use futures::Stream;
use periscope_flow_server::server::FlowServer;
use periscope_proto::Timestamp;
use periscope_proto::flow::{LostEvent, LostEventSource};
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::{GetFlowsRequest, GetFlowsResponse};
use periscope_proto::relay::{NodeState, NodeStatusEvent};
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::Shared;
use crate::codec::{NodeFlowsCodec, RawResponse};
use crate::merge::{SortBuffer, SourceId};
use crate::pool::{ConnState, NodeId, NodeSnapshot, is_connection_error};

/// Responses a forwarder reads from its node before handing them over in one message.
const FORWARD_BATCH: usize = 256;
/// Forwarder batches in flight to the merge task (per client).
const NODE_QUEUE: usize = 64;
/// Forwarder batches the merge task takes per wake-up, so it hands responses to the client
/// queue in steps the queue can take.
const MERGE_STEP: usize = 8;
/// How often a pending lost-event report is retried while nothing else happens.
const LOST_RETRY: Duration = Duration::from_millis(50);

/// The response stream a relay client reads: encoded `GetFlowsResponse`s.
pub type ClientStream = ReceiverStream<Result<Bytes, Status>>;

enum NodeMsg {
    Opened {
        sub: u64,
    },
    Batch {
        sub: u64,
        items: Vec<RawResponse>,
    },
    Ended {
        sub: u64,
        result: Result<(), Status>,
    },
}

struct Sub {
    node: NodeId,
    name: String,
    epoch: u64,
    source: SourceId,
    task: JoinHandle<()>,
}

/// The client's queue plus what was dropped from it and not yet reported.
struct Output {
    tx: mpsc::Sender<Result<Bytes, Status>>,
    lost: u64,
    lost_first: Option<i128>,
    lost_last: Option<i128>,
    /// Since when the queue has been full without the client taking anything.
    full_since: Option<Instant>,
    shared: Arc<Shared>,
}

fn now_ts() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

fn ts_from_ns(ns: i128) -> Timestamp {
    let seconds = ns.div_euclid(1_000_000_000);
    Timestamp {
        seconds: i64::try_from(seconds).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX }),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

impl Output {
    /// Queues `bytes` or counts it lost. Returns false once the client has gone.
    fn deliver(&mut self, bytes: Bytes, time: Option<i128>) -> bool {
        if self.lost > 0 && !self.flush_lost() {
            self.count_lost(time);
            return !self.tx.is_closed();
        }
        match self.tx.try_send(Ok(bytes)) {
            Ok(()) => {
                self.full_since = None;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.count_lost(time);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn is_full(&self) -> bool {
        self.tx.capacity() == 0
    }

    fn count_lost(&mut self, time: Option<i128>) {
        self.lost += 1;
        self.shared
            .stats
            .client_queue_drops
            .fetch_add(1, Ordering::Relaxed);
        if let Some(t) = time {
            self.lost_first.get_or_insert(t);
            self.lost_last = Some(t);
        }
    }

    /// Reports pending losses if the queue has room for the report plus one more response
    /// (so the report is not itself what fills the queue). Returns whether nothing is pending.
    fn flush_lost(&mut self) -> bool {
        if self.lost == 0 {
            return true;
        }
        if self.tx.capacity() < 2 {
            return false;
        }
        let now = now_ts();
        let ev = LostEvent {
            source: LostEventSource::ObserverEventsQueue as i32,
            num_events_lost: self.lost,
            cpu: None,
            first: Some(self.lost_first.map_or(now, ts_from_ns)),
            last: Some(self.lost_last.map_or(now, ts_from_ns)),
        };
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(ev)),
            node_name: self.shared.cfg.name.clone(),
            time: Some(now),
        };
        if self
            .tx
            .try_send(Ok(Bytes::from(resp.encode_to_vec())))
            .is_ok()
        {
            self.lost = 0;
            self.lost_first = None;
            self.lost_last = None;
            true
        } else {
            false
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    req: GetFlowsRequest,
    follow: bool,
    buffer: SortBuffer<RawResponse>,
    subs: HashMap<u64, Sub>,
    next_sub: u64,
    node_tx: mpsc::Sender<NodeMsg>,
    node_rx: mpsc::Receiver<NodeMsg>,
    /// Node → the connection epoch whose stream ended for this client; not re-opened until
    /// the node has been re-dialled.
    done_epoch: HashMap<NodeId, u64>,
    /// Node → newest event time received, so a re-opened follow stream resumes after it.
    last_seen: HashMap<NodeId, i128>,
    out: Output,
    pool_rx: Option<watch::Receiver<u64>>,
    stop_rx: watch::Receiver<bool>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for s in self.subs.values() {
            s.task.abort();
        }
    }
}

/// Starts a GetFlows through the relay. Fails like a node would: with the first node's
/// InvalidArgument, or (when no node is connected) the relay's own validation of the request.
pub(crate) async fn open(
    shared: Arc<Shared>,
    req: GetFlowsRequest,
) -> Result<ClientStream, Status> {
    let pool_rx = shared.pool.subscribe();
    let nodes = shared.pool.list();
    let (connected, unavailable): (Vec<NodeSnapshot>, Vec<NodeSnapshot>) = nodes
        .into_iter()
        .partition(|n| n.state == ConnState::Connected && n.channel.is_some());
    if connected.is_empty() {
        FlowServer::flow_query(&req)?;
    }
    let cfg = &shared.cfg;
    let (tx, rx) = mpsc::channel(cfg.client_queue_len.max(2));
    let (node_tx, node_rx) = mpsc::channel(NODE_QUEUE);
    let follow = req.follow;
    let mut s = Session {
        buffer: SortBuffer::new(
            cfg.sort_buffer_len,
            cfg.sort_buffer_drain_timeout,
            cfg.sort_buffer_reorder_window,
        ),
        req,
        follow,
        subs: HashMap::new(),
        next_sub: 0,
        node_tx,
        node_rx,
        done_epoch: HashMap::new(),
        last_seen: HashMap::new(),
        out: Output {
            tx,
            lost: 0,
            lost_first: None,
            lost_last: None,
            full_since: None,
            shared: shared.clone(),
        },
        pool_rx: follow.then_some(pool_rx),
        stop_rx: shared.stop.subscribe(),
        shared,
    };

    let mut pending: HashSet<u64> = connected.iter().map(|n| s.subscribe(n)).collect();
    let mut opened = Vec::new();
    let mut failed: Vec<(NodeState, String, String)> = Vec::new();
    while !pending.is_empty() {
        // Forwarders bound their own open with the call timeout, so this ends.
        let Some(msg) = s.node_rx.recv().await else {
            break;
        };
        match msg {
            NodeMsg::Opened { sub } => {
                pending.remove(&sub);
                if let Some(x) = s.subs.get(&sub) {
                    opened.push(x.name.clone());
                }
            }
            NodeMsg::Batch { sub, items } => s.on_batch(sub, items),
            NodeMsg::Ended { sub, result } => {
                pending.remove(&sub);
                if let Err(st) = &result
                    && st.code() == Code::InvalidArgument
                {
                    return Err(st.clone());
                }
                if let Some(ev) = s.on_ended(sub, result) {
                    failed.push(ev);
                }
            }
        }
    }
    if !opened.is_empty() {
        opened.sort();
        s.status(NodeState::NodeConnected, opened, String::new());
    }
    let down: Vec<String> = unavailable.into_iter().map(|n| n.name).collect();
    if !down.is_empty() {
        s.status(NodeState::NodeUnavailable, down, String::new());
    }
    for (state, name, msg) in failed {
        s.status(state, vec![name], msg);
    }
    s.shared
        .stats
        .active_streams
        .fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        s.run().await;
        s.shared
            .stats
            .active_streams
            .fetch_sub(1, Ordering::Relaxed);
    });
    Ok(ReceiverStream::new(rx))
}

impl Session {
    fn request_for(&self, node: NodeId) -> GetFlowsRequest {
        let mut req = self.req.clone();
        if let (true, Some(&t)) = (self.follow, self.last_seen.get(&node)) {
            // Resume after the newest flow this client already has from the node.
            let resume = t + 1;
            let since = req.since.map_or(resume, |s| s.as_unix_nanos().max(resume));
            req.since = Some(ts_from_ns(since));
            req.number = 0;
            req.first = false;
        }
        req
    }

    fn subscribe(&mut self, node: &NodeSnapshot) -> u64 {
        let sub = self.next_sub;
        self.next_sub += 1;
        let source = self.buffer.add_source(std::time::Instant::now());
        let req = self.request_for(node.id);
        let task = match node.channel.clone() {
            Some(ch) => tokio::spawn(forward(
                ch,
                req,
                sub,
                self.node_tx.clone(),
                self.shared.cfg.call_timeout,
            )),
            None => {
                let tx = self.node_tx.clone();
                tokio::spawn(async move {
                    let _ = tx
                        .send(NodeMsg::Ended {
                            sub,
                            result: Err(Status::unavailable("not connected")),
                        })
                        .await;
                })
            }
        };
        self.subs.insert(
            sub,
            Sub {
                node: node.id,
                name: node.name.clone(),
                epoch: node.epoch,
                source,
                task,
            },
        );
        sub
    }

    fn on_batch(&mut self, sub: u64, items: Vec<RawResponse>) {
        let Some(s) = self.subs.get(&sub) else {
            return;
        };
        let (source, node) = (s.source, s.node);
        let now = std::time::Instant::now();
        let mut newest = None;
        let n = items.len() as u64;
        for item in items {
            if let Some(t) = item.time_ns {
                newest = Some(newest.map_or(t, |m: i128| m.max(t)));
            }
            let time = item.time_ns;
            self.buffer.push(source, time, item, now);
        }
        if let Some(t) = newest {
            let e = self.last_seen.entry(node).or_insert(t);
            *e = (*e).max(t);
        }
        self.shared
            .stats
            .responses_forwarded
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Retires a finished node stream; returns the status event to send, if any.
    fn on_ended(
        &mut self,
        sub: u64,
        result: Result<(), Status>,
    ) -> Option<(NodeState, String, String)> {
        let s = self.subs.remove(&sub)?;
        self.buffer.end_source(s.source);
        let reason = match result {
            Ok(()) if !self.follow => return None,
            // A follow stream only ends when the node goes away.
            Ok(()) => Status::unavailable("node ended the stream"),
            Err(st) => st,
        };
        self.done_epoch.insert(s.node, s.epoch);
        let state = if is_connection_error(&reason) || reason.code() == Code::Ok {
            self.shared
                .pool
                .report_failure(s.node, s.epoch, reason.message());
            NodeState::NodeUnavailable
        } else {
            NodeState::NodeError
        };
        tracing::debug!(node = %s.name, code = ?reason.code(), msg = reason.message(), "node stream ended");
        Some((state, s.name, reason.message().to_string()))
    }

    fn status(&mut self, state: NodeState, names: Vec<String>, message: String) -> bool {
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
                state_change: state as i32,
                node_names: names,
                message,
            })),
            node_name: self.shared.cfg.name.clone(),
            time: Some(now_ts()),
        };
        self.out.deliver(Bytes::from(resp.encode_to_vec()), None)
    }

    /// Follow mode: opens streams to connected nodes this client is not reading from.
    fn resubscribe(&mut self) {
        let reading: HashSet<NodeId> = self.subs.values().map(|s| s.node).collect();
        for n in self.shared.pool.list() {
            if n.state != ConnState::Connected
                || n.channel.is_none()
                || reading.contains(&n.id)
                || self.done_epoch.get(&n.id).is_some_and(|e| *e >= n.epoch)
            {
                continue;
            }
            self.subscribe(&n);
        }
    }

    fn handle(&mut self, msg: NodeMsg) -> bool {
        match msg {
            NodeMsg::Batch { sub, items } => self.on_batch(sub, items),
            NodeMsg::Opened { sub } => {
                if let Some(name) = self.subs.get(&sub).map(|s| s.name.clone()) {
                    return self.status(NodeState::NodeConnected, vec![name], String::new());
                }
            }
            NodeMsg::Ended { sub, result } => {
                if let Some((state, name, msg)) = self.on_ended(sub, result) {
                    return self.status(state, vec![name], msg);
                }
            }
        }
        true
    }

    /// Moves ready responses into the client's queue while it has room; past the overflow
    /// bound, drops the oldest held responses. Returns false once the client has gone.
    fn pump(&mut self) -> bool {
        let now = std::time::Instant::now();
        loop {
            if !self.out.flush_lost() || self.out.is_full() {
                break;
            }
            let Some(item) = self.buffer.pop_ready(now) else {
                break;
            };
            match self.out.tx.try_send(Ok(item.bytes)) {
                Ok(()) => self.out.full_since = None,
                Err(mpsc::error::TrySendError::Full(_)) => self.out.count_lost(item.time_ns),
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        let overflow = self.shared.cfg.sort_buffer_len + self.shared.cfg.client_queue_len;
        while self.buffer.len() > overflow {
            match self.buffer.pop_oldest() {
                Some(item) => self.out.count_lost(item.time_ns),
                None => break,
            }
        }
        if self.out.is_full() {
            self.out.full_since.get_or_insert_with(Instant::now);
        }
        !self.out.tx.is_closed()
    }

    async fn run(&mut self) {
        let mut msgs = Vec::with_capacity(MERGE_STEP);
        let mut tick = tokio::time::interval(self.shared.cfg.peer_update_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stall = self.shared.cfg.client_stall_timeout;
        loop {
            let full = self.out.is_full();
            let now = std::time::Instant::now();
            let mut wake = if full {
                None
            } else {
                self.buffer.next_deadline(now).map(Instant::from_std)
            };
            if self.out.lost > 0 && !full {
                let retry = Instant::now() + LOST_RETRY;
                wake = Some(wake.map_or(retry, |w| w.min(retry)));
            }
            // A client that has taken nothing for the stall timeout is not reading: stop
            // pulling its node streams until it does.
            let paused = full && self.out.full_since.is_some_and(|t| t.elapsed() >= stall);
            let follow = self.follow;
            tokio::select! {
                biased;
                _ = self.out.tx.closed() => return,
                _ = self.stop_rx.changed() => return,
                // Resolves once the client takes something (the slot is handed straight back).
                _ = async { self.out.tx.reserve().await.map(drop) }, if full => {}
                n = self.node_rx.recv_many(&mut msgs, MERGE_STEP), if !paused => {
                    if n == 0 {
                        return;
                    }
                    for m in msgs.drain(..) {
                        if !self.handle(m) {
                            return;
                        }
                    }
                }
                changed = async {
                    match self.pool_rx.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match changed {
                        Ok(()) => self.resubscribe(),
                        Err(_) => self.pool_rx = None,
                    }
                }
                _ = tick.tick(), if follow => self.resubscribe(),
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
                // While full, re-check the stall state now and then.
                _ = tokio::time::sleep(stall), if full && !paused => {}
            }
            if !self.pump() {
                return;
            }
            if !self.follow && self.subs.is_empty() && self.buffer.is_empty() {
                // A last report of losses, if the client reads it in time; then end the stream.
                if self.out.lost > 0 {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while !self.out.flush_lost() {
                            tokio::time::sleep(LOST_RETRY).await;
                        }
                    })
                    .await;
                }
                return;
            }
        }
    }
}

/// Reads every response that is ready right now (up to `max`) into `batch`. Returns `Some`
/// when the stream ended (with its outcome), `None` when more may follow.
async fn next_batch(
    stream: &mut Streaming<RawResponse>,
    batch: &mut Vec<RawResponse>,
    max: usize,
) -> Option<Result<(), Status>> {
    poll_fn(|cx| {
        loop {
            match Pin::new(&mut *stream).poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    batch.push(item);
                    if batch.len() >= max {
                        return Poll::Ready(None);
                    }
                }
                Poll::Ready(Some(Err(s))) => return Poll::Ready(Some(Err(s))),
                Poll::Ready(None) => return Poll::Ready(Some(Ok(()))),
                Poll::Pending if batch.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(None),
            }
        }
    })
    .await
}

/// Opens the node's GetFlows and forwards its responses in batches until it ends or the
/// client goes away.
async fn forward(
    channel: Channel,
    req: GetFlowsRequest,
    sub: u64,
    tx: mpsc::Sender<NodeMsg>,
    open_timeout: Duration,
) {
    let mut grpc = tonic::client::Grpc::new(channel);
    let open = async {
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("node not ready: {e}")))?;
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/observer.Observer/GetFlows");
        grpc.server_streaming(tonic::Request::new(req), path, NodeFlowsCodec)
            .await
    };
    let mut stream = match tokio::time::timeout(open_timeout, open).await {
        Ok(Ok(resp)) => resp.into_inner(),
        Ok(Err(status)) => {
            let _ = tx
                .send(NodeMsg::Ended {
                    sub,
                    result: Err(status),
                })
                .await;
            return;
        }
        Err(_) => {
            let result = Err(Status::deadline_exceeded(
                "opening GetFlows on the node timed out",
            ));
            let _ = tx.send(NodeMsg::Ended { sub, result }).await;
            return;
        }
    };
    if tx.send(NodeMsg::Opened { sub }).await.is_err() {
        return;
    }
    loop {
        let mut batch = Vec::with_capacity(FORWARD_BATCH);
        let end = tokio::select! {
            end = next_batch(&mut stream, &mut batch, FORWARD_BATCH) => end,
            _ = tx.closed() => return,
        };
        if !batch.is_empty() && tx.send(NodeMsg::Batch { sub, items: batch }).await.is_err() {
            return;
        }
        if let Some(result) = end {
            let _ = tx.send(NodeMsg::Ended { sub, result }).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_from_nanos() {
        assert_eq!(
            ts_from_ns(1_500_000_000),
            Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            ts_from_ns(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
        assert_eq!(ts_from_ns(i128::MAX).seconds, i64::MAX);
    }
}
