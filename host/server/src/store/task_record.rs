//! Task rows as read back: the full [`TaskRecord`], the [`LockedTask`]
//! columns that decide how an attempt ends, and the column decoders they
//! share.
//!
//! Everything here turns an [`AnyRow`] into Rust values; nothing here runs a
//! query.

use std::collections::BTreeMap;

use flowmesh_types::TaskError;
use flowmesh_types::api::{PluginRef, ResultEnvelope, StageRef, TaskState, Waiting};
use flowmesh_types::document::{GpuRequest, HardwareRequest};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::rows::{get_i64, get_opt_i64, get_opt_json, get_opt_str, get_str};
use super::stage_plan::StagePlan;
use super::{StoreError, decode_json};
use crate::attempt_outcome::AttemptFacts;

/// A stored task.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// Submission order.
    pub seq: i64,
    /// Id.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taskType`.
    pub task_type: String,
    /// The plugin's fields.
    pub spec: Value,
    /// `spec.resources.hardware`.
    pub hardware: HardwareRequest,
    /// `spec.timeout`.
    pub timeout_ms: Option<u64>,
    /// `spec.maxAttempts`.
    pub max_attempts: u32,
    /// State.
    pub state: TaskState,
    /// Current or next attempt.
    pub attempt: u32,
    /// The worker of the current or last attempt.
    pub worker_name: Option<String>,
    /// Why it waits: its own reason, or its shape's.
    pub waiting: Option<Waiting>,
    /// The result.
    pub result: Option<ResultEnvelope>,
    /// The error.
    pub error: Option<TaskError>,
    /// Submitted.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Terminal.
    pub finished_at: Option<i64>,
    /// The workflow stage it is, if it is one.
    pub workflow: Option<StageRef>,
    /// What the stage waits for (workflow stages only).
    pub plan: Option<StagePlan>,
    /// Held back until its upstream stages finish.
    pub blocked: bool,
    /// Labels its worker must carry (`spec.resources.labels`).
    pub worker_labels: BTreeMap<String, String>,
    /// Not claimed before this time: a retry's delay.
    pub run_after: i64,
    /// The worker (by name) its last attempt failed on, passed over until
    /// [`TaskRecord::avoid_until`].
    pub avoid_worker: Option<String>,
    /// Until when [`TaskRecord::avoid_worker`] is passed over.
    pub avoid_until: Option<i64>,
}

impl TaskRecord {
    /// Decodes a row read with [`task_columns`](super::sql::task_columns).
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: get_i64(row, "seq")?,
            id: get_str(row, "id")?,
            tenant: get_str(row, "tenant")?,
            name: get_opt_str(row, "name")?,
            labels: decode_json("labels", &get_str(row, "labels")?)?,
            task_type: get_str(row, "task_type")?,
            spec: decode_json("spec", &get_str(row, "spec")?)?,
            hardware: hardware_from_row(row)?,
            timeout_ms: get_opt_i64(row, "timeout_ms")?.map(|ms| ms as u64),
            max_attempts: get_i64(row, "max_attempts")? as u32,
            state: parse_state(&get_str(row, "state")?)?,
            attempt: get_i64(row, "attempt")? as u32,
            worker_name: get_opt_str(row, "worker_name")?,
            waiting: get_opt_json(row, "waiting_now")?,
            result: get_opt_json(row, "result")?,
            error: get_opt_json(row, "error")?,
            created_at: get_i64(row, "created_at")?,
            updated_at: get_i64(row, "updated_at")?,
            finished_at: get_opt_i64(row, "finished_at")?,
            workflow: match (get_opt_str(row, "workflow_id")?, get_opt_str(row, "stage")?) {
                (Some(workflow_id), Some(stage)) => Some(StageRef { workflow_id, stage }),
                _ => None,
            },
            plan: get_opt_json(row, "stage_plan")?,
            blocked: get_i64(row, "blocked")? != 0,
            worker_labels: decode_json("worker_labels", &get_str(row, "worker_labels")?)?,
            run_after: get_i64(row, "run_after")?,
            avoid_worker: get_opt_str(row, "avoid_worker")?,
            avoid_until: get_opt_i64(row, "avoid_until")?,
        })
    }
}

/// The columns of a task, locked in a write transaction, that decide how it
/// is cancelled or how an attempt of it ends.
pub(super) struct LockedTask {
    /// Its row.
    pub(super) seq: i64,
    /// Its id.
    pub(super) id: String,
    /// Its type.
    pub(super) task_type: String,
    /// Its state.
    pub(super) state: TaskState,
    /// Its current attempt.
    pub(super) attempt: u32,
    /// How many attempts it may have.
    pub(super) max_attempts: u32,
    /// The worker of the current attempt.
    pub(super) worker_name: Option<String>,
    /// When the current attempt was claimed.
    pub(super) started_at: Option<i64>,
    /// Its owner.
    pub(super) tenant: String,
    /// The plugin the current attempt was routed to.
    pub(super) plugin: Option<PluginRef>,
}

impl LockedTask {
    /// Decodes a row with at least the columns of [`LockedTask`].
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: get_i64(row, "seq")?,
            id: get_str(row, "id")?,
            tenant: get_str(row, "tenant")?,
            task_type: get_str(row, "task_type")?,
            state: parse_state(&get_str(row, "state")?)?,
            attempt: get_i64(row, "attempt")? as u32,
            max_attempts: get_i64(row, "max_attempts")? as u32,
            worker_name: get_opt_str(row, "worker_name")?,
            started_at: get_opt_i64(row, "started_at")?,
            plugin: get_opt_json(row, "plugin")?,
        })
    }

    /// What [`crate::attempt_outcome::decide`] needs of it, with `worker`
    /// the name of the attempt's worker.
    pub(super) fn facts<'a>(&'a self, worker: &'a str) -> AttemptFacts<'a> {
        AttemptFacts {
            task_type: &self.task_type,
            state: self.state,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            worker,
            plugin: self.plugin.as_ref(),
        }
    }
}

/// Decodes a stored task state.
pub(super) fn parse_state(name: &str) -> Result<TaskState, StoreError> {
    TaskState::parse(name).ok_or_else(|| StoreError::Corrupt {
        what: "task state",
        error: format!("unknown state {name:?}"),
    })
}

/// Decodes the hardware request columns of a task row.
pub(super) fn hardware_from_row(row: &AnyRow) -> Result<HardwareRequest, StoreError> {
    Ok(HardwareRequest {
        cpu: get_i64(row, "cpu_millis")? as f64 / 1000.0,
        memory_bytes: get_i64(row, "memory_bytes")? as u64,
        gpu: GpuRequest {
            count: get_i64(row, "gpu_count")? as u32,
            model: get_opt_str(row, "gpu_model")?,
            memory_bytes: get_i64(row, "gpu_memory_bytes")? as u64,
        },
    })
}
