//! Serving the relay: the Observer API (+ health and reflection) on the main listener,
//! optionally TLS/mTLS, and health alone on a second listener (Hubble's 4222).

use std::future::Future;
use std::time::Duration;

use periscope_proto::FILE_DESCRIPTOR_SET;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::service::RelayObserverServer;
use crate::{Relay, RelayError};

/// Room for one fast stream per client without HTTP/2 flow control stalling it.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
const MAX_FRAME: u32 = 1 << 20;

#[derive(Default)]
pub struct ServeOptions {
    /// TLS for the main listener (with a client CA for mTLS); `None` = plaintext.
    pub tls: Option<ServerTlsConfig>,
    /// A second, plaintext listener that serves only gRPC health.
    pub health_listener: Option<TcpListener>,
}

/// Serves until `shutdown` resolves; then ends every open stream so the server can drain,
/// and stops the relay's node connections.
pub async fn serve(
    relay: Relay,
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RelayObserverServer>().await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let health_task = opts.health_listener.map(|l| {
        let mut stop = stop_rx.clone();
        let health = health.clone();
        tokio::spawn(async move {
            Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    });

    let mut builder = Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Lets clients that accept big frames (the CLI, the bench) get fewer of them.
        .max_frame_size(MAX_FRAME)
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = opts.tls {
        builder = builder.tls_config(tls)?;
    }
    let stopper = relay.clone();
    let result = builder
        .add_service(health)
        .add_service(reflection)
        .add_service(relay.observer_server())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            stopper.stop();
            let _ = stop_tx.send(true);
        })
        .await;
    if let Some(t) = health_task {
        match t.await {
            Ok(r) => r?,
            Err(e) => tracing::warn!(error = %e, "health server task failed"),
        }
    }
    result?;
    Ok(())
}
