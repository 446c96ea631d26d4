//! What a running task reports besides its result: log records and progress.

use serde::{Deserialize, Serialize};

/// Importance of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the task survived.
    Warn,
    /// A failure.
    Error,
}

/// Where a log record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// The plugin's `flowmesh:host/log` calls.
    Plugin,
    /// A line the plugin wrote to stdout.
    Stdout,
    /// A line the plugin wrote to stderr.
    Stderr,
    /// The host itself (truncation notices, sandbox messages).
    Host,
    /// Text a model generates, streamed as it arrives.
    Model,
}

/// One event of a running task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEvent {
    /// A log record.
    Log {
        /// Where it came from.
        stream: LogStream,
        /// How important it is.
        level: LogLevel,
        /// The text, one line or one record.
        message: String,
    },
    /// A progress report.
    Progress {
        /// How far the task has come, 0.0 to 1.0.
        fraction: f32,
        /// What it is doing now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}
