//! `periscope status` and `periscope list …` output, in Hubble's formats.

use std::io;

use periscope_proto::observer::{Namespace, Node, ServerStatusResponse};
use periscope_proto::relay::NodeState;

use super::color::sanitize;
use super::fields::group_thousands;
use super::tabwriter::TabWriter;
use crate::timefmt::go_duration_string;

const NOT_AVAILABLE: &str = "N/A";

fn flows_per_sec(s: &ServerStatusResponse) -> String {
    if s.flows_rate > 0.0 {
        format!("{:.2}", s.flows_rate)
    } else {
        NOT_AVAILABLE.to_string()
    }
}

fn opt_u32(v: Option<&periscope_proto::pbjson_types::UInt32Value>) -> String {
    v.map_or_else(|| NOT_AVAILABLE.to_string(), |v| v.value.to_string())
}

/// `Current/Max Flows: 4,095/4,095 (100.00%)`, `Flows/s: …`, `Connected Nodes: …`, and the
/// unavailable nodes if any.
pub fn server_status_compact(s: &ServerStatusResponse) -> String {
    let mut out = String::new();
    let ratio = if s.max_flows > 0 {
        format!(" ({:.2}%)", s.num_flows as f64 / s.max_flows as f64 * 100.0)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "Current/Max Flows: {}/{}{ratio}\n",
        group_thousands(s.num_flows),
        group_thousands(s.max_flows)
    ));
    let mut fps = flows_per_sec(s);
    if fps == NOT_AVAILABLE && s.uptime_ns > 0 {
        fps = format!("{:.2}", s.seen_flows as f64 / (s.uptime_ns as f64 / 1e9));
    }
    out.push_str(&format!("Flows/s: {fps}\n"));
    let connected = s.num_connected_nodes.as_ref().map(|v| v.value);
    let unavailable = s.num_unavailable_nodes.as_ref().map(|v| v.value);
    if let Some(c) = connected {
        let total = unavailable.map_or_else(String::new, |u| format!("/{}", u.saturating_add(c)));
        out.push_str(&format!("Connected Nodes: {c}{total}\n"));
    }
    if let Some(u) = unavailable.filter(|u| *u > 0) {
        if s.unavailable_nodes.is_empty() {
            out.push_str(&format!("Unavailable Nodes: {u}\n"));
        } else {
            let mut names: Vec<String> = s.unavailable_nodes.iter().map(|n| sanitize(n)).collect();
            names.sort();
            let listed = u32::try_from(names.len()).unwrap_or(u32::MAX);
            if u > listed {
                names.push(format!("and {} more...", u - listed));
            }
            out.push_str(&format!(
                "Unavailable Nodes: {u}\n  - {}\n",
                names.join("\n  - ")
            ));
        }
    }
    out
}

pub fn server_status_dict(s: &ServerStatusResponse) -> String {
    format!(
        "          NUM FLOWS: {}\n          MAX FLOWS: {}\n         SEEN FLOWS: {}\n   FLOWS PER SECOND: {}\n             UPTIME: {}\nNUM CONNECTED NODES: {}\n NUM UNAVAIL. NODES: {}\n            VERSION: {}\n",
        group_thousands(s.num_flows),
        group_thousands(s.max_flows),
        group_thousands(s.seen_flows),
        flows_per_sec(s),
        go_duration_string(s.uptime_ns),
        opt_u32(s.num_connected_nodes.as_ref()),
        opt_u32(s.num_unavailable_nodes.as_ref()),
        sanitize(&s.version),
    )
}

pub fn server_status_table(s: &ServerStatusResponse) -> String {
    let mut tw = TabWriter::hubble();
    tw.row([
        "NUM FLOWS",
        "MAX FLOWS",
        "SEEN FLOWS",
        "FLOWS PER SECOND",
        "UPTIME",
        "NUM CONNECTED NODES",
        "NUM UNAVAILABLE NODES",
        "VERSION",
    ]);
    tw.row([
        group_thousands(s.num_flows),
        group_thousands(s.max_flows),
        group_thousands(s.seen_flows),
        flows_per_sec(s),
        go_duration_string(s.uptime_ns),
        opt_u32(s.num_connected_nodes.as_ref()),
        opt_u32(s.num_unavailable_nodes.as_ref()),
        sanitize(&s.version),
    ]);
    tw.render()
}

pub fn server_status_json(s: &ServerStatusResponse) -> io::Result<String> {
    serde_json::to_string(s)
        .map(|j| j + "\n")
        .map_err(io::Error::other)
}

fn node_state_word(state: i32) -> &'static str {
    match NodeState::try_from(state) {
        Ok(NodeState::NodeConnected) => "Connected",
        Ok(NodeState::NodeUnavailable) => "Unavailable",
        Ok(NodeState::NodeGone) => "Gone",
        Ok(NodeState::NodeError) => "Error",
        _ => "Unknown",
    }
}

/// `NAME STATUS AGE FLOWS/S CURRENT/MAX-FLOWS` (+ `VERSION ADDRESS TLS` when wide).
/// Nodes are printed in the order given (the caller sorts them).
pub fn nodes_table(nodes: &[Node], wide: bool) -> String {
    let mut tw = TabWriter::hubble();
    let mut header = vec!["NAME", "STATUS", "AGE", "FLOWS/S", "CURRENT/MAX-FLOWS"];
    if wide {
        header.extend(["VERSION", "ADDRESS", "TLS"]);
    }
    tw.row(header);
    for n in nodes {
        // Age is the uptime rounded to the second, like Go's Duration.Round(time.Second).
        let secs = (n.uptime_ns.saturating_add(500_000_000)) / 1_000_000_000;
        let (age, fps) = if secs > 0 {
            (
                go_duration_string(secs * 1_000_000_000),
                format!("{:.2}", n.seen_flows as f64 / secs as f64),
            )
        } else {
            (NOT_AVAILABLE.to_string(), NOT_AVAILABLE.to_string())
        };
        let flows = if n.max_flows > 0 {
            format!(
                "{}/{} ({:6.2}%)",
                n.num_flows,
                n.max_flows,
                n.num_flows as f64 / n.max_flows as f64 * 100.0
            )
        } else {
            NOT_AVAILABLE.to_string()
        };
        let mut row = vec![
            sanitize(&n.name),
            node_state_word(n.state).to_string(),
            age,
            fps,
            flows,
        ];
        if wide {
            let version = if n.version.is_empty() {
                NOT_AVAILABLE.to_string()
            } else {
                sanitize(&n.version)
            };
            let tls = match n.tls.as_ref() {
                None => NOT_AVAILABLE,
                Some(t) if t.enabled => "Enabled",
                Some(_) => "Disabled",
            };
            row.extend([version, sanitize(&n.address), tls.to_string()]);
        }
        tw.row(row);
    }
    tw.render()
}

/// `NAMESPACE` (+ `CLUSTER` when wide).
pub fn namespaces_table(namespaces: &[Namespace], wide: bool) -> String {
    let mut tw = TabWriter::hubble();
    let mut header = vec!["NAMESPACE"];
    if wide {
        header.push("CLUSTER");
    }
    tw.row(header);
    for ns in namespaces {
        let mut row = vec![sanitize(&ns.namespace)];
        if wide && !ns.cluster.is_empty() {
            row.push(sanitize(&ns.cluster));
        }
        tw.row(row);
    }
    tw.render()
}

/// An indented JSON array, as `hubble list … -o json` prints.
pub fn json_list<T: ListItem>(items: &[T]) -> io::Result<String> {
    let values = items
        .iter()
        .map(ListItem::to_json)
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_string_pretty(&values)
        .map(|j| j + "\n")
        .map_err(io::Error::other)
}

/// Messages `json_list` can print.
pub trait ListItem {
    fn to_json(&self) -> io::Result<serde_json::Value>;
}

impl ListItem for Node {
    fn to_json(&self) -> io::Result<serde_json::Value> {
        serde_json::to_value(self).map_err(io::Error::other)
    }
}

impl ListItem for Namespace {
    fn to_json(&self) -> io::Result<serde_json::Value> {
        serde_json::to_value(self).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use periscope_proto::observer::Tls;
    use periscope_proto::pbjson_types::UInt32Value;

    use super::*;

    #[test]
    fn compact_status_reads_like_hubble() {
        let s = ServerStatusResponse {
            num_flows: 4095,
            max_flows: 4095,
            seen_flows: 10_000,
            uptime_ns: 1_000_000_000_000,
            num_connected_nodes: Some(UInt32Value { value: 2 }),
            num_unavailable_nodes: Some(UInt32Value { value: 3 }),
            unavailable_nodes: vec!["node-c".into(), "node-b".into()],
            version: "v0.1.0".into(),
            flows_rate: 10.5,
        };
        assert_eq!(
            server_status_compact(&s),
            "Current/Max Flows: 4,095/4,095 (100.00%)\nFlows/s: 10.50\nConnected Nodes: 2/5\n\
             Unavailable Nodes: 3\n  - node-b\n  - node-c\n  - and 1 more...\n"
        );
        let quiet = ServerStatusResponse {
            num_flows: 10,
            max_flows: 0,
            seen_flows: 30,
            uptime_ns: 10_000_000_000,
            ..Default::default()
        };
        assert_eq!(
            server_status_compact(&quiet),
            "Current/Max Flows: 10/0\nFlows/s: 3.00\n"
        );
        assert!(server_status_dict(&s).contains("             UPTIME: 16m40s\n"));
        let table = server_status_table(&s);
        assert!(
            table.starts_with("NUM FLOWS   MAX FLOWS   SEEN FLOWS"),
            "{table}"
        );
    }

    #[test]
    fn nodes_table_like_hubble_list_nodes() {
        let nodes = vec![
            Node {
                name: "kind-control-plane".into(),
                state: NodeState::NodeConnected as i32,
                uptime_ns: 286_400_000_000,
                num_flows: 3189,
                max_flows: 4095,
                seen_flows: 3189,
                version: "v0.1.0".into(),
                address: "10.0.0.1:4244".into(),
                tls: Some(Tls {
                    enabled: false,
                    server_name: String::new(),
                }),
            },
            Node {
                name: "w".into(),
                state: NodeState::NodeUnavailable as i32,
                ..Default::default()
            },
        ];
        assert_eq!(
            nodes_table(&nodes, false),
            "NAME                 STATUS        AGE     FLOWS/S   CURRENT/MAX-FLOWS\n\
             kind-control-plane   Connected     4m46s   11.15     3189/4095 ( 77.88%)\n\
             w                    Unavailable   N/A     N/A       N/A\n"
        );
        let wide = nodes_table(&nodes, true);
        assert!(wide.contains("Disabled"), "{wide}");
        let json = json_list(&nodes).expect("json");
        assert!(json.starts_with("[\n  {\n"), "{json}");
        assert!(json.contains("\"name\": \"kind-control-plane\""), "{json}");
    }

    #[test]
    fn namespaces_table_lists_names() {
        let ns = vec![
            Namespace {
                cluster: "c1".into(),
                namespace: "default".into(),
            },
            Namespace {
                cluster: String::new(),
                namespace: "kube-system".into(),
            },
        ];
        assert_eq!(
            namespaces_table(&ns, false),
            "NAMESPACE\ndefault\nkube-system\n"
        );
        assert_eq!(
            namespaces_table(&ns, true),
            // kube-system has no cluster cell, so it ends the aligned block (as in Go).
            "NAMESPACE   CLUSTER\ndefault     c1\nkube-system\n"
        );
    }
}
