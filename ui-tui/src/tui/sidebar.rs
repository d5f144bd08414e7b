//! The "top" sidebar (`t`): busiest sources and most frequent drop reasons over the last minute.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::app::App;
use crate::output::fields::group_thousands;

/// Width the sidebar takes.
pub const WIDTH: u16 = 46;

pub const TALKERS_TITLE: &str = " Top talkers (last minute) ";
pub const DROPS_TITLE: &str = " Top drop reasons (last minute) ";

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let [upper, lower] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let talkers = app
        .stats
        .top_talkers(usize::from(upper.height.saturating_sub(2)));
    let reasons = app
        .stats
        .top_drop_reasons(usize::from(lower.height.saturating_sub(2)));
    list(f, upper, TALKERS_TITLE, &talkers, Color::Cyan);
    list(f, lower, DROPS_TITLE, &reasons, Color::Red);
}

fn list(f: &mut Frame, area: Rect, title: &str, items: &[(String, u64)], color: Color) {
    let block = Block::default().borders(Borders::ALL).title(Span::styled(
        title,
        Style::default().add_modifier(Modifier::BOLD),
    ));
    let lines: Vec<Line> = if items.is_empty() {
        vec![Line::from(Span::styled(
            "(none)",
            Style::default().fg(Color::DarkGray),
        ))]
    } else {
        items
            .iter()
            .map(|(name, n)| {
                Line::from(vec![
                    Span::styled(
                        format!("{:>8} ", group_thousands(*n)),
                        Style::default().fg(color),
                    ),
                    Span::raw(name.clone()),
                ])
            })
            .collect()
    };
    f.render_widget(Paragraph::new(lines).block(block), area);
}
