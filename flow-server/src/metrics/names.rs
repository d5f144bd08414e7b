//! Label values exactly as Hubble's metric handlers spell them (Go enum `String()` forms, the
//! monitor's observation point names, gopacket's ICMP type/code names).

use std::borrow::Cow;

use periscope_probes::abi::{identity, message_type};
use periscope_proto::flow::{DropReason, Verdict};

use crate::record::{FlowRecord, direction, proto};

/// Small integer that identifies the protocol label of a record (for cache keys).
pub fn protocol_id(rec: &FlowRecord) -> u8 {
    match rec.msg_type {
        message_type::DROP
        | message_type::TRACE
        | message_type::POLICY_VERDICT
        | message_type::CAPTURE => match rec.l4_proto {
            proto::TCP => 1,
            proto::UDP => 2,
            proto::ICMP => 3,
            proto::ICMPV6 => 4,
            proto::SCTP => 5,
            _ => 6,
        },
        message_type::ACCESS_LOG => 7,
        _ => 0,
    }
}

/// Hubble's `FlowProtocol`: the L4 name for datapath events.
pub fn protocol(id: u8) -> &'static str {
    match id {
        1 => "TCP",
        2 => "UDP",
        3 => "ICMPv4",
        4 => "ICMPv6",
        5 => "SCTP",
        6 => "Unknown L4",
        // L7 records carry no protocol details yet.
        7 => "Unknown L7",
        _ => "Unknown flow",
    }
}

/// The `type` label of `hubble_flows_processed_total`.
pub fn event_type(msg_type: u8) -> &'static str {
    match msg_type {
        message_type::DROP => "Drop",
        message_type::CAPTURE => "Capture",
        message_type::TRACE => "Trace",
        message_type::POLICY_VERDICT => "PolicyVerdict",
        message_type::ACCESS_LOG => "L7",
        _ => "Unknown",
    }
}

/// The `subtype` label: the observation point for traces, the message type number for unknown
/// events, empty otherwise.
pub fn event_subtype(rec: &FlowRecord) -> Cow<'static, str> {
    match rec.msg_type {
        message_type::TRACE => Cow::Borrowed(trace_observation_point(rec.subtype)),
        message_type::DROP
        | message_type::CAPTURE
        | message_type::POLICY_VERDICT
        | message_type::ACCESS_LOG => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

/// Cilium's observation point names (raw datapath numbering); unknown points are empty, as a
/// Go map miss is.
pub fn trace_observation_point(raw: u8) -> &'static str {
    match raw {
        0 => "to-endpoint",
        1 => "to-proxy",
        2 => "to-host",
        3 => "to-stack",
        4 => "to-overlay",
        5 => "from-endpoint",
        6 => "from-proxy",
        7 => "from-host",
        8 => "from-stack",
        9 => "from-overlay",
        10 => "from-network",
        11 => "to-network",
        12 => "from-crypto",
        13 => "to-crypto",
        _ => "",
    }
}

/// `flow.Verdict` enum name, e.g. `FORWARDED`.
pub fn verdict(v: u8) -> Cow<'static, str> {
    match Verdict::try_from(i32::from(v)) {
        Ok(v) => Cow::Borrowed(v.as_str_name()),
        Err(_) => Cow::Owned(v.to_string()),
    }
}

/// `flow.DropReason` enum name, e.g. `POLICY_DENIED`; unknown codes as their number.
pub fn drop_reason(code: u8) -> Cow<'static, str> {
    match DropReason::try_from(i32::from(code)) {
        Ok(r) => Cow::Borrowed(r.as_str_name()),
        Err(_) => Cow::Owned(code.to_string()),
    }
}

/// `IPVersion` enum name as the tcp plugin's `family` label.
pub fn ip_family(version: u8) -> &'static str {
    match version {
        4 => "IPv4",
        6 => "IPv6",
        _ => "IP_NOT_USED",
    }
}

/// Lower-cased `TrafficDirection` name (policy plugin).
pub fn policy_direction(d: u8) -> &'static str {
    match d {
        direction::INGRESS => "ingress",
        direction::EGRESS => "egress",
        _ => "traffic_direction_unknown",
    }
}

/// Lower-cased `PolicyMatchType` name.
pub fn policy_match(m: u8) -> &'static str {
    match m {
        0 => "none",
        1 => "l3-only",
        2 => "l3-l4",
        3 => "l4-only",
        4 => "all",
        5 => "l3-proto",
        6 => "proto-only",
        _ => "unknown",
    }
}

/// Whether the policy plugin skips this record (the host may reach any local endpoint).
pub fn policy_ignores(rec: &FlowRecord) -> bool {
    rec.src_identity == identity::HOST
}

pub use crate::icmp::icmp_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names() {
        assert_eq!(drop_reason(133), "POLICY_DENIED");
        assert_eq!(drop_reason(0), "DROP_REASON_UNKNOWN");
        assert_eq!(drop_reason(77), "77");
        assert_eq!(verdict(1), "FORWARDED");
        assert_eq!(verdict(2), "DROPPED");
        assert_eq!(verdict(99), "99");
        assert_eq!(policy_match(2), "l3-l4");
        assert_eq!(trace_observation_point(0), "to-endpoint");
        assert_eq!(trace_observation_point(5), "from-endpoint");
        assert_eq!(trace_observation_point(200), "");
    }
}
