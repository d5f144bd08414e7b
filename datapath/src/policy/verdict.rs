//! The reference semantics of a policy lookup: given the compiled entries of one endpoint and
//! direction, which entry a packet (remote identity, protocol, destination port) hits, what the
//! verdict is and which match type the policy-verdict notification reports. The BPF program
//! must mirror [`lookup`] exactly; the compiler guarantees (and the tests check) that this
//! most-specific-first lookup gives the same answers as "any matching deny entry wins".

use std::fmt;

use serde::Serialize;

use periscope_probes::abi::{drop_reason, match_type};

use super::compile::PolicyEntry;

/// The match type a policy-verdict notification carries (Cilium's `POLICY_MATCH_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum MatchType {
    None,
    L3Only,
    L3L4,
    L4Only,
    All,
    L3Proto,
    ProtoOnly,
}

impl MatchType {
    /// The numeric code carried in the notification's flags.
    pub fn code(self) -> u8 {
        match self {
            MatchType::None => match_type::NONE,
            MatchType::L3Only => match_type::L3_ONLY,
            MatchType::L3L4 => match_type::L3_L4,
            MatchType::L4Only => match_type::L4_ONLY,
            MatchType::All => match_type::ALL,
            MatchType::L3Proto => match_type::L3_PROTO,
            MatchType::ProtoOnly => match_type::PROTO_ONLY,
        }
    }

    /// The name Hubble and `cilium monitor` print.
    pub fn name(self) -> &'static str {
        match self {
            MatchType::None => "none",
            MatchType::L3Only => "L3-Only",
            MatchType::L3L4 => "L3-L4",
            MatchType::L4Only => "L4-Only",
            MatchType::All => "all",
            MatchType::L3Proto => "L3-Proto",
            MatchType::ProtoOnly => "Proto-Only",
        }
    }

    /// The class of an entry, from which of its fields are wildcards (0).
    pub fn of(entry: &PolicyEntry) -> MatchType {
        match (
            entry.remote_identity != 0,
            entry.proto != 0,
            entry.port != 0,
        ) {
            (true, true, true) => MatchType::L3L4,
            (false, true, true) => MatchType::L4Only,
            (true, true, false) => MatchType::L3Proto,
            (false, true, false) => MatchType::ProtoOnly,
            (true, false, _) => MatchType::L3Only,
            (false, false, _) => MatchType::All,
        }
    }

    /// Lookup precedence, most specific first, as in Cilium's `__policy_can_access`:
    /// id/proto/port, ANY/proto/port, id/proto/ANY, ANY/proto/ANY, id/ANY/ANY, ANY/ANY/ANY.
    pub fn precedence(self) -> u8 {
        match self {
            MatchType::L3L4 => 0,
            MatchType::L4Only => 1,
            MatchType::L3Proto => 2,
            MatchType::ProtoOnly => 3,
            MatchType::L3Only => 4,
            MatchType::All => 5,
            MatchType::None => 6,
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the datapath does with a packet that needs a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// No rule selects the endpoint in this direction: forwarded, no policy-verdict event.
    NotEnforced,
    Allowed {
        match_type: MatchType,
    },
    /// Enforced and no entry matched: dropped with reason 133 ("Policy denied"), match none.
    Denied,
    /// A deny entry matched: dropped with reason 181 ("Policy denied by denylist").
    DeniedByRule {
        match_type: MatchType,
    },
}

impl Verdict {
    pub fn is_allowed(self) -> bool {
        matches!(self, Verdict::NotEnforced | Verdict::Allowed { .. })
    }

    pub fn match_type(self) -> MatchType {
        match self {
            Verdict::Allowed { match_type } | Verdict::DeniedByRule { match_type } => match_type,
            Verdict::NotEnforced | Verdict::Denied => MatchType::None,
        }
    }

    /// The drop reason of a denied packet.
    pub fn drop_reason(self) -> Option<u8> {
        match self {
            Verdict::Denied => Some(drop_reason::POLICY_DENIED),
            Verdict::DeniedByRule { .. } => Some(drop_reason::POLICY_DENY),
            _ => None,
        }
    }
}

/// Whether `entry` covers the packet. Port 0 in an entry is every port; a packet's port 0
/// (protocols without ports) only hits entries with every port.
pub fn entry_matches(entry: &PolicyEntry, remote: u32, proto: u8, dport: u16) -> bool {
    (entry.remote_identity == 0 || entry.remote_identity == remote)
        && (entry.proto == 0 || entry.proto == proto)
        && (entry.port == 0 || (entry.port <= dport && dport <= entry.end_port))
}

/// Length (0..=16) of the port prefix through which `entry` matches `dport` once its range is
/// split into aligned prefixes, as an LPM map holds it: the longest prefix wins within a class.
pub fn port_prefix_len(entry: &PolicyEntry, dport: u16) -> u8 {
    if entry.port == 0 {
        return 0;
    }
    let (lo, hi) = (u32::from(entry.port), u32::from(entry.end_port));
    let p = u32::from(dport);
    let mut best = 16u8;
    for k in 0..=16u32 {
        let size = 1u32 << k;
        let start = p & !(size - 1);
        if start >= lo && start + size - 1 <= hi {
            best = (16 - k) as u8;
        } else {
            break;
        }
    }
    best
}

/// Ordering key of a matching entry: lower is more specific. Ties in class and prefix go to deny.
fn specificity(entry: &PolicyEntry, dport: u16) -> (u8, u8, bool) {
    (
        MatchType::of(entry).precedence(),
        16 - port_prefix_len(entry, dport),
        !entry.deny,
    )
}

/// The entry the datapath hits: the most specific matching one. This is the lookup the BPF code
/// implements (two LPM lookups, with and without the remote identity, then the precedence above).
pub fn lookup(entries: &[PolicyEntry], remote: u32, proto: u8, dport: u16) -> Option<&PolicyEntry> {
    entries
        .iter()
        .filter(|e| entry_matches(e, remote, proto, dport))
        .min_by_key(|e| specificity(e, dport))
}

/// The verdict for a packet on an enforced direction with the given (compiled) entries.
pub fn verdict(entries: &[PolicyEntry], remote: u32, proto: u8, dport: u16) -> Verdict {
    match lookup(entries, remote, proto, dport) {
        Some(e) if e.deny => Verdict::DeniedByRule {
            match_type: MatchType::of(e),
        },
        Some(e) => Verdict::Allowed {
            match_type: MatchType::of(e),
        },
        None => Verdict::Denied,
    }
}

/// The policy semantics stated directly: any matching deny entry wins, else the most specific
/// allow entry, else default deny. Holds for any entry list, compiled or not.
pub fn verdict_deny_first(entries: &[PolicyEntry], remote: u32, proto: u8, dport: u16) -> Verdict {
    let best = |deny: bool| {
        entries
            .iter()
            .filter(|e| e.deny == deny && entry_matches(e, remote, proto, dport))
            .min_by_key(|e| specificity(e, dport))
    };
    if let Some(d) = best(true) {
        return Verdict::DeniedByRule {
            match_type: MatchType::of(d),
        };
    }
    match best(false) {
        Some(a) => Verdict::Allowed {
            match_type: MatchType::of(a),
        },
        None => Verdict::Denied,
    }
}

/// A port range as the aligned prefixes an LPM key holds: `(first port, prefix length)`.
/// Every port (`0`) is `[(0, 0)]`.
pub fn port_prefixes(port: u16, end_port: u16) -> Vec<(u16, u8)> {
    if port == 0 {
        return vec![(0, 0)];
    }
    let (mut lo, hi) = (u32::from(port), u32::from(end_port.max(port)));
    let mut out = Vec::new();
    while lo <= hi {
        // Largest aligned block starting at `lo` that stays inside the range.
        let mut k = lo.trailing_zeros().min(16);
        while k > 0 && lo + (1 << k) - 1 > hi {
            k -= 1;
        }
        out.push((lo as u16, (16 - k) as u8));
        lo += 1 << k;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: u32, proto: u8, port: u16, end: u16, deny: bool) -> PolicyEntry {
        PolicyEntry {
            remote_identity: id,
            proto,
            port,
            end_port: end,
            deny,
            l7: None,
        }
    }

    #[test]
    fn match_types_follow_the_wildcards() {
        assert_eq!(MatchType::of(&e(5, 6, 80, 80, false)), MatchType::L3L4);
        assert_eq!(MatchType::of(&e(0, 6, 80, 80, false)), MatchType::L4Only);
        assert_eq!(MatchType::of(&e(5, 6, 0, 0, false)), MatchType::L3Proto);
        assert_eq!(MatchType::of(&e(0, 6, 0, 0, false)), MatchType::ProtoOnly);
        assert_eq!(MatchType::of(&e(5, 0, 0, 0, false)), MatchType::L3Only);
        assert_eq!(MatchType::of(&e(0, 0, 0, 0, false)), MatchType::All);
        assert_eq!(MatchType::L3L4.code(), 2);
        assert_eq!(MatchType::L3Proto.code(), 5);
        assert_eq!(MatchType::L3L4.name(), "L3-L4");
    }

    #[test]
    fn most_specific_entry_wins() {
        let entries = [
            e(0, 0, 0, 0, false),
            e(5, 0, 0, 0, false),
            e(0, 6, 0, 0, false),
            e(5, 6, 0, 0, false),
            e(0, 6, 80, 80, false),
            e(5, 6, 80, 80, false),
        ];
        let v = |es: &[PolicyEntry], id, port| verdict(es, id, 6, port).match_type();
        assert_eq!(v(&entries, 5, 80), MatchType::L3L4);
        assert_eq!(v(&entries[..5], 5, 80), MatchType::L4Only);
        assert_eq!(v(&entries[..4], 5, 80), MatchType::L3Proto);
        assert_eq!(v(&entries[..3], 5, 80), MatchType::ProtoOnly);
        assert_eq!(v(&entries[..2], 5, 80), MatchType::L3Only);
        assert_eq!(v(&entries[..1], 5, 80), MatchType::All);
        assert_eq!(verdict(&entries[..0], 5, 6, 80), Verdict::Denied);
        // Another identity only sees the wildcard-identity entries.
        assert_eq!(v(&entries, 9, 80), MatchType::L4Only);
        assert_eq!(v(&entries, 9, 81), MatchType::ProtoOnly);
        // UDP hits neither TCP entry.
        assert_eq!(verdict(&entries, 9, 17, 80).match_type(), MatchType::All);
    }

    #[test]
    fn narrower_ranges_win_within_a_class() {
        let entries = [e(5, 6, 80, 90, true), e(5, 6, 84, 87, false)];
        assert_eq!(
            verdict(&entries, 5, 6, 85),
            Verdict::Allowed {
                match_type: MatchType::L3L4
            }
        );
        assert_eq!(
            verdict(&entries, 5, 6, 88),
            Verdict::DeniedByRule {
                match_type: MatchType::L3L4
            }
        );
        assert_eq!(port_prefix_len(&entries[0], 80), 13); // 80..=87
        assert_eq!(port_prefix_len(&entries[0], 88), 15); // 88..=89 (90 is alone)
        assert_eq!(port_prefix_len(&entries[0], 90), 16);
    }

    #[test]
    fn ranges_split_into_aligned_prefixes() {
        assert_eq!(port_prefixes(0, 0), [(0, 0)]);
        assert_eq!(port_prefixes(80, 80), [(80, 16)]);
        assert_eq!(port_prefixes(80, 90), [(80, 13), (88, 15), (90, 16)]);
        assert_eq!(port_prefixes(1, 65535).len(), 16);
        let covered: u32 = port_prefixes(1000, 2000)
            .iter()
            .map(|(_, len)| 1u32 << (16 - len))
            .sum();
        assert_eq!(covered, 1001);
    }

    #[test]
    fn drop_reasons() {
        assert_eq!(Verdict::Denied.drop_reason(), Some(133));
        assert_eq!(
            Verdict::DeniedByRule {
                match_type: MatchType::All
            }
            .drop_reason(),
            Some(181)
        );
        assert_eq!(Verdict::NotEnforced.drop_reason(), None);
        assert!(Verdict::NotEnforced.is_allowed());
    }
}
