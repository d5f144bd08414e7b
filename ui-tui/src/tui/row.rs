//! One flow's table cells, rendered to strings once (the first time the flow is on screen) and
//! kept with the flow, so drawing a frame only copies prepared text.

use periscope_proto::flow::{Endpoint, Flow, Service, Verdict, layer4};

use crate::output::color::{Colorer, sanitize};
use crate::output::fields;
use crate::timefmt::{TimeFormat, Zone, format_timestamp};

/// Column titles, in display order.
pub const COLUMNS: [&str; 8] = [
    "TIME",
    "NODE",
    "SOURCE",
    "DESTINATION",
    "PORT",
    "TYPE",
    "VERDICT",
    "SUMMARY",
];

/// How a row is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictClass {
    Forwarded,
    Dropped,
    /// AUDIT and ERROR.
    Warn,
    Other,
}

impl VerdictClass {
    pub fn of(verdict: i32) -> Self {
        match Verdict::try_from(verdict) {
            Ok(Verdict::Forwarded) => Self::Forwarded,
            Ok(Verdict::Dropped) => Self::Dropped,
            Ok(Verdict::Audit | Verdict::Error) => Self::Warn,
            _ => Self::Other,
        }
    }
}

/// The cells of one table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowText {
    pub cells: [String; 8],
    pub class: VerdictClass,
}

/// Options that change how rows read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowOptions {
    pub zone: Zone,
    /// Names (pod, service, DNS) instead of IP addresses.
    pub ip_translation: bool,
}

impl Default for RowOptions {
    fn default() -> Self {
        Self {
            zone: Zone::Local,
            ip_translation: true,
        }
    }
}

impl RowText {
    pub fn new(f: &Flow, opts: RowOptions) -> Self {
        let plain = Colorer::new(false);
        let (src, dst) = endpoint_names(f, opts.ip_translation);
        Self {
            cells: [
                clock_time(f, opts.zone),
                sanitize(&f.node_name),
                src,
                dst,
                port(f),
                sanitize(&fields::flow_type(f)),
                fields::verdict(f, &plain),
                fields::summary_with_auth(f, &plain),
            ],
            class: VerdictClass::of(f.verdict),
        }
    }
}

/// `15:04:05.000`: the date is noise in a live view.
fn clock_time(f: &Flow, zone: Zone) -> String {
    let stamp = format_timestamp(f.time.as_ref(), TimeFormat::StampMilli, zone);
    match stamp.rsplit_once(' ') {
        Some((_, clock)) => clock.to_string(),
        None => stamp,
    }
}

/// Source and destination without ports (the port has its own column): `namespace/pod`,
/// `namespace/service`, DNS names, or the IP address (MAC for non-IP flows).
pub fn endpoint_names(f: &Flow, ip_translation: bool) -> (String, String) {
    let Some(ip) = f.ip.as_ref() else {
        return match f.ethernet.as_ref() {
            Some(eth) => (sanitize(&eth.source), sanitize(&eth.destination)),
            None => (String::new(), String::new()),
        };
    };
    let side = |addr: &str, ep: Option<&Endpoint>, svc: Option<&Service>, names: &[String]| {
        if !ip_translation {
            return sanitize(addr);
        }
        let join = |ns: &str, name: &str| {
            if ns.is_empty() {
                sanitize(name)
            } else {
                sanitize(&format!("{ns}/{name}"))
            }
        };
        if let Some(e) = ep.filter(|e| !e.pod_name.is_empty()) {
            join(&e.namespace, &e.pod_name)
        } else if let Some(s) = svc.filter(|s| !s.name.is_empty()) {
            join(&s.namespace, &s.name)
        } else if !names.is_empty() {
            sanitize(&names.join(","))
        } else {
            sanitize(addr)
        }
    };
    (
        side(
            &ip.source,
            f.source.as_ref(),
            f.source_service.as_ref(),
            &f.source_names,
        ),
        side(
            &ip.destination,
            f.destination.as_ref(),
            f.destination_service.as_ref(),
            &f.destination_names,
        ),
    )
}

/// `80/TCP`, `53/UDP`, `ICMPv4`; empty when there is no L4 header.
fn port(f: &Flow) -> String {
    match f.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => format!("{}/TCP", t.destination_port),
        Some(layer4::Protocol::Udp(u)) => format!("{}/UDP", u.destination_port),
        Some(layer4::Protocol::Sctp(s)) => format!("{}/SCTP", s.destination_port),
        Some(layer4::Protocol::IcmPv4(_)) => "ICMPv4".to_string(),
        Some(layer4::Protocol::IcmPv6(_)) => "ICMPv6".to_string(),
        Some(_) => "-".to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use periscope_proto::flow::{Ip, Layer4, Tcp};

    use super::*;

    #[test]
    fn cells_name_pods_and_ports() {
        let f = Flow {
            verdict: Verdict::Dropped as i32,
            node_name: "node-1".into(),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            source: Some(Endpoint {
                namespace: "default".into(),
                pod_name: "xwing".into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: 4000,
                    destination_port: 80,
                    flags: None,
                })),
            }),
            ..Default::default()
        };
        let r = RowText::new(&f, RowOptions::default());
        assert_eq!(r.cells[1], "node-1");
        assert_eq!(r.cells[2], "default/xwing");
        assert_eq!(r.cells[3], "10.0.0.2");
        assert_eq!(r.cells[4], "80/TCP");
        assert_eq!(r.cells[6], "DROPPED");
        assert_eq!(r.class, VerdictClass::Dropped);
        let numeric = RowText::new(
            &f,
            RowOptions {
                ip_translation: false,
                ..RowOptions::default()
            },
        );
        assert_eq!(numeric.cells[2], "10.0.0.1");
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        let f = Flow {
            node_name: "evil\x1b[2J".into(),
            ..Default::default()
        };
        let r = RowText::new(&f, RowOptions::default());
        assert!(!r.cells[1].contains('\x1b'));
    }
}
