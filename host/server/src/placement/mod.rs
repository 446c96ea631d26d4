//! Placement: which live worker may run a pending task, and why none does.
//!
//! Like Nomad's feasibility checkers, placement is a chain of small named
//! [`Constraint`]s, each a rule between one task and one worker: does the
//! worker advertise the task type, is it of the task's tenant's pool (its
//! own workers, or shared ones where the tenant allows them), carry the
//! labels, have the CPU, memory
//! and GPUs at all, is the task past its retry delay, is the worker not the
//! one its last attempt failed on, and does it have a slot and the hardware
//! free now. [`check`] applies them to one worker; [`explain`] runs the
//! live workers through them in order and, when none is left, says which
//! constraint stopped them, with the count each one left ("3 live
//! worker(s); 2 advertise echo; 1 of them carries zone=eu; none has the
//! hardware: …").
//!
//! The claim does the same in SQL, inside one statement per backend
//! (`store/sqlite.rs`, `store/postgres.rs`), so a worker's claim takes
//! only what it may run. Those statements are tested against [`check`]:
//! the placement agreement test runs a table of workers × requests through
//! the SQL claim on SQLite and PostgreSQL and through [`check`] and
//! [`explain`], and fails on any disagreement. [`Constraint::ALL`] is the
//! list that test walks.

mod constraint;
mod explain;

use std::collections::BTreeMap;

use flowmesh_types::document::HardwareRequest;

pub use constraint::{Constraint, Refusal};
pub use explain::{explain, no_worker_for_type};

use crate::config::TenantPolicies;
use crate::store::{PendingShape, TaskRecord, Usage, WorkerRecord};

/// What a pending task asks of a worker.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The tenant whose task it is: the worker must be of its pool.
    pub tenant: &'a str,
    /// Whether the tenant's tasks may run on shared workers (its
    /// [`TenantPolicy`](crate::config::TenantPolicy)).
    pub shared_workers: bool,
    /// The task type the worker must advertise.
    pub task_type: &'a str,
    /// Labels the worker must carry, each with this value.
    pub labels: &'a BTreeMap<String, String>,
    /// CPU, memory and GPUs.
    pub hardware: &'a HardwareRequest,
    /// Not before this time (ms since the epoch): a retry's delay.
    pub run_after: i64,
    /// The worker (by name) its last attempt failed on, passed over until
    /// the given time.
    pub avoid: Option<(&'a str, i64)>,
    /// The tenant's limit of running tasks, and how many run now, where it
    /// has a limit (see [`TenantPolicy::max_running`](crate::config::TenantPolicy)).
    pub running_limit: Option<RunningLimit>,
}

/// A tenant's limit of tasks running at once, and how many run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningLimit {
    /// Its tasks running now, across the fleet.
    pub running: u64,
    /// The most that may.
    pub limit: u64,
}

impl<'a> Ask<'a> {
    /// What a stored task asks, under the tenants' rules `tenants` (its
    /// running limit is the caller's to set: it depends on what runs).
    pub fn of(task: &'a TaskRecord, tenants: &TenantPolicies) -> Self {
        Self {
            tenant: &task.tenant,
            shared_workers: tenants.of(&task.tenant).shared_workers,
            task_type: &task.task_type,
            labels: &task.worker_labels,
            hardware: &task.hardware,
            run_after: task.run_after,
            avoid: task.avoid_worker.as_deref().zip(task.avoid_until),
            running_limit: None,
        }
    }
}

impl<'a> Ask<'a> {
    /// What a group of pending tasks past their retry delay asks, under
    /// the tenants' rules `tenants`.
    pub fn of_shape(shape: &'a PendingShape, tenants: &TenantPolicies) -> Self {
        Self {
            tenant: &shape.tenant,
            shared_workers: tenants.of(&shape.tenant).shared_workers,
            task_type: &shape.task_type,
            labels: &shape.labels,
            hardware: &shape.hardware,
            run_after: 0,
            avoid: shape
                .avoid
                .as_ref()
                .map(|(worker, until)| (worker.as_str(), *until)),
            running_limit: None,
        }
    }
}

/// A live worker and what it runs now.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The worker.
    pub worker: &'a WorkerRecord,
    /// Its running tasks' share of its slots and hardware.
    pub usage: Usage,
}

/// Whether `candidate` may run `ask` at `now`; else the first constraint
/// that refuses, in [`Constraint::ALL`] order.
pub fn check(ask: &Ask<'_>, candidate: &Candidate<'_>, now: i64) -> Result<(), Refusal> {
    Constraint::ALL
        .iter()
        .try_for_each(|constraint| constraint.check(ask, candidate, now))
}
