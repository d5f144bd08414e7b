//! ICMP type and code names as gopacket prints them (`EchoRequest`,
//! `DestinationUnreachable(Port)`), which is what Hubble shows in summaries and metric labels.
//! The one table for the flow summary, the metrics and the CLI.

fn icmp_v4_name(t: u8, c: u8) -> (Option<&'static str>, Option<&'static str>) {
    let codes: Option<&[&str]> = match t {
        3 => Some(&[
            "Net",
            "Host",
            "Protocol",
            "Port",
            "FragmentationNeeded",
            "SourceRoutingFailed",
            "NetUnknown",
            "HostUnknown",
            "SourceIsolated",
            "NetAdminProhibited",
            "HostAdminProhibited",
            "NetTOS",
            "HostTOS",
            "CommAdminProhibited",
            "HostPrecedence",
            "PrecedenceCutoff",
        ]),
        5 => Some(&["Net", "Host", "TOS+Net", "TOS+Host"]),
        11 => Some(&["TTLExceeded", "FragmentReassemblyTimeExceeded"]),
        12 => Some(&["PointerIndicatesError", "MissingOption", "BadLength"]),
        _ => None,
    };
    let name = match t {
        0 => "EchoReply",
        3 => "DestinationUnreachable",
        4 => "SourceQuench",
        5 => "Redirect",
        8 => "EchoRequest",
        9 => "RouterAdvertisement",
        10 => "RouterSolicitation",
        11 => "TimeExceeded",
        12 => "ParameterProblem",
        13 => "TimestampRequest",
        14 => "TimestampReply",
        15 => "InfoRequest",
        16 => "InfoReply",
        17 => "AddressMaskRequest",
        18 => "AddressMaskReply",
        _ => return (None, None),
    };
    (
        Some(name),
        codes.and_then(|c_names| c_names.get(usize::from(c)).copied()),
    )
}

fn icmp_v6_name(t: u8, c: u8) -> (Option<&'static str>, Option<&'static str>) {
    let codes: Option<&[&str]> = match t {
        1 => Some(&[
            "NoRouteToDst",
            "AdminProhibited",
            "BeyondScopeOfSrc",
            "AddressUnreachable",
            "PortUnreachable",
            "SrcAddressFailedPolicy",
            "RejectRouteToDst",
        ]),
        3 => Some(&["HopLimitExceeded", "FragmentReassemblyTimeExceeded"]),
        4 => Some(&[
            "ErroneousHeaderField",
            "UnrecognizedNextHeader",
            "UnrecognizedNextHeader",
        ]),
        _ => None,
    };
    let name = match t {
        1 => "DestinationUnreachable",
        2 => "PacketTooBig",
        3 => "TimeExceeded",
        4 => "ParameterProblem",
        128 => "EchoRequest",
        129 => "EchoReply",
        133 => "RouterSolicitation",
        134 => "RouterAdvertisement",
        135 => "NeighborSolicitation",
        136 => "NeighborAdvertisement",
        137 => "Redirect",
        _ => return (None, None),
    };
    (
        Some(name),
        codes.and_then(|c_names| c_names.get(usize::from(c)).copied()),
    )
}

/// gopacket's `ICMPv4TypeCode.String()` / `ICMPv6TypeCode.String()` forms, e.g. `EchoRequest`,
/// `DestinationUnreachable(Port)`, `Redirect(Code: 9)`, `42(0)`.
pub fn icmp_type(v6: bool, t: u8, c: u8) -> String {
    let (name, code_name) = if v6 {
        icmp_v6_name(t, c)
    } else {
        icmp_v4_name(t, c)
    };
    let has_code_table = if v6 {
        matches!(t, 1 | 3 | 4)
    } else {
        matches!(t, 3 | 5 | 11 | 12)
    };
    match (name, code_name) {
        (None, _) => format!("{t}({c})"),
        (Some(n), Some(cn)) => format!("{n}({cn})"),
        (Some(n), None) if !has_code_table && c == 0 => n.to_string(),
        (Some(n), None) => format!("{n}(Code: {c})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_names_follow_gopacket() {
        assert_eq!(icmp_type(false, 8, 0), "EchoRequest");
        assert_eq!(icmp_type(false, 0, 0), "EchoReply");
        assert_eq!(icmp_type(false, 3, 3), "DestinationUnreachable(Port)");
        assert_eq!(icmp_type(false, 3, 99), "DestinationUnreachable(Code: 99)");
        assert_eq!(icmp_type(false, 8, 1), "EchoRequest(Code: 1)");
        assert_eq!(icmp_type(false, 42, 7), "42(7)");
        assert_eq!(icmp_type(true, 128, 0), "EchoRequest");
        assert_eq!(
            icmp_type(true, 1, 4),
            "DestinationUnreachable(PortUnreachable)"
        );
        assert_eq!(icmp_type(true, 135, 0), "NeighborSolicitation");
    }
}
