//! Printing `GetFlowsResponse`s in Hubble's output formats, one module per format:
//! [`compact`], [`dict`], [`json`] (`json` and `jsonpb`), [`table`]; [`status`] renders
//! `ServerStatus`, nodes and namespaces. The format modules are pure (values in, text out) so a
//! terminal viewer can reuse them line by line; [`Printer`] adds the streaming state (first
//! line, separators, the buffered table) and the writers.

pub mod color;
pub mod compact;
pub mod dict;
pub mod fields;
pub mod json;
pub mod status;
pub mod table;
pub mod tabwriter;

use std::io::{self, Write};

use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::relay::{NodeState, NodeStatusEvent};

use crate::timefmt::{TimeFormat, Zone};
use color::Colorer;
use tabwriter::TabWriter;

/// `-o/--output` for flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per flow
    #[default]
    Compact,
    /// KEY: VALUE blocks separated by dashes
    Dict,
    /// One JSON object per line: the flow
    Json,
    /// One JSON object per line: the whole GetFlowsResponse
    Jsonpb,
    /// Tab-aligned columns (printed when the stream ends)
    #[value(alias = "tab")]
    Table,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorMode {
    /// Color when stdout is a terminal (and NO_COLOR is unset, TERM is not dumb)
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorMode {
    /// Resolves `auto` against the terminal and the `NO_COLOR`/`TERM` conventions.
    pub fn enabled(self, stdout_is_terminal: bool) -> bool {
        match self {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => {
                stdout_is_terminal
                    && std::env::var_os("NO_COLOR").is_none()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    }
}

/// Everything that changes how flows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterOptions {
    pub format: OutputFormat,
    pub time_format: TimeFormat,
    /// Hubble prints local time; tests use UTC.
    pub zone: Zone,
    pub color: bool,
    /// `--print-node-name`.
    pub node_name: bool,
    /// Show pod/service/DNS names instead of IPs (off with `--numeric`).
    pub ip_translation: bool,
    /// Also print informational node status events.
    pub debug: bool,
}

impl Default for PrinterOptions {
    fn default() -> Self {
        Self {
            format: OutputFormat::Compact,
            time_format: TimeFormat::StampMilli,
            zone: Zone::Local,
            color: false,
            node_name: false,
            ip_translation: true,
            debug: false,
        }
    }
}

impl PrinterOptions {
    /// The node status events a printer shows: failures always, the rest only with `--debug`.
    pub fn shows_node_status(&self, ev: &NodeStatusEvent) -> bool {
        self.debug
            || matches!(
                NodeState::try_from(ev.state_change),
                Ok(NodeState::NodeError | NodeState::NodeUnavailable)
            )
    }
}

/// Streams responses to `out` (and node status events to `err`, as Hubble does).
pub struct Printer<W: Write, E: Write> {
    opts: PrinterOptions,
    colors: Colorer,
    out: W,
    err: E,
    line: usize,
    table: TabWriter,
}

impl<W: Write, E: Write> Printer<W, E> {
    pub fn new(mut opts: PrinterOptions, out: W, err: E) -> Self {
        if matches!(
            opts.format,
            OutputFormat::Table | OutputFormat::Json | OutputFormat::Jsonpb
        ) {
            // Escape sequences would break column widths and JSON.
            opts.color = false;
        }
        Self {
            colors: Colorer::new(opts.color),
            opts,
            out,
            err,
            line: 0,
            table: TabWriter::hubble(),
        }
    }

    pub fn options(&self) -> &PrinterOptions {
        &self.opts
    }

    /// Prints one response: a flow, a lost-events notice or a node status event.
    pub fn write_response(&mut self, r: &GetFlowsResponse) -> io::Result<()> {
        match r.response_types.as_ref() {
            Some(ResponseTypes::Flow(f)) => {
                match self.opts.format {
                    OutputFormat::Compact => {
                        let line = compact::flow(f, &self.opts, &self.colors);
                        self.out.write_all(line.as_bytes())?;
                    }
                    OutputFormat::Dict => {
                        self.dict_separator()?;
                        let block = dict::flow(f, &self.opts, &self.colors);
                        self.out.write_all(block.as_bytes())?;
                    }
                    OutputFormat::Table => {
                        self.table_header();
                        self.table.row(table::flow_row(f, &self.opts));
                    }
                    OutputFormat::Json => write_json_line(&mut self.out, &json::flow(f)?)?,
                    OutputFormat::Jsonpb => write_json_line(&mut self.out, &json::response(r)?)?,
                }
                self.line += 1;
            }
            Some(ResponseTypes::LostEvents(ev)) => {
                match self.opts.format {
                    OutputFormat::Compact => {
                        self.out.write_all(compact::lost_events(ev).as_bytes())?;
                    }
                    OutputFormat::Dict => {
                        self.dict_separator()?;
                        self.out
                            .write_all(dict::lost_events(ev, &self.opts).as_bytes())?;
                    }
                    OutputFormat::Table => {
                        self.table_header();
                        self.table.row(table::lost_events_row(ev, &self.opts));
                    }
                    OutputFormat::Json => write_json_line(&mut self.out, &json::lost_events(ev)?)?,
                    OutputFormat::Jsonpb => write_json_line(&mut self.out, &json::response(r)?)?,
                }
                self.line += 1;
            }
            Some(ResponseTypes::NodeStatus(ev)) => {
                if !self.opts.shows_node_status(ev) {
                    return Ok(());
                }
                match self.opts.format {
                    OutputFormat::Compact | OutputFormat::Table => {
                        let line = compact::node_status(r, ev, &self.opts);
                        self.err.write_all(line.as_bytes())?;
                    }
                    OutputFormat::Dict => {
                        // Keep flows and node events visibly apart when stdout and stderr mix.
                        if self.line != 0 {
                            writeln!(self.out, "{}", dict::SEPARATOR)?;
                            self.out.flush()?;
                        } else {
                            self.line += 1;
                        }
                        self.err
                            .write_all(dict::node_status(r, ev, &self.opts).as_bytes())?;
                    }
                    OutputFormat::Jsonpb => write_json_line(&mut self.err, &json::response(r)?)?,
                    // Like Hubble's flow-only JSON: node events have no flow to print.
                    OutputFormat::Json => {}
                }
            }
            None => {}
        }
        Ok(())
    }

    fn dict_separator(&mut self) -> io::Result<()> {
        if self.line != 0 {
            writeln!(self.out, "{}", dict::SEPARATOR)?;
        }
        Ok(())
    }

    fn table_header(&mut self) {
        if self.line == 0 {
            self.table.row(table::header(&self.opts));
        }
    }

    /// Flushes what has been written so far (the table is only printed by [`Self::finish`]).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.err.flush()
    }

    /// Prints the buffered table (if any), flushes, and returns the writers.
    pub fn finish(mut self) -> io::Result<(W, E)> {
        if !self.table.is_empty() {
            let text = self.table.render();
            self.out.write_all(text.as_bytes())?;
        }
        self.flush()?;
        Ok((self.out, self.err))
    }
}

fn write_json_line(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(s.as_bytes())?;
    w.write_all(b"\n")
}
