//! Tasks: submit, read, list and cancel.
//!
//! Every change of state writes its event in the same transaction, and
//! returns the stored events so the caller can publish them to live watchers.
//! What happens to a task once a worker holds it is in `attempts.rs`; the
//! bookkeeping of pending tasks that placement does is in `pending.rs`.

use flowmesh_types::api::{AttemptRecord, EventBody, TaskState, Waiting};
use flowmesh_types::document::TaskDocument;
use flowmesh_types::{TaskError, TaskErrorCode};
use sqlx::AssertSqlSafe;

use super::write_tx::WriteTx;

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_json, get_str, rfc3339};
use super::stage_plan::StagePlan;
use super::task_record::{LockedTask, TaskRecord, parse_state};
use super::terminal::finish;
use super::{Store, StoreError, encode_json, sql};
use crate::clock::now_ms;

/// A task to store.
pub struct NewTask<'a> {
    /// Its id.
    pub id: &'a str,
    /// The owner.
    pub tenant: &'a str,
    /// The checked document.
    pub document: &'a TaskDocument,
    /// Submission time.
    pub now: i64,
    /// The workflow stage it is, if it is one.
    pub stage: Option<NewStage<'a>>,
}

/// What a workflow stage's task stores besides the task.
pub struct NewStage<'a> {
    /// The workflow.
    pub workflow_id: &'a str,
    /// The stage's name.
    pub name: &'a str,
    /// What it waits for.
    pub plan: &'a StagePlan,
    /// Held back until the releaser lets it go (it has upstream stages,
    /// placeholders or a condition), with the reason shown meanwhile.
    pub blocked: Option<Waiting>,
}

/// What [`Store::list_tasks`] filters on.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this state.
    pub state: Option<TaskState>,
    /// Only this task type.
    pub task_type: Option<String>,
    /// Only tasks with this label set to this value.
    pub label: Option<(String, String)>,
    /// Only tasks submitted before the task with this sequence number.
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// What [`Store::cancel_task`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was pending: now cancelled.
    Cancelled,
    /// It was running: now cancelling, the worker will be told.
    Cancelling,
    /// It had already finished (or was already cancelling): nothing changed.
    Unchanged(TaskState),
}

impl Store {
    /// One task; `None` if it does not exist or belongs to another tenant
    /// (when `tenant` is given).
    pub async fn task(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let row = sqlx::query(sql::TASK_BY_ID)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let record = TaskRecord::from_row(&row)?;
        Ok(tenant
            .is_none_or(|tenant| record.tenant == tenant)
            .then_some(record))
    }

    /// Finished attempts of a task, oldest first.
    pub async fn attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(sql::ATTEMPTS_OF_TASK)
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRecord {
                    attempt: get_i64(row, "attempt")? as u32,
                    worker: get_str(row, "worker_name")?,
                    started_at: rfc3339(get_i64(row, "started_at")?),
                    finished_at: rfc3339(get_i64(row, "finished_at")?),
                    outcome: get_str(row, "outcome")?,
                    error: get_opt_json(row, "error")?,
                    plugin: get_opt_json(row, "plugin")?,
                })
            })
            .collect()
    }

    /// A tenant's tasks, newest first.
    pub async fn list_tasks(
        &self,
        tenant: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let (label_key, label_value) = match &filter.label {
            Some((key, value)) => (Some(key.clone()), Some(value.clone())),
            None => (None, None),
        };
        let rows = sqlx::query(self.dialect.list_tasks)
            .bind(tenant)
            .bind(filter.state.map(|state| state.as_str()))
            .bind(filter.task_type.clone())
            .bind(label_key)
            .bind(label_value)
            .bind(filter.before_seq.unwrap_or(i64::MAX))
            .bind(i64::from(filter.limit))
            .bind(now_ms())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(TaskRecord::from_row).collect()
    }

    /// Cancels a task of `tenant`: pending ⇒ cancelled, running ⇒ cancelling,
    /// otherwise unchanged. `None` if there is no such task for the tenant.
    pub async fn cancel_task(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<(CancelOutcome, Vec<StoredEvent>)>, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let row = sqlx::query(self.dialect.task_for_update)
            .bind(id)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let task = LockedTask::from_row(&row)?;
        if task.tenant != tenant {
            return Ok(None);
        }
        let mut events = NewEvents::default();
        let outcome = cancel_locked(&mut tx, &task, now, &mut events).await?;
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(Some((outcome, events)))
    }

    /// How many of `tenant`'s tasks are pending (stages held back included).
    pub async fn pending_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(sql::PENDING_OF_TENANT)
            .bind(tenant)
            .fetch_one(&self.reader)
            .await?;
        Ok(count.max(0) as u64)
    }

    /// Task counts by type and state.
    pub async fn queue_depth(&self) -> Result<Vec<(String, TaskState, i64)>, StoreError> {
        let rows = sqlx::query(sql::QUEUE_DEPTH)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get_str(row, "task_type")?,
                    parse_state(&get_str(row, "state")?)?,
                    get_i64(row, "n")?,
                ))
            })
            .collect()
    }
}

/// Inserts `tasks` with multi-row statements and queues their first events.
pub(super) async fn insert_task_rows(
    tx: &mut WriteTx<'_>,
    tasks: &[&NewTask<'_>],
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    for chunk in sql::fixed_chunks(tasks, sql::TASK_PARAMS) {
        let marks = sql::Marks::of(tx);
        let rows: Vec<String> = (0..chunk.len())
            .map(|row| sql::task_row(marks, row * sql::TASK_PARAMS))
            .collect();
        let statement = format!("{}{}", sql::INSERT_TASKS, rows.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(statement));
        for task in chunk {
            let spec = &task.document.spec;
            let hardware = &spec.resources.hardware;
            let stage = task.stage.as_ref();
            let blocked = stage.and_then(|stage| stage.blocked.as_ref());
            query = query
                .bind(task.id.to_string())
                .bind(task.tenant.to_string())
                .bind(task.document.metadata.name.clone())
                .bind(encode_json(&task.document.metadata.labels))
                .bind(spec.task_type.clone())
                .bind(encode_json(&spec.plugin_fields))
                .bind(hardware.cpu_millis())
                .bind(hardware.memory_bytes as i64)
                .bind(i64::from(hardware.gpu.count))
                .bind(hardware.gpu.model.clone())
                .bind(hardware.gpu.memory_bytes as i64)
                .bind(encode_json(&spec.resources.labels))
                .bind(spec.timeout.map(|timeout| timeout.as_millis() as i64))
                .bind(i64::from(spec.max_attempts))
                .bind(task.now)
                .bind(task.now)
                .bind(task.now)
                .bind(stage.map(|stage| stage.workflow_id.to_string()))
                .bind(stage.map(|stage| stage.name.to_string()))
                .bind(stage.map(|stage| encode_json(stage.plan)))
                .bind(i64::from(blocked.is_some()))
                .bind(blocked.map(encode_json))
                .bind(blocked.map(|waiting| waiting.kind.as_str()));
        }
        query.execute(&mut *tx).await?;
        for task in chunk {
            let message = match &task.stage {
                Some(NewStage {
                    name,
                    blocked: Some(waiting),
                    ..
                }) => format!("submitted as stage {name}; {}", waiting.message),
                Some(NewStage { name, .. }) => format!("submitted as stage {name}"),
                None => "submitted".to_string(),
            };
            events.push(
                task.id,
                EventBody::State {
                    state: TaskState::Pending,
                    attempt: 1,
                    message: Some(message),
                },
            );
        }
    }
    Ok(())
}

/// Cancels a locked task: pending ⇒ cancelled, running ⇒ cancelling,
/// otherwise unchanged.
pub(super) async fn cancel_locked(
    tx: &mut WriteTx<'_>,
    task: &LockedTask,
    now: i64,
    events: &mut NewEvents,
) -> Result<CancelOutcome, StoreError> {
    let outcome = match task.state {
        TaskState::Pending => {
            let error = TaskError::new(TaskErrorCode::Cancelled, "cancelled before it started");
            finish(
                tx,
                task,
                TaskState::Cancelled,
                None,
                Some(&error),
                now,
                events,
            )
            .await?;
            CancelOutcome::Cancelled
        }
        TaskState::Running => {
            sqlx::query(sql::MARK_CANCELLING)
                .bind(task.seq)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            events.push(
                &task.id,
                EventBody::State {
                    state: TaskState::Cancelling,
                    attempt: task.attempt,
                    message: Some("cancel requested; the worker is interrupting it".into()),
                },
            );
            CancelOutcome::Cancelling
        }
        state => CancelOutcome::Unchanged(state),
    };
    Ok(outcome)
}
