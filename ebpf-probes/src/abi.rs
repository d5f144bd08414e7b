//! Cilium-compatible monitor notification layouts, codes and names.
//!
//! All multi-byte header fields are in host byte order (the kernel writes them natively);
//! the captured packet bytes that follow the header are in network order.

/// First byte of every notification: its message type.
pub mod message_type {
    pub const UNSPEC: u8 = 0;
    pub const DROP: u8 = 1;
    pub const DEBUG: u8 = 2;
    pub const CAPTURE: u8 = 3;
    pub const TRACE: u8 = 4;
    pub const POLICY_VERDICT: u8 = 5;
    pub const RECORDER_CAPTURE: u8 = 6;
    pub const TRACE_SOCK: u8 = 7;
    /// Agent-side types (never emitted by the datapath).
    pub const ACCESS_LOG: u8 = 129;
    pub const AGENT: u8 = 130;
}

/// Trace observation points (`TRACE_*` in Cilium); carried as the notification's subtype.
pub mod obs_point {
    pub const TO_LXC: u8 = 0;
    pub const TO_PROXY: u8 = 1;
    pub const TO_HOST: u8 = 2;
    pub const TO_STACK: u8 = 3;
    pub const TO_OVERLAY: u8 = 4;
    pub const FROM_LXC: u8 = 5;
    pub const FROM_PROXY: u8 = 6;
    pub const FROM_HOST: u8 = 7;
    pub const FROM_STACK: u8 = 8;
    pub const FROM_OVERLAY: u8 = 9;
    pub const FROM_NETWORK: u8 = 10;
    pub const TO_NETWORK: u8 = 11;
    pub const FROM_CRYPTO: u8 = 12;
    pub const TO_CRYPTO: u8 = 13;
}

/// Why a traced packet was forwarded: its conntrack state (`TRACE_REASON_*`).
pub mod trace_reason {
    pub const POLICY: u8 = 0;
    pub const CT_ESTABLISHED: u8 = 1;
    pub const CT_REPLY: u8 = 2;
    pub const CT_RELATED: u8 = 3;
    pub const CT_REOPENED: u8 = 4;
    pub const UNKNOWN: u8 = 5;
    pub const SRV6_ENCAP: u8 = 6;
    pub const SRV6_DECAP: u8 = 7;
    pub const ENCRYPT_OVERLAY: u8 = 8;
    /// High bit: the packet was encrypted; masked off before reading the state.
    pub const ENCRYPTED_MASK: u8 = 0x80;
}

/// Flags of trace and drop notifications.
pub mod notify_flags {
    pub const IS_IPV6: u8 = 1 << 0;
    pub const IS_L3_DEVICE: u8 = 1 << 1;
}

/// Policy-verdict flag bits (`PolicyVerdictNotify::flags`).
pub mod verdict_flags {
    pub const DIRECTION_MASK: u8 = 0x03;
    pub const DIRECTION_INGRESS: u8 = 1;
    pub const DIRECTION_EGRESS: u8 = 2;
    pub const IS_IPV6: u8 = 0x04;
    pub const MATCH_TYPE_MASK: u8 = 0x38;
    pub const MATCH_TYPE_SHIFT: u8 = 3;
    pub const IS_AUDITED: u8 = 0x40;
}

/// Policy match types carried in a verdict notification.
pub mod match_type {
    pub const NONE: u8 = 0;
    pub const L3_ONLY: u8 = 1;
    pub const L3_L4: u8 = 2;
    pub const L4_ONLY: u8 = 3;
    pub const ALL: u8 = 4;
    pub const L3_PROTO: u8 = 5;
    pub const PROTO_ONLY: u8 = 6;
}

/// Reserved security identities (the architecture note's list).
pub mod identity {
    pub const UNKNOWN: u32 = 0;
    pub const HOST: u32 = 1;
    pub const WORLD: u32 = 2;
    pub const UNMANAGED: u32 = 3;
    pub const HEALTH: u32 = 4;
    pub const INIT: u32 = 5;
    pub const REMOTE_NODE: u32 = 6;
    pub const KUBE_APISERVER: u32 = 7;
    pub const INGRESS: u32 = 8;
    /// First identity allocated to labels (Cilium's cluster-local range starts here).
    pub const MIN_ALLOCATED: u32 = 256;
}

/// Drop reason codes used by our datapath (Cilium's `DROP_*`, negated into a `u8` subtype).
pub mod drop_reason {
    pub const INVALID_SOURCE_IP: u8 = 132;
    pub const POLICY_DENIED: u8 = 133;
    pub const INVALID_PACKET: u8 = 134;
    pub const CT_TRUNCATED_OR_INVALID_HEADER: u8 = 135;
    pub const CT_UNKNOWN_L4_PROTOCOL: u8 = 137;
    pub const UNSUPPORTED_L3_PROTOCOL: u8 = 139;
    pub const UNKNOWN_L4_PROTOCOL: u8 = 142;
    pub const UNROUTABLE: u8 = 151;
    pub const CT_MAP_INSERTION_FAILED: u8 = 155;
    pub const SERVICE_BACKEND_NOT_FOUND: u8 = 158;
    pub const UNKNOWN_CT_STATE: u8 = 163;
    pub const NO_FIB: u8 = 169;
    pub const POLICY_DENY: u8 = 181;
}

/// Cilium's human-readable drop reason text, as `hubble observe` prints it.
pub fn drop_reason_text(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "Success",
        2 | 134 => "Invalid packet",
        3 => "Interface",
        4 => "Interface Decrypted",
        5 => "LB: No backend slot entry found",
        6 => "LB: No backend entry found",
        7 => "LB: Reverse entry update failed",
        8 => "LB: Reverse entry stale",
        9 => "Fragmented packet",
        10 => "Fragmented packet entry update failed",
        11 => "Missed tail call to custom program",
        130 => "Invalid source mac",
        131 => "Invalid destination mac",
        132 => "Invalid source ip",
        133 => "Policy denied",
        135 => "CT: Truncated or invalid header",
        136 => "Fragmentation needed",
        137 => "CT: Unknown L4 protocol",
        138 => "CT: Can't create entry from packet",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        142 => "Unknown L4 protocol",
        143 => "Unknown ICMPv4 code",
        144 => "Unknown ICMPv4 type",
        145 => "Unknown ICMPv6 code",
        146 => "Unknown ICMPv6 type",
        147 => "Error retrieving tunnel key",
        148 => "Error retrieving tunnel options",
        149 => "Invalid Geneve option",
        150 => "Unknown L3 target address",
        151 => "Stale or unroutable IP",
        152 => "No matching local container found",
        153 => "Error while correcting L3 checksum",
        154 => "Error while correcting L4 checksum",
        155 => "CT: Map insertion failed",
        156 => "Invalid IPv6 extension header",
        157 => "IP fragmentation not supported",
        158 => "Service backend not found",
        160 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        161 => "NAT 46/64 not enabled",
        162 => "Reached EDT rate-limiting drop horizon",
        163 => "Unknown connection tracking state",
        164 => "Local host is unreachable",
        165 => "No configuration available to perform policy decision",
        166 => "Unsupported L2 protocol",
        167 => "No mapping for NAT masquerade",
        168 => "Unsupported protocol for NAT masquerade",
        169 => "FIB lookup failed",
        170 => "Encapsulation traffic is prohibited",
        171 => "Invalid identity",
        172 => "Unknown sender",
        173 => "NAT not needed",
        174 => "Is a ClusterIP",
        175 => "First logical datagram fragment not found",
        176 => "Forbidden ICMPv6 message",
        177 => "Denied by LB src range check",
        178 => "Socket lookup failed",
        179 => "Socket assign failed",
        180 => "Proxy redirection not supported for protocol",
        181 => "Policy denied by denylist",
        182 => "VLAN traffic disallowed by VLAN filter",
        183 => "Incorrect VNI from VTEP",
        184 => "Failed to update or lookup TC buffer",
        185 => "No SID was found for the IP address",
        186 => "SRv6 state was removed during tail call",
        187 => "L3 translation from IPv4 to IPv6 failed (NAT46)",
        188 => "L3 translation from IPv6 to IPv4 failed (NAT64)",
        189 => "Authentication required",
        190 => "No conntrack map found",
        191 => "No nat map found",
        192 => "Invalid ClusterID",
        193 => "Unsupported packet protocol for DSR encapsulation",
        194 => "No egress gateway found",
        195 => "Traffic is unencrypted",
        196 => "TTL exceeded",
        197 => "No node ID found",
        198 => "Rate limited",
        199 => "IGMP handled",
        200 => "IGMP subscribed",
        201 => "Multicast handled",
        202 => "Host datapath not ready",
        203 => "Endpoint policy program not available",
        _ => return None,
    })
}

/// `NOTIFY_CAPTURE_HDR`: the 16 bytes every packet-carrying notification starts with.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyCaptureHdr {
    pub msg_type: u8,
    pub subtype: u8,
    /// Endpoint id of the source endpoint (0 when not an endpoint).
    pub source: u16,
    pub hash: u32,
    /// Length of the packet on the wire.
    pub len_orig: u32,
    /// Bytes of the packet captured after the header.
    pub len_cap: u16,
    pub version: u16,
}

/// `struct trace_notify`, version 1 (48 bytes); version 0 omits `orig_ip` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceNotify {
    pub hdr: NotifyCaptureHdr,
    pub src_label: u32,
    pub dst_label: u32,
    pub dst_id: u16,
    /// `trace_reason` (conntrack state), possibly with `ENCRYPTED_MASK`.
    pub reason: u8,
    /// `notify_flags`.
    pub flags: u8,
    pub ifindex: u32,
    /// Original (pre-NAT) address; IPv4 in the first 4 bytes.
    pub orig_ip: [u8; 16],
}

pub const TRACE_NOTIFY_V0_LEN: usize = 32;
pub const TRACE_NOTIFY_V1_LEN: usize = 48;
pub const TRACE_NOTIFY_VERSION: u16 = 1;

/// `struct drop_notify`, version 2 (40 bytes); versions 0/1 end before `flags` (36 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropNotify {
    pub hdr: NotifyCaptureHdr,
    pub src_label: u32,
    pub dst_label: u32,
    /// Destination endpoint id (0 for egress drops).
    pub dst_id: u32,
    pub line: u16,
    pub file: u8,
    pub ext_error: i8,
    pub ifindex: u32,
    pub flags: u8,
    pub pad: [u8; 3],
}

pub const DROP_NOTIFY_V1_LEN: usize = 36;
pub const DROP_NOTIFY_V2_LEN: usize = 40;
pub const DROP_NOTIFY_VERSION: u16 = 2;

/// `struct policy_verdict_notify` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyVerdictNotify {
    pub hdr: NotifyCaptureHdr,
    pub remote_label: u32,
    /// 0 allowed, negative = drop reason (e.g. -133), positive = proxy port redirect.
    pub verdict: i32,
    pub dst_port: u16,
    pub proto: u8,
    /// `verdict_flags`: direction, IPv6, match type, audited.
    pub flags: u8,
    pub auth_type: u8,
    pub pad: [u8; 3],
}

pub const POLICY_VERDICT_NOTIFY_LEN: usize = 32;
pub const POLICY_VERDICT_NOTIFY_VERSION: u16 = 1;

/// `struct trace_sock_notify` (40 bytes): socket-level load-balancer translations.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSockNotify {
    pub msg_type: u8,
    pub xlate_point: u8,
    pub l4_proto: u8,
    /// Bit 0: IPv6.
    pub flags: u8,
    pub dst_port: u16,
    pub pad: u16,
    pub sock_cookie: u64,
    pub cgroup_id: u64,
    pub dst_ip: [u8; 16],
}

pub const TRACE_SOCK_NOTIFY_LEN: usize = 40;

/// Bytes of packet the probes capture after the notification header.
pub const CAPTURE_LEN: usize = 128;

/// Views a notification header as bytes, e.g. to build test records.
pub trait AsBytes: Copy {
    fn as_bytes(&self) -> &[u8];
}

macro_rules! impl_as_bytes {
    ($($t:ty),*) => {$(
        impl AsBytes for $t {
            fn as_bytes(&self) -> &[u8] {
                // SAFETY: the type is #[repr(C)], made only of integers and byte arrays, with
                // explicit padding fields, so every byte is initialised.
                unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>()) }
            }
        }
    )*};
}
impl_as_bytes!(
    NotifyCaptureHdr,
    TraceNotify,
    DropNotify,
    PolicyVerdictNotify,
    TraceSockNotify
);

/// Reads a header from the start of `data` if it is long enough (no alignment needed).
pub fn read_header<T: Copy + Default + AsBytes>(data: &[u8]) -> Option<T> {
    if data.len() < size_of::<T>() {
        return None;
    }
    let mut out = T::default();
    // SAFETY: T is a plain-old-data #[repr(C)] type (see AsBytes); any byte pattern is valid,
    // and the source holds at least size_of::<T>() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            (&mut out as *mut T).cast::<u8>(),
            size_of::<T>(),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn layouts_match_cilium() {
        assert_eq!(size_of::<NotifyCaptureHdr>(), 16);
        assert_eq!(size_of::<TraceNotify>(), TRACE_NOTIFY_V1_LEN);
        assert_eq!(offset_of!(TraceNotify, src_label), 16);
        assert_eq!(offset_of!(TraceNotify, dst_id), 24);
        assert_eq!(offset_of!(TraceNotify, reason), 26);
        assert_eq!(offset_of!(TraceNotify, ifindex), 28);
        assert_eq!(offset_of!(TraceNotify, orig_ip), TRACE_NOTIFY_V0_LEN);
        assert_eq!(size_of::<DropNotify>(), DROP_NOTIFY_V2_LEN);
        assert_eq!(offset_of!(DropNotify, dst_id), 24);
        assert_eq!(offset_of!(DropNotify, ext_error), 31);
        assert_eq!(offset_of!(DropNotify, flags), DROP_NOTIFY_V1_LEN);
        assert_eq!(size_of::<PolicyVerdictNotify>(), POLICY_VERDICT_NOTIFY_LEN);
        assert_eq!(offset_of!(PolicyVerdictNotify, verdict), 20);
        assert_eq!(offset_of!(PolicyVerdictNotify, flags), 27);
        assert_eq!(size_of::<TraceSockNotify>(), TRACE_SOCK_NOTIFY_LEN);
        assert_eq!(offset_of!(TraceSockNotify, cgroup_id), 16);
    }

    #[test]
    fn header_round_trips_through_bytes() {
        let tn = TraceNotify {
            hdr: NotifyCaptureHdr {
                msg_type: message_type::TRACE,
                subtype: obs_point::TO_LXC,
                source: 7,
                ..Default::default()
            },
            src_label: 13058,
            dst_label: 17839,
            ifindex: 42,
            ..Default::default()
        };
        let back: TraceNotify = read_header(tn.as_bytes()).expect("long enough");
        assert_eq!(back, tn);
        assert!(read_header::<TraceNotify>(&tn.as_bytes()[..47]).is_none());
    }

    #[test]
    fn drop_reason_names() {
        assert_eq!(
            drop_reason_text(drop_reason::POLICY_DENIED),
            Some("Policy denied")
        );
        assert_eq!(
            drop_reason_text(drop_reason::POLICY_DENY),
            Some("Policy denied by denylist")
        );
        assert_eq!(drop_reason_text(1), None);
    }
}
