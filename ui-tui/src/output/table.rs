//! `-o table`: TIMESTAMP [NODE] SOURCE DESTINATION TYPE VERDICT SUMMARY, aligned like Hubble's
//! tabwriter once the stream ends (so it cannot be combined with `--follow`).

use periscope_proto::flow::{Flow, LostEvent};

use super::PrinterOptions;
use super::color::{Colorer, sanitize};
use super::fields::{FlowFields, lost_source};
use crate::timefmt::format_timestamp;

/// Column titles.
pub fn header(opts: &PrinterOptions) -> Vec<String> {
    let mut h = vec!["TIMESTAMP"];
    if opts.node_name {
        h.push("NODE");
    }
    h.extend(["SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]);
    h.into_iter().map(String::from).collect()
}

/// One flow's cells (never colored: escape sequences would break the alignment).
pub fn flow_row(f: &Flow, opts: &PrinterOptions) -> Vec<String> {
    let x = FlowFields::new(f, opts, &Colorer::new(false));
    let mut row = vec![format_timestamp(
        f.time.as_ref(),
        opts.time_format,
        opts.zone,
    )];
    if opts.node_name {
        row.push(sanitize(&f.node_name));
    }
    row.extend([x.src, x.dst, x.flow_type, x.verdict, x.summary]);
    row
}

/// A lost-events notice's cells.
pub fn lost_events_row(ev: &LostEvent, opts: &PrinterOptions) -> Vec<String> {
    let mut row = vec![String::new()];
    if opts.node_name {
        row.push(String::new());
    }
    row.extend([
        lost_source(ev.source),
        String::new(),
        "EVENTS LOST".to_string(),
        String::new(),
        format!(
            "CPU({}) - {}",
            ev.cpu.as_ref().map_or(0, |c| c.value),
            ev.num_events_lost
        ),
    ]);
    row
}
