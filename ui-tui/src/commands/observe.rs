//! `periscope observe`.

use std::future::Future;
use std::io::Write;
use std::time::SystemTime;

use periscope_proto::flow::FlowFilter;

use crate::cli::ObserveArgs;
use crate::client::{self, ClientError};
use crate::error::CliError;
use crate::filters;
use crate::output::{OutputFormat, Printer, PrinterOptions};
use crate::request;
use crate::timefmt::Zone;

/// Printer options from the output flags; `stdout_is_terminal` resolves `--color auto`.
pub fn printer_options(args: &ObserveArgs, stdout_is_terminal: bool) -> PrinterOptions {
    let f = &args.format;
    PrinterOptions {
        format: f.output,
        time_format: f.time_format,
        zone: Zone::Local,
        color: f.color.enabled(stdout_is_terminal),
        node_name: f.print_node_name,
        ip_translation: !f.numeric,
        debug: f.debug,
    }
}

/// `--print-raw-filters`: `{"whitelist": [...], "blacklist": [...]}`, pretty-printed.
pub fn raw_filters_json(
    whitelist: &[FlowFilter],
    blacklist: &[FlowFilter],
) -> std::io::Result<String> {
    let list = |v: &[FlowFilter]| {
        serde_json::to_string_pretty(v)
            .map(|s| s.replace('\n', "\n  "))
            .map_err(std::io::Error::other)
    };
    Ok(format!(
        "{{\n  \"whitelist\": {},\n  \"blacklist\": {}\n}}",
        list(whitelist)?,
        list(blacklist)?
    ))
}

/// Builds the request, connects, and prints the stream until it ends or `shutdown` resolves
/// (Ctrl-C), which is a clean exit.
pub async fn observe<W: Write, E: Write>(
    args: &ObserveArgs,
    mut out: W,
    err: E,
    stdout_is_terminal: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let filters = filters::build(&args.filters)?;
    let req = request::with_filters(&args.selectors, filters, SystemTime::now())?;
    if args.print_raw_filters {
        writeln!(out, "{}", raw_filters_json(&req.whitelist, &req.blacklist)?)?;
        out.flush()?;
        return Ok(());
    }
    if args.format.output == OutputFormat::Table && args.selectors.follow {
        return Err(CliError::Usage(
            "table output format is not compatible with follow mode".to_string(),
        ));
    }
    let follow = req.follow;
    let mut printer = Printer::new(printer_options(args, stdout_is_terminal), out, err);

    tokio::pin!(shutdown);
    let mut client = tokio::select! {
        c = client::connect(&args.server) => c?,
        () = &mut shutdown => return Ok(()),
    };
    let mut stream = tokio::select! {
        r = client.get_flows(req) => r
            .map_err(|status| ClientError::Rpc { what: "GetFlows", status })?
            .into_inner(),
        () = &mut shutdown => return Ok(()),
    };
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            () = &mut shutdown => break,
        };
        match msg {
            Ok(Some(resp)) => {
                printer.write_response(&resp)?;
                if follow {
                    printer.flush()?;
                }
            }
            Ok(None) => break,
            Err(status) if status.code() == tonic::Code::Cancelled => break,
            Err(status) => {
                // Show what arrived before the failure, then report it.
                printer.finish()?;
                return Err(ClientError::Rpc {
                    what: "GetFlows",
                    status,
                }
                .into());
            }
        }
    }
    printer.finish()?;
    Ok(())
}
