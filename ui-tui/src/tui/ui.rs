//! Lays the panes out and draws one frame: header, filter bar, table or details (with the
//! optional sidebar), key hints, and the help overlay on top.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::filter_bar::{self, BarView};
use super::{detail, header, help, sidebar, table};

/// Key hints in the bottom line.
pub const HINTS: &str =
    " ? help  / filter  p pause  d drops  n namespace  l L7  t top  Enter details  q quit";

pub fn draw(f: &mut Frame, app: &mut App) {
    let [head, bar, main, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header::draw(f, head, app);
    let view = BarView {
        applied: &app.filter_text,
        toggles: &app.toggles,
        editor: app.editor.as_ref(),
        error: app.filter_error.as_deref(),
    };
    filter_bar::draw(f, bar, &view);

    let (content, side) = if app.sidebar && main.width > sidebar::WIDTH + 40 {
        let [c, s] = Layout::horizontal([Constraint::Min(40), Constraint::Length(sidebar::WIDTH)])
            .areas(main);
        (c, Some(s))
    } else {
        (main, None)
    };
    if let Some(d) = &app.detail {
        detail::draw(f, content, d);
        // Detail scrolling pages by the pane's height.
        app.page = usize::from(content.height.saturating_sub(2)).max(1);
    } else {
        table::draw(f, content, app);
    }
    if let Some(s) = side {
        sidebar::draw(f, s, app);
    }
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            HINTS,
            Style::default().fg(Color::DarkGray),
        ))),
        foot,
    );
    if app.help {
        help::draw(f, f.area());
    }
    app.dirty = false;
}
