//! What the web console reads: a task list that searches a bounded window of
//! submission order, and the overview's counts, each from an index.
//!
//! Every query here costs the same however many tasks the store holds: the
//! task list walks at most [`BROWSE_WINDOW`] sequence numbers of the
//! tenant's index per page (a filter that matches rarely answers with fewer
//! rows and a cursor to search further back, not a full scan); the
//! overview's counts read partial indexes of pending and running tasks and
//! the finished-at index over the last minutes, never the table.

use std::collections::BTreeMap;

use flowmesh_types::api::{TaskState, WaitKind, Waiting};

use super::rows::{get_i64, get_opt_json, get_opt_str, get_str};
use super::task_record::{TaskRecord, parse_state};
use super::{Backend, Store, StoreError, TaskFilter};
use crate::clock::now_ms;

/// How many sequence numbers one page of the console's task list searches.
pub const BROWSE_WINDOW: i64 = 20_000;

/// A page of the console's task list.
#[derive(Debug, Default)]
pub struct TaskBrowse {
    /// The tasks found, newest first.
    pub tasks: Vec<TaskRecord>,
    /// Where the next page starts (exclusive), when older tasks may match.
    pub next_before: Option<i64>,
    /// True when the page is short because its window ended, not because
    /// no older task exists: the next page searches further back.
    pub window_ended: bool,
}

/// The overview's counts for one tenant, or for all when the caller is an
/// admin.
#[derive(Debug, Default)]
pub struct QueueCounts {
    /// Pending tasks a worker may claim, by task type.
    pub ready: Vec<(String, i64)>,
    /// Running and cancelling tasks by task type and state.
    pub active: Vec<(String, TaskState, i64)>,
    /// Tasks finished since the window's start, by state.
    pub finished: Vec<(TaskState, i64)>,
    /// Tasks finished in each bucket of the window, oldest first.
    pub finished_per_bucket: Vec<i64>,
}

/// A ready task and why it waits, as the overview lists it.
#[derive(Debug)]
pub struct WaitingTask {
    /// Its id.
    pub id: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its task type.
    pub task_type: String,
    /// Why it waits: its own reason (a retry delay), or the one placement
    /// recorded for its shape, if any.
    pub waiting: Option<Waiting>,
}

impl WaitingTask {
    /// The reason's case.
    pub fn kind(&self) -> Option<WaitKind> {
        self.waiting.as_ref().map(|waiting| waiting.kind)
    }
}

const READY_BY_TYPE: &str = "\
SELECT task_type, COUNT(*) AS n FROM tasks
WHERE state = 'pending' AND blocked = 0 AND ($1 IS NULL OR tenant = $1)
GROUP BY task_type ORDER BY task_type";
const ACTIVE_BY_TYPE: &str = "\
SELECT task_type, state, COUNT(*) AS n FROM tasks
WHERE state IN ('running', 'cancelling') AND ($1 IS NULL OR tenant = $1)
GROUP BY task_type, state ORDER BY task_type";
// One index range count per bucket: no sort, however many tasks finished.
const FINISHED_PER_BUCKET: &str = "\
WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < CAST($4 AS BIGINT) - 1)
SELECT CAST(b.i AS BIGINT) AS bucket, (SELECT COUNT(*) FROM tasks
    WHERE finished_at >= CAST($2 AS BIGINT) + b.i * CAST($3 AS BIGINT)
      AND finished_at < CAST($2 AS BIGINT) + (b.i + 1) * CAST($3 AS BIGINT)
      AND ($1 IS NULL OR tenant = $1)) AS n
FROM b";
// The few that did not succeed, by state; the rest succeeded.
const FINISHED_UNSUCCESSFUL: &str = "\
SELECT state, COUNT(*) AS n FROM tasks
WHERE finished_at >= $2 AND state <> 'succeeded' AND ($1 IS NULL OR tenant = $1)
GROUP BY state";
// PostgreSQL: both in one pass over the range, aggregated in a hash table
// (a sort is what makes the grouping slow on SQLite, not on PostgreSQL,
// where each index entry read may cost a visibility check on the table).
const FINISHED_BY_BUCKET_AND_STATE: &str = "\
SELECT (finished_at - $2) / $3 AS bucket, state, COUNT(*) AS n FROM tasks
WHERE finished_at IS NOT NULL AND finished_at >= $2 AND ($1 IS NULL OR tenant = $1)
GROUP BY 1, 2";
const OLDEST_READY: &str = concat!(
    "SELECT t.id, t.name, t.task_type, ",
    super::sql::waiting_now!("$3"),
    " AS waiting_now FROM tasks t
WHERE state = 'pending' AND blocked = 0 AND ($1 IS NULL OR tenant = $1)
ORDER BY seq LIMIT $2"
);

impl Store {
    /// A page of `tenant`'s tasks matching `filter` (and `name`, a part of
    /// the task's name), newest first, searching the sequence numbers from
    /// `filter.before_seq` back by at most [`BROWSE_WINDOW`].
    pub async fn browse_tasks(
        &self,
        tenant: &str,
        filter: &TaskFilter,
        name: Option<&str>,
    ) -> Result<TaskBrowse, StoreError> {
        let before = filter.before_seq.unwrap_or(i64::MAX);
        let newest: Option<i64> = if before == i64::MAX {
            sqlx::query_scalar("SELECT MAX(seq) FROM tasks WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(&self.reader)
                .await?
        } else {
            Some(before - 1)
        };
        let Some(newest) = newest else {
            return Ok(TaskBrowse::default());
        };
        let floor = (newest + 1 - BROWSE_WINDOW).max(0);
        let (label_key, label_value) = match &filter.label {
            Some((key, value)) => (Some(key.clone()), Some(value.clone())),
            None => (None, None),
        };
        let rows = sqlx::query(self.dialect.browse_tasks)
            .bind(tenant)
            .bind(filter.state.map(|state| state.as_str()))
            .bind(filter.task_type.clone())
            .bind(label_key)
            .bind(label_value)
            .bind(newest + 1)
            .bind(floor)
            .bind(name.map(str::to_string))
            .bind(i64::from(filter.limit) + 1)
            .bind(now_ms())
            .fetch_all(&self.reader)
            .await?;
        let mut tasks = rows
            .iter()
            .map(TaskRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if tasks.len() > filter.limit as usize {
            tasks.truncate(filter.limit as usize);
            let next_before = tasks.last().map(|task| task.seq);
            return Ok(TaskBrowse {
                tasks,
                next_before,
                window_ended: false,
            });
        }
        // Short: the window ended. Older tasks exist when the floor is above
        // the tenant's first task.
        let older: Option<i64> = if floor > 0 {
            sqlx::query_scalar("SELECT MAX(seq) FROM tasks WHERE tenant = $1 AND seq < $2")
                .bind(tenant)
                .bind(floor)
                .fetch_one(&self.reader)
                .await?
        } else {
            None
        };
        Ok(TaskBrowse {
            tasks,
            next_before: older.map(|seq| seq + 1),
            window_ended: older.is_some(),
        })
    }

    /// The overview's counts of `tenant`'s tasks (every tenant's when
    /// `None`), with the tasks finished since `since` in `buckets` buckets of
    /// `bucket_ms` each.
    pub async fn queue_counts(
        &self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<QueueCounts, StoreError> {
        let tenant = tenant.map(str::to_string);
        let mut counts = QueueCounts {
            finished_per_bucket: vec![0; buckets],
            ..QueueCounts::default()
        };
        for row in sqlx::query(READY_BY_TYPE)
            .bind(tenant.clone())
            .fetch_all(&self.reader)
            .await?
        {
            counts
                .ready
                .push((get_str(&row, "task_type")?, get_i64(&row, "n")?));
        }
        for row in sqlx::query(ACTIVE_BY_TYPE)
            .bind(tenant.clone())
            .fetch_all(&self.reader)
            .await?
        {
            counts.active.push((
                get_str(&row, "task_type")?,
                parse_state(&get_str(&row, "state")?)?,
                get_i64(&row, "n")?,
            ));
        }
        let finished = match self.backend {
            Backend::Sqlite => {
                self.finished_sqlite(tenant, since, bucket_ms, &mut counts)
                    .await?
            }
            Backend::Postgres => {
                self.finished_postgres(tenant, since, bucket_ms, &mut counts)
                    .await?
            }
        };
        counts.finished = finished.into_iter().collect();
        Ok(counts)
    }

    /// SQLite: one index range count per bucket, then the few finished
    /// tasks that did not succeed by state; the rest succeeded.
    async fn finished_sqlite(
        &self,
        tenant: Option<String>,
        since: i64,
        bucket_ms: i64,
        counts: &mut QueueCounts,
    ) -> Result<BTreeMap<TaskState, i64>, StoreError> {
        for row in sqlx::query(FINISHED_PER_BUCKET)
            .bind(tenant.clone())
            .bind(since)
            .bind(bucket_ms.max(1))
            .bind(counts.finished_per_bucket.len() as i64)
            .fetch_all(&self.reader)
            .await?
        {
            if let Some(slot) = bucket_slot(counts, get_i64(&row, "bucket")?) {
                *slot = get_i64(&row, "n")?;
            }
        }
        let mut finished = BTreeMap::new();
        let mut unsuccessful = 0;
        for row in sqlx::query(FINISHED_UNSUCCESSFUL)
            .bind(tenant)
            .bind(since)
            .fetch_all(&self.reader)
            .await?
        {
            let n = get_i64(&row, "n")?;
            unsuccessful += n;
            finished.insert(parse_state(&get_str(&row, "state")?)?, n);
        }
        let total: i64 = counts.finished_per_bucket.iter().sum();
        if total > unsuccessful {
            finished.insert(TaskState::Succeeded, total - unsuccessful);
        }
        Ok(finished)
    }

    /// PostgreSQL: buckets and states in one grouped pass.
    async fn finished_postgres(
        &self,
        tenant: Option<String>,
        since: i64,
        bucket_ms: i64,
        counts: &mut QueueCounts,
    ) -> Result<BTreeMap<TaskState, i64>, StoreError> {
        let mut finished = BTreeMap::new();
        for row in sqlx::query(FINISHED_BY_BUCKET_AND_STATE)
            .bind(tenant)
            .bind(since)
            .bind(bucket_ms.max(1))
            .fetch_all(&self.reader)
            .await?
        {
            let n = get_i64(&row, "n")?;
            *finished
                .entry(parse_state(&get_str(&row, "state")?)?)
                .or_default() += n;
            if let Some(slot) = bucket_slot(counts, get_i64(&row, "bucket")?) {
                *slot += n;
            }
        }
        Ok(finished)
    }

    /// The oldest `limit` ready tasks of `tenant` (every tenant's when
    /// `None`), with why each waits.
    pub async fn oldest_ready(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WaitingTask>, StoreError> {
        let rows = sqlx::query(OLDEST_READY)
            .bind(tenant.map(str::to_string))
            .bind(i64::from(limit))
            .bind(now_ms())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WaitingTask {
                    id: get_str(row, "id")?,
                    name: get_opt_str(row, "name")?,
                    task_type: get_str(row, "task_type")?,
                    waiting: get_opt_json(row, "waiting_now")?,
                })
            })
            .collect()
    }
}

/// The chart's bar for bucket number `bucket`, if it is in the window.
fn bucket_slot(counts: &mut QueueCounts, bucket: i64) -> Option<&mut i64> {
    usize::try_from(bucket)
        .ok()
        .and_then(|bucket| counts.finished_per_bucket.get_mut(bucket))
}
