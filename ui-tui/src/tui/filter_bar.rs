//! The filter bar: `observe`'s filter flags typed as one line (`--pod deathstar --verdict DROPPED`),
//! split shell-style and parsed by the CLI's own clap definitions, so the syntax cannot drift.
//! Also the quick toggles (drops only, a namespace, L7 only) that are appended to it.

use clap::Parser;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::cli::{FilterArgs, FilterFlag, FilterOp, one_line_error};
use crate::filters::{self, Filters};

/// Only the filter flags, for parsing the bar's text.
#[derive(Debug, Parser)]
#[command(
    name = "filter",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct FilterLine {
    #[command(flatten)]
    filters: FilterArgs,
}

/// Why the bar's text is not a valid filter. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterTextError {
    #[error("unbalanced quotes")]
    Quotes,
    #[error("{0}")]
    Flags(String),
    #[error(transparent)]
    Filter(#[from] filters::FilterError),
}

/// Parses the bar's text into filter flags.
pub fn parse(text: &str) -> Result<FilterArgs, FilterTextError> {
    let words = shell_words::split(text).map_err(|_| FilterTextError::Quotes)?;
    FilterLine::try_parse_from(words)
        .map(|l| l.filters)
        .map_err(|e| FilterTextError::Flags(one_line_error(&e)))
}

/// The inverse of [`parse`]: flags as a line the bar can show and parse again.
pub fn to_text(args: &FilterArgs) -> String {
    let mut words: Vec<String> = Vec::new();
    for op in &args.ops {
        words.push(format!("--{}", op.flag.name()));
        if op.flag.takes_value() {
            words.push(op.value.clone());
        }
    }
    for raw in &args.allowlist {
        words.push("--allowlist".into());
        words.push(raw.clone());
    }
    for raw in &args.denylist {
        words.push("--denylist".into());
        words.push(raw.clone());
    }
    shell_words::join(words)
}

/// The quick toggles, applied on top of the typed filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toggles {
    /// `d`: `--verdict DROPPED`.
    pub drops_only: bool,
    /// `n`: `--namespace NS`.
    pub namespace: Option<String>,
    /// `l`: `--type l7`.
    pub l7_only: bool,
}

impl Toggles {
    fn ops(&self) -> Vec<FilterOp> {
        let mut ops = Vec::new();
        if self.drops_only {
            ops.push(FilterOp::new(FilterFlag::Verdict, "DROPPED"));
        }
        if let Some(ns) = &self.namespace {
            ops.push(FilterOp::new(FilterFlag::Namespace, ns.clone()));
        }
        if self.l7_only {
            ops.push(FilterOp::new(FilterFlag::Type, "l7"));
        }
        ops
    }

    pub fn any(&self) -> bool {
        self.drops_only || self.namespace.is_some() || self.l7_only
    }
}

/// Typed text plus toggles → the whitelist/blacklist to send.
pub fn effective(text: &str, toggles: &Toggles) -> Result<Filters, FilterTextError> {
    let mut args = parse(text)?;
    args.ops.extend(toggles.ops());
    Ok(filters::build(&args)?)
}

/// The line being edited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    pub text: String,
    /// Cursor position in characters.
    pub cursor: usize,
}

impl Editor {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    pub fn backspace(&mut self) {
        if self.cursor == 0 {
            return;
        }
        self.cursor -= 1;
        let at = self.byte_at(self.cursor);
        self.text.remove(at);
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.text.chars().count());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.chars().count();
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }
}

/// What the bar shows.
pub struct BarView<'a> {
    /// The applied filter text.
    pub applied: &'a str,
    pub toggles: &'a Toggles,
    /// `Some` while editing.
    pub editor: Option<&'a Editor>,
    /// The last parse or server error about the filter.
    pub error: Option<&'a str>,
}

/// Draws the one-line filter bar (and places the cursor while editing).
pub fn draw(f: &mut Frame, area: Rect, v: &BarView) {
    let label = Style::default().add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled("filter: ", label)];
    if let Some(ed) = v.editor {
        spans[0] = Span::styled("/ ", label.fg(Color::Cyan));
        spans.push(Span::raw(ed.text.clone()));
        if let Some(err) = v.error {
            spans.push(Span::styled(
                format!("   ✗ {err}"),
                Style::default().fg(Color::Red),
            ));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), area);
        let x = area
            .x
            .saturating_add(2)
            .saturating_add(u16::try_from(ed.cursor).unwrap_or(u16::MAX));
        if x < area.right() {
            f.set_cursor_position(Position::new(x, area.y));
        }
        return;
    }
    if v.applied.is_empty() && !v.toggles.any() {
        spans.push(Span::styled(
            "(none — press / to filter)",
            Style::default().fg(Color::DarkGray),
        ));
    } else {
        spans.push(Span::raw(v.applied.to_string()));
    }
    let toggle = |on: bool, text: String| {
        Span::styled(
            format!("  [{text}]"),
            if on {
                Style::default().fg(Color::Black).bg(Color::Cyan)
            } else {
                Style::default()
            },
        )
    };
    if v.toggles.drops_only {
        spans.push(toggle(true, "drops only".into()));
    }
    if let Some(ns) = &v.toggles.namespace {
        spans.push(toggle(true, format!("ns {ns}")));
    }
    if v.toggles.l7_only {
        spans.push(toggle(true, "L7 only".into()));
    }
    if let Some(err) = v.error {
        spans.push(Span::styled(
            format!("   ✗ {err}"),
            Style::default().fg(Color::Red),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::FilterFlag as F;

    #[test]
    fn parses_observe_flags_shell_style() {
        let a = parse("--pod deathstar --verdict DROPPED --not -n 'kube system'").expect("valid");
        assert_eq!(
            a.ops,
            vec![
                FilterOp::new(F::Pod, "deathstar"),
                FilterOp::new(F::Verdict, "DROPPED"),
                FilterOp::new(F::Not, ""),
                FilterOp::new(F::Namespace, "kube system"),
            ]
        );
        assert_eq!(parse("").expect("empty is valid").ops, vec![]);
    }

    #[test]
    fn bad_text_is_a_one_line_error() {
        assert_eq!(parse("--pod 'x"), Err(FilterTextError::Quotes));
        let e = parse("--bogus").expect_err("unknown flag");
        assert!(e.to_string().contains("--bogus"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let e = effective("--ip 1.2.3.4 --pod x", &Toggles::default()).expect_err("conflict");
        assert!(matches!(e, FilterTextError::Filter(_)), "{e}");
        // Positional words are not filters.
        assert!(parse("deathstar").is_err());
    }

    #[test]
    fn text_round_trips() {
        let a = parse("--from-pod default/x --not --label 'a=b c' -4").expect("valid");
        assert_eq!(parse(&to_text(&a)).expect("round trip"), a);
    }

    #[test]
    fn toggles_add_filters() {
        let t = Toggles {
            drops_only: true,
            namespace: Some("empire".into()),
            l7_only: true,
        };
        let f = effective("", &t).expect("valid");
        assert_eq!(
            f.whitelist.len(),
            2,
            "namespace makes a left and a right filter"
        );
        for w in &f.whitelist {
            assert_eq!(
                w.verdict,
                vec![periscope_proto::flow::Verdict::Dropped as i32]
            );
            assert_eq!(w.event_type.len(), 1);
        }
        assert!(f.blacklist.is_empty());
    }

    #[test]
    fn editor_edits_at_the_cursor() {
        let mut e = Editor::new("--pod x");
        e.backspace();
        e.insert('é');
        e.left();
        e.left();
        e.insert('-');
        assert_eq!(e.text, "--pod- é");
        e.home();
        e.delete();
        assert_eq!(e.text, "-pod- é");
        e.end();
        assert_eq!(e.cursor, 7);
        e.clear();
        assert_eq!((e.text.as_str(), e.cursor), ("", 0));
    }
}
