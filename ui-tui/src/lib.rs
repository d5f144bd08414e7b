//! The `periscope` command line and terminal flow viewer: turns Hubble-style flags into Observer
//! API requests and prints flows in Hubble's output formats. Sits at the top of the dependency
//! chain and may use any workspace crate; nothing depends on it.
//!
//! Layout: [`cli`] holds the clap definitions (flattenable flag groups: [`cli::FilterArgs`],
//! [`cli::ServerArgs`], [`cli::SelectorArgs`], [`cli::FormatArgs`]); [`filters`] and
//! [`request`] turn flags into a `GetFlowsRequest` (pure, no I/O); [`output`] prints responses
//! (pure per-format modules plus a streaming [`output::Printer`]); [`client`] connects with a
//! timeout; [`commands`] wires them together for each subcommand; [`tui`] is `periscope top`,
//! the terminal viewer, built on the same pieces.

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod filters;
pub mod output;
pub mod request;
pub mod timefmt;
pub mod tui;

pub use error::CliError;
