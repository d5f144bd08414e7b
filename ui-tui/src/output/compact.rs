//! `-o compact`: Hubble's one-line format,
//! `TIME [NODE]: SRC (ID) -> DST (ID) TYPE VERDICT (SUMMARY)`.

use periscope_proto::flow::{Flow, LostEvent};
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::relay::{NodeState, NodeStatusEvent};

use super::PrinterOptions;
use super::color::{Colorer, sanitize};
use super::fields::{FlowFields, join_with_cutoff, lost_source};
use crate::timefmt::format_timestamp;

/// Hubble cuts long node lists at about this many characters.
pub const NODE_NAMES_CUTOFF: usize = 50;

/// One flow as a line (with the trailing newline). Replies are printed with source and
/// destination swapped and a `<-` arrow; `<>` when the direction is unknown.
pub fn flow(f: &Flow, opts: &PrinterOptions, c: &Colorer) -> String {
    let mut x = FlowFields::new(f, opts, c);
    let arrow = match f.is_reply.as_ref() {
        None => "<>",
        Some(r) if r.value => {
            std::mem::swap(&mut x.src, &mut x.dst);
            std::mem::swap(&mut x.src_identity, &mut x.dst_identity);
            "<-"
        }
        Some(_) => "->",
    };
    let node = if opts.node_name {
        format!(" [{}]", sanitize(&f.node_name))
    } else {
        String::new()
    };
    format!(
        "{}{node}: {} {} {arrow} {} {} {} {} ({})\n",
        format_timestamp(f.time.as_ref(), opts.time_format, opts.zone),
        x.src,
        x.src_identity,
        x.dst,
        x.dst_identity,
        x.flow_type,
        x.verdict,
        x.summary,
    )
}

/// `EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 5`.
pub fn lost_events(ev: &LostEvent) -> String {
    format!(
        "EVENTS LOST: {} CPU({}) {}\n",
        lost_source(ev.source),
        ev.cpu.as_ref().map_or(0, |c| c.value),
        ev.num_events_lost
    )
}

/// A node status event as one line (Hubble prints these on stderr), e.g.
/// `Oct 26 15:15:46.416 [relay]: 2 nodes are unavailable: node-a, node-b`.
pub fn node_status(r: &GetFlowsResponse, ev: &NodeStatusEvent, opts: &PrinterOptions) -> String {
    let n = ev.node_names.len();
    let names = join_with_cutoff(&ev.node_names, ", ", NODE_NAMES_CUTOFF);
    let prefix = format!(
        "{} [{}]",
        format_timestamp(r.time.as_ref(), opts.time_format, opts.zone),
        sanitize(&r.node_name)
    );
    let msg = match NodeState::try_from(ev.state_change) {
        Ok(NodeState::NodeConnected) => format!("Receiving flows from {n} nodes: {names}"),
        Ok(NodeState::NodeUnavailable) => format!("{n} nodes are unavailable: {names}"),
        Ok(NodeState::NodeGone) => format!("{n} nodes removed from cluster: {names}"),
        Ok(NodeState::NodeError) => {
            format!("Error {:?} on {n} nodes: {names}", sanitize(&ev.message))
        }
        _ => format!(
            "unknown node status event: state {} nodes {names}",
            ev.state_change
        ),
    };
    format!("{prefix}: {msg}\n")
}
