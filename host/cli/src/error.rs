//! What can go wrong in a command, and the exit code each case ends with.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a task finished `failed` or `cancelled` (`task submit --wait`, `task watch`), or `validate` found an invalid document |
//! | 2 | usage: unknown flags, bad arguments, an unreadable input file |
//! | 3 | the server refused the request: an invalid document or plugin (HTTP 400/409/422) |
//! | 4 | not found: no such task, worker or plugin (HTTP 404) |
//! | 5 | not allowed: a missing, unknown or under-privileged token (HTTP 401/403) |
//! | 6 | the server cannot be reached, or failed (HTTP 5xx) |
//! | 7 | gave up waiting (`--timeout`) while the task still runs |

use std::fmt;
use std::process::ExitCode;

use flowmesh_types::FieldError;

/// A command's failure.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or input files (2).
    Usage(String),
    /// The server answered with an error.
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`invalid_spec`, …).
        code: String,
        /// The server's message.
        message: String,
        /// Field paths and what is wrong with each.
        details: Vec<FieldError>,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The server could not be reached (6).
    Unreachable {
        /// Its URL.
        server: String,
        /// What happened.
        error: String,
    },
    /// A task ended failed or cancelled, or a document is invalid (1); the
    /// details were printed already.
    Failed(String),
    /// Waiting ran out (7).
    Timeout(String),
    /// Anything else (6): a local failure while running a server or worker.
    Other(anyhow::Error),
}

impl CliError {
    /// The exit code, as documented in this module.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Failed(_) => 1,
            Self::Usage(_) => 2,
            Self::Api { status, .. } => match status {
                401 | 403 => 5,
                404 => 4,
                400..=499 => 3,
                _ => 6,
            },
            Self::Unreachable { .. } | Self::Other(_) => 6,
            Self::Timeout(_) => 7,
        })
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Failed(message) | Self::Timeout(message) => {
                write!(f, "{message}")
            }
            Self::Api {
                message,
                details,
                hint,
                ..
            } => {
                write!(f, "{message}")?;
                for detail in details {
                    write!(f, "\n  {}: {}", detail.path, detail.message)?;
                }
                if let Some(hint) = hint {
                    write!(f, "\nhint: {hint}")?;
                }
                Ok(())
            }
            Self::Unreachable { server, error } => write!(
                f,
                "cannot reach the FlowMesh server at {server}: {error}\n\
                 hint: start a local one with `flowmesh up`, or point to yours with --server or FLOWMESH_SERVER"
            ),
            Self::Other(error) => write!(f, "{error:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(error)
    }
}

/// A command's outcome.
pub type CliResult<T = ()> = Result<T, CliError>;
