//! Parses the packet bytes captured after a notification header into the record's
//! Ethernet / IP / L4 fields. Captures are truncated by design (128 bytes), so a header that is
//! cut short simply leaves the layers above it empty; it is never an error.

use crate::record::{FlowRecord, proto};

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;

/// IPv6 extension headers we skip to find the L4 header.
const IPV6_EXT_HOP_BY_HOP: u8 = 0;
const IPV6_EXT_ROUTING: u8 = 43;
const IPV6_EXT_FRAGMENT: u8 = 44;
const IPV6_EXT_DEST_OPTS: u8 = 60;

/// Fills L2-L4 fields of `rec` from `data`. `l3_device` means the capture starts at the IP header.
pub fn parse_packet(data: &[u8], l3_device: bool, rec: &mut FlowRecord) {
    if l3_device {
        match data.first().map(|b| b >> 4) {
            Some(4) => parse_ipv4(data, rec),
            Some(6) => parse_ipv6(data, rec),
            _ => {}
        }
        return;
    }
    if data.len() < ETH_HLEN {
        return;
    }
    rec.has_ethernet = 1;
    rec.dst_mac.copy_from_slice(&data[0..6]);
    rec.src_mac.copy_from_slice(&data[6..12]);
    let mut ethertype = u16::from_be_bytes([data[12], data[13]]);
    let mut off = ETH_HLEN;
    if ethertype == ETHERTYPE_VLAN && data.len() >= off + 4 {
        ethertype = u16::from_be_bytes([data[off + 2], data[off + 3]]);
        off += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(&data[off..], rec),
        ETHERTYPE_IPV6 => parse_ipv6(&data[off..], rec),
        _ => {}
    }
}

fn parse_ipv4(data: &[u8], rec: &mut FlowRecord) {
    if data.len() < 20 || data[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(data[0] & 0x0f) * 4;
    if ihl < 20 {
        return;
    }
    rec.ip_version = 4;
    rec.src_ip = [0; 16];
    rec.dst_ip = [0; 16];
    rec.src_ip[..4].copy_from_slice(&data[12..16]);
    rec.dst_ip[..4].copy_from_slice(&data[16..20]);
    let frag_offset = u16::from_be_bytes([data[6], data[7]]) & 0x1fff;
    if frag_offset != 0 || data.len() < ihl {
        // Later fragments carry no L4 header.
        return;
    }
    parse_l4(data[9], &data[ihl..], rec);
}

fn parse_ipv6(data: &[u8], rec: &mut FlowRecord) {
    if data.len() < 40 || data[0] >> 4 != 6 {
        return;
    }
    rec.ip_version = 6;
    rec.src_ip.copy_from_slice(&data[8..24]);
    rec.dst_ip.copy_from_slice(&data[24..40]);
    let mut next = data[6];
    let mut off = 40;
    // Bounded walk over extension headers.
    for _ in 0..8 {
        match next {
            IPV6_EXT_HOP_BY_HOP | IPV6_EXT_ROUTING | IPV6_EXT_DEST_OPTS => {
                if data.len() < off + 2 {
                    return;
                }
                next = data[off];
                off += (usize::from(data[off + 1]) + 1) * 8;
            }
            IPV6_EXT_FRAGMENT => {
                if data.len() < off + 8 {
                    return;
                }
                let frag_offset = u16::from_be_bytes([data[off + 2], data[off + 3]]) >> 3;
                next = data[off];
                off += 8;
                if frag_offset != 0 {
                    return;
                }
            }
            _ => break,
        }
    }
    if off <= data.len() {
        parse_l4(next, &data[off..], rec);
    }
}

fn parse_l4(protocol: u8, data: &[u8], rec: &mut FlowRecord) {
    match protocol {
        proto::TCP if data.len() >= 14 => {
            rec.l4_proto = proto::TCP;
            rec.src_port = u16::from_be_bytes([data[0], data[1]]);
            rec.dst_port = u16::from_be_bytes([data[2], data[3]]);
            rec.tcp_flags = u16::from(data[13]) | (u16::from(data[12] & 0x01) << 8);
        }
        proto::UDP | proto::SCTP if data.len() >= 4 => {
            rec.l4_proto = protocol;
            rec.src_port = u16::from_be_bytes([data[0], data[1]]);
            rec.dst_port = u16::from_be_bytes([data[2], data[3]]);
        }
        proto::ICMP | proto::ICMPV6 if data.len() >= 2 => {
            rec.l4_proto = protocol;
            rec.icmp_type = data[0];
            rec.icmp_code = data[1];
        }
        _ => {}
    }
}

/// Hand-built packets for tests and benchmarks.
pub mod build {
    use std::net::IpAddr;

    pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(14 + payload.len());
        p.extend_from_slice(&DST_MAC);
        p.extend_from_slice(&SRC_MAC);
        p.extend_from_slice(&ethertype.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// An Ethernet frame carrying `l4` over IPv4 or IPv6 (chosen by the address family).
    pub fn ip_packet(src: IpAddr, dst: IpAddr, protocol: u8, l4: &[u8]) -> Vec<u8> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
                let total = (20 + l4.len()) as u16;
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                ip.extend_from_slice(l4);
                ethernet(0x0800, &ip)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = vec![0x60, 0, 0, 0];
                ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                ip.push(protocol);
                ip.push(64);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                ip.extend_from_slice(l4);
                ethernet(0x86dd, &ip)
            }
            _ => ethernet(0x0800, &[]),
        }
    }

    pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    pub fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u
    }

    pub fn icmp(icmp_type: u8, code: u8) -> Vec<u8> {
        vec![icmp_type, code, 0, 0, 0, 1, 0, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::record::tcp as flags;
    use std::net::IpAddr;

    fn parse(p: &[u8]) -> FlowRecord {
        let mut r = FlowRecord::EMPTY;
        parse_packet(p, false, &mut r);
        r
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn tcp_over_ipv4() {
        let p = ip_packet(
            v4("10.0.0.1"),
            v4("10.0.0.2"),
            proto::TCP,
            &tcp(49446, 80, 0x02),
        );
        let r = parse(&p);
        assert_eq!(r.ip_version, 4);
        assert_eq!(r.src_addr(), Some(v4("10.0.0.1")));
        assert_eq!(r.dst_addr(), Some(v4("10.0.0.2")));
        assert_eq!(
            (r.l4_proto, r.src_port, r.dst_port),
            (proto::TCP, 49446, 80)
        );
        assert_eq!(r.tcp_flags, flags::SYN);
        assert_eq!(r.src_mac, SRC_MAC);
        assert_eq!(r.dst_mac, DST_MAC);
    }

    #[test]
    fn udp_and_sctp_over_ipv6() {
        let p = ip_packet(v4("fd00::1"), v4("fd00::2"), proto::UDP, &udp(5353, 53));
        let r = parse(&p);
        assert_eq!(
            (r.ip_version, r.l4_proto, r.src_port, r.dst_port),
            (6, proto::UDP, 5353, 53)
        );
        let p = ip_packet(v4("fd00::1"), v4("fd00::2"), proto::SCTP, &udp(1000, 2000));
        assert_eq!(parse(&p).l4_proto, proto::SCTP);
    }

    #[test]
    fn icmp_v4_and_v6() {
        let r = parse(&ip_packet(
            v4("10.0.0.1"),
            v4("10.0.0.2"),
            proto::ICMP,
            &icmp(8, 0),
        ));
        assert_eq!((r.l4_proto, r.icmp_type, r.icmp_code), (proto::ICMP, 8, 0));
        let r = parse(&ip_packet(
            v4("fd00::1"),
            v4("fd00::2"),
            proto::ICMPV6,
            &icmp(128, 0),
        ));
        assert_eq!((r.l4_proto, r.icmp_type), (proto::ICMPV6, 128));
    }

    #[test]
    fn truncated_layers_are_left_empty() {
        let p = ip_packet(v4("10.0.0.1"), v4("10.0.0.2"), proto::TCP, &tcp(1, 2, 0x10));
        // Cut inside the TCP header: IP survives, L4 does not.
        let r = parse(&p[..14 + 20 + 8]);
        assert_eq!(r.ip_version, 4);
        assert_eq!(r.l4_proto, 0);
        // Cut inside the IP header: only Ethernet survives.
        let r = parse(&p[..20]);
        assert_eq!((r.has_ethernet, r.ip_version), (1, 0));
        // Shorter than Ethernet: nothing.
        assert_eq!(parse(&p[..5]), FlowRecord::EMPTY);
        // Garbage never panics.
        for len in 0..p.len() {
            let mut g = p.clone();
            g[14] = 0x4f; // IHL 60 bytes: longer than the packet
            parse(&g[..len]);
        }
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut l4 = vec![proto::TCP, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop, 8 bytes
        l4.extend_from_slice(&tcp(1234, 443, 0x12));
        let p = ip_packet(v4("fd00::1"), v4("fd00::2"), 0, &l4);
        let r = parse(&p);
        assert_eq!(
            (r.l4_proto, r.dst_port, r.tcp_flags),
            (proto::TCP, 443, flags::SYN | flags::ACK)
        );
    }

    #[test]
    fn l3_device_capture_starts_at_ip() {
        let p = ip_packet(v4("10.0.0.1"), v4("10.0.0.2"), proto::UDP, &udp(1, 53));
        let mut r = FlowRecord::EMPTY;
        parse_packet(&p[14..], true, &mut r);
        assert_eq!((r.has_ethernet, r.ip_version, r.dst_port), (0, 4, 53));
    }
}
