//! Task events: state changes, logs, progress and results, in one ordered
//! stream per task. The sequence number is the SSE event id.

use flowmesh_types::api::EventBody;
use sqlx::{Any, Transaction};

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

pub(super) async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    task_id: &str,
    at: i64,
    body: &EventBody,
) -> Result<StoredEvent, StoreError> {
    let seq: i64 = sqlx::query_scalar(sql::INSERT_EVENT)
        .bind(task_id)
        .bind(at)
        .bind(encode_json(body))
        .fetch_one(&mut **tx)
        .await?;
    Ok(StoredEvent {
        seq,
        task_id: task_id.to_string(),
        at,
        body: body.clone(),
    })
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
        let mut tx = self.write().await?;
        let mut stored = Vec::new();
        for batch in batches {
            let current = sqlx::query(self.dialect.fenced_task)
                .bind(&batch.task_id)
                .bind(&batch.lease_token)
                .bind(worker_id)
                .bind(i64::MIN)
                .fetch_optional(&mut *tx)
                .await?;
            if current.is_none() {
                continue;
            }
            for event in &batch.events {
                stored.push(
                    insert_event(
                        &mut tx,
                        &batch.task_id,
                        now,
                        &EventBody::Task(event.clone()),
                    )
                    .await?,
                );
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Events of `task_id` after `after_seq`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        task_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(sql::EVENTS_AFTER)
            .bind(task_id)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
