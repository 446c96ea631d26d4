//! Why a task did not succeed.
//!
//! Every way a task can end badly — the plugin said so, the sandbox stopped it,
//! the host could not run it — is one [`TaskErrorCode`] plus a message written
//! for the person who submitted the task. Whether the server may retry is part
//! of the error, so the retry policy never has to parse messages.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// The class of a task failure. Stable strings on the wire (`snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskErrorCode {
    /// The plugin rejected the spec; `details` names the fields.
    InvalidInput,
    /// The plugin reported a failure that retrying cannot fix.
    Failed,
    /// The plugin reported a failure that may pass on another attempt.
    Retryable,
    /// The task ran past its timeout and was interrupted.
    Timeout,
    /// The task was cancelled while it ran.
    Cancelled,
    /// The plugin tried to use more memory than the task allows.
    MemoryLimit,
    /// The task wrote more to its scratch directory than it may.
    DiskLimit,
    /// The plugin ran out of fuel (its instruction budget).
    FuelExhausted,
    /// The plugin overflowed its call stack (for example unbounded recursion).
    StackOverflow,
    /// The plugin trapped: a panic, an `unreachable`, an out-of-bounds access.
    Trap,
    /// The plugin's output is over the size limit or not a JSON document.
    InvalidOutput,
    /// No loaded plugin executes the task's type.
    UnknownTaskType,
    /// The host could not set up or run the sandbox (an internal error).
    Host,
    /// The worker running the attempt stopped heartbeating and its lease
    /// expired (retried like [`TaskErrorCode::Retryable`]).
    LeaseExpired,
    /// No live worker could run the task (none advertises its type, or none
    /// has the hardware) for the whole grace period.
    NoEligibleWorker,
    /// The worker shut down cleanly and handed the attempt back; the task
    /// runs again without this attempt counting against `maxAttempts`.
    Released,
    /// A workflow stage did not run because a stage it depends on failed or
    /// was cancelled; the message names that stage.
    UpstreamFailed,
    /// A workflow stage did not run: its condition did not hold, or a stage
    /// it depends on was skipped. The task's state is `skipped`.
    Skipped,
}

impl TaskErrorCode {
    /// The wire string, e.g. `memory_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::Failed => "failed",
            Self::Retryable => "retryable",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::MemoryLimit => "memory_limit",
            Self::DiskLimit => "disk_limit",
            Self::FuelExhausted => "fuel_exhausted",
            Self::StackOverflow => "stack_overflow",
            Self::Trap => "trap",
            Self::InvalidOutput => "invalid_output",
            Self::UnknownTaskType => "unknown_task_type",
            Self::Host => "host",
            Self::LeaseExpired => "lease_expired",
            Self::NoEligibleWorker => "no_eligible_worker",
            Self::Released => "released",
            Self::UpstreamFailed => "upstream_failed",
            Self::Skipped => "skipped",
        }
    }

    /// Whether another attempt of the same task may succeed. Plugin failures
    /// say so themselves; host errors are worth a retry on another worker,
    /// and so is an attempt whose worker had no plugin for the type (its
    /// plugins changed while the task was routed to it); limits, traps and
    /// bad input will fail the same way again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Retryable
                | Self::Host
                | Self::LeaseExpired
                | Self::Released
                | Self::UnknownTaskType
        )
    }
}

impl std::fmt::Display for TaskErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskError {
    /// The class of failure.
    pub code: TaskErrorCode,
    /// What happened, for a person.
    pub message: String,
    /// Field-level problems, for [`TaskErrorCode::InvalidInput`]; the message
    /// names the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl TaskError {
    /// An error of class `code`.
    pub fn new(code: TaskErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Whether another attempt may succeed (see [`TaskErrorCode::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for TaskError {}
