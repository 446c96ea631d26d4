//! The REST API's wire types: what clients, workers and the server exchange.
//!
//! Everything is JSON with camelCase field names. Times are RFC 3339 strings
//! in views meant for people ([`TaskView`], [`WorkerView`]) and milliseconds
//! in the worker protocol, where they are arithmetic.
//!
//! The worker protocol is five calls, all made by the worker:
//!
//! 1. **register** ([`WorkerRegistration`] → [`Registered`]): what the worker
//!    can run (its [`WorkerCapabilities`]), its detected [`Hardware`], labels
//!    and slots. The answer fixes the heartbeat interval and the lease TTL.
//! 2. **claim** ([`ClaimRequest`] → [`ClaimResponse`]): a long poll that
//!    returns as soon as tasks the worker can run are waiting. The server picks
//!    them in one atomic statement: type advertised, hardware free.
//! 3. **heartbeat** ([`Heartbeat`] → [`HeartbeatResponse`]): renews the
//!    worker's leases and answers which of its tasks to cancel or drop.
//! 4. **events** ([`EventBatch`]): logs and progress, batched.
//! 5. **complete** ([`CompletionBatch`] → [`CompletionResponse`]): outcomes,
//!    each fenced by the lease token of its claim, so an attempt whose lease
//!    expired cannot complete the task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::HardwareRequest;
use crate::{FieldError, PluginReport, PluginStatus, TaskError, TaskEvent, WorkerCapabilities};

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

pub use crate::capability::GpuDevice;

/// A worker's hardware, detected on the host, never configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Hardware {
    /// Logical CPUs available to the worker process.
    pub cpus: f64,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// GPUs found by NVML.
    #[serde(default)]
    pub gpus: Vec<GpuDevice>,
}

impl Hardware {
    /// The CPUs in thousandths of a core, rounded down: what capacity checks
    /// compare with [`crate::document::HardwareRequest::cpu_millis`].
    pub fn cpu_millis(&self) -> i64 {
        (self.cpus * 1000.0).floor() as i64
    }
}

/// `POST /worker/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerRegistration {
    /// Stable name (the host name by default). Registering again under the
    /// same name replaces the earlier registration and releases its tasks.
    pub name: String,
    /// What it can run.
    pub capabilities: WorkerCapabilities,
    /// What it has.
    pub hardware: Hardware,
    /// Operator labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Tasks it runs at once.
    pub slots: u32,
    /// The worker's FlowMesh version.
    pub version: String,
}

/// `POST /worker/register`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// Id of this registration; every later call carries it.
    pub worker_id: String,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl_ms: u64,
    /// The plugins installed on the server: the worker fetches the ones it
    /// lacks (`GET /worker/plugins/{digest}`) and drops the ones not listed.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

/// `POST /worker/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// From [`Registered`].
    pub worker_id: String,
    /// At most this many tasks (the worker's free slots).
    pub max_tasks: u32,
    /// Wait up to this long for work before answering with none.
    pub wait_ms: u64,
}

/// A task handed to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    /// Task id.
    pub id: String,
    /// Task type.
    pub task_type: String,
    /// The plugin's fields of `spec`.
    pub spec: Value,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Fencing token of this claim: heartbeats, events and the completion
    /// carry it.
    pub lease_token: String,
    /// `spec.timeout` in milliseconds, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `spec.resources.hardware`.
    pub hardware: HardwareRequest,
}

/// `POST /worker/claim`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimResponse {
    /// Tasks now leased to the worker; empty when the wait ran out.
    pub tasks: Vec<ClaimedTask>,
    /// Set when the installed plugins changed while the claim waited: the
    /// new catalog (see [`Registered::plugins`]), so workers need not wait
    /// for their next heartbeat to pick it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginRef>>,
}

/// A lease a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Task id.
    pub task_id: String,
    /// From [`ClaimedTask::lease_token`].
    pub lease_token: String,
}

/// `POST /worker/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// From [`Registered`].
    pub worker_id: String,
    /// Every task the worker is running.
    pub leases: Vec<Lease>,
    /// What it can run now (sent when it changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<WorkerCapabilities>,
    /// Its labels now, operator labels and those of its capabilities (sent
    /// when they changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Its hardware now (sent when it changed: GPUs appear with the GPU
    /// capability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
}

/// `POST /worker/heartbeat`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// Tasks to interrupt and complete as cancelled.
    pub cancel: Vec<String>,
    /// Tasks whose lease is gone: stop them, do not complete them.
    pub lost: Vec<String>,
    /// The plugins installed on the server now (see [`Registered::plugins`]).
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

/// Events of one running task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskEvents {
    /// Task id.
    pub task_id: String,
    /// The claim's lease token.
    pub lease_token: String,
    /// In order.
    pub events: Vec<TaskEvent>,
}

/// `POST /worker/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventBatch {
    /// From [`Registered`].
    pub worker_id: String,
    /// Per task.
    pub tasks: Vec<TaskEvents>,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Task id.
    pub task_id: String,
    /// The claim's lease token.
    pub lease_token: String,
    /// The plugin that ran, if one was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// Wall time of the attempt.
    pub elapsed_ms: u64,
    /// The output, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// `POST /worker/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CompletionBatch {
    /// From [`Registered`].
    pub worker_id: String,
    /// One per finished attempt.
    pub completions: Vec<Completion>,
}

/// What the server did with one [`Completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CompletionVerdict {
    /// Recorded; the task moved on (terminal, or pending for a retry).
    Accepted,
    /// The lease is not this worker's any more (expired, or the task was
    /// released); the outcome was discarded.
    StaleLease,
}

/// `POST /worker/complete`'s answer, one verdict per completion, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CompletionResponse {
    /// In the order of [`CompletionBatch::completions`].
    pub verdicts: Vec<CompletionVerdict>,
}

/// An installed plugin as `GET /plugins` and `POST /plugins` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Name, version, digest, manifest and imports, as the server loaded it.
    #[serde(flatten)]
    pub report: PluginReport,
    /// When it was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<String>,
    /// How each live worker stands with it (`GET /plugins/{name}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerPlugin>,
}

/// How one live worker stands with an installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerPlugin {
    /// Registration id.
    pub id: String,
    /// Worker name.
    pub name: String,
    /// Where it stands.
    pub status: WorkerPluginStatus,
    /// Why it is unavailable or still loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The digest the worker runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// See [`WorkerPlugin::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerPluginStatus {
    /// It runs this version.
    Available,
    /// It has this version but cannot run it (a capability is missing).
    Unavailable,
    /// It has not loaded this version yet.
    Loading,
}

impl WorkerPluginStatus {
    /// A worker's own status of the version it has.
    pub fn of(status: PluginStatus) -> Self {
        match status {
            PluginStatus::Available => Self::Available,
            PluginStatus::Unavailable => Self::Unavailable,
        }
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Unavailable => "unavailable",
            Self::Loading => "loading",
        }
    }
}

/// Whether a worker is heartbeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Heartbeating within the lease TTL.
    Live,
    /// Stopped heartbeating, or replaced by a newer registration.
    Gone,
}

impl WorkerState {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Gone => "gone",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Live, Self::Gone]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// A worker as `GET /workers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// Registration id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Live or gone.
    pub state: WorkerState,
    /// Task types, plugins (with reasons when unavailable), capabilities.
    pub capabilities: WorkerCapabilities,
    /// Detected hardware.
    pub hardware: Hardware,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Slots.
    pub slots: u32,
    /// Tasks it runs now.
    pub running: u32,
    /// The worker's version.
    pub version: String,
    /// When it registered.
    pub registered_at: String,
    /// Its last heartbeat.
    pub last_heartbeat_at: String,
}

/// Roles a token can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tokens and plugins; also a user of its tenant.
    Admin,
    /// Submits and reads its tenant's tasks.
    User,
    /// Runs tasks: the worker routes only.
    Worker,
}

impl Role {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Worker => "worker",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Admin, Self::User, Self::Worker]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// `POST /tokens` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The tenant whose tasks the token owns.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// A note for people.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /tokens`'s answer: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// Token id (not secret).
    pub id: String,
    /// The bearer token; only its hash is stored.
    pub token: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// An error: a stable code, a message saying what to do, and field details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// Stable, machine-readable (`invalid_document`, `not_found`, …).
    pub code: String,
    /// For people: what is wrong and what to do.
    pub message: String,
    /// Per-field problems, with paths such as `spec.message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ApiError {
    /// The code of an answer whose body is not an error document (a proxy,
    /// another service): [`ApiError::from_body`] uses it.
    pub const NOT_FLOWMESH: &'static str = "http_error";
    /// A worker call about a registration the server no longer has: the
    /// worker registers again.
    pub const UNKNOWN_WORKER: &'static str = "unknown_worker";

    /// The error in an error answer's body: its error document, or one
    /// with code [`ApiError::NOT_FLOWMESH`] carrying the start of the text.
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice::<ErrorBody>(body)
            .map(|body| body.error)
            .unwrap_or_else(|_| Self {
                code: Self::NOT_FLOWMESH.to_string(),
                message: String::from_utf8_lossy(body).chars().take(300).collect(),
                details: Vec::new(),
            })
    }
}
