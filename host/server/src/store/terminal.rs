//! Ending a task: the `FINISH_TASKS` update and the state and result events
//! every terminal state writes.
//!
//! Whoever ends a task — a cancel, an attempt that ends, placement giving
//! up, the releaser skipping a stage — ends it through here, so a finished
//! task always tells watchers the same two events and, when it is a stage,
//! moves its workflow's `changes` counter for the releaser.

use super::write_tx::WriteTx;
use flowmesh_types::TaskError;
use flowmesh_types::api::{EventBody, ResultEnvelope, TaskState};

use super::events::NewEvents;
use super::rows::get_opt_str;
use super::task_record::LockedTask;
use super::{StoreError, encode_json, sql};
use sqlx::AssertSqlSafe;

/// How one task ends: see [`finish_all`].
pub(super) struct Ending<'a> {
    /// The task, locked.
    pub(super) task: &'a LockedTask,
    /// Its terminal state.
    pub(super) state: TaskState,
    /// Its result, when it succeeded.
    pub(super) result: Option<ResultEnvelope>,
    /// Why it did not, otherwise.
    pub(super) error: Option<TaskError>,
}

/// Moves a locked task to the terminal `state` and queues its events.
pub(super) async fn finish(
    tx: &mut WriteTx<'_>,
    task: &LockedTask,
    state: TaskState,
    result: Option<ResultEnvelope>,
    error: Option<&TaskError>,
    now: i64,
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    let ending = Ending {
        task,
        state,
        result,
        error: error.cloned(),
    };
    finish_all(tx, vec![ending], now, events).await
}

/// Moves locked tasks to their terminal states with one statement per chunk
/// of rows (`UPDATE … FROM` a `VALUES` list), notes the workflows whose
/// stages finished, and queues each task's events in order.
pub(super) async fn finish_all(
    tx: &mut WriteTx<'_>,
    endings: Vec<Ending<'_>>,
    now: i64,
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    let marks = sql::Marks::of(tx);
    for chunk in sql::padded_chunks(&endings, 5) {
        let statement = format!(
            "WITH v(seq, state, result, error, at) AS (VALUES {}) {}",
            chunk.values(marks),
            sql::FINISH_TASKS
        );
        let mut query = sqlx::query(AssertSqlSafe(statement));
        // A padding row's `NULL` seq matches no task.
        for ending in chunk.rows() {
            query = query
                .bind(ending.map(|ending| ending.task.seq))
                .bind(ending.map(|ending| ending.state.as_str()))
                .bind(ending.and_then(|ending| ending.result.as_ref().map(encode_json)))
                .bind(ending.and_then(|ending| ending.error.as_ref().map(encode_json)))
                .bind(ending.map(|_| now));
        }
        for row in query.fetch_all(&mut *tx).await? {
            if let Some(workflow) = get_opt_str(&row, "workflow_id")? {
                events.workflow_changed(workflow);
            }
        }
    }
    for ending in endings {
        terminal_events(
            &ending.task.id,
            ending.task.attempt,
            ending.state,
            ending.result,
            ending.error.as_ref(),
            events,
        );
    }
    Ok(())
}

/// Queues the state and result events of a task that just finished.
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
