//! The compiled kernel-side probes (bpf/probes.c, built by build.rs with clang-19) and the
//! layouts of the maps userspace shares with them.
//!
//! The object is embedded here so loaders need no file at run time. Map keys and values mirror
//! `bpf/maps.h`; a test compares every size, offset and constant with the C side (compiled for
//! the host from `bpf/layout.c`). Addresses in map keys are in network byte order, IPv4 in the
//! first 4 bytes of a 16-byte field.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static PROBES_ALIGNED: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/probes.o")));

/// The BPF ELF object, 8-byte aligned as the ELF parser requires.
pub static PROBES_OBJECT: &[u8] = &PROBES_ALIGNED.0;

static EMPTY_ALIGNED: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/empty.o")));

/// Benchmark control (bpf/empty.c): `from_container` / `to_container` classifiers that do
/// nothing, to measure the TC hook's own cost. No maps.
pub static EMPTY_OBJECT: &[u8] = &EMPTY_ALIGNED.0;

/// Program names in the object (all `SEC("classifier")`).
pub mod program {
    /// Host-side veth ingress: packets leaving the pod (`TRACE_FROM_LXC`).
    pub const FROM_CONTAINER: &str = "from_container";
    /// Host-side veth egress: packets entering the pod (`TRACE_TO_LXC`).
    pub const TO_CONTAINER: &str = "to_container";
    /// Node uplink ingress (`TRACE_FROM_NETWORK`).
    pub const FROM_NETDEV: &str = "from_netdev";
    /// Node uplink egress (`TRACE_TO_NETWORK`).
    pub const TO_NETDEV: &str = "to_netdev";
    pub const ALL: [&str; 4] = [FROM_CONTAINER, TO_CONTAINER, FROM_NETDEV, TO_NETDEV];
}

/// Map names in the object; all are pinned by name under the loader's pin directory.
pub mod map {
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`, one slot per CPU.
    pub const EVENTS: &str = "events";
    /// Hash: [`EndpointKey`](super::EndpointKey) → [`EndpointInfo`](super::EndpointInfo).
    pub const ENDPOINTS: &str = "endpoints";
    /// LPM trie: [`IpcacheKey`](super::IpcacheKey) → [`IpcacheValue`](super::IpcacheValue).
    pub const IPCACHE: &str = "ipcache";
    /// LRU hash: [`CtKey`](super::CtKey) → [`CtEntry`](super::CtEntry).
    pub const CONNTRACK: &str = "conntrack";
    /// LPM trie: [`PolicyKey`](super::PolicyKey) → [`PolicyEntry`](super::PolicyEntry).
    pub const POLICY: &str = "policy";
    /// Hash: endpoint id (`u32`) → [`PolicyState`](super::PolicyState).
    pub const POLICY_STATE: &str = "policy_state";
    pub const ALL: [&str; 6] = [EVENTS, ENDPOINTS, IPCACHE, CONNTRACK, POLICY, POLICY_STATE];
}

/// Load-time settings (`volatile const` globals in the object).
pub mod global {
    /// `u32`: a [`Aggregation`](super::Aggregation) level.
    pub const MONITOR_AGGREGATION: &str = "monitor_aggregation";
    /// `u64`: report interval of a connection direction under aggregation, in ns.
    pub const MONITOR_INTERVAL_NS: &str = "monitor_interval_ns";
    /// `u32`: TCP flags whose first appearance per direction is always reported.
    pub const MONITOR_TCP_FLAGS: &str = "monitor_tcp_flags";
}

pub const ADDR_FAMILY_IPV4: u8 = 1;
pub const ADDR_FAMILY_IPV6: u8 = 2;

pub const MONITOR_REPORT_INTERVAL_NS: u64 = 5_000_000_000;

/// Conntrack scope bits (`CtKey::scope`).
pub mod ct_scope {
    /// Created by packets leaving a pod (or the node, with `NETDEV`).
    pub const EGRESS: u8 = 0x01;
    /// Created by packets entering a pod (or the node, with `NETDEV`).
    pub const INGRESS: u8 = 0x02;
    pub const NETDEV: u8 = 0x04;
}

/// `CtEntry::flags`: FIN or RST seen.
pub const CT_F_CLOSING: u8 = 0x01;

/// How long the identities cached in a conntrack entry are reused before the probes look them
/// up again: the bound on how stale a trace's identities can be after an ipcache change.
pub const CT_IDS_REFRESH_NS: u64 = 1_000_000_000;

/// Idle lifetimes of conntrack entries: past them an entry no longer matches (the packet is
/// new again and goes through policy) and userspace garbage collection may delete it.
pub mod ct_lifetime {
    pub const TCP_NS: u64 = 21_600 * 1_000_000_000;
    pub const NON_TCP_NS: u64 = 60 * 1_000_000_000;
    /// After a FIN or RST.
    pub const CLOSING_NS: u64 = 10 * 1_000_000_000;
}

/// Policy map layout constants (`POLICY_*` in `bpf/maps.h`).
pub mod policy {
    pub const MAP_SIZE: u32 = 65_536;
    /// Endpoints the `policy_state` hash can hold.
    pub const STATE_MAP_SIZE: u32 = 65_536;
    /// Direction values in [`PolicyPrefix::dir`](super::PolicyPrefix::dir).
    pub const DIR_INGRESS: u8 = 0;
    pub const DIR_EGRESS: u8 = 1;
    /// `dir = direction | slot << DIR_SLOT_SHIFT`.
    pub const DIR_SLOT_SHIFT: u8 = 1;
    /// Trie prefix lengths (bits of [`PolicyPrefix`](super::PolicyPrefix)): identity, endpoint
    /// and direction; plus the protocol; plus the whole port.
    pub const PREFIX_FIXED: u32 = 56;
    pub const PREFIX_PROTO: u32 = 64;
    pub const PREFIX_FULL: u32 = 80;
    /// [`PolicyEntry::flags`](super::PolicyEntry::flags): a deny entry.
    pub const F_DENY: u8 = 0x01;
    /// [`PolicyState::flags`](super::PolicyState::flags).
    pub const ENFORCE_INGRESS: u32 = 0x01;
    pub const ENFORCE_EGRESS: u32 = 0x02;
    /// The endpoint's live slot of entries (0 or 1).
    pub const STATE_SLOT: u32 = 0x04;
}

/// Monitor aggregation level, like Cilium's `--monitor-aggregation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Every packet is reported.
    None,
    /// First packet of a connection, each new TCP flag per direction, and otherwise at most one
    /// report per connection direction per interval.
    #[default]
    Medium,
}

impl Aggregation {
    /// The value of the `monitor_aggregation` global.
    pub const fn as_global(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Medium => 3,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Medium => "medium",
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeConfigError {
    #[error("unknown monitor aggregation level {0:?} (expected none or medium)")]
    UnknownAggregation(String),
    #[error("prefix length {len} is too long for {addr}")]
    PrefixTooLong { addr: IpAddr, len: u8 },
}

impl FromStr for Aggregation {
    type Err = ProbeConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "disabled" => Ok(Self::None),
            "medium" => Ok(Self::Medium),
            _ => Err(ProbeConfigError::UnknownAggregation(s.to_owned())),
        }
    }
}

/// An address as the maps store it: 16 bytes in network order as four native words.
fn addr_words(addr: IpAddr) -> ([u32; 4], u8) {
    let bytes: [u8; 16] = match addr {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut words = [0u32; 4];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let family = if addr.is_ipv4() {
        ADDR_FAMILY_IPV4
    } else {
        ADDR_FAMILY_IPV6
    };
    (words, family)
}

/// The inverse of [`addr_words`]; `None` for an unknown family tag.
fn words_addr(words: &[u32; 4], family: u8) -> Option<IpAddr> {
    let mut bytes = [0u8; 16];
    for (chunk, w) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    match family {
        ADDR_FAMILY_IPV4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        ADDR_FAMILY_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

/// `struct endpoint_key`: a pod IP.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub addr: [u32; 4],
    pub family: u8,
    pub pad: [u8; 3],
}

impl EndpointKey {
    pub fn new(ip: IpAddr) -> Self {
        let (addr, family) = addr_words(ip);
        Self {
            addr,
            family,
            pad: [0; 3],
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        words_addr(&self.addr, self.family)
    }
}

/// `struct endpoint_info`: the endpoint a pod IP belongs to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EndpointInfo {
    /// ifindex of the host-side veth.
    pub ifindex: u32,
    /// Endpoint id (the notification's `source` / `dst_id`).
    pub lxc_id: u16,
    pub flags: u16,
    pub sec_identity: u32,
    pub pad: u32,
}

/// `struct ipcache_prefix`: the part of an ipcache key the LPM trie matches on.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpcachePrefix {
    pub pad: [u8; 3],
    pub family: u8,
    pub addr: [u32; 4],
}

impl IpcachePrefix {
    /// The prefix `ip/len` with host bits cleared, and the trie prefix length to use with it
    /// (32 bits of family word + `len`).
    pub fn new(ip: IpAddr, len: u8) -> Result<(Self, u32), ProbeConfigError> {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(ProbeConfigError::PrefixTooLong { addr: ip, len });
        }
        let masked = match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        let (addr, family) = addr_words(masked);
        Ok((
            Self {
                pad: [0; 3],
                family,
                addr,
            },
            32 + u32::from(len),
        ))
    }

    /// The network address and IP prefix length of a trie key with `prefixlen` bits.
    pub fn prefix(&self, prefixlen: u32) -> Option<(IpAddr, u8)> {
        let ip = words_addr(&self.addr, self.family)?;
        let len = u8::try_from(prefixlen.checked_sub(32)?).ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some((ip, len))
    }
}

/// `struct ipcache_key`: `prefixlen` bits of `data` must match.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpcacheKey {
    pub prefixlen: u32,
    pub data: IpcachePrefix,
}

/// `struct ipcache_value`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpcacheValue {
    pub sec_identity: u32,
    pub flags: u32,
}

/// `struct policy_prefix`: the part of a policy key the LPM trie matches on. `sec_label`,
/// `endpoint_id` and `dir` are always matched in full; `protocol` and the leading bits of `dport`
/// only as far as the key's prefix length reaches.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyPrefix {
    /// Remote identity; 0 = any.
    pub sec_label: u32,
    pub endpoint_id: u16,
    /// `policy::DIR_*` | slot << `policy::DIR_SLOT_SHIFT`.
    pub dir: u8,
    /// 0 = any protocol.
    pub protocol: u8,
    /// Network byte order: the first port of the prefix.
    pub dport: u16,
    pub pad: u16,
}

/// `struct policy_key`: `prefixlen` bits of `data` must match.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    pub prefixlen: u32,
    pub data: PolicyPrefix,
}

/// `struct policy_entry`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyEntry {
    /// `policy::F_*`.
    pub flags: u8,
    /// `abi::match_type` code reported in policy-verdict notifications.
    pub match_type: u8,
    pub pad: u16,
    pub pad2: u32,
}

/// `struct policy_state`: per endpoint, which directions are enforced and the live slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyState {
    /// `policy::ENFORCE_*` | `policy::STATE_SLOT`.
    pub flags: u32,
}

/// `struct ct_key`: a connection as first seen in one scope.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    /// Network byte order. ICMP echo: the identifier (requests in `sport`).
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    /// `ct_scope` bits.
    pub scope: u8,
    pub pad: u8,
}

impl CtKey {
    pub fn source(&self) -> Option<IpAddr> {
        words_addr(&self.saddr, self.family)
    }

    pub fn destination(&self) -> Option<IpAddr> {
        words_addr(&self.daddr, self.family)
    }
}

/// `struct ct_entry`. Times are CLOCK_MONOTONIC ns at tick resolution.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtEntry {
    pub created_ns: u64,
    pub last_seen_ns: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_last_report_ns: u64,
    pub rx_last_report_ns: u64,
    /// When the cached identities below were last looked up.
    pub ids_resolved_ns: u64,
    /// Identity of the originating source / destination (from the ipcache).
    pub src_sec_id: u32,
    pub dst_sec_id: u32,
    /// Endpoint ids of the originating source / destination (0 = not a local endpoint).
    pub src_ep_id: u16,
    pub dst_ep_id: u16,
    pub tx_flags_seen: u8,
    pub rx_flags_seen: u8,
    pub flags: u8,
    pub pad: u8,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{
        DropNotify, NotifyCaptureHdr, PolicyVerdictNotify, TraceNotify, TraceSockNotify,
        drop_reason, match_type, message_type, notify_flags, obs_point, trace_reason,
        verdict_flags,
    };
    use std::collections::BTreeMap;
    use std::ffi::{CStr, c_char};
    use std::mem::offset_of;

    #[repr(C)]
    struct LayoutEntry {
        name: *const c_char,
        value: u64,
    }

    unsafe extern "C" {
        // Defined in bpf/layout.c, terminated by a null name.
        static periscope_layout: [LayoutEntry; 0];
    }

    fn c_layout() -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        // SAFETY: layout.c defines a static array of entries ending with a null name; we stop there.
        unsafe {
            let mut entry = (&raw const periscope_layout).cast::<LayoutEntry>();
            while !(*entry).name.is_null() {
                let name = CStr::from_ptr((*entry).name).to_string_lossy().into_owned();
                out.insert(name, (*entry).value);
                entry = entry.add(1);
            }
        }
        out
    }

    macro_rules! size {
        ($v:ident, $c:literal, $t:ty) => {
            $v.push((concat!("sizeof ", $c).to_owned(), size_of::<$t>() as u64))
        };
    }
    macro_rules! off {
        ($v:ident, $c:literal, $t:ty, $f:ident) => {
            $v.push((
                concat!($c, ".", stringify!($f)).to_owned(),
                offset_of!($t, $f) as u64,
            ))
        };
        // The C field has another name than the Rust one (`type` is a Rust keyword).
        ($v:ident, $c:literal, $cf:literal, $t:ty, $f:ident) => {
            $v.push((concat!($c, ".", $cf).to_owned(), offset_of!($t, $f) as u64))
        };
    }
    macro_rules! konst {
        ($v:ident, $c:literal, $e:expr) => {
            $v.push(($c.to_owned(), u64::from($e)))
        };
    }

    #[test]
    fn rust_mirrors_match_the_c_headers() {
        let mut rust: Vec<(String, u64)> = Vec::new();
        size!(rust, "notify_capture_hdr", NotifyCaptureHdr);
        off!(
            rust,
            "notify_capture_hdr",
            "type",
            NotifyCaptureHdr,
            msg_type
        );
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, subtype);
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, source);
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, hash);
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, len_orig);
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, len_cap);
        off!(rust, "notify_capture_hdr", NotifyCaptureHdr, version);

        size!(rust, "trace_notify", TraceNotify);
        off!(rust, "trace_notify", TraceNotify, src_label);
        off!(rust, "trace_notify", TraceNotify, dst_label);
        off!(rust, "trace_notify", TraceNotify, dst_id);
        off!(rust, "trace_notify", TraceNotify, reason);
        off!(rust, "trace_notify", TraceNotify, flags);
        off!(rust, "trace_notify", TraceNotify, ifindex);
        off!(rust, "trace_notify", TraceNotify, orig_ip);

        size!(rust, "drop_notify", DropNotify);
        off!(rust, "drop_notify", DropNotify, src_label);
        off!(rust, "drop_notify", DropNotify, dst_label);
        off!(rust, "drop_notify", DropNotify, dst_id);
        off!(rust, "drop_notify", DropNotify, line);
        off!(rust, "drop_notify", DropNotify, file);
        off!(rust, "drop_notify", DropNotify, ext_error);
        off!(rust, "drop_notify", DropNotify, ifindex);
        off!(rust, "drop_notify", DropNotify, flags);
        off!(rust, "drop_notify", DropNotify, pad);

        size!(rust, "policy_verdict_notify", PolicyVerdictNotify);
        off!(
            rust,
            "policy_verdict_notify",
            PolicyVerdictNotify,
            remote_label
        );
        off!(rust, "policy_verdict_notify", PolicyVerdictNotify, verdict);
        off!(rust, "policy_verdict_notify", PolicyVerdictNotify, dst_port);
        off!(rust, "policy_verdict_notify", PolicyVerdictNotify, proto);
        off!(rust, "policy_verdict_notify", PolicyVerdictNotify, flags);
        off!(
            rust,
            "policy_verdict_notify",
            PolicyVerdictNotify,
            auth_type
        );
        off!(rust, "policy_verdict_notify", PolicyVerdictNotify, pad);

        size!(rust, "trace_sock_notify", TraceSockNotify);
        off!(rust, "trace_sock_notify", "type", TraceSockNotify, msg_type);
        off!(rust, "trace_sock_notify", TraceSockNotify, xlate_point);
        off!(rust, "trace_sock_notify", TraceSockNotify, l4_proto);
        off!(rust, "trace_sock_notify", TraceSockNotify, flags);
        off!(rust, "trace_sock_notify", TraceSockNotify, dst_port);
        off!(rust, "trace_sock_notify", TraceSockNotify, pad);
        off!(rust, "trace_sock_notify", TraceSockNotify, sock_cookie);
        off!(rust, "trace_sock_notify", TraceSockNotify, cgroup_id);
        off!(rust, "trace_sock_notify", TraceSockNotify, dst_ip);

        size!(rust, "endpoint_key", EndpointKey);
        off!(rust, "endpoint_key", EndpointKey, addr);
        off!(rust, "endpoint_key", EndpointKey, family);
        off!(rust, "endpoint_key", EndpointKey, pad);
        size!(rust, "endpoint_info", EndpointInfo);
        off!(rust, "endpoint_info", EndpointInfo, ifindex);
        off!(rust, "endpoint_info", EndpointInfo, lxc_id);
        off!(rust, "endpoint_info", EndpointInfo, flags);
        off!(rust, "endpoint_info", EndpointInfo, sec_identity);
        off!(rust, "endpoint_info", EndpointInfo, pad);

        size!(rust, "ipcache_prefix", IpcachePrefix);
        off!(rust, "ipcache_prefix", IpcachePrefix, pad);
        off!(rust, "ipcache_prefix", IpcachePrefix, family);
        off!(rust, "ipcache_prefix", IpcachePrefix, addr);
        size!(rust, "ipcache_key", IpcacheKey);
        off!(rust, "ipcache_key", IpcacheKey, prefixlen);
        off!(rust, "ipcache_key", IpcacheKey, data);
        size!(rust, "ipcache_value", IpcacheValue);
        off!(rust, "ipcache_value", IpcacheValue, sec_identity);
        off!(rust, "ipcache_value", IpcacheValue, flags);

        size!(rust, "policy_prefix", PolicyPrefix);
        off!(rust, "policy_prefix", PolicyPrefix, sec_label);
        off!(rust, "policy_prefix", PolicyPrefix, endpoint_id);
        off!(rust, "policy_prefix", PolicyPrefix, dir);
        off!(rust, "policy_prefix", PolicyPrefix, protocol);
        off!(rust, "policy_prefix", PolicyPrefix, dport);
        off!(rust, "policy_prefix", PolicyPrefix, pad);
        size!(rust, "policy_key", PolicyKey);
        off!(rust, "policy_key", PolicyKey, prefixlen);
        off!(rust, "policy_key", PolicyKey, data);
        size!(rust, "policy_entry", PolicyEntry);
        off!(rust, "policy_entry", PolicyEntry, flags);
        off!(rust, "policy_entry", PolicyEntry, match_type);
        off!(rust, "policy_entry", PolicyEntry, pad);
        off!(rust, "policy_entry", PolicyEntry, pad2);
        size!(rust, "policy_state", PolicyState);
        off!(rust, "policy_state", PolicyState, flags);

        size!(rust, "ct_key", CtKey);
        off!(rust, "ct_key", CtKey, saddr);
        off!(rust, "ct_key", CtKey, daddr);
        off!(rust, "ct_key", CtKey, sport);
        off!(rust, "ct_key", CtKey, dport);
        off!(rust, "ct_key", CtKey, proto);
        off!(rust, "ct_key", CtKey, family);
        off!(rust, "ct_key", CtKey, scope);
        off!(rust, "ct_key", CtKey, pad);
        size!(rust, "ct_entry", CtEntry);
        off!(rust, "ct_entry", CtEntry, created_ns);
        off!(rust, "ct_entry", CtEntry, last_seen_ns);
        off!(rust, "ct_entry", CtEntry, tx_packets);
        off!(rust, "ct_entry", CtEntry, tx_bytes);
        off!(rust, "ct_entry", CtEntry, rx_packets);
        off!(rust, "ct_entry", CtEntry, rx_bytes);
        off!(rust, "ct_entry", CtEntry, tx_last_report_ns);
        off!(rust, "ct_entry", CtEntry, rx_last_report_ns);
        off!(rust, "ct_entry", CtEntry, ids_resolved_ns);
        off!(rust, "ct_entry", CtEntry, src_sec_id);
        off!(rust, "ct_entry", CtEntry, dst_sec_id);
        off!(rust, "ct_entry", CtEntry, src_ep_id);
        off!(rust, "ct_entry", CtEntry, dst_ep_id);
        off!(rust, "ct_entry", CtEntry, tx_flags_seen);
        off!(rust, "ct_entry", CtEntry, rx_flags_seen);
        off!(rust, "ct_entry", CtEntry, flags);
        off!(rust, "ct_entry", CtEntry, pad);

        konst!(rust, "CILIUM_NOTIFY_DROP", message_type::DROP);
        konst!(rust, "CILIUM_NOTIFY_DBG_MSG", message_type::DEBUG);
        konst!(rust, "CILIUM_NOTIFY_DBG_CAPTURE", message_type::CAPTURE);
        konst!(rust, "CILIUM_NOTIFY_TRACE", message_type::TRACE);
        konst!(
            rust,
            "CILIUM_NOTIFY_POLICY_VERDICT",
            message_type::POLICY_VERDICT
        );
        konst!(
            rust,
            "CILIUM_NOTIFY_RECORDER_CAPTURE",
            message_type::RECORDER_CAPTURE
        );
        konst!(rust, "CILIUM_NOTIFY_TRACE_SOCK", message_type::TRACE_SOCK);
        konst!(rust, "TRACE_TO_LXC", obs_point::TO_LXC);
        konst!(rust, "TRACE_TO_PROXY", obs_point::TO_PROXY);
        konst!(rust, "TRACE_TO_HOST", obs_point::TO_HOST);
        konst!(rust, "TRACE_TO_STACK", obs_point::TO_STACK);
        konst!(rust, "TRACE_TO_OVERLAY", obs_point::TO_OVERLAY);
        konst!(rust, "TRACE_FROM_LXC", obs_point::FROM_LXC);
        konst!(rust, "TRACE_FROM_PROXY", obs_point::FROM_PROXY);
        konst!(rust, "TRACE_FROM_HOST", obs_point::FROM_HOST);
        konst!(rust, "TRACE_FROM_STACK", obs_point::FROM_STACK);
        konst!(rust, "TRACE_FROM_OVERLAY", obs_point::FROM_OVERLAY);
        konst!(rust, "TRACE_FROM_NETWORK", obs_point::FROM_NETWORK);
        konst!(rust, "TRACE_TO_NETWORK", obs_point::TO_NETWORK);
        konst!(rust, "TRACE_FROM_CRYPTO", obs_point::FROM_CRYPTO);
        konst!(rust, "TRACE_TO_CRYPTO", obs_point::TO_CRYPTO);
        konst!(rust, "TRACE_REASON_POLICY", trace_reason::POLICY);
        konst!(
            rust,
            "TRACE_REASON_CT_ESTABLISHED",
            trace_reason::CT_ESTABLISHED
        );
        konst!(rust, "TRACE_REASON_CT_REPLY", trace_reason::CT_REPLY);
        konst!(rust, "TRACE_REASON_CT_RELATED", trace_reason::CT_RELATED);
        konst!(rust, "TRACE_REASON_CT_REOPENED", trace_reason::CT_REOPENED);
        konst!(rust, "TRACE_REASON_UNKNOWN", trace_reason::UNKNOWN);
        konst!(rust, "TRACE_REASON_ENCRYPTED", trace_reason::ENCRYPTED_MASK);
        konst!(rust, "TRACE_NOTIFY_FLAG_IPV6", notify_flags::IS_IPV6);
        konst!(
            rust,
            "TRACE_NOTIFY_FLAG_L3_DEVICE",
            notify_flags::IS_L3_DEVICE
        );
        konst!(rust, "DROP_INVALID_SIP", drop_reason::INVALID_SOURCE_IP);
        konst!(rust, "DROP_POLICY", drop_reason::POLICY_DENIED);
        konst!(rust, "DROP_INVALID", drop_reason::INVALID_PACKET);
        konst!(
            rust,
            "DROP_CT_INVALID_HDR",
            drop_reason::CT_TRUNCATED_OR_INVALID_HEADER
        );
        konst!(
            rust,
            "DROP_CT_UNKNOWN_PROTO",
            drop_reason::CT_UNKNOWN_L4_PROTOCOL
        );
        konst!(
            rust,
            "DROP_UNKNOWN_L3",
            drop_reason::UNSUPPORTED_L3_PROTOCOL
        );
        konst!(rust, "DROP_UNKNOWN_L4", drop_reason::UNKNOWN_L4_PROTOCOL);
        konst!(rust, "DROP_UNROUTABLE", drop_reason::UNROUTABLE);
        konst!(
            rust,
            "DROP_CT_CREATE_FAILED",
            drop_reason::CT_MAP_INSERTION_FAILED
        );
        konst!(
            rust,
            "DROP_NO_SERVICE",
            drop_reason::SERVICE_BACKEND_NOT_FOUND
        );
        konst!(rust, "DROP_UNKNOWN_CT", drop_reason::UNKNOWN_CT_STATE);
        konst!(rust, "DROP_NO_FIB", drop_reason::NO_FIB);
        konst!(rust, "DROP_POLICY_DENY", drop_reason::POLICY_DENY);
        konst!(rust, "PV_FLAG_DIR_MASK", verdict_flags::DIRECTION_MASK);
        konst!(
            rust,
            "PV_FLAG_DIR_INGRESS",
            verdict_flags::DIRECTION_INGRESS
        );
        konst!(rust, "PV_FLAG_DIR_EGRESS", verdict_flags::DIRECTION_EGRESS);
        konst!(rust, "PV_FLAG_IPV6", verdict_flags::IS_IPV6);
        konst!(rust, "PV_FLAG_MATCH_SHIFT", verdict_flags::MATCH_TYPE_SHIFT);
        konst!(rust, "PV_FLAG_MATCH_MASK", verdict_flags::MATCH_TYPE_MASK);
        konst!(rust, "PV_FLAG_AUDITED", verdict_flags::IS_AUDITED);
        konst!(rust, "POLICY_MATCH_NONE", match_type::NONE);
        konst!(rust, "POLICY_MATCH_L3_ONLY", match_type::L3_ONLY);
        konst!(rust, "POLICY_MATCH_L3_L4", match_type::L3_L4);
        konst!(rust, "POLICY_MATCH_L4_ONLY", match_type::L4_ONLY);
        konst!(rust, "POLICY_MATCH_ALL", match_type::ALL);
        konst!(rust, "POLICY_MATCH_L3_PROTO", match_type::L3_PROTO);
        konst!(rust, "POLICY_MATCH_PROTO_ONLY", match_type::PROTO_ONLY);
        konst!(
            rust,
            "TRACE_NOTIFY_VERSION",
            crate::abi::TRACE_NOTIFY_VERSION
        );
        konst!(rust, "DROP_NOTIFY_VERSION", crate::abi::DROP_NOTIFY_VERSION);
        konst!(
            rust,
            "POLICY_VERDICT_NOTIFY_VERSION",
            crate::abi::POLICY_VERDICT_NOTIFY_VERSION
        );
        konst!(rust, "CAPTURE_LEN", crate::abi::CAPTURE_LEN as u64);

        konst!(rust, "ADDR_FAMILY_IPV4", ADDR_FAMILY_IPV4);
        konst!(rust, "ADDR_FAMILY_IPV6", ADDR_FAMILY_IPV6);
        konst!(
            rust,
            "MONITOR_AGGREGATION_NONE",
            Aggregation::None.as_global()
        );
        konst!(
            rust,
            "MONITOR_AGGREGATION_MEDIUM",
            Aggregation::Medium.as_global()
        );
        konst!(
            rust,
            "MONITOR_REPORT_INTERVAL_NS",
            MONITOR_REPORT_INTERVAL_NS
        );
        konst!(rust, "CT_DIR_EGRESS", ct_scope::EGRESS);
        konst!(rust, "CT_DIR_INGRESS", ct_scope::INGRESS);
        konst!(rust, "CT_SCOPE_NETDEV", ct_scope::NETDEV);
        konst!(rust, "CT_F_CLOSING", CT_F_CLOSING);
        konst!(rust, "CT_IDS_REFRESH_NS", CT_IDS_REFRESH_NS);
        konst!(rust, "CT_LIFETIME_TCP_NS", ct_lifetime::TCP_NS);
        konst!(rust, "CT_LIFETIME_NONTCP_NS", ct_lifetime::NON_TCP_NS);
        konst!(rust, "CT_LIFETIME_CLOSING_NS", ct_lifetime::CLOSING_NS);
        konst!(rust, "POLICY_MAP_SIZE", policy::MAP_SIZE);
        konst!(rust, "POLICY_STATE_MAP_SIZE", policy::STATE_MAP_SIZE);
        konst!(rust, "POLICY_DIR_INGRESS", policy::DIR_INGRESS);
        konst!(rust, "POLICY_DIR_EGRESS", policy::DIR_EGRESS);
        konst!(rust, "POLICY_DIR_SLOT_SHIFT", policy::DIR_SLOT_SHIFT);
        konst!(rust, "POLICY_PREFIX_FIXED", policy::PREFIX_FIXED);
        konst!(rust, "POLICY_PREFIX_PROTO", policy::PREFIX_PROTO);
        konst!(rust, "POLICY_PREFIX_FULL", policy::PREFIX_FULL);
        konst!(rust, "POLICY_F_DENY", policy::F_DENY);
        konst!(rust, "POLICY_ENFORCE_INGRESS", policy::ENFORCE_INGRESS);
        konst!(rust, "POLICY_ENFORCE_EGRESS", policy::ENFORCE_EGRESS);
        konst!(rust, "POLICY_STATE_SLOT", policy::STATE_SLOT);
        konst!(rust, "IPCACHE_PREFIX_BITS(0)", 32u32);

        let c = c_layout();
        let mut mismatches = Vec::new();
        for (name, value) in &rust {
            match c.get(name) {
                Some(cv) if cv == value => {}
                Some(cv) => mismatches.push(format!("{name}: C {cv} vs Rust {value}")),
                None => mismatches.push(format!("{name}: not exported by bpf/layout.c")),
            }
        }
        // Every C entry must be checked, so a field added on one side cannot slip through.
        for name in c.keys() {
            if !rust.iter().any(|(n, _)| n == name) {
                mismatches.push(format!("{name}: exported by C but not checked in Rust"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "layout mismatches:\n{}",
            mismatches.join("\n")
        );
        assert!(
            c.len() > 100,
            "layout table looks truncated: {} entries",
            c.len()
        );
    }

    #[test]
    fn object_is_an_aligned_bpf_elf_with_our_programs_and_maps() {
        assert_eq!(PROBES_OBJECT.as_ptr() as usize % 8, 0);
        assert_eq!(&PROBES_OBJECT[..4], b"\x7fELF");
        // EM_BPF = 247 at e_machine (offset 18, little-endian on the hosts we build for).
        assert_eq!(
            u16::from_le_bytes([PROBES_OBJECT[18], PROBES_OBJECT[19]]),
            247
        );
        let contains = |needle: &str| {
            PROBES_OBJECT
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        };
        for name in program::ALL.iter().chain(map::ALL.iter()) {
            assert!(contains(name), "{name} missing from the object");
        }
        for name in [
            global::MONITOR_AGGREGATION,
            global::MONITOR_INTERVAL_NS,
            global::MONITOR_TCP_FLAGS,
        ] {
            assert!(contains(name), "{name} missing from the object");
        }
        assert!(contains(".BTF"), "object has no BTF: maps would not load");
    }

    #[test]
    fn keys_round_trip_addresses() {
        let v4: IpAddr = "10.213.7.2".parse().unwrap();
        let key = EndpointKey::new(v4);
        assert_eq!(key.family, ADDR_FAMILY_IPV4);
        assert_eq!(key.addr[1..], [0, 0, 0]);
        // Network order in memory: the first byte of the word is the first octet.
        assert_eq!(key.addr[0].to_ne_bytes(), [10, 213, 7, 2]);
        assert_eq!(key.ip(), Some(v4));

        let v6: IpAddr = "fd00::1:2".parse().unwrap();
        assert_eq!(EndpointKey::new(v6).ip(), Some(v6));

        let (prefix, bits) = IpcachePrefix::new("10.213.7.99".parse().unwrap(), 24).unwrap();
        assert_eq!(bits, 56);
        assert_eq!(
            prefix.prefix(bits),
            Some(("10.213.7.0".parse().unwrap(), 24))
        );
        let (all, bits) = IpcachePrefix::new("1.2.3.4".parse().unwrap(), 0).unwrap();
        assert_eq!(all.prefix(bits), Some(("0.0.0.0".parse().unwrap(), 0)));
        let (v6p, bits) = IpcachePrefix::new("fd00::1:2".parse().unwrap(), 112).unwrap();
        assert_eq!(v6p.prefix(bits), Some(("fd00::1:0".parse().unwrap(), 112)));
        assert!(IpcachePrefix::new(v4, 33).is_err());
        assert_eq!(
            IpcachePrefix {
                family: 9,
                ..Default::default()
            }
            .prefix(40),
            None
        );
    }

    #[test]
    fn aggregation_parses() {
        assert_eq!("none".parse::<Aggregation>(), Ok(Aggregation::None));
        assert_eq!("Medium".parse::<Aggregation>(), Ok(Aggregation::Medium));
        assert!("maximum".parse::<Aggregation>().is_err());
        assert_eq!(Aggregation::default(), Aggregation::Medium);
    }
}
