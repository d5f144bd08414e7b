//! Connecting to the server (node agent on :4244 or relay on :4245) with a bounded connect
//! timeout, and turning transport and gRPC failures into one-line errors.

use std::time::Duration;

use periscope_proto::observer::observer_client::ObserverClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::ServerArgs;

/// Service name Hubble's `status` asks the gRPC health service about.
pub const OBSERVER_SERVICE: &str = "observer.Observer";

/// Why talking to the server failed. Every variant displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid --server {server:?}: {reason}")]
    InvalidAddress { server: String, reason: String },
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
    #[error("cannot connect to {server}: no answer within {}", humanize(.after))]
    ConnectTimeout { server: String, after: Duration },
    #[error("{what} timed out after {}", humanize(.after))]
    RequestTimeout { what: &'static str, after: Duration },
    #[error("{what} failed: {}", status_line(.status))]
    Rpc {
        what: &'static str,
        status: tonic::Status,
    },
}

fn humanize(d: &Duration) -> String {
    crate::timefmt::go_duration_string(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `message (Code)` on one line.
pub fn status_line(s: &tonic::Status) -> String {
    let msg = one_line(s.message());
    if msg.is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{msg} ({:?})", s.code())
    }
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `host:port` (the usual form) or `http://host:port`. TLS (`https://`) is not supported yet.
pub fn endpoint_uri(server: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidAddress {
        server: server.to_string(),
        reason: reason.to_string(),
    };
    let server = server.trim();
    if server.is_empty() {
        return Err(invalid("empty address"));
    }
    if let Some(rest) = server.strip_prefix("http://") {
        if rest.is_empty() {
            return Err(invalid("missing host"));
        }
        return Ok(server.to_string());
    }
    if server.starts_with("https://") {
        return Err(invalid(
            "TLS is not supported by this client yet; use host:port",
        ));
    }
    if server.contains("://") {
        return Err(invalid("expected host:port or http://host:port"));
    }
    Ok(format!("http://{server}"))
}

/// Opens a channel to `--server`, failing after `--timeout` if the server does not answer.
pub async fn connect_channel(args: &ServerArgs) -> Result<Channel, ClientError> {
    let uri = endpoint_uri(&args.server)?;
    let endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::InvalidAddress {
        server: args.server.clone(),
        reason: error_chain(&e),
    })?;
    let endpoint = endpoint.connect_timeout(args.timeout).tcp_nodelay(true);
    // The outer timeout also bounds name resolution, which connect_timeout does not cover.
    match tokio::time::timeout(args.timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => {
            let detail = error_chain(&e);
            if detail.contains("timed out") {
                Err(ClientError::ConnectTimeout {
                    server: args.server.clone(),
                    after: args.timeout,
                })
            } else {
                Err(ClientError::Connect {
                    server: args.server.clone(),
                    detail,
                })
            }
        }
        Err(_) => Err(ClientError::ConnectTimeout {
            server: args.server.clone(),
            after: args.timeout,
        }),
    }
}

/// An Observer client for `--server`.
pub async fn connect(args: &ServerArgs) -> Result<ObserverClient<Channel>, ClientError> {
    Ok(ObserverClient::new(connect_channel(args).await?)
        // Relays can send large batches of flows.
        .max_decoding_message_size(64 * 1024 * 1024))
}

/// Runs a unary call with `--request-timeout`.
pub async fn unary<T>(
    what: &'static str,
    after: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(ClientError::Rpc { what, status }),
        Err(_) => Err(ClientError::RequestTimeout { what, after }),
    }
}

/// Health of the Observer service per the standard gRPC health protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Serving,
    NotServing(String),
    /// The server does not implement the health service (or not for this service name).
    Unknown,
}

/// Asks the gRPC health service whether `observer.Observer` is serving.
pub async fn health(channel: Channel, after: Duration) -> Result<Health, ClientError> {
    let mut hc = HealthClient::new(channel);
    let req = HealthCheckRequest {
        service: OBSERVER_SERVICE.to_string(),
    };
    match unary("health check", after, hc.check(req)).await {
        Ok(resp) => Ok(match ServingStatus::try_from(resp.status) {
            Ok(ServingStatus::Serving) => Health::Serving,
            Ok(other) => Health::NotServing(other.as_str_name().to_string()),
            Err(_) => Health::NotServing(resp.status.to_string()),
        }),
        Err(ClientError::Rpc { status, .. })
            if matches!(
                status.code(),
                tonic::Code::Unimplemented | tonic::Code::NotFound
            ) =>
        {
            Ok(Health::Unknown)
        }
        Err(e) => Err(e),
    }
}

/// An error and its causes on one line, without repeating identical messages.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![one_line(&e.to_string())];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = one_line(&s.to_string());
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            endpoint_uri("localhost:4245").ok().as_deref(),
            Some("http://localhost:4245")
        );
        assert_eq!(
            endpoint_uri("http://10.0.0.1:4244").ok().as_deref(),
            Some("http://10.0.0.1:4244")
        );
        assert!(endpoint_uri("https://relay:4245").is_err());
        assert!(endpoint_uri("unix:///var/run/x.sock").is_err());
        assert!(endpoint_uri("").is_err());
    }

    #[test]
    fn status_lines_have_no_newlines() {
        let s = tonic::Status::invalid_argument("bad filter\nsecond line");
        assert_eq!(status_line(&s), "bad filter; second line (InvalidArgument)");
    }

    #[tokio::test]
    async fn refused_connection_is_a_one_line_error() {
        // Bind then drop a listener to get a loopback port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let args = ServerArgs {
            server: format!("127.0.0.1:{port}"),
            timeout: Duration::from_secs(2),
            ..ServerArgs::default()
        };
        let err = connect(&args).await.expect_err("nothing listens there");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
