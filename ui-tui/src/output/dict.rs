//! `-o dict`: Hubble's KEY: VALUE blocks, separated by a line of dashes.

use periscope_proto::flow::{Flow, LostEvent};
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::relay::NodeStatusEvent;

use super::PrinterOptions;
use super::color::{Colorer, sanitize};
use super::compact::NODE_NAMES_CUTOFF;
use super::fields::{FlowFields, join_with_cutoff, lost_source, node_state};
use crate::timefmt::format_timestamp;

/// Printed between two blocks.
pub const SEPARATOR: &str = "------------";

/// One flow as a block (no separator).
pub fn flow(f: &Flow, opts: &PrinterOptions, c: &Colorer) -> String {
    let x = FlowFields::new(f, opts, c);
    let mut s = format!(
        "  TIMESTAMP: {}\n",
        format_timestamp(f.time.as_ref(), opts.time_format, opts.zone)
    );
    if opts.node_name {
        s.push_str(&format!("       NODE: {}\n", sanitize(&f.node_name)));
    }
    s.push_str(&format!(
        "     SOURCE: {}\nDESTINATION: {}\n       TYPE: {}\n    VERDICT: {}\n    SUMMARY: {}\n",
        x.src, x.dst, x.flow_type, x.verdict, x.summary
    ));
    s
}

/// A lost-events notice as a block (Hubble leaves the timestamp empty).
pub fn lost_events(ev: &LostEvent, opts: &PrinterOptions) -> String {
    let mut s = String::from("  TIMESTAMP: \n");
    if opts.node_name {
        s.push_str("       NODE: \n");
    }
    s.push_str(&format!(
        "     SOURCE: {}\n       TYPE: EVENTS LOST\n    VERDICT: \n    SUMMARY: CPU({}) - {}\n",
        lost_source(ev.source),
        ev.cpu.as_ref().map_or(0, |c| c.value),
        ev.num_events_lost
    ));
    s
}

/// A node status event as a block (Hubble prints these on stderr).
pub fn node_status(r: &GetFlowsResponse, ev: &NodeStatusEvent, opts: &PrinterOptions) -> String {
    let message = if ev.message.is_empty() {
        "N/A".to_string()
    } else {
        format!("{:?}", sanitize(&ev.message))
    };
    format!(
        "  TIMESTAMP: {}\n      STATE: {}\n      NODES: {}\n    MESSAGE: {}\n",
        format_timestamp(r.time.as_ref(), opts.time_format, opts.zone),
        node_state(ev.state_change),
        join_with_cutoff(&ev.node_names, ", ", NODE_NAMES_CUTOFF),
        message
    )
}
