//! Task events: state changes, logs, progress and results, in one ordered
//! stream per task. The sequence number is the SSE event id.

use std::collections::{BTreeSet, HashSet};

use flowmesh_types::api::{EventBody, WorkflowState};
use sqlx::AssertSqlSafe;

use super::write_tx::WriteTx;

use super::rows::{get_i64, get_str};
use super::{Store, StoreError, decode_json, encode_json, sql};

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position, increasing.
    pub seq: i64,
    /// The task.
    pub task_id: String,
    /// When it was recorded.
    pub at: i64,
    /// What it says.
    pub body: EventBody,
}

/// Whose events to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStream<'a> {
    /// One task's.
    Task(&'a str),
    /// A workflow's own and all its stages'.
    Workflow(&'a str),
}

/// What a write transaction records besides its own rows: events, and the
/// workflows whose stages it finished.
#[derive(Default)]
pub(super) struct NewEvents {
    /// Each event's task and body, in order.
    events: Vec<(String, EventBody)>,
    /// The workflows a finished stage changed.
    changed: BTreeSet<String>,
    /// How many times a finished stage was noted, the same workflow's too.
    noted: usize,
}

impl NewEvents {
    /// Adds an event of task `task_id`.
    pub(super) fn push(&mut self, task_id: &str, body: EventBody) {
        self.events.push((task_id.to_string(), body));
    }

    /// Adds an event of workflow `id`: its state, and why.
    pub(super) fn push_workflow(&mut self, id: &str, state: WorkflowState, message: String) {
        self.push(
            id,
            EventBody::Workflow {
                state,
                message: Some(message),
            },
        );
    }

    /// Notes that a stage of `workflow` finished: [`NewEvents::write`] tells
    /// the releaser, once per workflow, in id order, as the transaction's
    /// last writes (after every task row it locked, so that transactions
    /// lock workflow rows in one order).
    pub(super) fn workflow_changed(&mut self, workflow: String) {
        self.changed.insert(workflow);
        self.noted += 1;
    }

    /// How many events there are so far.
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// How many times a finished stage was noted so far
    /// ([`NewEvents::workflow_changed`]), the same workflow's too: a part
    /// of the transaction finished a stage when this grew while it ran.
    pub(super) fn workflows_noted(&self) -> usize {
        self.noted
    }

    /// Takes the workflows noted changed, for a caller that writes their
    /// rows itself, in its own order, before [`NewEvents::write`].
    pub(super) fn take_changed_workflows(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// Inserts the events, in order, with multi-row statements. Sequence
    /// numbers are allocated in row order, so sorting the returned ones
    /// pairs them with the events.
    pub(super) async fn write(
        self,
        tx: &mut WriteTx<'_>,
        at: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        for workflow in &self.changed {
            sqlx::query(sql::WORKFLOW_CHANGED)
                .bind(workflow)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        let marks = sql::Marks::of(tx);
        let mut seqs = Vec::with_capacity(self.events.len());
        for chunk in sql::padded_chunks(&self.events, 3) {
            seqs.extend(insert_events(tx, marks, &chunk, at).await?);
        }
        // The events move into what is returned: no copy of their bodies.
        Ok(seqs
            .into_iter()
            .zip(self.events)
            .map(|(seq, (task_id, body))| StoredEvent {
                seq,
                task_id,
                at,
                body,
            })
            .collect())
    }
}

/// Inserts `events` with one statement; their sequence numbers, in row
/// order. On SQLite the statement runs inside a write transaction, which
/// holds the database's only write lock, and numbers its rows one after
/// another, so the last row's number gives them all without returning a row
/// per event from SQLite's thread; PostgreSQL returns them.
async fn insert_events(
    tx: &mut WriteTx<'_>,
    marks: sql::Marks,
    events: &sql::Padded<'_, (String, EventBody)>,
    at: i64,
) -> Result<Vec<i64>, StoreError> {
    // Padding rows have no task.
    let insert = format!(
        "INSERT INTO task_events (task_id, at, body) SELECT * FROM (VALUES {}) AS v \
         WHERE v.column1 IS NOT NULL",
        events.values(marks)
    );
    let statement = match marks {
        sql::Marks::Positional => insert,
        sql::Marks::Numbered => format!("{insert} RETURNING seq"),
    };
    let mut query = sqlx::query(AssertSqlSafe(statement));
    for event in events.rows() {
        query = query
            .bind(event.map(|(task_id, _)| task_id.as_str()))
            .bind(event.map(|_| at))
            .bind(event.map(|(_, body)| encode_json(body)));
    }
    match marks {
        sql::Marks::Positional => {
            let done = query.execute(&mut *tx).await?;
            let (Some(last), count) = (done.last_insert_id(), done.rows_affected()) else {
                return Err(StoreError::Corrupt {
                    what: "task_events",
                    error: "SQLite gave no row id for the inserted events".into(),
                });
            };
            let count = count as i64;
            Ok((last - count + 1..=last).collect())
        }
        sql::Marks::Numbered => {
            let mut seqs: Vec<i64> = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| get_i64(row, "seq"))
                .collect::<Result<_, _>>()?;
            seqs.sort_unstable();
            Ok(seqs)
        }
    }
}

impl Store {
    /// Appends events reported by the worker holding the lease of each task.
    /// Events for a task whose lease is not the given one are dropped: they
    /// come from an attempt that no longer counts.
    pub async fn append_task_events(
        &self,
        worker_id: &str,
        batches: &[flowmesh_types::api::TaskEvents],
        now: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut events = NewEvents::default();
        self.append_events_in(&mut tx, worker_id, batches, &mut events)
            .await?;
        let stored = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The events of [`Store::append_task_events`], added to `events` inside
    /// `tx`.
    pub(super) async fn append_events_in(
        &self,
        tx: &mut WriteTx<'_>,
        worker_id: &str,
        batches: &[flowmesh_types::api::TaskEvents],
        events: &mut NewEvents,
    ) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        let tokens: Vec<&str> = batches
            .iter()
            .map(|batch| batch.lease_token.as_str())
            .collect();
        let held: HashSet<(String, String)> = sqlx::query(self.dialect.held_leases)
            .bind(worker_id)
            .bind(encode_json(&tokens))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((get_str(row, "id")?, get_str(row, "lease_token")?)))
            .collect::<Result<_, StoreError>>()?;
        for batch in batches {
            if !held.contains(&(batch.task_id.clone(), batch.lease_token.clone())) {
                continue;
            }
            for event in &batch.events {
                events.push(&batch.task_id, EventBody::Task(event.clone()));
            }
        }
        Ok(())
    }

    /// Events of `task_id` after `after_seq`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        stream: EventStream<'_>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, id) = match stream {
            EventStream::Task(id) => (sql::EVENTS_AFTER, id),
            EventStream::Workflow(id) => (sql::WORKFLOW_EVENTS_AFTER, id),
        };
        let rows = sqlx::query(statement)
            .bind(id)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    seq: get_i64(row, "seq")?,
                    task_id: get_str(row, "task_id")?,
                    at: get_i64(row, "at")?,
                    body: decode_json("event", &get_str(row, "body")?)?,
                })
            })
            .collect()
    }
}
