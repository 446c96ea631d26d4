//! The event stream of a task or a workflow, as the server stores it and the
//! SSE endpoint sends it.

use serde::{Deserialize, Serialize};

use super::tasks::{ResultEnvelope, TaskState};
use super::workflows::WorkflowState;
use crate::event::TaskEvent;
use crate::task_error::TaskError;

/// A stored task event, as the SSE stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Position in the task's stream; the SSE `id`.
    pub seq: i64,
    /// The task (the workflow, for a `workflow` event).
    pub task_id: String,
    /// When the server recorded it.
    pub at: String,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What a task event says. The SSE `event` name is the variant's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    /// The task changed state.
    State {
        /// New state.
        state: TaskState,
        /// Attempt at the time.
        attempt: u32,
        /// Why, in words (retry reason, cancel, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A log line or progress report from the running attempt.
    Task(TaskEvent),
    /// A workflow changed state; only in a workflow's event stream, where
    /// `taskId` is the workflow's id.
    Workflow {
        /// Its state.
        state: WorkflowState,
        /// Why, in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The terminal outcome.
    Result {
        /// Terminal state.
        state: TaskState,
        /// The result, when succeeded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Box<ResultEnvelope>>,
        /// The error, when failed or cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<TaskError>,
    },
}

impl EventBody {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::State { .. } => "state",
            Self::Task(TaskEvent::Log { .. }) => "log",
            Self::Task(TaskEvent::Progress { .. }) => "progress",
            Self::Result { .. } => "result",
            Self::Workflow { .. } => "workflow",
        }
    }
}
