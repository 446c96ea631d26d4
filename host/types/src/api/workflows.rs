//! Workflows as clients see them: state, stages, and the answers of
//! submitting and listing workflows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tasks::{TaskState, Waiting};
use crate::task_error::TaskError;

/// Where a workflow is: running until every stage is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Some stage has not finished.
    Running,
    /// Every stage succeeded or was skipped.
    Succeeded,
    /// Every stage finished, and one failed (or was cancelled on its own).
    Failed,
    /// The workflow was cancelled.
    Cancelled,
}

impl WorkflowState {
    /// Every state.
    pub const ALL: [WorkflowState; 4] = [
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`WorkflowState::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether the workflow is over.
    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage of a workflow as `GET /workflows/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageView {
    /// Stage name.
    pub name: String,
    /// Its task (`GET /tasks/{id}` has the details).
    pub task_id: String,
    /// Its task type.
    pub task_type: String,
    /// Its task's state.
    pub state: TaskState,
    /// The stages it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// When it runs at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<crate::workflow::Condition>,
    /// The current (or last) attempt.
    pub attempt: u32,
    /// The worker running it or that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Why it waits, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Why it failed, was cancelled or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// Its output, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A workflow: its state and its stages' states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    /// Workflow id.
    pub id: String,
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `metadata.labels` (every stage's task carries them too).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: WorkflowState,
    /// How many stages are in each task state.
    pub stage_states: BTreeMap<String, u32>,
    /// The stages in document order (empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageView>,
    /// When it was submitted.
    pub created_at: String,
    /// When a stage last changed.
    pub updated_at: String,
    /// When its last stage finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// `POST /tasks`'s answer for a workflow document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubmittedWorkflow {
    /// Id of the new workflow.
    pub id: String,
    /// The workflow, as stored (or as finished, with `?wait=`).
    pub workflow: WorkflowView,
}

/// One page of `GET /workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkflowPage {
    /// Newest first, without their stages.
    pub workflows: Vec<WorkflowView>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
