//! The worker protocol: register, claim, heartbeat, events and complete
//! (the module above has the overview).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fleet::Hardware;
use super::tasks::PluginRef;
use crate::capability::WorkerCapabilities;
use crate::document::HardwareRequest;
use crate::event::TaskEvent;
use crate::task_error::TaskError;

/// The most slots a worker may register: far past any host, and small
/// enough that slots and the tasks held ahead of them never overflow a
/// count.
pub const MAX_SLOTS: u32 = 65_536;

/// How many tasks a worker may hold ahead per slot
/// ([`WorkerRegistration::read_ahead`]).
///
/// Tasks of microseconds finish by the hundred while one round trip is on
/// the way: a worker with 16 slots that may hold only 16 more claims 32
/// tasks per trip and leaves its slots idle for most of each trip. Within
/// this bound the worker's pace holds what its slots finish during one
/// trip, and one task for tasks of seconds.
pub const READ_AHEAD_PER_SLOT: u32 = 8;

/// The most tasks a worker with `slots` slots may hold ahead:
/// [`READ_AHEAD_PER_SLOT`] for each slot.
pub fn max_read_ahead(slots: u32) -> u32 {
    slots.saturating_mul(READ_AHEAD_PER_SLOT)
}

/// `POST /worker/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerRegistration {
    /// Stable name (the host name by default). Registering again under the
    /// same name with the same token replaces the earlier registration and
    /// releases its tasks; a live worker of that name registered with
    /// another token makes the registration fail (409).
    pub name: String,
    /// What it can run.
    pub capabilities: WorkerCapabilities,
    /// What it has.
    pub hardware: Hardware,
    /// Operator labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Tasks it runs at once: at least 1, at most [`MAX_SLOTS`].
    pub slots: u32,
    /// Tasks it may hold beyond its slots: claimed ahead, each starts as a
    /// slot frees, without waiting for a round trip. At most
    /// [`READ_AHEAD_PER_SLOT`] (8) times `slots`.
    #[serde(default)]
    pub read_ahead: u32,
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

/// `POST /worker/deregister`: a worker stopping cleanly. Its registration
/// ends at once and the tasks it still holds go back to pending, rather than
/// waiting for its leases to expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Deregistration {
    /// From [`Registered`].
    pub worker_id: String,
}

/// `POST /worker/claim`: the worker's one round trip. It delivers what the
/// worker's attempts produced since its last call (events, then outcomes),
/// and claims new tasks, all in one transaction on the server. A busy worker
/// thus makes one call per batch of finished tasks, not one per task and
/// kind. A claim that delivers something answers at once; one that delivers
/// nothing may wait for work (a long poll).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// From [`Registered`].
    pub worker_id: String,
    /// At most this many tasks (the worker's free slots and a small
    /// read-ahead); 0 only delivers.
    pub max_tasks: u32,
    /// Wait up to this long for work before answering with none (ignored
    /// when the request delivers events or completions).
    pub wait_ms: u64,
    /// Logs and progress of running tasks, recorded first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TaskEvents>,
    /// Outcomes, each fenced by its lease token, recorded before the claim
    /// (so the slots they free count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<Completion>,
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
    /// What the server did with each of the request's completions, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<CompletionVerdict>,
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
