//! Step 5 of admission: ids, rows, the write through the group-commit
//! writer, then the first events, the metrics and the wake-ups.
//!
//! The documents of one request are written whole or not at all. A tenant's
//! pending limit ([`TenantPolicy::max_pending`](crate::config::TenantPolicy))
//! is counted by the writer inside its transaction: a request that would
//! take the tenant past it is refused whole (a workflow counts every stage),
//! with the limit named, and nothing of it is stored.

use super::stage_rows::workflow_rows;
use super::{AdmitError, Checked, Rejection, RejectionKind};
use crate::group_commit::{Submission, TaskRow};
use crate::metrics::TypeLabel;
use crate::state::{AppState, now_ms};
use crate::store::SubmissionWrite;

/// What was stored for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredId {
    /// A task, by id.
    Task(String),
    /// A workflow, by id, with its stages' task ids in document order.
    Workflow {
        /// The workflow's id.
        id: String,
        /// Its stages' task ids.
        stage_ids: Vec<String>,
    },
}

impl StoredId {
    /// The id of the task or workflow.
    pub fn id(&self) -> &str {
        match self {
            Self::Task(id) | Self::Workflow { id, .. } => id,
        }
    }
}

/// Stores `documents` of `tenant` in one transaction; what was stored for
/// each, in order, and when.
pub(super) async fn write(
    state: &AppState,
    tenant: &str,
    documents: Vec<Checked>,
) -> Result<(Vec<StoredId>, i64), AdmitError> {
    let now = now_ms();
    let mut submission = Submission {
        tenant: tenant.to_string(),
        max_pending: state.config.tenants.of(tenant).max_pending,
        now,
        tasks: Vec::new(),
        workflows: Vec::new(),
    };
    let mut stored = Vec::with_capacity(documents.len());
    let mut task_types: Vec<String> = Vec::new();
    for document in documents {
        let id = uuid::Uuid::now_v7().to_string();
        match document {
            Checked::Task(document) => {
                task_types.push(document.spec.task_type.clone());
                stored.push(StoredId::Task(id.clone()));
                submission.tasks.push(TaskRow { id, document });
            }
            Checked::Workflow(workflow) => {
                let rows = workflow_rows(id.clone(), &workflow);
                task_types.extend(
                    workflow
                        .stages
                        .iter()
                        .map(|stage| stage.spec.task_type.clone()),
                );
                stored.push(StoredId::Workflow {
                    id,
                    stage_ids: rows.stages.iter().map(|stage| stage.id.clone()).collect(),
                });
                submission.workflows.push(rows);
            }
        }
    }
    let workflows = submission.workflows.len();
    let adds = task_types.len();
    let max_pending = submission.max_pending;
    let events = match state.submissions.submit(submission).await? {
        SubmissionWrite::Stored(events) => events,
        SubmissionWrite::OverLimit { pending } => {
            return Err(over_limit(tenant, pending, adds, max_pending.unwrap_or(0)).into());
        }
    };
    state.publish(events);
    for task_type in task_types {
        state
            .metrics
            .submitted
            .get_or_create(&TypeLabel { task_type })
            .inc();
    }
    if workflows > 0 {
        state.metrics.workflows_submitted.inc_by(workflows as u64);
        state.releaser.notify_one();
    }
    state.work.notify();
    Ok((stored, now))
}

fn over_limit(tenant: &str, pending: u64, adding: usize, limit: u64) -> Rejection {
    Rejection::new(
        RejectionKind::QuotaExceeded,
        format!(
            "tenant {tenant} has {pending} task(s) waiting and this adds {adding}, over its limit of {limit} (max-pending in the server's tenants file); nothing was stored: wait for some to start, or ask the operator to raise the limit"
        ),
        Vec::new(),
    )
}
