//! The viewer's only I/O with the server: one task that connects (with exponential backoff when
//! the server is away), follows `GetFlows` for the current query, re-queries when the query
//! changes, and polls `ServerStatus` and `GetNamespaces` on the side. Everything it learns goes
//! to the UI as [`NetEvent`]s; it never touches the screen.

use std::time::Duration;

use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, ServerStatusRequest,
    ServerStatusResponse,
};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

use crate::cli::ServerArgs;
use crate::client::{self, ClientError};

/// Backoff after the first failure; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often `ServerStatus` is asked for (nodes, server-side rate).
pub const STATUS_EVERY: Duration = Duration::from_secs(2);
/// How often the namespace list is refreshed.
pub const NAMESPACES_EVERY: Duration = Duration::from_secs(15);

/// The connection as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    /// Lost or never reached; the next attempt is `retry_in` away.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        error: String,
    },
    /// Retrying would not help (bad address, filter refused): waits for a new query.
    Error(String),
}

/// A query: its generation (bumped on every filter change) and the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub generation: u64,
    pub request: GetFlowsRequest,
}

/// What the network task tells the UI.
#[derive(Debug)]
pub enum NetEvent {
    State(ConnState),
    /// A response of the stream opened for query `generation`.
    Response {
        generation: u64,
        response: Box<GetFlowsResponse>,
    },
    Status(ServerStatusResponse),
    /// Namespace names, sorted and without duplicates.
    Namespaces(Vec<String>),
}

/// Delay before attempt `attempt` (1-based): 0.5s, 1s, 2s, … capped at [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Runs until the UI drops its receiver.
pub async fn run(
    server: ServerArgs,
    mut queries: watch::Receiver<Query>,
    tx: mpsc::Sender<NetEvent>,
) {
    let mut attempt: u32 = 0;
    let mut last_error = String::new();
    loop {
        let state = if attempt == 0 {
            ConnState::Connecting
        } else {
            ConnState::Reconnecting {
                attempt,
                retry_in: backoff(attempt),
                error: last_error.clone(),
            }
        };
        if attempt > 0 {
            if tx.send(NetEvent::State(state)).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff(attempt)) => {}
                () = tx.closed() => return,
            }
        } else if tx.send(NetEvent::State(state)).await.is_err() {
            return;
        }
        let connected = tokio::select! {
            c = client::connect(&server) => c,
            () = tx.closed() => return,
        };
        let observer = match connected {
            Ok(c) => c,
            Err(e @ ClientError::InvalidAddress { .. }) => {
                let _ = tx
                    .send(NetEvent::State(ConnState::Error(e.to_string())))
                    .await;
                tx.closed().await;
                return;
            }
            Err(e) => {
                attempt = attempt.saturating_add(1);
                last_error = e.to_string();
                continue;
            }
        };
        let poller = tokio::spawn(poll_status(
            observer.clone(),
            server.request_timeout,
            tx.clone(),
        ));
        let outcome = follow(observer, &server, &mut queries, &tx).await;
        poller.abort();
        match outcome {
            Outcome::UiGone => return,
            Outcome::Lost { error, streamed } => {
                // A stream that worked resets the backoff: this is a fresh outage.
                attempt = if streamed {
                    1
                } else {
                    attempt.saturating_add(1)
                };
                last_error = error;
            }
        }
    }
}

enum Outcome {
    UiGone,
    /// The connection or stream failed; `streamed` if at least one stream had opened.
    Lost {
        error: String,
        streamed: bool,
    },
}

/// Follows the current query on one connection, switching streams when the query changes.
async fn follow(
    mut observer: ObserverClient<Channel>,
    server: &ServerArgs,
    queries: &mut watch::Receiver<Query>,
    tx: &mpsc::Sender<NetEvent>,
) -> Outcome {
    let mut streamed = false;
    loop {
        let query = queries.borrow_and_update().clone();
        let call = tokio::time::timeout(server.request_timeout, observer.get_flows(query.request));
        let mut stream = tokio::select! {
            r = call => match r {
                Ok(Ok(resp)) => resp.into_inner(),
                Ok(Err(status)) if refused(&status) => {
                    let msg = format!("server refused the query: {}", client::status_line(&status));
                    if tx.send(NetEvent::State(ConnState::Error(msg))).await.is_err() {
                        return Outcome::UiGone;
                    }
                    // Retrying the same query cannot help: wait for a new one.
                    tokio::select! {
                        r = queries.changed() => if r.is_err() { return Outcome::UiGone },
                        () = tx.closed() => return Outcome::UiGone,
                    }
                    continue;
                }
                Ok(Err(status)) => {
                    return Outcome::Lost { error: client::status_line(&status), streamed };
                }
                Err(_) => {
                    return Outcome::Lost {
                        error: format!("GetFlows: no answer within {:?}", server.request_timeout),
                        streamed,
                    };
                }
            },
            () = tx.closed() => return Outcome::UiGone,
        };
        streamed = true;
        if tx
            .send(NetEvent::State(ConnState::Connected))
            .await
            .is_err()
        {
            return Outcome::UiGone;
        }
        loop {
            tokio::select! {
                msg = stream.message() => match msg {
                    Ok(Some(response)) => {
                        let ev = NetEvent::Response {
                            generation: query.generation,
                            response: Box::new(response),
                        };
                        // Waiting here (rather than dropping) pushes back on the server, which
                        // counts what it cannot send as lost events.
                        if tx.send(ev).await.is_err() {
                            return Outcome::UiGone;
                        }
                    }
                    Ok(None) => {
                        return Outcome::Lost { error: "the server ended the stream".into(), streamed };
                    }
                    Err(status) => {
                        return Outcome::Lost { error: client::status_line(&status), streamed };
                    }
                },
                r = queries.changed() => {
                    if r.is_err() {
                        return Outcome::UiGone;
                    }
                    break;
                }
            }
        }
    }
}

/// Errors that mean "this query is wrong", not "the server is away".
fn refused(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
    )
}

/// Polls `ServerStatus` every [`STATUS_EVERY`] and namespaces every [`NAMESPACES_EVERY`]. Errors
/// are ignored: the flow stream notices a dead server first.
async fn poll_status(
    mut observer: ObserverClient<Channel>,
    timeout: Duration,
    tx: mpsc::Sender<NetEvent>,
) {
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    let mut ns_tick = tokio::time::interval(NAMESPACES_EVERY);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ns_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = status_tick.tick() => {
                let call = observer.server_status(ServerStatusRequest {});
                if let Ok(s) = client::unary("ServerStatus", timeout, call).await
                    && tx.send(NetEvent::Status(s)).await.is_err()
                {
                    return;
                }
            }
            _ = ns_tick.tick() => {
                let call = observer.get_namespaces(GetNamespacesRequest {});
                if let Ok(r) = client::unary("GetNamespaces", timeout, call).await {
                    let mut names: Vec<String> =
                        r.namespaces.into_iter().map(|n| n.namespace).filter(|n| !n.is_empty()).collect();
                    names.sort();
                    names.dedup();
                    if tx.send(NetEvent::Namespaces(names)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn unreachable_server_reports_reconnecting() {
        // Bind then drop a listener to get a loopback port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let server = ServerArgs {
            server: format!("127.0.0.1:{port}"),
            timeout: Duration::from_secs(1),
            ..ServerArgs::default()
        };
        let (_qtx, qrx) = watch::channel(Query::default());
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(run(server, qrx, tx));
        let mut states = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while states.len() < 2 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(NetEvent::State(s))) => states.push(s),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        drop(rx);
        task.abort();
        assert_eq!(states.first(), Some(&ConnState::Connecting));
        match states.get(1) {
            Some(ConnState::Reconnecting { attempt, error, .. }) => {
                assert_eq!(*attempt, 1);
                assert!(error.contains("cannot connect"), "{error}");
            }
            other => panic!("expected reconnecting, got {other:?}"),
        }
    }
}
