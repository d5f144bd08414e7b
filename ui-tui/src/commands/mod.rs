//! Subcommand implementations. `run` dispatches on [`Command`]; add an arm per new subcommand.

mod demo;
mod list;
mod observe;
pub mod policy;
mod status;

use std::io::IsTerminal;

use crate::cli::{Cli, Command, ListCommand};
use crate::error::CliError;

pub use observe::{observe, printer_options, raw_filters_json};

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Observe(args) => {
            let stdout = std::io::stdout();
            let tty = stdout.is_terminal();
            observe(
                &args,
                std::io::BufWriter::new(stdout.lock()),
                std::io::stderr(),
                tty,
                shutdown_signal(),
            )
            .await
        }
        Command::Status(args) => status::status(&args, &mut std::io::stdout().lock()).await,
        Command::List(ListCommand::Nodes(args)) => {
            list::nodes(&args, &mut std::io::stdout().lock()).await
        }
        Command::List(ListCommand::Namespaces(args)) => {
            list::namespaces(&args, &mut std::io::stdout().lock()).await
        }
        Command::Top(args) => crate::tui::run(&args).await,
        Command::Demo(args) => demo::run(&args)
            .await
            .map_err(|e| CliError::Usage(format!("demo: {e:#}"))),
        Command::Policy(args) => {
            policy::run(&args).map_err(|e| CliError::Usage(format!("policy: {e:#}")))
        }
        Command::Cluster(p) => companion("periscope-cluster", &p.args),
        Command::Agent(p) => companion("periscope-agent", &p.args),
    }
}

/// Resolves on Ctrl-C or SIGTERM; never resolves if the handlers cannot be installed.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs a companion binary (installed next to `periscope`, or on PATH) and exits with its status.
fn companion(name: &str, args: &[String]) -> Result<(), CliError> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file());
    let program = sibling.unwrap_or_else(|| std::path::PathBuf::from(name));
    let status = std::process::Command::new(&program)
        .args(args)
        .status()
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot run {}: {e} (build it with `cargo build --workspace`)",
                program.display()
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(1));
    }
}
