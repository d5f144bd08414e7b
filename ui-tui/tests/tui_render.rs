//! `periscope top` panes rendered to ratatui's TestBackend: the assertions read the cell buffer
//! (text and colours), the same thing a terminal would show.

mod common;

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use periscope_cli::cli::FilterArgs;
use periscope_cli::timefmt::Zone;
use periscope_cli::tui::app::{Action, App, AppConfig};
use periscope_cli::tui::net::{ConnState, NetEvent};
use periscope_cli::tui::row::{COLUMNS, RowOptions};
use periscope_cli::tui::{help, sidebar, ui};
use periscope_proto::Timestamp;
use periscope_proto::flow::{Flow, Verdict};
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

const W: u16 = 200;
const H: u16 = 50;

struct Harness {
    app: App,
    t0: Instant,
    term: Terminal<TestBackend>,
}

impl Harness {
    fn new() -> Self {
        Self::with_buffer(10_000)
    }

    fn with_buffer(buffer: usize) -> Self {
        let t0 = Instant::now();
        // The viewer's wall clock starts where the canned flows are stamped.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(common::BASE_SECONDS as u64);
        let cfg = AppConfig {
            server: "127.0.0.1:4245".into(),
            buffer,
            last: 1000,
            rows: RowOptions {
                zone: Zone::Utc,
                ip_translation: true,
            },
        };
        let mut app = App::with_clock(cfg, &FilterArgs::default(), t0, wall);
        app.initial_query().expect("valid query");
        let term = Terminal::new(TestBackend::new(W, H)).expect("test terminal");
        Self { app, t0, term }
    }

    fn feed(&mut self, responses: Vec<GetFlowsResponse>) {
        for r in responses {
            let generation = self.app.generation;
            self.app.apply(
                NetEvent::Response {
                    generation,
                    response: Box::new(r),
                },
                self.t0,
            );
        }
    }

    fn flow(&mut self, f: Flow) {
        self.feed(vec![GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(f)),
            ..Default::default()
        }]);
    }

    fn key(&mut self, code: KeyCode) -> Action {
        self.app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    fn render(&mut self) -> Buffer {
        let app = &mut self.app;
        self.term.draw(|f| ui::draw(f, app)).expect("draw");
        self.term.backend().buffer().clone()
    }
}

fn lines(b: &Buffer) -> Vec<String> {
    (0..b.area.height)
        .map(|y| {
            (0..b.area.width)
                .map(|x| b[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn screen(b: &Buffer) -> String {
    lines(b).join("\n")
}

/// `(x, y)` of the first occurrence of `needle` on a line that also contains `on_line`.
fn find(b: &Buffer, needle: &str, on_line: &str) -> Option<(u16, u16)> {
    for (y, line) in lines(b).iter().enumerate() {
        if !line.contains(on_line) {
            continue;
        }
        if let Some(byte) = line.find(needle) {
            let x = line[..byte].chars().count();
            return Some((u16::try_from(x).ok()?, u16::try_from(y).ok()?));
        }
    }
    None
}

fn fg_at(b: &Buffer, needle: &str, on_line: &str) -> Color {
    let (x, y) = find(b, needle, on_line)
        .unwrap_or_else(|| panic!("{needle:?} not on a line with {on_line:?}:\n{}", screen(b)));
    b[(x, y)].fg
}

fn stamped(secs: i64, verdict: Verdict, pod: &str) -> Flow {
    let mut f = common::flows()
        .into_iter()
        .next()
        .expect("canned flows exist");
    f.time = Some(Timestamp {
        seconds: common::BASE_SECONDS + secs,
        nanos: 0,
    });
    f.verdict = verdict as i32;
    if let Some(src) = f.source.as_mut() {
        src.pod_name = pod.into();
    }
    f
}

#[test]
fn table_has_the_columns_and_the_flows() {
    let mut h = Harness::new();
    h.feed(common::responses());
    let b = h.render();
    let text = screen(&b);
    let header_line = lines(&b)
        .into_iter()
        .find(|l| l.contains("DESTINATION"))
        .unwrap_or_else(|| panic!("no column titles:\n{text}"));
    let mut last = 0;
    for c in COLUMNS {
        let at = header_line
            .find(c)
            .unwrap_or_else(|| panic!("column {c} missing: {header_line}"));
        assert!(at >= last, "column {c} out of order: {header_line}");
        last = at;
    }
    // The first canned flow: xwing → deathstar, dropped by policy, on kind-worker.
    let row = lines(&b)
        .into_iter()
        .find(|l| l.contains("Policy denied"))
        .unwrap_or_else(|| panic!("no drop row:\n{text}"));
    for cell in [
        "15:15:46.416",
        "kind-worker",
        "default/xwing",
        "default/deathstar-689f66b57d-kccrz",
        "80/TCP",
        "DROPPED",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    assert!(text.contains("Flows: 9 buffered of 10,000"), "{text}");
}

#[test]
fn verdicts_are_coloured() {
    let mut h = Harness::new();
    for (i, v) in [
        Verdict::Forwarded,
        Verdict::Dropped,
        Verdict::Audit,
        Verdict::Error,
        Verdict::Traced,
    ]
    .into_iter()
    .enumerate()
    {
        let pod = format!("pod-{}", v.as_str_name().to_lowercase());
        h.flow(stamped(i as i64, v, &pod));
    }
    let b = h.render();
    assert_eq!(fg_at(&b, "FORWARDED", "pod-forwarded"), Color::Green);
    assert_eq!(fg_at(&b, "DROPPED", "pod-dropped"), Color::Red);
    assert_eq!(fg_at(&b, "AUDIT", "pod-audit"), Color::Yellow);
    assert_eq!(fg_at(&b, "ERROR", "pod-error"), Color::Yellow);
    assert_eq!(fg_at(&b, "TRACED", "pod-traced"), Color::Reset);
    // Other cells keep the default colour.
    assert_eq!(fg_at(&b, "pod-dropped", "pod-dropped"), Color::Reset);
}

#[test]
fn newest_is_at_the_bottom_and_selected() {
    let mut h = Harness::new();
    for i in 0..100 {
        h.flow(stamped(i, Verdict::Forwarded, &format!("p{i:03}")));
    }
    let b = h.render();
    let text = screen(&b);
    assert!(text.contains("default/p099"), "{text}");
    assert!(
        !text.contains("default/p000"),
        "the oldest should be scrolled off"
    );
    let (_, y_last) = find(&b, "default/p099", "").expect("newest row");
    let (_, y_prev) = find(&b, "default/p098", "").expect("previous row");
    assert_eq!(y_last, y_prev + 1);
    // The selected (newest) row is highlighted.
    let (x, y) = find(&b, "default/p099", "").expect("newest row");
    assert!(
        b[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    // Scrolling up moves the highlight and stops following.
    h.key(KeyCode::Up);
    let b = h.render();
    let (x, y) = find(&b, "default/p098", "").expect("row");
    assert!(
        b[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    assert!(screen(&b).contains("scrolled (G: newest)"));
}

#[test]
fn detail_pane_shows_every_field() {
    let mut h = Harness::new();
    h.flow(stamped(0, Verdict::Dropped, "xwing"));
    h.key(KeyCode::Enter);
    let b = h.render();
    let text = screen(&b);
    assert!(text.contains("Flow details"), "{text}");
    for field in [
        "TIMESTAMP: ",
        "NODE: kind-worker",
        "SOURCE: default/xwing",
        "DESTINATION: default/deathstar-689f66b57d-kccrz:80",
        "TYPE: Policy denied",
        "VERDICT: DROPPED",
        "SUMMARY: ",
        "All fields",
        "source.pod_name: xwing",
        "IP.source: ",
    ] {
        assert!(text.contains(field), "{field:?} missing:\n{text}");
    }
    assert_eq!(fg_at(&b, "DROPPED", "VERDICT:"), Color::Red);
    // The table is replaced, and Esc brings it back.
    assert!(!text.contains("DESTINATION  "), "{text}");
    h.key(KeyCode::Esc);
    let text = screen(&h.render());
    assert!(!text.contains("Flow details"));
    assert!(text.contains("SUMMARY"));
}

#[test]
fn header_counts_rates_nodes_and_losses() {
    let mut h = Harness::new();
    // Two seconds of traffic: 50 flows/s, 5 of them drops.
    for s in 0..2 {
        for i in 0..50 {
            let v = if i % 10 == 0 {
                Verdict::Dropped
            } else {
                Verdict::Forwarded
            };
            h.flow(stamped(s, v, "xwing"));
        }
    }
    h.feed(common::responses());
    let t = h.t0 + Duration::from_millis(2_100);
    h.app.tick(t);
    let text = screen(&h.render());
    let head = text.lines().next().unwrap_or_default().to_string();
    // Rates average over the last five complete seconds: 100 flows, 10 drops (the canned flows
    // are stamped within the first seconds too).
    let (fps, dps) = h.app.rates();
    assert!(fps > 0.0 && dps > 0.0);
    assert!(
        head.contains(&format!(
            "{} flows/s",
            periscope_cli::tui::header::rate(fps)
        )),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "{} drops/s",
            periscope_cli::tui::header::rate(dps)
        )),
        "{head}"
    );
    assert!(head.contains("127.0.0.1:4245"), "{head}");
    assert!(head.contains("lost 5"), "{head}");
    // The canned node status events: two connected, then kind-worker2 unavailable.
    assert!(
        head.contains("nodes 1 connected, 1 unavailable (kind-worker2)"),
        "{head}"
    );
    assert!(head.contains("connecting"), "{head}");
    h.app.apply(NetEvent::State(ConnState::Connected), t);
    let head = screen(&h.render())
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(head.contains("● connected"), "{head}");
}

#[test]
fn reconnecting_state_is_shown_not_a_crash() {
    let mut h = Harness::new();
    h.feed(common::responses());
    h.app.apply(
        NetEvent::State(ConnState::Reconnecting {
            attempt: 3,
            retry_in: Duration::from_secs(2),
            error: "cannot connect to 127.0.0.1:4245: connection refused".into(),
        }),
        h.t0,
    );
    let b = h.render();
    let text = screen(&b);
    assert!(
        text.contains("reconnecting (attempt 3, retry in 2.0s): cannot connect"),
        "{text}"
    );
    assert_eq!(fg_at(&b, "reconnecting", ""), Color::Yellow);
    // The flows already received stay on screen.
    assert!(text.contains("default/xwing"), "{text}");
}

#[test]
fn help_overlay_lists_the_keys() {
    let mut h = Harness::new();
    h.feed(common::responses());
    h.key(KeyCode::Char('?'));
    let text = screen(&h.render());
    assert!(text.contains(help::TITLE.trim()), "{text}");
    for (keys, what) in help::BINDINGS {
        assert!(text.contains(keys), "{keys} missing");
        assert!(text.contains(what), "{what} missing");
    }
    // Any key closes it.
    h.key(KeyCode::Char('x'));
    assert!(!screen(&h.render()).contains(help::TITLE.trim()));
}

#[test]
fn filter_bar_edits_and_reports_errors() {
    let mut h = Harness::new();
    let text = screen(&h.render());
    assert!(text.contains("press / to filter"), "{text}");
    h.key(KeyCode::Char('/'));
    h.typed("--pod xwing --verdict SOMETIMES");
    assert_eq!(h.key(KeyCode::Enter), Action::None);
    let b = h.render();
    let text = screen(&b);
    assert!(text.contains("/ --pod xwing --verdict SOMETIMES"), "{text}");
    assert_eq!(fg_at(&b, "✗", "SOMETIMES"), Color::Red);
    for _ in 0.."SOMETIMES".len() {
        h.key(KeyCode::Backspace);
    }
    h.typed("DROPPED");
    assert!(matches!(h.key(KeyCode::Enter), Action::Query(_)));
    let text = screen(&h.render());
    assert!(
        text.contains("filter: --pod xwing --verdict DROPPED"),
        "{text}"
    );
    h.key(KeyCode::Char('d'));
    let text = screen(&h.render());
    assert!(text.contains("[drops only]"), "{text}");
}

#[test]
fn sidebar_shows_top_talkers_and_drop_reasons() {
    let mut h = Harness::new();
    for i in 0..30 {
        h.flow(stamped(0, Verdict::Dropped, "xwing"));
        if i % 3 == 0 {
            h.flow(stamped(0, Verdict::Forwarded, "tiefighter"));
        }
    }
    h.app.tick(h.t0 + Duration::from_secs(1));
    h.key(KeyCode::Char('t'));
    let b = h.render();
    let text = screen(&b);
    assert!(text.contains(sidebar::TALKERS_TITLE.trim()), "{text}");
    assert!(text.contains(sidebar::DROPS_TITLE.trim()), "{text}");
    let (_, y_x) = find(&b, "30 default/xwing", "").expect("xwing talker");
    let (_, y_t) = find(&b, "10 default/tiefighter", "").expect("tiefighter talker");
    assert!(y_x < y_t, "busiest first");
    assert!(text.contains("30 POLICY_DENIED"), "{text}");
}

#[test]
fn a_flood_is_sampled_and_counted() {
    let mut h = Harness::with_buffer(10_000);
    let base = stamped(0, Verdict::Forwarded, "xwing");
    for _ in 0..50_000 {
        h.app.ingest(base.clone());
    }
    let text = screen(&h.render());
    // 40,000 flows left the buffer without being drawn; the screen shows the newest.
    assert!(
        text.contains("Flows: 10,000 buffered of 10,000 · 40,000 scrolled past unseen"),
        "{text}"
    );
    assert!(h.app.flows.shown() < 100, "only visible rows are rendered");
}

#[test]
fn resize_redraws_at_the_new_size() {
    let mut h = Harness::new();
    h.feed(common::responses());
    h.render();
    h.term.backend_mut().resize(80, 20);
    let b = h.render();
    assert_eq!(b.area.width, 80);
    let text = screen(&b);
    assert!(text.contains("periscope top"), "{text}");
    assert!(text.contains("TIME"), "{text}");
}
