//! The placement bookkeeping of pending tasks: grouping them by what
//! placement depends on, recording why each group waits, and failing a group
//! no worker could take for the whole grace period.
//!
//! Pending tasks that place alike — same tenant, type, hardware request and
//! required labels — form one [`PendingShape`], so placement explains and updates a
//! group with one statement rather than a task at a time.

use std::collections::BTreeMap;

use flowmesh_types::TaskError;
use flowmesh_types::api::{TaskState, Waiting};
use flowmesh_types::document::HardwareRequest;
use sqlx::Any;

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_str, get_str};
use super::task_record::hardware_from_row;
use super::terminal::terminal_events;
use super::{Backend, Store, StoreError, decode_json, encode_json, sql};

/// A group of pending tasks that place alike: same tenant, same type, same
/// request.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingShape {
    /// Whose tasks they are (which decides the workers that may run them).
    pub tenant: String,
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
    /// The newest one's sequence number: a shape whose newest task is the
    /// same as at the last pass gained no task since.
    pub newest: i64,
    /// The worker (by name) their last attempts failed on, still passed
    /// over, and until when.
    pub avoid: Option<(String, i64)>,
}

/// Which pending tasks of a shape [`Store::set_waiting`] records a reason on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingRows {
    /// Every one.
    All,
    /// Those after this sequence number: the shape's reason is the one
    /// recorded on the others.
    After(i64),
    /// Those with no reason, or a retry delay's: the others hold the
    /// shape's reason already.
    Unexplained,
}

impl Store {
    /// Pending tasks past their retry delay at `now`, grouped by what
    /// placement depends on.
    pub async fn pending_shapes(&self, now: i64) -> Result<Vec<PendingShape>, StoreError> {
        let rows = sqlx::query(sql::PENDING_SHAPES)
            .bind(now)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingShape {
                    tenant: get_str(row, "tenant")?,
                    task_type: get_str(row, "task_type")?,
                    hardware: hardware_from_row(row)?,
                    labels: decode_json("worker_labels", &get_str(row, "worker_labels")?)?,
                    count: get_i64(row, "n")?,
                    oldest_update: get_i64(row, "oldest")?,
                    newest: get_i64(row, "newest")?,
                    avoid: match get_opt_str(row, "avoiding")? {
                        Some(worker) => Some((worker, get_i64(row, "avoided_until")?)),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// Records why the pending tasks of each shape wait (unless they are in
    /// a retry delay that has not run out), on the tasks of it that `rows`
    /// says, in chunks of 64 rows (SQLite) or a few thousand
    /// (PostgreSQL, skipping rows a claim holds), a transaction each: a
    /// pass over a deep queue never holds SQLite's one writer, nor
    /// PostgreSQL's row locks, for long, so claims go on between chunks.
    /// On SQLite a reader first finds the shapes with a task to record on:
    /// most shapes of a deep queue have none on most passes.
    pub async fn set_waiting(
        &self,
        reasons: &[(&PendingShape, &Waiting, WaitingRows)],
        now: i64,
    ) -> Result<(), StoreError> {
        let (statement, chunk) = match self.backend {
            Backend::Sqlite => (sql::SQLITE_SET_WAITING, sql::SQLITE_WAITING_CHUNK),
            Backend::Postgres => (sql::POSTGRES_SET_WAITING, sql::POSTGRES_WAITING_CHUNK),
        };
        for (shape, waiting, rows) in reasons {
            let (mut after, unexplained) = match rows {
                WaitingRows::All => (0, false),
                WaitingRows::After(seq) => (*seq, false),
                WaitingRows::Unexplained => (0, true),
            };
            if self.backend == Backend::Sqlite {
                let found = waiting_query(
                    sql::WOULD_SET_WAITING,
                    shape,
                    waiting,
                    now,
                    after,
                    unexplained,
                )
                .fetch_optional(&self.reader)
                .await?;
                if found.is_none() {
                    continue;
                }
            }
            loop {
                let mut writing = self.write().await?;
                let mut tx = writing.begin().await?;
                let written = waiting_query(statement, shape, waiting, now, after, unexplained)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                if written.len() < chunk {
                    break;
                }
                for row in &written {
                    after = after.max(get_i64(row, "seq")?);
                }
            }
        }
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
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let rows = shape_query(sql::FAIL_UNPLACEABLE, shape)
            .bind(encode_json(error))
            .bind(cutoff)
            .bind(now)
            .bind(&shape.tenant)
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
}

/// `statement` (one of [`sql::SQLITE_SET_WAITING`],
/// [`sql::POSTGRES_SET_WAITING`], [`sql::WOULD_SET_WAITING`])
/// recording `waiting` on `shape`'s tasks after `after`.
fn waiting_query<'q>(
    statement: &'static str,
    shape: &'q PendingShape,
    waiting: &Waiting,
    now: i64,
    after: i64,
    unexplained: bool,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    shape_query(statement, shape)
        .bind(encode_json(waiting))
        .bind(waiting.kind.as_str())
        .bind(now)
        .bind(
            shape
                .avoid
                .as_ref()
                .map_or("", |(worker, _)| worker.as_str()),
        )
        .bind(&shape.tenant)
        .bind(after)
        .bind(i64::from(unexplained))
}

/// `statement` with the columns of `shape` bound as `$1`–`$7`.
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
