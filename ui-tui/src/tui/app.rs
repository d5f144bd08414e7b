//! The viewer's state and what keys and server events do to it. Pure: no terminal, no socket,
//! no clock (times are passed in), so every behaviour is testable by feeding events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use periscope_proto::flow::{Flow, LostEventSource};
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::observer::{GetFlowsRequest, GetFlowsResponse, ServerStatusResponse};
use periscope_proto::relay::{NodeState, NodeStatusEvent};

use super::detail::Detail;
use super::filter_bar::{self, Editor, Toggles};
use super::flows::FlowBuffer;
use super::net::{ConnState, NetEvent, Query};
use super::row::RowOptions;
use super::stats::{Stats, WINDOW_SECS};
use super::table::Widths;
use crate::cli::{FilterArgs, SelectorArgs};
use crate::filters::Filters;
use crate::request;

/// Distinct node names remembered from flows (for a single node without relay status).
const MAX_SEEN_NODES: usize = 256;
/// Seconds of slack between our clock and flow timestamps before a flow counts at arrival time.
const CLOCK_SLACK_SECS: u64 = 5;

/// Settings fixed for the viewer's lifetime.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The server address, as shown in the header.
    pub server: String,
    /// Flows kept.
    pub buffer: usize,
    /// Flows of history asked for with each query.
    pub last: u64,
    pub rows: RowOptions,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            server: crate::cli::DEFAULT_SERVER.to_string(),
            buffer: 10_000,
            last: 1_000,
            rows: RowOptions::default(),
        }
    }
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    /// Send this query to the network task.
    Query(Query),
}

/// Node counts as the header shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nodes {
    /// From node status events (relay).
    pub connected: BTreeSet<String>,
    pub unavailable: BTreeSet<String>,
    /// Node names seen in flows.
    pub seen: BTreeSet<String>,
}

/// The whole viewer.
#[derive(Debug)]
pub struct App {
    pub cfg: AppConfig,
    pub flows: FlowBuffer,
    pub stats: Stats,
    pub conn: ConnState,
    pub generation: u64,

    /// The applied filter text (what `/` edits).
    pub filter_text: String,
    pub toggles: Toggles,
    pub editor: Option<Editor>,
    pub filter_error: Option<String>,
    pub namespaces: Vec<String>,

    /// Auto-follow: the newest flow is selected and at the bottom.
    pub follow: bool,
    /// Sequence number of the selected flow (when not following).
    pub selected: u64,
    /// Sequence number of the top row.
    pub top: u64,
    /// Table body rows at the last draw (for paging).
    pub page: usize,
    pub widths: Widths,

    pub paused: bool,
    /// Flows that arrived while paused (counted in the rates, not buffered).
    pub missed_while_paused: u64,

    pub detail: Option<Detail>,
    pub help: bool,
    pub sidebar: bool,

    /// Events the server reports as lost, summed.
    pub lost: u64,
    pub last_lost_source: Option<String>,
    pub nodes: Nodes,
    pub status: Option<ServerStatusResponse>,

    /// Timestamp of the newest flow taken for the current query.
    newest: Option<(i64, i32)>,
    /// After a reconnect the server replays recent history: flows up to this time were
    /// already taken and are skipped.
    resume_after: Option<(i64, i32)>,
    /// History flows skipped after reconnects.
    pub duplicates_skipped: u64,

    origin: Instant,
    wall_origin: SystemTime,
    now: Instant,
    /// Whether anything visible changed since the last draw.
    pub dirty: bool,
}

impl App {
    /// A viewer whose clock starts now.
    pub fn new(cfg: AppConfig, filters: &FilterArgs) -> Self {
        Self::with_clock(cfg, filters, Instant::now(), SystemTime::now())
    }

    /// A viewer whose monotonic clock `origin` corresponds to the wall clock `wall_origin`.
    pub fn with_clock(
        cfg: AppConfig,
        filters: &FilterArgs,
        origin: Instant,
        wall_origin: SystemTime,
    ) -> Self {
        Self {
            flows: FlowBuffer::new(cfg.buffer),
            cfg,
            stats: Stats::new(),
            conn: ConnState::Connecting,
            generation: 0,
            filter_text: filter_bar::to_text(filters),
            toggles: Toggles::default(),
            editor: None,
            filter_error: None,
            namespaces: Vec::new(),
            follow: true,
            selected: 0,
            top: 0,
            page: 20,
            widths: Widths::default(),
            paused: false,
            missed_while_paused: 0,
            detail: None,
            help: false,
            sidebar: false,
            lost: 0,
            last_lost_source: None,
            nodes: Nodes::default(),
            status: None,
            newest: None,
            resume_after: None,
            duplicates_skipped: 0,
            origin,
            wall_origin,
            now: origin,
            dirty: true,
        }
    }

    /// The first query, from the filters the viewer started with.
    pub fn initial_query(&mut self) -> Result<Query, String> {
        let filters =
            filter_bar::effective(&self.filter_text, &self.toggles).map_err(|e| e.to_string())?;
        self.query(filters)
    }

    fn query(&mut self, filters: Filters) -> Result<Query, String> {
        let sel = SelectorArgs {
            last: Some(self.cfg.last),
            follow: true,
            ..SelectorArgs::default()
        };
        let request: GetFlowsRequest =
            request::with_filters(&sel, filters, self.wall_now()).map_err(|e| e.to_string())?;
        self.generation += 1;
        Ok(Query {
            generation: self.generation,
            request,
        })
    }

    /// Starts over with new filters: empty table, fresh statistics, following.
    fn requery(&mut self, filters: Filters) -> Action {
        match self.query(filters) {
            Ok(q) => {
                self.flows.clear();
                self.newest = None;
                self.resume_after = None;
                self.stats = Stats::new();
                self.widths = Widths::default();
                self.follow = true;
                self.missed_while_paused = 0;
                self.detail = None;
                self.filter_error = None;
                self.dirty = true;
                Action::Query(q)
            }
            Err(e) => {
                self.filter_error = Some(e);
                Action::None
            }
        }
    }

    fn wall_now(&self) -> SystemTime {
        self.wall_origin + self.now.saturating_duration_since(self.origin)
    }

    /// Seconds since an origin one window before the viewer started (so flows of the minute
    /// before start still land in the window).
    fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs() + WINDOW_SECS
    }

    /// The current second on the statistics clock.
    pub fn now_second(&self) -> u64 {
        self.second_of(self.now)
    }

    /// Moves the clock (call before drawing).
    pub fn tick(&mut self, now: Instant) {
        if self.second_of(now) != self.now_second() {
            self.dirty = true;
        }
        self.now = now.max(self.now);
        self.stats.advance(self.now_second());
    }

    /// The statistics second a flow belongs to: its own timestamp when that is within the
    /// window, else its arrival (replays of old captures, skewed clocks).
    fn flow_second(&self, f: &Flow) -> u64 {
        let arrival = self.now_second();
        let Some(t) = f.time.as_ref() else {
            return arrival;
        };
        let Ok(origin) = self.wall_origin.duration_since(SystemTime::UNIX_EPOCH) else {
            return arrival;
        };
        let origin_ns = i128::try_from(origin.as_nanos()).unwrap_or(i128::MAX);
        let flow_ns = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        let rel = flow_ns - origin_ns + i128::from(WINDOW_SECS) * 1_000_000_000;
        let Ok(rel) = u64::try_from(rel.div_euclid(1_000_000_000)) else {
            return arrival;
        };
        if rel + WINDOW_SECS <= arrival || rel > arrival + CLOCK_SLACK_SECS {
            return arrival;
        }
        rel.min(arrival)
    }

    /// Applies one event from the network task.
    pub fn apply(&mut self, ev: NetEvent, now: Instant) {
        self.now = now.max(self.now);
        self.dirty = true;
        match ev {
            NetEvent::State(s) => {
                if let ConnState::Error(msg) = &s
                    && msg.starts_with("server refused")
                {
                    self.filter_error = Some(msg.clone());
                }
                if s == ConnState::Connected && self.conn != ConnState::Connected {
                    // A new stream for the same query starts with history we may already have.
                    self.resume_after = self.newest;
                }
                if s == ConnState::Connected
                    && self
                        .filter_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("server refused"))
                {
                    self.filter_error = None;
                }
                self.conn = s;
            }
            NetEvent::Response {
                generation,
                response,
            } => {
                // Responses of a query the user already replaced are stale.
                if generation == self.generation {
                    self.on_response(*response);
                }
            }
            NetEvent::Status(s) => self.status = Some(s),
            NetEvent::Namespaces(ns) => self.namespaces = ns,
        }
    }

    fn on_response(&mut self, r: GetFlowsResponse) {
        match r.response_types {
            Some(ResponseTypes::Flow(f)) => self.ingest(f),
            Some(ResponseTypes::LostEvents(ev)) => {
                self.lost = self.lost.saturating_add(ev.num_events_lost);
                self.last_lost_source = Some(
                    LostEventSource::try_from(ev.source)
                        .map_or_else(|_| ev.source.to_string(), |s| s.as_str_name().to_string()),
                );
            }
            Some(ResponseTypes::NodeStatus(ev)) => self.on_node_status(&ev),
            None => {}
        }
    }

    /// Takes one flow: statistics always, the buffer unless paused.
    pub fn ingest(&mut self, f: Flow) {
        let time = f.time.as_ref().map(|t| (t.seconds, t.nanos));
        if let Some(after) = self.resume_after {
            if time.is_some_and(|t| t <= after) {
                self.duplicates_skipped += 1;
                return;
            }
            self.resume_after = None;
        }
        if time > self.newest {
            self.newest = time;
        }
        let second = self.flow_second(&f);
        self.stats.add(&f, second);
        if self.nodes.seen.len() < MAX_SEEN_NODES && !self.nodes.seen.contains(&f.node_name) {
            self.nodes.seen.insert(f.node_name.clone());
        }
        if self.paused {
            self.missed_while_paused += 1;
        } else {
            self.flows.push(f);
        }
        self.dirty = true;
    }

    fn on_node_status(&mut self, ev: &NodeStatusEvent) {
        let n = &mut self.nodes;
        for name in &ev.node_names {
            match NodeState::try_from(ev.state_change) {
                Ok(NodeState::NodeConnected) => {
                    n.unavailable.remove(name);
                    n.connected.insert(name.clone());
                }
                Ok(NodeState::NodeUnavailable | NodeState::NodeError) => {
                    n.connected.remove(name);
                    n.unavailable.insert(name.clone());
                }
                Ok(NodeState::NodeGone) => {
                    n.connected.remove(name);
                    n.unavailable.remove(name);
                }
                _ => {}
            }
        }
    }

    /// `(connected, unavailable, unavailable names)`: the relay's status when it reports nodes,
    /// else node status events, else the node names seen in flows (a single node).
    pub fn node_counts(&self) -> (u64, u64, Vec<String>) {
        if let Some(s) = &self.status
            && let Some(c) = &s.num_connected_nodes
        {
            let unavailable = s.num_unavailable_nodes.as_ref().map_or(0, |u| u.value);
            return (
                u64::from(c.value),
                u64::from(unavailable),
                s.unavailable_nodes.clone(),
            );
        }
        if !self.nodes.connected.is_empty() || !self.nodes.unavailable.is_empty() {
            return (
                self.nodes.connected.len() as u64,
                self.nodes.unavailable.len() as u64,
                self.nodes.unavailable.iter().cloned().collect(),
            );
        }
        (self.nodes.seen.len() as u64, 0, Vec::new())
    }

    /// `(flows/s, drops/s)` over the last complete seconds.
    pub fn rates(&self) -> (f64, f64) {
        self.stats.rates(self.now_second())
    }

    /// Fixes the table window for `height` body rows; returns the `(top, bottom)` sequence
    /// numbers to draw, or `None` when there is nothing buffered.
    pub fn window(&mut self, height: usize) -> Option<(u64, u64)> {
        let (first, last) = self.flows.seq_range()?;
        let h = height.max(1) as u64;
        self.page = height.max(1);
        if self.follow {
            self.selected = last;
            self.top = last.saturating_sub(h - 1).max(first);
        } else {
            self.selected = self.selected.clamp(first, last);
            self.top = self.top.max(first);
            if self.selected < self.top {
                self.top = self.selected;
            }
            if self.selected >= self.top + h {
                self.top = self.selected + 1 - h;
            }
            // Keep the screen full when the selection is near the newest flow.
            self.top = self.top.min(last.saturating_sub(h - 1).max(first));
        }
        Some((self.top, (self.top + h - 1).min(last)))
    }

    /// The selected flow, if still buffered.
    pub fn selected_flow(&self) -> Option<&Flow> {
        let seq = if self.follow {
            self.flows.seq_range()?.1
        } else {
            self.selected
        };
        self.flows.get(seq).map(|e| &e.flow)
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        self.dirty = true;
        if key.modifiers.contains(KeyModifiers::CONTROL)
            && matches!(key.code, KeyCode::Char('c' | 'C'))
        {
            return Action::Quit;
        }
        if self.editor.is_some() {
            return self.on_filter_key(key);
        }
        if self.help {
            return match key.code {
                KeyCode::Char('q') => Action::Quit,
                _ => {
                    self.help = false;
                    Action::None
                }
            };
        }
        if let Some(d) = self.detail.as_mut() {
            let page = self.page;
            match key.code {
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Char('h') => {
                    self.detail = None;
                }
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char('?') => self.help = true,
                KeyCode::Char('j') | KeyCode::Down => d.scroll_by(1, page),
                KeyCode::Char('k') | KeyCode::Up => d.scroll_by(-1, page),
                KeyCode::PageDown | KeyCode::Char(' ') => d.scroll_by(signed(page), page),
                KeyCode::PageUp => d.scroll_by(-signed(page), page),
                KeyCode::Home | KeyCode::Char('g') => d.scroll = 0,
                KeyCode::End | KeyCode::Char('G') => d.scroll_by(isize::MAX / 2, page),
                _ => {}
            }
            return Action::None;
        }
        self.on_table_key(key)
    }

    fn on_table_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                self.editor = Some(Editor::new(&self.filter_text));
                self.filter_error = None;
            }
            KeyCode::Esc => self.filter_error = None,
            KeyCode::Char('p') | KeyCode::Char(' ') => {
                self.paused = !self.paused;
                if !self.paused {
                    self.missed_while_paused = 0;
                }
            }
            KeyCode::Char('t') => self.sidebar = !self.sidebar,
            KeyCode::Char('d') => {
                self.toggles.drops_only = !self.toggles.drops_only;
                return self.apply_toggles(|t| t.drops_only = !t.drops_only);
            }
            KeyCode::Char('l') => {
                self.toggles.l7_only = !self.toggles.l7_only;
                return self.apply_toggles(|t| t.l7_only = !t.l7_only);
            }
            KeyCode::Char('n') => {
                let previous = self.toggles.namespace.clone();
                self.toggles.namespace = next_namespace(&self.namespaces, previous.as_deref());
                if self.toggles.namespace == previous {
                    return Action::None;
                }
                return self.apply_toggles(move |t| t.namespace = previous.clone());
            }
            KeyCode::Enter => {
                if let Some(f) = self.selected_flow() {
                    self.detail = Some(Detail::new(
                        f.clone(),
                        self.cfg.rows.zone,
                        self.cfg.rows.ip_translation,
                    ));
                }
            }
            KeyCode::Char('k') | KeyCode::Up => self.move_selection(-1),
            KeyCode::Char('j') | KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-signed(self.page)),
            KeyCode::PageDown => self.move_selection(signed(self.page)),
            KeyCode::Home | KeyCode::Char('g') => {
                if let Some((first, _)) = self.flows.seq_range() {
                    self.follow = false;
                    self.selected = first;
                }
            }
            KeyCode::End | KeyCode::Char('G') => self.follow = true,
            _ => {}
        }
        Action::None
    }

    /// Re-queries with the new toggles; on a filter error, shows it and `undo`es the toggle.
    fn apply_toggles(&mut self, undo: impl FnOnce(&mut Toggles)) -> Action {
        match filter_bar::effective(&self.filter_text, &self.toggles) {
            Ok(filters) => self.requery(filters),
            Err(e) => {
                undo(&mut self.toggles);
                self.filter_error = Some(e.to_string());
                Action::None
            }
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let Some((first, last)) = self.flows.seq_range() else {
            return;
        };
        let current = if self.follow { last } else { self.selected };
        let next = current.saturating_add_signed(i64::try_from(delta).unwrap_or(0));
        let next = next.clamp(first, last);
        if delta > 0 && next == last {
            // Scrolling down onto the newest flow resumes auto-follow.
            self.follow = true;
        } else {
            self.follow = false;
            self.selected = next;
        }
    }

    fn on_filter_key(&mut self, key: KeyEvent) -> Action {
        let Some(ed) = self.editor.as_mut() else {
            return Action::None;
        };
        match key.code {
            KeyCode::Esc => {
                self.editor = None;
                self.filter_error = None;
            }
            KeyCode::Enter => {
                let text = ed.text.trim().to_string();
                match filter_bar::effective(&text, &self.toggles) {
                    Ok(filters) => {
                        self.editor = None;
                        self.filter_text = text;
                        return self.requery(filters);
                    }
                    Err(e) => self.filter_error = Some(e.to_string()),
                }
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => ed.clear(),
            KeyCode::Char(c) => ed.insert(c),
            KeyCode::Backspace => ed.backspace(),
            KeyCode::Delete => ed.delete(),
            KeyCode::Left => ed.left(),
            KeyCode::Right => ed.right(),
            KeyCode::Home => ed.home(),
            KeyCode::End => ed.end(),
            _ => {}
        }
        Action::None
    }

    /// Time since the viewer started.
    pub fn uptime(&self) -> Duration {
        self.now.saturating_duration_since(self.origin)
    }
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// None → first → second → … → last → None.
fn next_namespace(all: &[String], current: Option<&str>) -> Option<String> {
    match current {
        None => all.first().cloned(),
        Some(c) => match all.iter().position(|n| n == c) {
            Some(i) => all.get(i + 1).cloned(),
            None => all.first().cloned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use periscope_proto::Timestamp;
    use periscope_proto::flow::Verdict;

    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn app() -> (App, Instant) {
        let t0 = Instant::now();
        let mut a = App::with_clock(
            AppConfig {
                buffer: 100,
                ..AppConfig::default()
            },
            &FilterArgs::default(),
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        a.initial_query().expect("valid");
        (a, t0)
    }

    fn flow(i: u32) -> Flow {
        Flow {
            node_name: format!("node-{}", i % 2),
            verdict: if i.is_multiple_of(10) {
                Verdict::Dropped as i32
            } else {
                Verdict::Forwarded as i32
            },
            ..Default::default()
        }
    }

    fn response(generation: u64, f: Flow) -> NetEvent {
        NetEvent::Response {
            generation,
            response: Box::new(GetFlowsResponse {
                response_types: Some(ResponseTypes::Flow(f)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn follows_scrolls_and_jumps_back() {
        let (mut a, t0) = app();
        for i in 0..50 {
            a.apply(response(a.generation, flow(i)), t0);
        }
        assert_eq!(a.window(10), Some((40, 49)));
        a.on_key(key(KeyCode::Char('k')));
        assert!(!a.follow);
        assert_eq!(a.selected, 48);
        a.on_key(key(KeyCode::PageUp));
        assert_eq!(a.selected, 38);
        assert_eq!(a.window(10), Some((38, 47)));
        // New flows do not move a scrolled view.
        a.apply(response(a.generation, flow(50)), t0);
        assert_eq!(a.window(10), Some((38, 47)));
        a.on_key(key(KeyCode::Char('G')));
        assert_eq!(a.window(10), Some((41, 50)));
        a.on_key(key(KeyCode::Home));
        assert_eq!(a.window(10), Some((0, 9)));
        a.on_key(key(KeyCode::End));
        assert!(a.follow);
    }

    #[test]
    fn pause_freezes_the_table_but_keeps_counting() {
        let (mut a, t0) = app();
        a.apply(response(a.generation, flow(1)), t0);
        a.on_key(key(KeyCode::Char('p')));
        for i in 0..5 {
            a.apply(response(a.generation, flow(i)), t0);
        }
        assert_eq!(a.flows.len(), 1);
        assert_eq!(a.missed_while_paused, 5);
        assert_eq!(a.stats.window_flows(), 6);
        a.on_key(key(KeyCode::Char('p')));
        assert!(!a.paused);
        assert_eq!(a.missed_while_paused, 0);
    }

    #[test]
    fn filter_bar_requeries_and_drops_stale_responses() {
        let (mut a, t0) = app();
        let old = a.generation;
        a.apply(response(old, flow(1)), t0);
        a.on_key(key(KeyCode::Char('/')));
        for c in "--pod xwing".chars() {
            a.on_key(key(KeyCode::Char(c)));
        }
        let action = a.on_key(key(KeyCode::Enter));
        let Action::Query(q) = action else {
            panic!("expected a query, got {action:?}");
        };
        assert_eq!(q.generation, old + 1);
        assert!(q.request.follow);
        assert_eq!(q.request.number, 1_000);
        assert_eq!(q.request.whitelist.len(), 2);
        assert_eq!(q.request.whitelist[0].source_pod, vec!["default/xwing"]);
        assert_eq!(a.filter_text, "--pod xwing");
        assert!(a.flows.is_empty());
        a.apply(response(old, flow(2)), t0);
        assert!(a.flows.is_empty(), "a stale response was shown");
        a.apply(response(q.generation, flow(3)), t0);
        assert_eq!(a.flows.len(), 1);
    }

    #[test]
    fn bad_filter_text_stays_in_the_editor() {
        let (mut a, _) = app();
        a.on_key(key(KeyCode::Char('/')));
        for c in "--verdict MAYBE".chars() {
            a.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::None);
        assert!(a.editor.is_some());
        assert!(
            a.filter_error
                .as_deref()
                .is_some_and(|e| e.contains("MAYBE"))
        );
        a.on_key(key(KeyCode::Esc));
        assert!(a.editor.is_none());
        assert_eq!(a.filter_text, "");
    }

    #[test]
    fn quick_toggles() {
        let (mut a, _) = app();
        let Action::Query(q) = a.on_key(key(KeyCode::Char('d'))) else {
            panic!("d re-queries");
        };
        assert_eq!(
            q.request.whitelist[0].verdict,
            vec![Verdict::Dropped as i32]
        );
        assert!(a.toggles.drops_only);
        // No namespaces known yet: `n` does nothing.
        assert_eq!(a.on_key(key(KeyCode::Char('n'))), Action::None);
        a.apply(
            NetEvent::Namespaces(vec!["default".into(), "empire".into()]),
            Instant::now(),
        );
        a.on_key(key(KeyCode::Char('n')));
        assert_eq!(a.toggles.namespace.as_deref(), Some("default"));
        a.on_key(key(KeyCode::Char('n')));
        assert_eq!(a.toggles.namespace.as_deref(), Some("empire"));
        a.on_key(key(KeyCode::Char('n')));
        assert_eq!(a.toggles.namespace, None);
        // A toggle that conflicts with the typed filter is refused and undone.
        a.filter_text = "--ip 10.0.0.1".into();
        assert_eq!(a.on_key(key(KeyCode::Char('n'))), Action::None);
        assert_eq!(a.toggles.namespace, None);
        assert!(a.filter_error.is_some());
        let Action::Query(q) = a.on_key(key(KeyCode::Char('l'))) else {
            panic!("l re-queries");
        };
        assert!(!q.request.whitelist[0].event_type.is_empty());
    }

    #[test]
    fn details_open_and_close() {
        let (mut a, t0) = app();
        a.apply(response(a.generation, flow(7)), t0);
        a.on_key(key(KeyCode::Enter));
        assert!(a.detail.is_some());
        assert_eq!(a.on_key(key(KeyCode::Char('j'))), Action::None);
        a.on_key(key(KeyCode::Esc));
        assert!(a.detail.is_none());
        assert_eq!(a.on_key(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(
            a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
    }

    #[test]
    fn flows_count_in_their_own_second() {
        let (mut a, t0) = app();
        let at = |secs: i64| Flow {
            time: Some(Timestamp {
                seconds: 1_700_000_000 + secs,
                nanos: 0,
            }),
            ..Default::default()
        };
        // History from 30 s before start, then live flows one second in.
        for _ in 0..30 {
            a.ingest(at(-30));
        }
        a.tick(t0 + Duration::from_millis(1500));
        for _ in 0..10 {
            a.ingest(at(1));
        }
        a.tick(t0 + Duration::from_secs(3));
        let (fps, _) = a.rates();
        // 10 flows in second 1 over the 3 s the viewer has run: history is not a spike.
        assert!(fps < 10.0, "{fps}");
        assert_eq!(a.stats.window_flows(), 40);
    }

    #[test]
    fn a_reconnect_does_not_repeat_history() {
        let (mut a, t0) = app();
        let at = |ms: i64| Flow {
            time: Some(Timestamp {
                seconds: 1_700_000_000 + ms / 1000,
                nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
            }),
            ..Default::default()
        };
        a.apply(NetEvent::State(ConnState::Connected), t0);
        for ms in [100, 200, 300] {
            a.apply(response(a.generation, at(ms)), t0);
        }
        a.apply(
            NetEvent::State(ConnState::Reconnecting {
                attempt: 1,
                retry_in: Duration::from_millis(500),
                error: "gone".into(),
            }),
            t0,
        );
        a.apply(NetEvent::State(ConnState::Connected), t0);
        // The new stream replays 200 and 300, then brings 400.
        for ms in [200, 300, 400] {
            a.apply(response(a.generation, at(ms)), t0);
        }
        assert_eq!(a.flows.len(), 4);
        assert_eq!(a.duplicates_skipped, 2);
        // Once past the old newest flow, equal timestamps are taken again.
        a.apply(response(a.generation, at(400)), t0);
        assert_eq!(a.flows.len(), 5);
    }

    #[test]
    fn node_counts_prefer_relay_status() {
        let (mut a, t0) = app();
        a.apply(response(a.generation, flow(0)), t0);
        a.apply(response(a.generation, flow(1)), t0);
        assert_eq!(a.node_counts(), (2, 0, vec![]));
        a.apply(
            response_node(NodeState::NodeUnavailable, &["node-9"], a.generation),
            t0,
        );
        a.apply(
            response_node(NodeState::NodeConnected, &["node-1"], a.generation),
            t0,
        );
        assert_eq!(a.node_counts(), (1, 1, vec!["node-9".to_string()]));
        a.apply(
            NetEvent::Status(ServerStatusResponse {
                num_connected_nodes: Some(periscope_proto::pbjson_types::UInt32Value { value: 3 }),
                num_unavailable_nodes: Some(periscope_proto::pbjson_types::UInt32Value {
                    value: 0,
                }),
                ..Default::default()
            }),
            t0,
        );
        assert_eq!(a.node_counts(), (3, 0, vec![]));
    }

    fn response_node(state: NodeState, names: &[&str], generation: u64) -> NetEvent {
        NetEvent::Response {
            generation,
            response: Box::new(GetFlowsResponse {
                response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
                    state_change: state as i32,
                    node_names: names.iter().map(|s| s.to_string()).collect(),
                    message: String::new(),
                })),
                ..Default::default()
            }),
        }
    }
}
