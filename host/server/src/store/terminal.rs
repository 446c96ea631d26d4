//! Ending a task: the `FINISH_TASK` update and the state and result events
//! every terminal state writes.
//!
//! Whoever ends a task — a cancel, an attempt that ends, placement giving
//! up, the releaser skipping a stage — ends it through here, so a finished
//! task always tells watchers the same two events and, when it is a stage,
//! moves its workflow's `changes` counter for the releaser.

use flowmesh_types::TaskError;
use flowmesh_types::api::{EventBody, ResultEnvelope, TaskState};
use sqlx::{Any, Transaction};

use super::events::NewEvents;
use super::rows::get_opt_str;
use super::task_record::LockedTask;
use super::{StoreError, encode_json, sql};

/// Moves a locked task to the terminal `state` and queues its events.
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
