//! Tasks as clients see them: state, why a pending task waits, result and
//! attempts, and the answers of `POST /tasks` and `GET /tasks`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::HardwareRequest;
use crate::task_error::TaskError;

/// Version of [`ResultEnvelope`]'s layout.
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for the workflow stages it depends on, or for a worker;
    /// [`TaskView::waiting`] says which and why.
    Pending,
    /// Claimed by a worker under a lease.
    Running,
    /// Cancel requested while running; the worker is interrupting it.
    Cancelling,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error, after its last attempt.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// A workflow stage that did not run: its condition did not hold, or a
    /// stage it depends on was skipped.
    Skipped,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 7] = [
        Self::Pending,
        Self::Running,
        Self::Cancelling,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Skipped,
    ];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Cancelling => "cancelling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Parses [`TaskState::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether the task is finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a pending task is not running, from the last placement check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// No live worker advertises the task type.
    NoWorkerForType,
    /// Workers advertise the type, but none carries the labels the task
    /// requires (`spec.resources.labels`).
    MissingLabels,
    /// Workers advertise the type, but none has the hardware the task asks for.
    InsufficientHardware,
    /// Workers could run it, but their slots or hardware are in use.
    WorkersBusy,
    /// Its tenant runs as many tasks as its limit allows.
    TenantLimit,
    /// A failed attempt is waiting out its retry delay.
    RetryBackoff,
    /// A workflow stage waits for the stages it depends on to finish.
    Dependencies,
}

impl WaitKind {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoWorkerForType => "no_worker_for_type",
            Self::MissingLabels => "missing_labels",
            Self::InsufficientHardware => "insufficient_hardware",
            Self::WorkersBusy => "workers_busy",
            Self::TenantLimit => "tenant_limit",
            Self::RetryBackoff => "retry_backoff",
            Self::Dependencies => "dependencies",
        }
    }
}

/// The placement check behind a [`Waiting`] reason, as counts of live
/// workers, each check narrowing the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlacementCounts {
    /// Workers heartbeating within the lease TTL.
    pub live_workers: u32,
    /// Of those, workers advertising the task type.
    pub advertising_type: u32,
    /// Of those, workers that may run the task's tenant's tasks: its own,
    /// and shared ones where the tenant allows them.
    #[serde(default)]
    pub in_pool: u32,
    /// Of those, workers carrying every label the task requires.
    #[serde(default)]
    pub with_labels: u32,
    /// Of those, workers whose hardware could hold the request when idle.
    pub fitting_hardware: u32,
    /// Of those, workers with a free slot and enough free hardware now.
    pub with_free_capacity: u32,
}

/// Why a pending task waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// Which case it is.
    pub kind: WaitKind,
    /// The case in words, naming the constraint that no worker meets.
    pub message: String,
    /// The counts behind it.
    pub counts: PlacementCounts,
}

/// The plugin that produced a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    /// Installed name.
    pub name: String,
    /// Version from its manifest.
    pub version: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// A plugin of the worker's own (`flowmesh worker --plugin`), not one
    /// installed on the server: it serves only types no installed plugin
    /// declares.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// A finished task's result, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResultEnvelope {
    /// [`RESULT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The task type that ran.
    pub task_type: String,
    /// The plugin that ran it.
    pub plugin: PluginRef,
    /// The plugin's output.
    pub output: Value,
    /// One line for people: what ran, where, how long.
    pub summary: String,
    /// Wall time of the attempt that produced it, in milliseconds.
    pub elapsed_ms: u64,
    /// Which attempt produced it (1-based).
    pub attempt: u32,
    /// Name of the worker that ran it.
    pub worker: String,
}

/// One finished attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// Name of the worker that ran it.
    pub worker: String,
    /// When it was claimed.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// How it ended: `succeeded`, `failed`, `lease_expired`, `cancelled`.
    pub outcome: String,
    /// Its error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// The plugin that ran it, as the server routed the task (name,
    /// version, digest; `local` for a worker's own plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
}

/// A task as `GET /tasks/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `spec.taskType`.
    pub task_type: String,
    /// Current state.
    pub state: TaskState,
    /// The current (or last) attempt, 1-based.
    pub attempt: u32,
    /// `spec.maxAttempts`.
    pub max_attempts: u32,
    /// The plugin's fields of `spec`.
    pub spec: Value,
    /// `spec.resources.hardware`.
    pub hardware: HardwareRequest,
    /// `spec.timeout` in milliseconds, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The workflow stage it is, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<StageRef>,
    /// Why it waits, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Name of the worker running it (or that ran its last attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The result, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultEnvelope>,
    /// The error, once failed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// Earlier attempts that did not produce the final outcome, and the final
    /// one once finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// When it was submitted.
    pub created_at: String,
    /// When its state last changed.
    pub updated_at: String,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// `POST /tasks`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    /// Id of the new task.
    pub id: String,
    /// The task, as stored (or as finished, with `?wait=`).
    pub task: TaskView,
}

/// `POST /tasks`'s answer to a batch (a JSON array, NDJSON or several YAML
/// documents): one item per document, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchSubmitted {
    /// Documents stored (or, on a dry run, found valid).
    pub accepted: usize,
    /// Documents refused (only with `?partial=true`; otherwise one refusal
    /// refuses the whole batch).
    pub refused: usize,
    /// Per document, in order.
    pub items: Vec<BatchItem>,
}

/// What became of one document of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// `Task` or `Workflow`, when it parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The id of the task or workflow stored (none on a dry run or when it
    /// was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why it was refused, with paths from the batch's root
    /// (`[3].spec.message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::ApiError>,
}

/// One page of `GET /tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    /// Newest first.
    pub tasks: Vec<TaskView>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The workflow stage a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageRef {
    /// The workflow's id.
    pub workflow_id: String,
    /// The stage's name.
    pub stage: String,
}
