//! Workflows: a row per workflow, a task row per stage.
//!
//! A stage with upstream stages, placeholders or a condition is stored
//! *blocked*: pending, but invisible to claims and placement, with the
//! waiting reason `dependencies`. Whenever a stage finishes, its workflow's
//! `changes` counter moves in the same transaction; the releaser
//! ([`crate::releaser`]) looks at workflows whose `changes` it has not
//! settled yet, so a stage finishing while the server is down is still
//! acted on after a restart. Releasing and ending a blocked stage are
//! conditional updates (`… AND blocked = 1`), so two servers racing over the
//! same workflow do it once.
//!
//! What a stage waits for, [`StagePlan`](super::StagePlan), is stored with
//! its task and defined in `stage_plan.rs`.

use std::collections::{BTreeMap, HashMap};

use flowmesh_types::api::WorkflowState;
use flowmesh_types::document::Metadata;
use sqlx::any::AnyRow;

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_i64, get_opt_str, get_str};
use super::task_record::{LockedTask, TaskRecord};
use super::tasks::{CancelOutcome, NewTask, cancel_locked};
use super::{Store, StoreError, decode_json, encode_json, sql};
use crate::clock::now_ms;

/// A workflow to store, with its stages' tasks.
pub struct NewWorkflow<'a> {
    /// Its id.
    pub id: &'a str,
    /// The owner.
    pub tenant: &'a str,
    /// Name and labels.
    pub metadata: &'a Metadata,
    /// One task per stage, in document order.
    pub stages: Vec<NewTask<'a>>,
    /// Submission time.
    pub now: i64,
}

/// A stored workflow.
#[derive(Debug, Clone)]
pub struct WorkflowRecord {
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
    /// State.
    pub state: WorkflowState,
    /// Cancelled by a request (its stages are being cancelled).
    pub cancel_requested: bool,
    /// Submitted.
    pub created_at: i64,
    /// Last change of a stage.
    pub updated_at: i64,
    /// When its last stage finished.
    pub finished_at: Option<i64>,
}

impl WorkflowRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let state = get_str(row, "state")?;
        Ok(Self {
            seq: get_i64(row, "seq")?,
            id: get_str(row, "id")?,
            tenant: get_str(row, "tenant")?,
            name: get_opt_str(row, "name")?,
            labels: decode_json("labels", &get_str(row, "labels")?)?,
            state: WorkflowState::parse(&state).ok_or_else(|| StoreError::Corrupt {
                what: "workflow state",
                error: format!("unknown state {state:?}"),
            })?,
            cancel_requested: get_i64(row, "cancel_requested")? != 0,
            created_at: get_i64(row, "created_at")?,
            updated_at: get_i64(row, "updated_at")?,
            finished_at: get_opt_i64(row, "finished_at")?,
        })
    }
}

/// What [`Store::list_workflows`] filters on.
#[derive(Debug, Clone, Default)]
pub struct WorkflowFilter {
    /// Only this state.
    pub state: Option<WorkflowState>,
    /// Only workflows submitted before the one with this sequence number.
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

impl Store {
    /// One workflow; `None` if it does not exist or belongs to another
    /// tenant (when `tenant` is given).
    pub async fn workflow(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        let row = sqlx::query(sql::WORKFLOW_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let record = WorkflowRecord::from_row(&row)?;
        Ok(tenant
            .is_none_or(|tenant| record.tenant == tenant)
            .then_some(record))
    }

    /// A workflow's stages' tasks, in document order.
    pub async fn workflow_stages(&self, id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = sqlx::query(sql::STAGES_OF_WORKFLOW)
            .bind(id)
            .bind(now_ms())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(TaskRecord::from_row).collect()
    }

    /// Workflows `ids` with their stages (in document order), two
    /// statements for them all in one read transaction, so they agree.
    /// Ids without a workflow are left out. The releaser reads with this,
    /// on the path from a stage's end to the next one's start: on SQLite
    /// through a connection driven directly ([`Store::read_consistently`]).
    pub async fn workflows_and_stages(
        &self,
        ids: &[String],
    ) -> Result<Vec<(WorkflowRecord, Vec<TaskRecord>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = encode_json(&ids);
        let mut lent = self.read_consistently().await?;
        let mut tx = lent.begin().await?;
        let stage_rows = sqlx::query(self.dialect.stages_of_workflows)
            .bind(&list)
            .bind(now_ms())
            .fetch_all(&mut tx)
            .await?;
        let workflow_rows = sqlx::query(self.dialect.workflows_by_ids)
            .bind(&list)
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        drop(lent);
        let mut stages: HashMap<String, Vec<TaskRecord>> = HashMap::new();
        for row in &stage_rows {
            let stage = TaskRecord::from_row(row)?;
            let workflow = stage
                .workflow
                .as_ref()
                .map(|at| at.workflow_id.clone())
                .unwrap_or_default();
            stages.entry(workflow).or_default().push(stage);
        }
        workflow_rows
            .iter()
            .map(|row| {
                let workflow = WorkflowRecord::from_row(row)?;
                let stages = stages.remove(&workflow.id).unwrap_or_default();
                Ok((workflow, stages))
            })
            .collect()
    }

    /// A tenant's workflows, newest first, each with how many of its stages
    /// are in each state.
    pub async fn list_workflows(
        &self,
        tenant: &str,
        filter: &WorkflowFilter,
    ) -> Result<Vec<(WorkflowRecord, BTreeMap<String, u32>)>, StoreError> {
        let rows = sqlx::query(sql::LIST_WORKFLOWS)
            .bind(tenant)
            .bind(filter.state.map(|state| state.as_str()))
            .bind(filter.before_seq.unwrap_or(i64::MAX))
            .bind(i64::from(filter.limit))
            .fetch_all(&self.reader)
            .await?;
        let records = rows
            .iter()
            .map(WorkflowRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(low), Some(high)) = (
            records.iter().map(|record| record.seq).min(),
            records.iter().map(|record| record.seq).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut counts: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
        for row in sqlx::query(sql::STAGE_COUNTS)
            .bind(tenant)
            .bind(low)
            .bind(high)
            .fetch_all(&self.reader)
            .await?
        {
            counts
                .entry(get_str(&row, "workflow_id")?)
                .or_default()
                .insert(get_str(&row, "state")?, get_i64(&row, "n")? as u32);
        }
        Ok(records
            .into_iter()
            .map(|record| {
                let counts = counts.remove(&record.id).unwrap_or_default();
                (record, counts)
            })
            .collect())
    }

    /// Up to `limit` workflows submitted after `after_seq` with stage
    /// changes the releaser has not acted on: `(seq, id, changes)`, oldest
    /// first. Read as [`Store::workflows_and_stages`] reads.
    pub async fn unsettled_workflows(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let mut lent = self.read_consistently().await?;
        let mut tx = lent.begin().await?;
        let rows = sqlx::query(sql::UNSETTLED_WORKFLOWS)
            .bind(i64::from(limit))
            .bind(after_seq)
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        drop(lent);
        rows.iter()
            .map(|row| {
                Ok((
                    get_i64(row, "seq")?,
                    get_str(row, "id")?,
                    get_i64(row, "changes")?,
                ))
            })
            .collect()
    }

    /// Cancels a workflow of `tenant`: every pending stage (held back or
    /// not) is cancelled, every running one asked to stop; the workflow ends
    /// `cancelled` once they have. `None` if there is no such workflow for
    /// the tenant.
    pub async fn cancel_workflow(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        let Some(workflow) = self.workflow(Some(tenant), id).await? else {
            return Ok(None);
        };
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        // Stage rows first, the workflow row last, as every transaction that
        // finishes a stage does: no lock-order inversion on PostgreSQL.
        let rows = sqlx::query(self.dialect.workflow_tasks_for_update)
            .bind(&workflow.id)
            .fetch_all(&mut tx)
            .await?;
        let mut events = NewEvents::default();
        for row in &rows {
            let task = LockedTask::from_row(row)?;
            if let CancelOutcome::Unchanged(state) =
                cancel_locked(&mut tx, &task, now, &mut events).await?
            {
                tracing::debug!(task = task.id, %state, "stage already finished");
            }
        }
        let requested = sqlx::query(sql::REQUEST_WORKFLOW_CANCEL)
            .bind(&workflow.id)
            .bind(now)
            .execute(&mut tx)
            .await?
            .rows_affected();
        if requested > 0 {
            events.push_workflow(
                &workflow.id,
                WorkflowState::Running,
                format!("cancel requested; {} stage(s) stopping", rows.len()),
            );
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(Some(events))
    }
}
