//! The help overlay (`?`): every key binding, drawn over the other panes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

pub const TITLE: &str = " Help — any key to close ";

/// `(keys, what they do)`, in display order.
pub const BINDINGS: &[(&str, &str)] = &[
    ("j / k, ↓ / ↑", "select next / previous flow"),
    ("PgDn / PgUp", "scroll a page"),
    ("g / Home", "oldest buffered flow"),
    ("G / End", "newest flow, resume auto-follow"),
    ("Enter", "details of the selected flow"),
    ("Esc", "back (close details, cancel filter)"),
    ("p / Space", "pause / resume the table"),
    ("/", "edit the filter (periscope observe flags)"),
    ("d", "toggle: drops only"),
    ("n", "cycle namespace (from the server)"),
    ("l", "toggle: L7 flows only"),
    ("t", "top talkers and drop reasons"),
    ("?", "this help"),
    ("q / Ctrl-C", "quit"),
];

/// Example filter lines, shown under the bindings.
const EXAMPLES: &[&str] = &[
    "--pod deathstar --verdict DROPPED",
    "--from-pod default/xwing --to-port 80",
    "--not --namespace kube-system -t drop",
];

pub fn draw(f: &mut Frame, area: Rect) {
    let width = 64.min(area.width);
    let height = u16::try_from(BINDINGS.len() + EXAMPLES.len() + 5)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let key_style = Style::default()
        .fg(Color::Cyan)
        .add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<14}"), key_style),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        " Filter examples:",
        Style::default().add_modifier(Modifier::BOLD),
    )));
    lines.extend(EXAMPLES.iter().map(|e| Line::from(format!("   {e}"))));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(TITLE)),
        popup,
    );
}
