//! `policy get` output: the loaded policies and, per endpoint, the resolved policy the datapath
//! enforces, in the spirit of `cilium policy get` / `cilium endpoint get` /
//! `cilium bpf policy get`; plus the same content as JSON.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::compile::{DirectionPolicy, EndpointPolicy, PolicyEntry, ResolvedPolicy};
use super::model::{Policy, PolicyKey};

/// `80/TCP`, `8000-8080/UDP`, `ANY/TCP` (protocol only) or `ANY`.
pub fn port_proto(entry: &PolicyEntry) -> String {
    let proto = match entry.proto {
        0 => return "ANY".to_string(),
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        132 => "SCTP".to_string(),
        n => n.to_string(),
    };
    match (entry.port, entry.end_port) {
        (0, _) => format!("ANY/{proto}"),
        (p, e) if e > p => format!("{p}-{e}/{proto}"),
        (p, _) => format!("{p}/{proto}"),
    }
}

fn identity_name(id: u32) -> String {
    if id == 0 {
        "ANY".to_string()
    } else {
        id.to_string()
    }
}

fn remote_labels(resolved: &ResolvedPolicy, id: u32) -> String {
    if id == 0 {
        return "(any identity)".to_string();
    }
    let labels = resolved.labels_of(id);
    if labels.is_empty() {
        "(unknown identity)".to_string()
    } else {
        labels.join(", ")
    }
}

fn policy_list(keys: &[PolicyKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_direction(
    out: &mut String,
    name: &str,
    dir: &DirectionPolicy,
    resolved: &ResolvedPolicy,
) {
    if !dir.enforced {
        let _ = writeln!(out, "  {name}: not enforced (all traffic allowed)");
        return;
    }
    let mode = if dir.default_deny {
        "default deny"
    } else {
        "default allow"
    };
    let _ = writeln!(
        out,
        "  {name}: enforced ({mode}) by {}",
        policy_list(&dir.policies)
    );
    if dir.entries.is_empty() {
        let _ = writeln!(out, "    (no entries: all traffic denied)");
        return;
    }
    let rows: Vec<[String; 4]> = dir
        .entries
        .iter()
        .map(|e| {
            [
                if e.deny { "Deny" } else { "Allow" }.to_string(),
                identity_name(e.remote_identity),
                port_proto(e),
                remote_labels(resolved, e.remote_identity),
            ]
        })
        .collect();
    let header = ["POLICY", "IDENTITY", "PORT/PROTO", "LABELS"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        format!(
            "    {:<w0$}   {:<w1$}   {:<w2$}   {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        )
    };
    let _ = writeln!(out, "{}", line(header));
    for (r, e) in rows.iter().zip(&dir.entries) {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3]]).trim_end());
        if let Some(l7) = &e.l7 {
            for h in &l7.http {
                let _ = writeln!(out, "      HTTP {h}");
            }
        }
    }
}

fn render_endpoint(out: &mut String, ep: &EndpointPolicy, resolved: &ResolvedPolicy) {
    let _ = writeln!(
        out,
        "Endpoint {}  {}/{}  identity {}",
        ep.endpoint_id, ep.namespace, ep.name, ep.identity
    );
    let _ = writeln!(out, "  Labels: {}", ep.labels.join(", "));
    render_direction(out, "Ingress", &ep.ingress, resolved);
    render_direction(out, "Egress", &ep.egress, resolved);
}

/// The text form. `endpoint` limits the endpoint section to one endpoint.
pub fn render_text(
    resolved: &ResolvedPolicy,
    policies: &[&Policy],
    revision: u64,
    endpoint: Option<u16>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revision: {revision}  ({} {} loaded)",
        policies.len(),
        if policies.len() == 1 {
            "policy"
        } else {
            "policies"
        }
    );
    for p in policies {
        let _ = write!(out, "  {} {}  ({}:{})", p.key.kind, p.key, p.file, p.line);
        if let Some(d) = p.rules.iter().find_map(|r| r.description.as_deref()) {
            let _ = write!(out, "  {d:?}");
        }
        out.push('\n');
        for (i, r) in p.rules.iter().enumerate() {
            let _ = writeln!(out, "    rule {i}: selects {}", r.subject);
        }
    }
    if !resolved.cidr_identities.is_empty() {
        let _ = writeln!(out, "CIDR identities:");
        for (prefix, id) in &resolved.cidr_identities {
            let _ = writeln!(out, "  {prefix:<20} {id}");
        }
    }
    for ep in resolved.endpoints.values() {
        if endpoint.is_some_and(|id| id != ep.endpoint_id) {
            continue;
        }
        out.push('\n');
        render_endpoint(&mut out, ep, resolved);
    }
    out
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    #[serde(flatten)]
    entry: &'a PolicyEntry,
    port_proto: String,
    remote_labels: &'a [String],
}

#[derive(Serialize)]
struct JsonDirection<'a> {
    enforced: bool,
    default_deny: bool,
    policies: Vec<String>,
    entries: Vec<JsonEntry<'a>>,
}

#[derive(Serialize)]
struct JsonEndpoint<'a> {
    endpoint_id: u16,
    namespace: &'a str,
    name: &'a str,
    identity: u32,
    labels: &'a [String],
    ingress: JsonDirection<'a>,
    egress: JsonDirection<'a>,
}

#[derive(Serialize)]
struct JsonPolicy<'a> {
    kind: &'static str,
    namespace: Option<&'a str>,
    name: &'a str,
    file: &'a str,
    line: usize,
    rules: &'a [super::model::Rule],
}

#[derive(Serialize)]
struct JsonCidr {
    prefix: String,
    identity: u32,
}

#[derive(Serialize)]
struct JsonView<'a> {
    revision: u64,
    policies: Vec<JsonPolicy<'a>>,
    cidr_identities: Vec<JsonCidr>,
    endpoints: Vec<JsonEndpoint<'a>>,
}

fn json_direction<'a>(dir: &'a DirectionPolicy, resolved: &'a ResolvedPolicy) -> JsonDirection<'a> {
    JsonDirection {
        enforced: dir.enforced,
        default_deny: dir.default_deny,
        policies: dir.policies.iter().map(|k| k.to_string()).collect(),
        entries: dir
            .entries
            .iter()
            .map(|e| JsonEntry {
                entry: e,
                port_proto: port_proto(e),
                remote_labels: resolved.labels_of(e.remote_identity),
            })
            .collect(),
    }
}

/// The JSON form: the same content as the text form, with numeric fields kept numeric.
pub fn render_json(
    resolved: &ResolvedPolicy,
    policies: &[&Policy],
    revision: u64,
    endpoint: Option<u16>,
) -> Value {
    let view = JsonView {
        revision,
        policies: policies
            .iter()
            .map(|p| JsonPolicy {
                kind: p.key.kind.as_str(),
                namespace: p.key.namespace.as_deref(),
                name: &p.key.name,
                file: &p.file,
                line: p.line,
                rules: &p.rules,
            })
            .collect(),
        cidr_identities: resolved
            .cidr_identities
            .iter()
            .map(|(p, id)| JsonCidr {
                prefix: p.to_string(),
                identity: *id,
            })
            .collect(),
        endpoints: resolved
            .endpoints
            .values()
            .filter(|ep| endpoint.is_none_or(|id| id == ep.endpoint_id))
            .map(|ep| JsonEndpoint {
                endpoint_id: ep.endpoint_id,
                namespace: &ep.namespace,
                name: &ep.name,
                identity: ep.identity,
                labels: &ep.labels,
                ingress: json_direction(&ep.ingress, resolved),
                egress: json_direction(&ep.egress, resolved),
            })
            .collect(),
    };
    // Plain structs of strings and numbers always serialize.
    serde_json::to_value(view).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_print_like_cilium() {
        let e = |proto, port, end_port| PolicyEntry {
            remote_identity: 0,
            proto,
            port,
            end_port,
            deny: false,
            l7: None,
        };
        assert_eq!(port_proto(&e(6, 80, 80)), "80/TCP");
        assert_eq!(port_proto(&e(17, 8000, 8080)), "8000-8080/UDP");
        assert_eq!(port_proto(&e(132, 0, 0)), "ANY/SCTP");
        assert_eq!(port_proto(&e(0, 0, 0)), "ANY");
    }
}
