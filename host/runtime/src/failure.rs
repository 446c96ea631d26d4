//! Turning everything that can stop a plugin call into a [`TaskError`] whose
//! message says what happened.

use flowmesh_types::{FieldError, TaskError, TaskErrorCode};
use wasmtime::Trap;

use crate::bindings::exports::flowmesh::executor::executor as wit;
use crate::sandbox_state::MemoryLimitExceeded;
use crate::task_log::TaskLog;

/// Why the host stopped a running plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interrupted {
    #[error("the task ran past its timeout")]
    Timeout,
    #[error("the task was cancelled")]
    Cancelled,
    #[error("the task filled its scratch directory")]
    ScratchFull { used: u64, limit: u64 },
}

const MIB: f64 = 1024.0 * 1024.0;

/// The time a plugin call had, and the setting that governs it, for the
/// message when it runs out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeLimit {
    /// The call, as the message names it (`the task`, `validate()`).
    pub(crate) call: &'static str,
    /// How long it had.
    pub(crate) timeout: std::time::Duration,
    /// What to do about it, naming the setting (`raise spec.timeout if it
    /// needs longer`).
    pub(crate) remedy: &'static str,
}

impl TimeLimit {
    /// A task's own timeout.
    pub(crate) fn task(timeout: std::time::Duration) -> Self {
        Self {
            call: "the task",
            timeout,
            remedy: "raise spec.timeout if it needs longer",
        }
    }

    fn message(&self) -> String {
        format!(
            "{} ran past its timeout of {} and was interrupted; {}",
            self.call,
            humanize(self.timeout),
            self.remedy
        )
    }
}

/// Classifies an error returned by instantiating or calling a plugin.
pub(crate) fn from_wasmtime(error: &wasmtime::Error, log: &TaskLog, limit: TimeLimit) -> TaskError {
    if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
        return match interrupted {
            Interrupted::Timeout => TaskError::new(TaskErrorCode::Timeout, limit.message()),
            Interrupted::Cancelled => TaskError::new(
                TaskErrorCode::Cancelled,
                "the task was cancelled while it ran",
            ),
            Interrupted::ScratchFull { used, limit } => TaskError::new(
                TaskErrorCode::DiskLimit,
                format!(
                    "the task wrote {:.1} MiB to /scratch, over its limit of {:.1} MiB, and was stopped",
                    *used as f64 / MIB,
                    *limit as f64 / MIB
                ),
            ),
        };
    }
    if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
        return TaskError::new(
            TaskErrorCode::MemoryLimit,
            format!(
                "the plugin tried to grow its memory to {:.1} MiB, over the task's limit of {:.1} MiB; raise resources.hardware.memory if the task needs more",
                exceeded.desired as f64 / MIB,
                exceeded.limit as f64 / MIB
            ),
        );
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return TaskError::new(
            TaskErrorCode::Trap,
            format!(
                "the plugin called exit({}) instead of returning a result",
                exit.0
            ),
        );
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::StackOverflow => TaskError::new(
                TaskErrorCode::StackOverflow,
                "the plugin overflowed its call stack (unbounded or too deep recursion)",
            ),
            Trap::OutOfFuel => TaskError::new(
                TaskErrorCode::FuelExhausted,
                "the plugin used up its fuel (instruction budget) before finishing",
            ),
            Trap::Interrupt => TaskError::new(TaskErrorCode::Timeout, limit.message()),
            Trap::UnreachableCodeReached => match log.panic_message() {
                Some(panic) => TaskError::new(
                    TaskErrorCode::Trap,
                    format!("the plugin panicked at {panic}"),
                ),
                None => TaskError::new(
                    TaskErrorCode::Trap,
                    "the plugin trapped: it executed `unreachable` (an abort); its stderr is in the task log",
                ),
            },
            Trap::MemoryOutOfBounds => TaskError::new(
                TaskErrorCode::Trap,
                "the plugin trapped: out of bounds memory access (a wild pointer, or its in-memory stack overflowing)",
            ),
            other => TaskError::new(TaskErrorCode::Trap, format!("the plugin trapped: {other}")),
        };
    }
    TaskError::new(
        TaskErrorCode::Host,
        format!("the host failed to run the plugin: {error:#}"),
    )
}

/// Converts the plugin's own `task-error`.
pub(crate) fn from_plugin(error: wit::TaskError) -> TaskError {
    match error {
        wit::TaskError::InvalidInput(errors) => {
            let details: Vec<FieldError> = errors.into_iter().map(field_error).collect();
            let message = match details.as_slice() {
                [] => "the plugin rejected the spec".to_string(),
                [one] => format!("invalid spec: {one}"),
                [first, rest @ ..] => format!("invalid spec: {first} (and {} more)", rest.len()),
            };
            TaskError {
                code: TaskErrorCode::InvalidInput,
                message,
                details,
            }
        }
        wit::TaskError::Failed(message) => TaskError::new(TaskErrorCode::Failed, message),
        wit::TaskError::Retryable(message) => TaskError::new(TaskErrorCode::Retryable, message),
    }
}

/// A plugin field error, its path made relative to the task document.
pub(crate) fn field_error(error: wit::FieldError) -> FieldError {
    FieldError::new(error.path, error.message)
}

pub(crate) fn humanize(duration: std::time::Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
