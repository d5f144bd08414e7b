//! The detail pane: one flow in full. First the `-o dict` block (so it reads exactly like
//! `periscope observe -o dict`), then every field the server set, as `path: value` lines from the
//! flow's proto3 JSON form. Lines are built once when the pane opens.

use periscope_proto::flow::Flow;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use serde_json::Value;

use super::row::VerdictClass;
use super::table::verdict_style;
use crate::output::color::{Colorer, sanitize};
use crate::output::{OutputFormat, PrinterOptions, dict};
use crate::timefmt::Zone;

/// Heading of the second section.
pub const ALL_FIELDS: &str = "All fields";

/// An open detail pane.
#[derive(Debug, Clone)]
pub struct Detail {
    pub flow: Box<Flow>,
    /// `(key, value)`; a key of `None` is a section heading or blank line.
    pub lines: Vec<(Option<String>, String)>,
    pub scroll: usize,
}

impl Detail {
    pub fn new(flow: Flow, zone: Zone, ip_translation: bool) -> Self {
        let opts = PrinterOptions {
            format: OutputFormat::Dict,
            zone,
            color: false,
            node_name: true,
            ip_translation,
            ..PrinterOptions::default()
        };
        let mut lines = Vec::new();
        for l in dict::flow(&flow, &opts, &Colorer::new(false)).lines() {
            match l.split_once(": ") {
                Some((k, v)) => lines.push((Some(k.to_string()), v.to_string())),
                None => lines.push((Some(l.trim_end_matches(':').to_string()), String::new())),
            }
        }
        lines.push((None, String::new()));
        lines.push((None, ALL_FIELDS.to_string()));
        match serde_json::to_value(&flow) {
            Ok(v) => {
                let mut flat = Vec::new();
                flatten("", &v, &mut flat);
                lines.extend(flat.into_iter().map(|(k, v)| (Some(k), v)));
            }
            Err(e) => lines.push((None, format!("(cannot list fields: {e})"))),
        }
        Self {
            flow: Box::new(flow),
            lines,
            scroll: 0,
        }
    }

    pub fn scroll_by(&mut self, delta: isize, height: usize) {
        let max = self.lines.len().saturating_sub(height.max(1));
        self.scroll = self.scroll.saturating_add_signed(delta).min(max);
    }
}

/// `a.b[0].c: value` for every leaf. Strings are sanitized so server text cannot drive the
/// terminal.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), child, out);
            }
        }
        Value::String(s) => out.push((sanitize(prefix), sanitize(s))),
        Value::Null => {}
        other => out.push((sanitize(prefix), other.to_string())),
    }
}

/// Draws the pane into `area`.
pub fn draw(f: &mut Frame, area: Rect, d: &Detail) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Flow details — Esc back, j/k scroll ");
    let inner_height = usize::from(block.inner(area).height);
    let verdict = VerdictClass::of(d.flow.verdict);
    let lines: Vec<Line> = d
        .lines
        .iter()
        .skip(d.scroll)
        .take(inner_height)
        .map(|(k, v)| match k {
            None => Line::from(Span::styled(
                v.clone(),
                Style::default()
                    .add_modifier(Modifier::BOLD)
                    .fg(Color::Cyan),
            )),
            Some(k) => {
                // The dict keys arrive right-aligned already, as `-o dict` prints them.
                let value_style = if k.trim() == "VERDICT" {
                    verdict_style(verdict)
                } else {
                    Style::default()
                };
                Line::from(vec![
                    Span::styled(
                        format!("{k}: "),
                        Style::default().add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(v.clone(), value_style),
                ])
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use periscope_proto::flow::{Endpoint, Verdict};

    use super::*;

    #[test]
    fn dict_block_then_every_field() {
        let f = Flow {
            verdict: Verdict::Dropped as i32,
            node_name: "node-1".into(),
            source: Some(Endpoint {
                pod_name: "xwing".into(),
                namespace: "default".into(),
                labels: vec!["k8s:class=xwing".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = Detail::new(f, Zone::Utc, true);
        let keys: Vec<&str> = d
            .lines
            .iter()
            .filter_map(|(k, _)| k.as_deref().map(str::trim))
            .collect();
        for k in [
            "TIMESTAMP",
            "NODE",
            "SOURCE",
            "DESTINATION",
            "TYPE",
            "VERDICT",
            "SUMMARY",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let get = |key: &str| {
            d.lines
                .iter()
                .find(|(k, _)| k.as_deref().map(str::trim) == Some(key))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("VERDICT"), Some("DROPPED"), "{:?}", d.lines);
        assert_eq!(get("source.pod_name"), Some("xwing"), "{:?}", d.lines);
        assert_eq!(get("source.labels[0]"), Some("k8s:class=xwing"));
        assert_eq!(get("node_name"), Some("node-1"));
    }

    #[test]
    fn scrolling_stops_at_the_end() {
        let mut d = Detail::new(Flow::default(), Zone::Utc, true);
        d.scroll_by(1000, 5);
        assert_eq!(d.scroll, d.lines.len().saturating_sub(5));
        d.scroll_by(-1000, 5);
        assert_eq!(d.scroll, 0);
    }
}
