//! `periscope list nodes|namespaces`.

use std::io::Write;

use periscope_proto::observer::{GetNamespacesRequest, GetNodesRequest};

use crate::cli::{ListArgs, ListFormat};
use crate::client;
use crate::error::CliError;
use crate::output::status;

pub async fn nodes(args: &ListArgs, out: &mut impl Write) -> Result<(), CliError> {
    let mut c = client::connect(&args.server).await?;
    let mut nodes = client::unary(
        "GetNodes",
        args.server.request_timeout,
        c.get_nodes(GetNodesRequest {}),
    )
    .await?
    .nodes;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let text = match args.output {
        ListFormat::Json => status::json_list(&nodes)?,
        ListFormat::Table => status::nodes_table(&nodes, false),
        ListFormat::Wide => status::nodes_table(&nodes, true),
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

pub async fn namespaces(args: &ListArgs, out: &mut impl Write) -> Result<(), CliError> {
    let mut c = client::connect(&args.server).await?;
    let namespaces = client::unary(
        "GetNamespaces",
        args.server.request_timeout,
        c.get_namespaces(GetNamespacesRequest {}),
    )
    .await?
    .namespaces;
    let text = match args.output {
        ListFormat::Json => status::json_list(&namespaces)?,
        ListFormat::Table => status::namespaces_table(&namespaces, false),
        ListFormat::Wide => status::namespaces_table(&namespaces, true),
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
