//! `periscope status`.

use std::io::Write;

use periscope_proto::observer::ServerStatusRequest;
use periscope_proto::observer::observer_client::ObserverClient;

use crate::cli::{StatusArgs, StatusFormat};
use crate::client::{self, Health};
use crate::error::CliError;
use crate::output::status;

pub async fn status(args: &StatusArgs, out: &mut impl Write) -> Result<(), CliError> {
    let channel = client::connect_channel(&args.server).await?;
    let health = client::health(channel.clone(), args.server.request_timeout).await?;
    let healthy = match &health {
        Health::Serving | Health::Unknown => None,
        Health::NotServing(s) => Some(s.clone()),
    };
    if args.output == StatusFormat::Compact {
        let word = match &healthy {
            None => "Ok".to_string(),
            Some(s) => format!("Unavailable: {s}"),
        };
        writeln!(out, "Healthcheck (via {}): {word}", args.server.server)?;
    }
    if let Some(s) = healthy {
        out.flush()?;
        return Err(CliError::Unhealthy(s));
    }
    let mut observer = ObserverClient::new(channel);
    let resp = client::unary(
        "ServerStatus",
        args.server.request_timeout,
        observer.server_status(ServerStatusRequest {}),
    )
    .await?;
    let text = match args.output {
        StatusFormat::Compact => status::server_status_compact(&resp),
        StatusFormat::Dict => status::server_status_dict(&resp),
        StatusFormat::Table => status::server_status_table(&resp),
        StatusFormat::Json => status::server_status_json(&resp)?,
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
