//! What the releaser writes, many workflows' worth in one transaction:
//! releasing held-back stages, ending the ones that will not run, finishing
//! workflows, and recording which changes it acted on.
//!
//! A release pass decides for a page of workflows (reading only), then
//! hands the writes of the plans done so far to [`Store::apply_stage_writes`]:
//! one transaction where there were several per workflow. Releasing and
//! ending are conditional (`… AND blocked = 1`), finishing too (`… AND state
//! = 'running'`), so a write that another server or a cancel made moot does
//! nothing. Rows are locked as every other writer locks them: stage rows
//! first, in id order, then workflow rows, in id order, each workflow's
//! writes together.

use std::collections::{BTreeMap, BTreeSet};

use flowmesh_types::TaskError;
use flowmesh_types::api::{EventBody, TaskState, WorkflowState};
use serde_json::{Map, Value};

use super::events::{NewEvents, StoredEvent};
use super::rows::{get_i64, get_opt_str};
use super::terminal::terminal_events;
use super::{Store, StoreError, encode_json, sql};

/// One write of the releaser.
#[derive(Debug, Clone, PartialEq)]
pub enum StageWrite {
    /// Let held-back stage `task_id` be claimed, with its resolved plugin
    /// fields; `message` goes with its `pending` event.
    Release {
        /// The stage's task.
        task_id: String,
        /// The resolved plugin fields.
        spec: Map<String, Value>,
        /// Why it was released.
        message: String,
    },
    /// End held-back stage `task_id` without running it.
    End {
        /// The stage's task.
        task_id: String,
        /// `failed` or `skipped`.
        state: TaskState,
        /// Why.
        error: TaskError,
    },
    /// Mark running workflow `id` finished in `state`.
    Finish {
        /// The workflow.
        id: String,
        /// Its terminal state.
        state: WorkflowState,
        /// A summary of its stages.
        message: String,
    },
    /// The releaser acted on workflow `id`'s changes up to `changes`.
    Settle {
        /// The workflow.
        id: String,
        /// Its `changes` counter when the pass read it.
        changes: i64,
    },
}

/// What the writes do to one workflow's row.
#[derive(Default)]
struct WorkflowWrites<'a> {
    finish: Option<(WorkflowState, &'a str)>,
    changed: bool,
    settle: Option<i64>,
}

impl Store {
    /// Applies `writes` in one transaction, stage rows first (in id order),
    /// then workflow rows (in id order); the events written.
    pub async fn apply_stage_writes(
        &self,
        writes: &[StageWrite],
        now: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // The stage writes, by task id.
        let mut stages: Vec<(&str, &StageWrite)> = writes
            .iter()
            .filter_map(|write| match write {
                StageWrite::Release { task_id, .. } | StageWrite::End { task_id, .. } => {
                    Some((task_id.as_str(), write))
                }
                StageWrite::Finish { .. } | StageWrite::Settle { .. } => None,
            })
            .collect();
        stages.sort_by_key(|(task_id, _)| *task_id);
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut events = NewEvents::default();
        for (_, write) in stages {
            match write {
                StageWrite::Release {
                    task_id,
                    spec,
                    message,
                } => {
                    let row = sqlx::query(sql::RELEASE_STAGE)
                        .bind(task_id)
                        .bind(encode_json(spec))
                        .bind(now)
                        .fetch_optional(&mut tx)
                        .await?;
                    if let Some(row) = row {
                        events.push(
                            task_id,
                            EventBody::State {
                                state: TaskState::Pending,
                                attempt: get_i64(&row, "attempt")? as u32,
                                message: Some(message.clone()),
                            },
                        );
                    }
                }
                StageWrite::End {
                    task_id,
                    state,
                    error,
                } => {
                    let row = sqlx::query(sql::END_STAGE)
                        .bind(task_id)
                        .bind(state.as_str())
                        .bind(encode_json(error))
                        .bind(now)
                        .fetch_optional(&mut tx)
                        .await?;
                    if let Some(row) = row {
                        if let Some(workflow) = get_opt_str(&row, "workflow_id")? {
                            events.workflow_changed(workflow);
                        }
                        let attempt = get_i64(&row, "attempt")? as u32;
                        terminal_events(task_id, attempt, *state, None, Some(error), &mut events);
                    }
                }
                StageWrite::Finish { .. } | StageWrite::Settle { .. } => {}
            }
        }
        // Every workflow row this transaction touches, in id order: the
        // changes its ended stages made, the finish, the settle.
        let mut workflows: BTreeMap<&str, WorkflowWrites<'_>> = BTreeMap::new();
        let changed: BTreeSet<String> = events.take_changed_workflows();
        for id in &changed {
            workflows.entry(id).or_default().changed = true;
        }
        for write in writes {
            match write {
                StageWrite::Finish { id, state, message } => {
                    workflows.entry(id).or_default().finish = Some((*state, message));
                }
                StageWrite::Settle { id, changes } => {
                    workflows.entry(id).or_default().settle = Some(*changes);
                }
                StageWrite::Release { .. } | StageWrite::End { .. } => {}
            }
        }
        for (id, writes) in workflows {
            if let Some((state, message)) = writes.finish {
                let finished = sqlx::query(sql::FINISH_WORKFLOW)
                    .bind(id)
                    .bind(state.as_str())
                    .bind(now)
                    .execute(&mut tx)
                    .await?
                    .rows_affected();
                if finished > 0 {
                    events.push_workflow(id, state, message.to_string());
                }
            }
            if writes.changed {
                sqlx::query(sql::WORKFLOW_CHANGED)
                    .bind(id)
                    .bind(now)
                    .execute(&mut tx)
                    .await?;
            }
            if let Some(changes) = writes.settle {
                sqlx::query(sql::SETTLE_WORKFLOW)
                    .bind(id)
                    .bind(changes)
                    .execute(&mut tx)
                    .await?;
            }
        }
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(events)
    }
}
