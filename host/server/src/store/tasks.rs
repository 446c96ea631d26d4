//! Tasks: submit, read, claim, complete, cancel, expire, and the placement
//! bookkeeping of pending tasks.
//!
//! Every change of state writes its event in the same transaction, and
//! returns the stored events so the caller can publish them to live watchers.

use std::collections::BTreeMap;

use flowmesh_types::api::{
    AttemptRecord, ClaimedTask, Completion, CompletionVerdict, EventBody, ResultEnvelope, StageRef,
    TaskState, Waiting,
};
use flowmesh_types::document::{GpuRequest, HardwareRequest, TaskDocument};
use flowmesh_types::{TaskError, TaskErrorCode};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_i64, get_opt_json, get_opt_str, get_str, rfc3339};
use super::workflows::StagePlan;
use super::{Store, StoreError, decode_json, encode_json, sql};

/// The most tasks one claim hands out.
const MAX_CLAIM: u32 = 256;

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
    /// Why it waits.
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

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptEnd<'a> {
    /// The worker reported it.
    Reported(&'a Completion),
    /// The worker stopped heartbeating, or was replaced.
    LeaseLost(String),
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

/// A group of pending tasks that place alike: same type, same request.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingShape {
    /// Task type.
    pub task_type: String,
    /// Hardware request.
    pub hardware: HardwareRequest,
    /// Labels the worker must carry.
    pub labels: BTreeMap<String, String>,
    /// How many tasks.
    pub count: i64,
    /// The oldest last change among them.
    pub oldest_update: i64,
}

/// How retries are spaced and steered.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the second attempt; doubles each attempt.
    pub backoff_ms: i64,
    /// The most a delay grows to.
    pub max_backoff_ms: i64,
    /// For this long after the delay, the worker of the failed attempt does
    /// not get the task while others may.
    pub avoid_ms: i64,
}

/// The columns of a task that decide how an attempt ends.
pub(super) struct LockedTask {
    seq: i64,
    pub(super) id: String,
    task_type: String,
    pub(super) state: TaskState,
    attempt: u32,
    max_attempts: u32,
    worker_name: Option<String>,
    started_at: Option<i64>,
    tenant: String,
}

impl LockedTask {
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
        })
    }
}

fn parse_state(name: &str) -> Result<TaskState, StoreError> {
    TaskState::parse(name).ok_or_else(|| StoreError::Corrupt {
        what: "task state",
        error: format!("unknown state {name:?}"),
    })
}

fn hardware_from_row(row: &AnyRow) -> Result<HardwareRequest, StoreError> {
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

impl TaskRecord {
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
            waiting: get_opt_json(row, "waiting")?,
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
        })
    }
}

impl Store {
    /// Stores a new pending task and its first event.
    pub async fn insert_task(&self, task: &NewTask<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        self.insert_tasks(std::slice::from_ref(task)).await
    }

    /// Stores new pending tasks and their first events in one transaction,
    /// with multi-row inserts. Returns the events in the order of `tasks`.
    pub async fn insert_tasks(
        &self,
        tasks: &[NewTask<'_>],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (_gate, mut tx) = self.write().await?;
        let mut events = NewEvents::default();
        insert_task_rows(&mut tx, tasks, &mut events).await?;
        let now = tasks.iter().map(|task| task.now).max().unwrap_or_default();
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(events)
    }

    /// One task; `None` if it does not exist or belongs to another tenant
    /// (when `tenant` is given).
    pub async fn task(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let row = sqlx::query(sql::TASK_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
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
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
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
        let (_gate, mut tx) = self.write().await?;
        let row = sqlx::query(self.dialect.task_for_update)
            .bind(id)
            .fetch_optional(&mut *tx)
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

    /// Claims up to `max` pending tasks for worker `worker_id` in one
    /// statement: only types the worker advertises, only requests that fit
    /// its free slots and hardware, oldest first. Considers at most `scan`
    /// candidate rows (and no more than four per task asked for).
    pub async fn claim(
        &self,
        worker_id: &str,
        now: i64,
        lease_ttl_ms: i64,
        max: u32,
        scan: u32,
    ) -> Result<(Vec<ClaimedTask>, Vec<StoredEvent>), StoreError> {
        let max = max.min(MAX_CLAIM);
        let (_gate, mut tx) = self.write().await?;
        let rows = sqlx::query(self.dialect.claim)
            .bind(worker_id)
            .bind(now)
            .bind(now + lease_ttl_ms)
            .bind(i64::from(max))
            .bind(i64::from(scan.min(max.saturating_mul(4).max(32)).max(max)))
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut events = NewEvents::default();
        for row in &rows {
            let task = ClaimedTask {
                id: get_str(row, "id")?,
                task_type: get_str(row, "task_type")?,
                spec: decode_json("spec", &get_str(row, "spec")?)?,
                attempt: get_i64(row, "attempt")? as u32,
                lease_token: get_str(row, "lease_token")?,
                timeout_ms: get_opt_i64(row, "timeout_ms")?.map(|ms| ms as u64),
                hardware: hardware_from_row(row)?,
            };
            events.push(
                &task.id,
                EventBody::State {
                    state: TaskState::Running,
                    attempt: task.attempt,
                    message: None,
                },
            );
            claimed.push(task);
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((claimed, events))
    }

    /// Records the outcomes a worker reports. Each is fenced: it is accepted
    /// only if its lease token is the task's current one, held by this
    /// worker, and not expired.
    pub async fn complete(
        &self,
        worker_id: &str,
        completions: &[Completion],
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<(Vec<CompletionVerdict>, Vec<StoredEvent>), StoreError> {
        let (_gate, mut tx) = self.write().await?;
        let mut verdicts = vec![CompletionVerdict::StaleLease; completions.len()];
        let mut events = NewEvents::default();
        // Rows are locked in id order, as every transaction that locks
        // several tasks does, so that two never wait on each other.
        let mut order: Vec<usize> = (0..completions.len()).collect();
        order.sort_by(|a, b| completions[*a].task_id.cmp(&completions[*b].task_id));
        for index in order {
            let completion = &completions[index];
            let row = sqlx::query(self.dialect.fenced_task)
                .bind(&completion.task_id)
                .bind(&completion.lease_token)
                .bind(worker_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                continue;
            };
            let task = LockedTask::from_row(&row)?;
            end_attempt(
                &mut tx,
                &task,
                AttemptEnd::Reported(completion),
                now,
                retry,
                &mut events,
            )
            .await?;
            verdicts[index] = CompletionVerdict::Accepted;
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok((verdicts, events))
    }

    /// Ends the attempts whose lease expired before `now`: they are retried
    /// (another worker preferred) or fail when out of attempts; a cancelling
    /// task becomes cancelled. Returns how many and the events.
    pub async fn expire_leases(
        &self,
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<(usize, Vec<StoredEvent>), StoreError> {
        let query = sqlx::query(self.dialect.expired_leases).bind(now);
        self.lose_leases(query, now, retry, |worker| {
            format!("the lease of worker {worker} expired: it stopped heartbeating")
        })
        .await
    }

    /// Ends the attempts held by registration `worker_id`, which was replaced
    /// by a newer registration of the same worker (it restarted).
    pub async fn release_worker_tasks(
        &self,
        worker_id: &str,
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = sqlx::query(self.dialect.tasks_of_worker).bind(worker_id);
        let (_, events) = self
            .lose_leases(query, now, retry, |worker| {
                format!(
                    "worker {worker} restarted and registered again; its earlier attempt is lost"
                )
            })
            .await?;
        Ok(events)
    }

    /// Ends, as lost leases, the attempts of the locked rows `query` selects;
    /// `message` says why, given the worker's name.
    async fn lose_leases(
        &self,
        query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
        now: i64,
        retry: &RetryPolicy,
        message: impl Fn(&str) -> String,
    ) -> Result<(usize, Vec<StoredEvent>), StoreError> {
        let (_gate, mut tx) = self.write().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        let mut events = NewEvents::default();
        for row in &rows {
            let task = LockedTask::from_row(row)?;
            let lost = AttemptEnd::LeaseLost(message(task.worker_name.as_deref().unwrap_or("?")));
            end_attempt(&mut tx, &task, lost, now, retry, &mut events).await?;
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok((rows.len(), events))
    }

    /// Pending tasks grouped by what placement depends on.
    pub async fn pending_shapes(&self) -> Result<Vec<PendingShape>, StoreError> {
        let rows = sqlx::query(sql::PENDING_SHAPES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingShape {
                    task_type: get_str(row, "task_type")?,
                    hardware: hardware_from_row(row)?,
                    labels: decode_json("worker_labels", &get_str(row, "worker_labels")?)?,
                    count: get_i64(row, "n")?,
                    oldest_update: get_i64(row, "oldest")?,
                })
            })
            .collect()
    }

    /// Records why the pending tasks of each shape wait (unless they are in
    /// a retry delay that has not run out), in one transaction.
    pub async fn set_waiting(
        &self,
        reasons: &[(&PendingShape, Waiting)],
        now: i64,
    ) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        let (_gate, mut tx) = self.write().await?;
        for (shape, waiting) in reasons {
            shape_query(sql::SET_WAITING, shape)
                .bind(encode_json(waiting))
                .bind(waiting.kind.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fails the pending tasks of `shape` unchanged since `cutoff` with
    /// `error` (no eligible worker for the whole grace period).
    pub async fn fail_unplaceable(
        &self,
        shape: &PendingShape,
        cutoff: i64,
        error: &TaskError,
        now: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (_gate, mut tx) = self.write().await?;
        let rows = shape_query(sql::FAIL_UNPLACEABLE, shape)
            .bind(encode_json(error))
            .bind(cutoff)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut events = NewEvents::default();
        for row in &rows {
            let id = get_str(row, "id")?;
            let attempt = get_i64(row, "attempt")? as u32;
            if let Some(workflow) = get_opt_str(row, "workflow_id")? {
                events.workflow_changed(workflow);
            }
            terminal_events(
                &id,
                attempt,
                TaskState::Failed,
                None,
                Some(error),
                &mut events,
            );
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(events)
    }

    /// Task counts by type and state.
    pub async fn queue_depth(&self) -> Result<Vec<(String, TaskState, i64)>, StoreError> {
        let rows = sqlx::query(sql::QUEUE_DEPTH).fetch_all(&self.pool).await?;
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

    /// Deletes tasks that finished before `cutoff`, with their events and
    /// attempts. Returns how many tasks.
    pub async fn collect_garbage(&self, cutoff: i64) -> Result<u64, StoreError> {
        let (_gate, mut tx) = self.write().await?;
        // Workflows last: which stages may go depends on their workflow rows.
        let mut deleted = 0;
        for statement in [
            sql::GC_EVENTS,
            sql::GC_ATTEMPTS,
            sql::GC_TASKS,
            sql::GC_WORKFLOW_EVENTS,
            sql::GC_WORKFLOWS,
        ] {
            let rows = sqlx::query(statement)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if statement == sql::GC_TASKS {
                deleted = rows;
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

fn shape_query<'q>(
    statement: &'static str,
    shape: &'q PendingShape,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let hardware = &shape.hardware;
    sqlx::query(statement)
        .bind(&shape.task_type)
        .bind(hardware.cpu_millis())
        .bind(hardware.memory_bytes as i64)
        .bind(i64::from(hardware.gpu.count))
        .bind(hardware.gpu.model.clone().unwrap_or_default())
        .bind(hardware.gpu.memory_bytes as i64)
        .bind(encode_json(&shape.labels))
}

/// Inserts `tasks` with multi-row statements and queues their first events.
pub(super) async fn insert_task_rows(
    tx: &mut Transaction<'static, Any>,
    tasks: &[NewTask<'_>],
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    for chunk in sql::fixed_chunks(tasks, 64) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|row| sql::task_row(row * sql::TASK_PARAMS))
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
                .bind(stage.map(|stage| stage.workflow_id.to_string()))
                .bind(stage.map(|stage| stage.name.to_string()))
                .bind(stage.map(|stage| encode_json(stage.plan)))
                .bind(i64::from(blocked.is_some()))
                .bind(blocked.map(encode_json))
                .bind(blocked.map(|waiting| waiting.kind.as_str()));
        }
        query.execute(&mut **tx).await?;
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
    tx: &mut Transaction<'static, Any>,
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
                .execute(&mut **tx)
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

/// Decides and records how an attempt ends: the terminal state, or a retry.
async fn end_attempt(
    tx: &mut Transaction<'static, Any>,
    task: &LockedTask,
    end: AttemptEnd<'_>,
    now: i64,
    retry: &RetryPolicy,
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    let worker = task.worker_name.clone().unwrap_or_default();
    let (outcome, result, error) =
        match end {
            AttemptEnd::Reported(completion) => match (&completion.output, &completion.error) {
                (Some(output), None) => {
                    let plugin = completion.plugin.clone().unwrap_or_else(|| {
                        flowmesh_types::api::PluginRef {
                            name: "?".into(),
                            version: "?".into(),
                            digest: "?".into(),
                        }
                    });
                    let summary = format!(
                        "{} ran on {worker} in {} ms (attempt {}/{}, {} {})",
                        task.task_type,
                        completion.elapsed_ms,
                        task.attempt,
                        task.max_attempts,
                        plugin.name,
                        plugin.version
                    );
                    let envelope = ResultEnvelope {
                        schema_version: flowmesh_types::api::RESULT_SCHEMA_VERSION,
                        task_type: task.task_type.clone(),
                        plugin,
                        output: output.clone(),
                        summary,
                        elapsed_ms: completion.elapsed_ms,
                        attempt: task.attempt,
                        worker: worker.clone(),
                    };
                    ("succeeded", Some(envelope), None)
                }
                (_, Some(error)) if error.code == TaskErrorCode::Released => {
                    ("released", None, Some(error.clone()))
                }
                (_, Some(error)) => ("failed", None, Some(error.clone())),
                (None, None) => (
                    "failed",
                    None,
                    Some(TaskError::new(
                        TaskErrorCode::InvalidOutput,
                        "the worker reported neither an output nor an error",
                    )),
                ),
            },
            AttemptEnd::LeaseLost(message) => (
                "lease_expired",
                None,
                Some(TaskError::new(TaskErrorCode::LeaseExpired, message)),
            ),
        };
    let cancelling = task.state == TaskState::Cancelling;
    let outcome = if cancelling { "cancelled" } else { outcome };
    sqlx::query(sql::INSERT_ATTEMPT)
        .bind(&task.id)
        .bind(i64::from(task.attempt))
        .bind(&worker)
        .bind(task.started_at.unwrap_or(now))
        .bind(now)
        .bind(outcome)
        .bind(error.as_ref().map(encode_json))
        .execute(&mut **tx)
        .await?;
    if cancelling {
        let error = TaskError::new(TaskErrorCode::Cancelled, "cancelled while running");
        return finish(
            tx,
            task,
            TaskState::Cancelled,
            None,
            Some(&error),
            now,
            events,
        )
        .await;
    }
    if let Some(result) = result {
        return finish(
            tx,
            task,
            TaskState::Succeeded,
            Some(result),
            None,
            now,
            events,
        )
        .await;
    }
    let error = error.unwrap_or_else(|| TaskError::new(TaskErrorCode::Host, "no error recorded"));
    let released = error.code == TaskErrorCode::Released;
    if released || (error.is_retryable() && task.attempt < task.max_attempts) {
        let shift = (task.attempt - 1).min(20);
        let delay = if released {
            0
        } else {
            retry
                .backoff_ms
                .saturating_mul(1 << shift)
                .min(retry.max_backoff_ms)
        };
        let run_after = now + delay;
        let waiting = Waiting {
            kind: flowmesh_types::api::WaitKind::RetryBackoff,
            message: format!(
                "attempt {} of {} failed ({}: {}); attempt {} runs after a {} ms delay, on another worker if one can take it",
                task.attempt,
                task.max_attempts,
                error.code,
                error.message,
                task.attempt + 1,
                delay
            ),
            counts: Default::default(),
        };
        sqlx::query(sql::RETRY_TASK)
            .bind(task.seq)
            .bind(run_after)
            .bind(&worker)
            .bind(run_after + retry.avoid_ms)
            .bind(encode_json(&error))
            .bind(now)
            .bind(encode_json(&waiting))
            .bind(i64::from(released))
            .execute(&mut **tx)
            .await?;
        events.push(
            &task.id,
            EventBody::State {
                state: TaskState::Pending,
                attempt: task.attempt + 1,
                message: Some(waiting.message),
            },
        );
        return Ok(());
    }
    finish(tx, task, TaskState::Failed, None, Some(&error), now, events).await
}

/// Moves a task to a terminal state and records its events.
pub(super) async fn finish(
    tx: &mut Transaction<'static, Any>,
    task: &LockedTask,
    state: TaskState,
    result: Option<ResultEnvelope>,
    error: Option<&TaskError>,
    now: i64,
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    let workflow = sqlx::query(sql::FINISH_TASK)
        .bind(task.seq)
        .bind(state.as_str())
        .bind(result.as_ref().map(encode_json))
        .bind(error.map(encode_json))
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| get_opt_str(&row, "workflow_id"))
        .transpose()?
        .flatten();
    if let Some(workflow) = workflow {
        events.workflow_changed(workflow);
    }
    terminal_events(&task.id, task.attempt, state, result, error, events);
    Ok(())
}

/// The state and result events of a task that just finished.
pub(super) fn terminal_events(
    id: &str,
    attempt: u32,
    state: TaskState,
    result: Option<ResultEnvelope>,
    error: Option<&TaskError>,
    events: &mut NewEvents,
) {
    events.push(
        id,
        EventBody::State {
            state,
            attempt,
            message: error.map(|error| error.message.clone()),
        },
    );
    events.push(
        id,
        EventBody::Result {
            state,
            result: result.map(Box::new),
            error: error.cloned(),
        },
    );
}
