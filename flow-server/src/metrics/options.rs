//! Parsing of Hubble's `--metrics` syntax: a list of plugins separated by whitespace or commas,
//! each optionally followed by `:` (or `;`) and `;`-separated options, e.g.
//! `drop:sourceContext=namespace flow:labelsContext=source_namespace,destination_namespace tcp`.
//!
//! `labelsContext` values are themselves comma-separated, so a comma piece that is not a plugin
//! name continues the previous plugin's `labelsContext` value.

use super::context::{ContextError, ContextOptions};

/// The plugins we know, with Hubble's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Flow,
    Drop,
    Tcp,
    PortDistribution,
    Icmp,
    Policy,
    FlowsToWorld,
    Dns,
    Http,
    HttpV2,
}

impl PluginKind {
    pub const ALL: [PluginKind; 10] = [
        PluginKind::Flow,
        PluginKind::Drop,
        PluginKind::Tcp,
        PluginKind::PortDistribution,
        PluginKind::Icmp,
        PluginKind::Policy,
        PluginKind::FlowsToWorld,
        PluginKind::Dns,
        PluginKind::Http,
        PluginKind::HttpV2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Flow => "flow",
            PluginKind::Drop => "drop",
            PluginKind::Tcp => "tcp",
            PluginKind::PortDistribution => "port-distribution",
            PluginKind::Icmp => "icmp",
            PluginKind::Policy => "policy",
            PluginKind::FlowsToWorld => "flows-to-world",
            PluginKind::Dns => "dns",
            PluginKind::Http => "http",
            PluginKind::HttpV2 => "httpV2",
        }
    }

    pub fn from_name(name: &str) -> Option<PluginKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Plugin-specific option keys (lower case), besides the context options every plugin takes.
    fn extra_options(self) -> &'static [&'static str] {
        match self {
            PluginKind::FlowsToWorld => &["any-drop", "port", "syn-only"],
            PluginKind::Dns => &["query", "ignoreaaaa"],
            PluginKind::Http | PluginKind::HttpV2 => &["exemplars"],
            _ => &[],
        }
    }
}

/// One enabled plugin with its validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    pub kind: PluginKind,
    pub context: ContextOptions,
    /// Plugin-specific flags that were given (lower-case keys, e.g. `any-drop`).
    pub flags: Vec<String>,
}

impl PluginConfig {
    pub fn new(kind: PluginKind) -> Self {
        Self {
            kind,
            context: ContextOptions::default(),
            flags: Vec::new(),
        }
    }

    pub fn has_flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(key))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("unknown metric {0:?} (known: {known})", known = known_plugins())]
    UnknownPlugin(String),
    #[error("metric {plugin:?}: unknown option {option:?}")]
    UnknownOption { plugin: String, option: String },
    #[error("metric {plugin:?}: option {option:?}: {source}")]
    Context {
        plugin: String,
        option: String,
        #[source]
        source: ContextError,
    },
    #[error("metric {0:?} is listed more than once")]
    Duplicate(String),
    #[error("metrics \"http\" and \"httpV2\" cannot be enabled together")]
    HttpConflict,
    #[error("empty metric name in {0:?}")]
    EmptyName(String),
}

fn known_plugins() -> String {
    PluginKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plugin name and its raw `key=value` options, before validation.
type RawEntry = (String, Vec<(String, String)>);

/// Splits a `--metrics` string into (name, raw options) pairs without validating them.
fn split_entries(s: &str) -> Result<Vec<RawEntry>, OptionsError> {
    let mut out: Vec<RawEntry> = Vec::new();
    for token in s.split_whitespace() {
        for piece in token.split(',') {
            if piece.is_empty() {
                continue;
            }
            let name_end = piece.find([':', ';']).unwrap_or(piece.len());
            let name = &piece[..name_end];
            // A comma piece continues a labelsContext list unless it starts a new plugin.
            if PluginKind::from_name(name).is_none()
                && let Some((_, opts)) = out.last_mut()
                && let Some((key, value)) = opts.last_mut()
                && key.eq_ignore_ascii_case("labelscontext")
                && !piece.contains([':', ';', '='])
            {
                value.push(',');
                value.push_str(piece);
                continue;
            }
            if name.is_empty() {
                return Err(OptionsError::EmptyName(piece.to_string()));
            }
            let rest = piece.get(name_end + 1..).unwrap_or("");
            let opts = rest
                .split(';')
                .filter(|o| !o.is_empty())
                .map(|o| match o.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (o.to_string(), String::new()),
                })
                .collect();
            out.push((name.to_string(), opts));
        }
    }
    Ok(out)
}

/// Parses and validates a Hubble `--metrics` string. An empty string enables nothing.
pub fn parse_metrics(s: &str) -> Result<Vec<PluginConfig>, OptionsError> {
    let mut plugins: Vec<PluginConfig> = Vec::new();
    for (name, opts) in split_entries(s)? {
        let kind = PluginKind::from_name(&name).ok_or(OptionsError::UnknownPlugin(name.clone()))?;
        if plugins.iter().any(|p| p.kind == kind) {
            return Err(OptionsError::Duplicate(name));
        }
        let mut cfg = PluginConfig::new(kind);
        for (key, value) in &opts {
            let lower = key.to_ascii_lowercase();
            if kind.extra_options().contains(&lower.as_str()) {
                cfg.flags.push(lower);
                continue;
            }
            match cfg.context.set(key, value) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(OptionsError::UnknownOption {
                        plugin: name.clone(),
                        option: key.clone(),
                    });
                }
                Err(source) => {
                    return Err(OptionsError::Context {
                        plugin: name.clone(),
                        option: key.clone(),
                        source,
                    });
                }
            }
        }
        plugins.push(cfg);
    }
    let has = |k| plugins.iter().any(|p| p.kind == k);
    if has(PluginKind::Http) && has(PluginKind::HttpV2) {
        return Err(OptionsError::HttpConflict);
    }
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::context::{ContextId, LabelCtx};

    #[test]
    fn parses_the_issue_example() {
        let p =
            parse_metrics("drop;sourceContext=namespace,tcp,flow,port-distribution,icmp,policy")
                .expect("valid");
        let kinds: Vec<_> = p.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PluginKind::Drop,
                PluginKind::Tcp,
                PluginKind::Flow,
                PluginKind::PortDistribution,
                PluginKind::Icmp,
                PluginKind::Policy
            ]
        );
        assert_eq!(p[0].context.source, vec![ContextId::Namespace]);
        assert!(p[1].context.is_empty());
    }

    #[test]
    fn parses_hubble_syntax_with_fallbacks_and_label_lists() {
        let p = parse_metrics(
            "flow:sourceContext=workload-name|reserved-identity;destinationContext=pod|ip;\
             labelsContext=source_namespace,destination_namespace,traffic_direction \
             flows-to-world:any-drop;port,dns:query;ignoreAAAA httpV2:exemplars=true",
        )
        .expect("valid");
        assert_eq!(p.len(), 4);
        let flow = &p[0].context;
        assert_eq!(
            flow.source,
            vec![ContextId::WorkloadName, ContextId::ReservedIdentity]
        );
        assert_eq!(flow.destination, vec![ContextId::Pod, ContextId::Ip]);
        assert_eq!(
            flow.labels,
            vec![
                LabelCtx::SourceNamespace,
                LabelCtx::DestinationNamespace,
                LabelCtx::TrafficDirection
            ]
        );
        assert_eq!(flow.label_names(), {
            let v: Vec<&str> = vec![
                "source_namespace",
                "destination_namespace",
                "traffic_direction",
                "source",
                "destination",
            ];
            v
        });
        assert!(p[1].has_flag("any-drop") && p[1].has_flag("port") && !p[1].has_flag("syn-only"));
        assert!(p[2].has_flag("query") && p[2].has_flag("ignoreAAAA"));
        assert_eq!(p[3].kind, PluginKind::HttpV2);
        assert_eq!(parse_metrics("").expect("empty ok"), vec![]);
        // Keys are case-insensitive, as in Hubble.
        let p = parse_metrics("icmp:SOURCECONTEXT=app").expect("valid");
        assert_eq!(p[0].context.source, vec![ContextId::App]);
    }

    #[test]
    fn bad_strings_name_what_is_wrong() {
        let cases = [
            ("flow,bogus", "unknown metric \"bogus\""),
            (
                "drop:sourceContext=namespaces",
                "unknown context \"namespaces\"",
            ),
            ("drop:sourceContext=namespace|", "unknown context \"\""),
            ("tcp:colour=blue", "unknown option \"colour\""),
            (
                "flow:labelsContext=source_pod,sauce_ip",
                "invalid labelsContext value \"sauce_ip\"",
            ),
            ("flow:destinationContext", "needs a value"),
            ("flow flow", "listed more than once"),
            ("http httpV2", "cannot be enabled together"),
            (":sourceContext=pod", "empty metric name"),
        ];
        for (input, want) in cases {
            let err = parse_metrics(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: {err:?} lacks {want:?}");
        }
        // The option name appears in context errors.
        let err = parse_metrics("policy:destinationEgressContext=pods")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("destinationEgressContext"), "{err}");
    }
}
