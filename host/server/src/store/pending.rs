//! The placement bookkeeping of pending tasks: grouping them by what
//! placement depends on, recording why each group waits, and failing a group
//! no worker could take for the whole grace period.
//!
//! Pending tasks that place alike — same tenant, type, hardware request,
//! required labels and the worker a retry passes over — form one
//! [`PendingShape`]. Placement explains a shape once, and records its
//! reason once, in a row of its own ([`ShapeKey`]), not on each of its
//! tasks.

use std::collections::BTreeMap;

use flowmesh_types::TaskError;
use flowmesh_types::api::{TaskState, Waiting};
use flowmesh_types::document::HardwareRequest;
use sha2::{Digest, Sha256};
use sqlx::Any;

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_str, get_str};
use super::task_record::hardware_from_row;
use super::terminal::terminal_events;
use super::{Store, StoreError, decode_json, encode_json, sql};

/// A group of pending tasks that place alike: same tenant, type, request
/// and required labels, and the same worker passed over (or none).
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
    /// The worker (by name) their last attempts failed on, still passed
    /// over, and until when.
    pub avoid: Option<(String, i64)>,
}

/// What identifies a shape in the store: its columns as the tasks carry
/// them, the worker passed over by name ('' when none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeKey {
    /// Whose tasks.
    pub tenant: String,
    /// Task type.
    pub task_type: String,
    /// CPU, in thousandths of a core.
    pub cpu_millis: i64,
    /// Memory.
    pub memory_bytes: i64,
    /// GPUs.
    pub gpu_count: i64,
    /// GPU model, '' for any.
    pub gpu_model: String,
    /// Memory per GPU.
    pub gpu_memory_bytes: i64,
    /// Required worker labels, as JSON.
    pub worker_labels: String,
    /// The worker passed over, '' for none.
    pub avoid_worker: String,
}

impl ShapeKey {
    /// The key's digest, hex SHA-256 of its columns (each text
    /// length-prefixed, each number 8 bytes): what a shape's row is written
    /// by.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for text in [&self.tenant, &self.task_type, &self.gpu_model] {
            hash.update((text.len() as u64).to_le_bytes());
            hash.update(text.as_bytes());
        }
        for number in [
            self.cpu_millis,
            self.memory_bytes,
            self.gpu_count,
            self.gpu_memory_bytes,
        ] {
            hash.update(number.to_le_bytes());
        }
        for text in [&self.worker_labels, &self.avoid_worker] {
            hash.update((text.len() as u64).to_le_bytes());
            hash.update(text.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

impl PendingShape {
    /// The shape's key in the store.
    pub fn key(&self) -> ShapeKey {
        let hardware = &self.hardware;
        ShapeKey {
            tenant: self.tenant.clone(),
            task_type: self.task_type.clone(),
            cpu_millis: hardware.cpu_millis(),
            memory_bytes: hardware.memory_bytes as i64,
            gpu_count: i64::from(hardware.gpu.count),
            gpu_model: hardware.gpu.model.clone().unwrap_or_default(),
            gpu_memory_bytes: hardware.gpu.memory_bytes as i64,
            worker_labels: encode_json(&self.labels),
            avoid_worker: self
                .avoid
                .as_ref()
                .map(|(worker, _)| worker.clone())
                .unwrap_or_default(),
        }
    }
}

/// How many statements a transaction of [`Store::record_waits`] holds, so
/// that a pass over many shapes holds SQLite's writer briefly at a time.
const WAITS_PER_TRANSACTION: usize = 32;

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
                    avoid: match get_opt_str(row, "avoiding")? {
                        Some(worker) => Some((worker, get_i64(row, "avoided_until")?)),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// The reason recorded for each shape, as [`Store::record_waits`] left
    /// it.
    pub async fn shape_waits(&self) -> Result<Vec<(ShapeKey, Waiting)>, StoreError> {
        let rows = sqlx::query(sql::SHAPE_WAITS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let key = ShapeKey {
                    tenant: get_str(row, "tenant")?,
                    task_type: get_str(row, "task_type")?,
                    cpu_millis: get_i64(row, "cpu_millis")?,
                    memory_bytes: get_i64(row, "memory_bytes")?,
                    gpu_count: get_i64(row, "gpu_count")?,
                    gpu_model: get_str(row, "gpu_model")?,
                    gpu_memory_bytes: get_i64(row, "gpu_memory_bytes")?,
                    worker_labels: get_str(row, "worker_labels")?,
                    avoid_worker: get_str(row, "avoid_worker")?,
                };
                Ok((key, decode_json("waiting", &get_str(row, "waiting")?)?))
            })
            .collect()
    }

    /// Records why the pending tasks of each shape of `record` wait, and
    /// forgets the reasons of the shapes of `forget`: a row per shape, not
    /// per task, so a deep queue costs no more than a shallow one. A task
    /// read back carries its shape's reason unless it has one of its own
    /// (the stages it waits for, a retry delay). Rows are written in the
    /// order of their digests, a few dozen a transaction: two servers on
    /// PostgreSQL never lock each other's rows crosswise, and SQLite's
    /// writer is held briefly at a time.
    pub async fn record_waits(
        &self,
        record: &[(ShapeKey, &Waiting)],
        forget: &[ShapeKey],
    ) -> Result<(), StoreError> {
        let mut writes: Vec<(String, &ShapeKey, Option<&Waiting>)> = record
            .iter()
            .map(|(key, waiting)| (key.digest(), key, Some(*waiting)))
            .chain(forget.iter().map(|key| (key.digest(), key, None)))
            .collect();
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in writes.chunks(WAITS_PER_TRANSACTION) {
            let mut writing = self.write().await?;
            let mut tx = writing.begin().await?;
            for (digest, key, waiting) in chunk {
                let query = match waiting {
                    Some(waiting) => {
                        key_query(sql::RECORD_SHAPE_WAIT, digest, key).bind(encode_json(waiting))
                    }
                    None => sqlx::query(sql::FORGET_SHAPE_WAIT).bind(digest),
                };
                query.execute(&mut tx).await?;
            }
            tx.commit().await?;
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
        let key = shape.key();
        let rows = shape_query(sql::FAIL_UNPLACEABLE, &key)
            .bind(encode_json(error))
            .bind(cutoff)
            .bind(now)
            .bind(&key.tenant)
            .fetch_all(&mut tx)
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

/// `statement` with the columns of `key` bound as `$1`–`$9` (the request
/// and labels, the tenant, the worker passed over) and `digest` as `$10`.
fn key_query<'q>(
    statement: &'static str,
    digest: &'q str,
    key: &'q ShapeKey,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    shape_query(statement, key)
        .bind(&key.tenant)
        .bind(&key.avoid_worker)
        .bind(digest)
}

/// `statement` with the request and labels of `key` bound as `$1`–`$7`.
fn shape_query<'q>(
    statement: &'static str,
    key: &'q ShapeKey,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    sqlx::query(statement)
        .bind(&key.task_type)
        .bind(key.cpu_millis)
        .bind(key.memory_bytes)
        .bind(key.gpu_count)
        .bind(&key.gpu_model)
        .bind(key.gpu_memory_bytes)
        .bind(&key.worker_labels)
}
