//! `periscope top`: a live terminal view of flows (ratatui + crossterm).
//!
//! The viewer consumes `GetFlowsResponse`s from the Observer API only; no pane parses bytes.
//! One module per concern: [`net`] is the only I/O with the server (connect, follow, re-query,
//! backoff); [`app`] is the pure state and key handling; [`flows`] the bounded buffer whose rows
//! ([`row`]) are rendered once, lazily; [`stats`] the sliding-window rates and top lists; each
//! pane draws itself: [`header`], [`filter_bar`], [`table`], [`detail`], [`sidebar`], [`help`],
//! composed by [`ui`]; [`term`] owns the real terminal (raw mode, alternate screen, panic hook,
//! input thread).
//!
//! At high rates the buffer keeps the newest flows and the table shows a sample: only the rows
//! on screen at a frame are ever rendered, and flows that scroll past unseen are counted.

pub mod app;
pub mod detail;
pub mod filter_bar;
pub mod flows;
pub mod header;
pub mod help;
pub mod net;
pub mod row;
pub mod sidebar;
pub mod stats;
pub mod table;
pub mod term;
pub mod ui;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossterm::event::Event;
use tokio::sync::{mpsc, watch};

use crate::cli::TopArgs;
use crate::error::CliError;
use crate::timefmt::Zone;
use app::{Action, App, AppConfig};
use row::RowOptions;

/// Network events queued between the network task and the UI; when full, the network task
/// waits (and the server counts what it cannot send as lost).
const NET_QUEUE: usize = 16 * 1024;
/// Network events applied per wake-up before the loop looks at keys and the frame clock again.
const NET_BATCH: usize = 4096;

/// Runs the viewer until `q`, Ctrl-C or SIGTERM.
pub async fn run(args: &TopArgs) -> Result<(), CliError> {
    // Everything that can be wrong with the flags is reported before the screen is taken over.
    crate::filters::build(&args.filters)?;
    crate::client::endpoint_uri(&args.server.server)?;
    if args.buffer == 0 {
        return Err(CliError::Usage("--buffer must be at least 1".into()));
    }
    if !std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "periscope top needs a terminal; use `periscope observe --follow` in pipes".into(),
        ));
    }
    let cfg = AppConfig {
        server: args.server.server.clone(),
        buffer: args.buffer,
        last: args.last,
        rows: RowOptions {
            zone: Zone::Local,
            ip_translation: !args.numeric,
        },
    };
    let mut app = App::new(cfg, &args.filters);
    let query = app.initial_query().map_err(CliError::Usage)?;
    let (query_tx, query_rx) = watch::channel(query);
    let (net_tx, mut net_rx) = mpsc::channel(NET_QUEUE);
    let net = tokio::spawn(net::run(args.server.clone(), query_rx, net_tx));

    let mut tui = term::Tui::enter()?;
    let (key_tx, mut key_rx) = mpsc::channel(256);
    let mut input = term::Input::spawn(key_tx)?;
    let frame = Duration::from_secs(1) / u32::from(args.fps.clamp(1, 60));
    let result = event_loop(
        &mut tui,
        &mut app,
        &mut net_rx,
        &mut key_rx,
        &query_tx,
        frame,
    )
    .await;
    net.abort();
    input.stop();
    drop(tui);
    result
}

async fn event_loop(
    tui: &mut term::Tui,
    app: &mut App,
    net_rx: &mut mpsc::Receiver<net::NetEvent>,
    key_rx: &mut mpsc::Receiver<Event>,
    query_tx: &watch::Sender<net::Query>,
    frame: Duration,
) -> Result<(), CliError> {
    let mut tick = tokio::time::interval(frame);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let shutdown = crate::commands::shutdown_signal();
    tokio::pin!(shutdown);
    let mut net_open = true;
    loop {
        tokio::select! {
            // Keys and the frame clock come before flows, so a flood cannot starve them.
            biased;
            () = &mut shutdown => return Ok(()),
            ev = key_rx.recv() => match ev {
                Some(Event::Key(key)) => match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::Query(q) => {
                        query_tx.send_replace(q);
                    }
                    Action::None => {}
                },
                Some(Event::Resize(..)) => app.dirty = true,
                Some(_) => {}
                None => return Err(CliError::Io(std::io::Error::other("terminal input closed"))),
            },
            _ = tick.tick() => {
                app.tick(Instant::now());
                if app.dirty {
                    tui.terminal.draw(|f| ui::draw(f, app))?;
                }
            }
            ev = net_rx.recv(), if net_open => match ev {
                Some(ev) => {
                    let now = Instant::now();
                    app.apply(ev, now);
                    for _ in 0..NET_BATCH {
                        match net_rx.try_recv() {
                            Ok(ev) => app.apply(ev, now),
                            Err(_) => break,
                        }
                    }
                }
                None => net_open = false,
            },
        }
    }
}
