//! The CLI's error type: every variant prints as one line, and each maps to an exit code.

use std::io;

use crate::client::ClientError;
use crate::filters::FilterError;
use crate::request::RequestError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Flags that are individually valid but cannot be used together.
    #[error("{0}")]
    Usage(String),
    #[error("server is not healthy: {0}")]
    Unhealthy(String),
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
}

impl CliError {
    /// Writing to a closed pipe (`periscope observe | head`) is not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// 2 for bad flags and flag values (like clap), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Filter(_) | CliError::Request(_) | CliError::Usage(_) => 2,
            CliError::Client(ClientError::InvalidAddress { .. }) => 2,
            _ => 1,
        }
    }
}
