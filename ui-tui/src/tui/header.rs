//! The two header lines: connection state, nodes, rates and lost events; then the buffer and the
//! server's own counters.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::net::ConnState;
use crate::output::fields::group_thousands;

/// `1,234` for rates of ten and more, `2.5` below.
pub fn rate(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        "0".to_string()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else {
        // Rates are far below u64::MAX; the cast saturates anyway.
        group_thousands(r.round() as u64)
    }
}

/// The connection state as `(text, colour)`.
pub fn conn_text(c: &ConnState) -> (String, Color) {
    match c {
        ConnState::Connecting => ("◌ connecting".to_string(), Color::Yellow),
        ConnState::Connected => ("● connected".to_string(), Color::Green),
        ConnState::Reconnecting {
            attempt,
            retry_in,
            error,
        } => (
            format!(
                "◌ reconnecting (attempt {attempt}, retry in {:.1}s): {error}",
                retry_in.as_secs_f64()
            ),
            Color::Yellow,
        ),
        ConnState::Error(e) => (format!("✗ error: {e}"), Color::Red),
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let sep = || Span::styled(" │ ", Style::default().fg(Color::DarkGray));
    let (conn, conn_color) = conn_text(&app.conn);
    let (connected, unavailable, names) = app.node_counts();
    let (fps, dps) = app.rates();
    let mut nodes = format!("nodes {connected} connected, {unavailable} unavailable");
    if !names.is_empty() {
        nodes.push_str(&format!(
            " ({})",
            crate::output::fields::join_with_cutoff(&names, ", ", 30)
        ));
    }
    let first = Line::from(vec![
        Span::styled(" periscope top ", bold.fg(Color::Black).bg(Color::Cyan)),
        Span::raw(" "),
        Span::raw(app.cfg.server.clone()),
        sep(),
        Span::styled(conn, Style::default().fg(conn_color)),
        sep(),
        Span::styled(
            nodes,
            if unavailable > 0 {
                Style::default().fg(Color::Yellow)
            } else {
                Style::default()
            },
        ),
        sep(),
        Span::styled(format!("{} flows/s", rate(fps)), bold),
        sep(),
        Span::styled(
            format!("{} drops/s", rate(dps)),
            if dps > 0.0 { bold.fg(Color::Red) } else { bold },
        ),
        sep(),
        Span::styled(
            format!("lost {}", group_thousands(app.lost)),
            if app.lost > 0 {
                Style::default().fg(Color::Yellow)
            } else {
                Style::default()
            },
        ),
    ]);

    let dim = Style::default().fg(Color::DarkGray);
    let mut second = vec![Span::styled(
        format!(
            " seen {} · buffered {}/{} · unseen {}",
            group_thousands(app.flows.total()),
            group_thousands(app.flows.len() as u64),
            group_thousands(app.flows.capacity() as u64),
            group_thousands(app.flows.not_shown()),
        ),
        dim,
    )];
    if let Some(s) = &app.status {
        second.push(Span::styled(
            format!(
                " · server ring {}/{} · server {} flows/s",
                group_thousands(s.num_flows),
                group_thousands(s.max_flows),
                rate(s.flows_rate)
            ),
            dim,
        ));
    }
    if let Some(src) = &app.last_lost_source {
        second.push(Span::styled(format!(" · last loss: {src}"), dim));
    }
    if app.paused {
        second.push(Span::styled(
            format!("  PAUSED (+{})", group_thousands(app.missed_while_paused)),
            bold.fg(Color::Black).bg(Color::Yellow),
        ));
    }
    f.render_widget(Paragraph::new(vec![first, Line::from(second)]), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(f64::NAN), "0");
        assert_eq!(rate(2.54), "2.5");
        assert_eq!(rate(50_000.4), "50,000");
    }
}
