//! The live flow table: the buffered flows around the selection, newest at the bottom, verdicts
//! in colour. Only the visible rows are turned into widgets each frame.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::app::App;
use super::row::{COLUMNS, VerdictClass};
use crate::output::fields::group_thousands;

/// Column index of the verdict (colour tests look there).
pub const VERDICT_COLUMN: usize = 6;
/// Widest a name column grows.
const MAX_NAME_WIDTH: usize = 36;

/// The colour of a verdict: FORWARDED green, DROPPED red, AUDIT/ERROR yellow.
pub fn verdict_style(class: VerdictClass) -> Style {
    match class {
        VerdictClass::Forwarded => Style::default().fg(Color::Green),
        VerdictClass::Dropped => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        VerdictClass::Warn => Style::default().fg(Color::Yellow),
        VerdictClass::Other => Style::default(),
    }
}

/// Column widths that only grow (per query), so columns do not jump as rows scroll by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub [usize; 8]);

impl Default for Widths {
    fn default() -> Self {
        Self(COLUMNS.map(str::len))
    }
}

/// Draws the table into `area`.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    let title = title(app);
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        title,
        Style::default().add_modifier(Modifier::BOLD),
    ));
    let inner = block.inner(area);
    // One line for the column titles.
    let body = usize::from(inner.height.saturating_sub(1));
    let Some((top, bottom)) = app.window(body) else {
        let msg = if app.paused {
            "paused — p to resume"
        } else {
            "waiting for flows…"
        };
        f.render_widget(
            Paragraph::new(msg)
                .style(Style::default().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    };
    let selected = app.selected;
    let opts = app.cfg.rows;
    let rows = app.flows.rows(top, bottom, opts);
    let widths = &mut app.widths;
    for (_, r) in &rows {
        for (w, cell) in widths.0.iter_mut().zip(r.cells.iter()).take(7) {
            *w = (*w).max(cell.chars().count()).min(MAX_NAME_WIDTH);
        }
    }
    let constraints: Vec<Constraint> = widths
        .0
        .iter()
        .take(7)
        .map(|w| Constraint::Length(u16::try_from(*w).unwrap_or(u16::MAX)))
        .chain(std::iter::once(Constraint::Min(10)))
        .collect();
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|(seq, r)| {
            let cells = r.cells.iter().enumerate().map(|(i, text)| {
                let style = if i == VERDICT_COLUMN {
                    verdict_style(r.class)
                } else {
                    Style::default()
                };
                Cell::from(text.as_str()).style(style)
            });
            let row = Row::new(cells);
            if *seq == selected {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let header = Row::new(COLUMNS).style(
        Style::default()
            .add_modifier(Modifier::BOLD)
            .fg(Color::Cyan),
    );
    let table = Table::new(table_rows, constraints)
        .header(header)
        .column_spacing(1)
        .block(block);
    f.render_widget(table, area);
}

fn title(app: &App) -> String {
    let mut t = format!(
        " Flows: {} buffered of {}",
        group_thousands(app.flows.len() as u64),
        group_thousands(app.flows.capacity() as u64)
    );
    if app.flows.not_shown() > 0 {
        t.push_str(&format!(
            " · {} scrolled past unseen",
            group_thousands(app.flows.not_shown())
        ));
    }
    if app.paused {
        t.push_str(&format!(
            " · PAUSED (+{} new)",
            group_thousands(app.missed_while_paused)
        ));
    } else if app.follow {
        t.push_str(" · following");
    } else {
        t.push_str(" · scrolled (G: newest)");
    }
    t.push(' ');
    t
}
