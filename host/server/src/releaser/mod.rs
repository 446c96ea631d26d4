//! The releaser: moves workflows forward as their stages finish.
//!
//! A stage with upstream stages is stored held back (pending, `blocked`,
//! unclaimable). When a stage finishes, its workflow is marked changed in
//! the same transaction; the releaser wakes (when a transaction that
//! finished a stage commits — a worker's round trip says whether it did, so
//! tasks that are no stages do not wake it — on a submit, and once a second
//! for changes made through other servers or before a restart), and for
//! each changed workflow looks at every held-back stage whose upstream
//! stages have all finished:
//!
//! 1. an upstream stage failed or was cancelled ⇒ the stage fails,
//!    `upstream_failed`, naming that stage;
//! 2. an upstream stage was skipped ⇒ the stage is skipped too (its inputs
//!    will never exist);
//! 3. its `condition` does not hold ⇒ skipped; names a field the output
//!    lacks ⇒ failed;
//! 4. its placeholders are resolved from the upstream results, and the
//!    resolved spec is checked again, schema and plugin `validate()`, as at
//!    submit ⇒ released to the queue, or failed with the placeholder and the
//!    value that made it invalid. A worker never sees an unresolved or
//!    invalid spec.
//!
//! When every stage has finished, the workflow ends: `cancelled` if it was
//! cancelled, `failed` if a stage failed or was cancelled, else `succeeded`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_types::api::{TaskState, WorkflowState};

use crate::state::{AppState, now_ms};
use crate::store::{StageWrite, StoreError, TaskRecord, WorkflowRecord};

mod decide;

use decide::{Decision, decide};

/// How often the releaser looks for changes it was not told about.
const RECHECK: Duration = Duration::from_secs(1);
/// Changed workflows handled per pass.
const BATCH: u32 = 64;
/// Workflows advanced at once.
const CONCURRENCY: usize = 8;
/// How many times a stage's resolved spec is checked when the plugin's
/// check itself fails (`validate()` trapped, ran out of time or fuel) before
/// the stage fails with that reason.
pub const MAX_STAGE_CHECKS: u32 = 3;

/// Runs until the server shuts down.
pub async fn run(state: Arc<AppState>) {
    let mut timer = tokio::time::interval(RECHECK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deferred = Deferred::default();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = timer.tick() => {}
            _ = state.releaser.notified() => {}
        }
        if let Err(error) = settle(&state, &mut deferred).await {
            tracing::warn!(%error, "workflow release pass failed; retrying");
        }
    }
}

/// Workflows to look at again no sooner than a given time: a stage whose
/// check could not run, or a workflow whose advance failed.
#[derive(Default)]
pub struct Deferred(HashMap<String, Instant>);

/// Advances every changed workflow once, oldest first, in pages: a page's
/// workflows and stages are read in two statements, and up to
/// [`CONCURRENCY`] of its workflows are planned at a time (stage checks
/// only). The plans done at any moment are written together, with the
/// changes they settled, in one transaction
/// ([`crate::store::Store::apply_stage_writes`]), so a workflow whose stage
/// checks are slow (a plugin's `validate()` running to its deadline) holds
/// up only its own place. A workflow that cannot be advanced now (a stage
/// whose plugin is missing here) is skipped for [`RECHECK`] without holding
/// up the others, as are the workflows of a write that fails; what a pass
/// itself changed is picked up by the next pass, which the stages it ended
/// wake.
pub async fn settle(state: &AppState, deferred: &mut Deferred) -> Result<(), StoreError> {
    use futures::StreamExt as _;
    let now = Instant::now();
    deferred.0.retain(|_, until| *until > now);
    let mut after = 0;
    loop {
        let changed = state.store.unsettled_workflows(after, BATCH).await?;
        let full = changed.len() == BATCH as usize;
        if let Some((seq, _, _)) = changed.last() {
            after = *seq;
        }
        let due: Vec<(String, i64)> = changed
            .into_iter()
            .filter(|(_, id, _)| !deferred.0.contains_key(id))
            .map(|(_, id, changes)| (id, changes))
            .collect();
        let ids: Vec<String> = due.iter().map(|(id, _)| id.clone()).collect();
        let mut read: HashMap<String, (WorkflowRecord, Vec<TaskRecord>)> = state
            .store
            .workflows_and_stages(&ids)
            .await?
            .into_iter()
            .map(|(workflow, stages)| (workflow.id.clone(), (workflow, stages)))
            .collect();
        let mut planned = futures::stream::iter(due)
            .map(|(id, changes)| {
                let read = read.remove(&id);
                async move {
                    let plan = match read {
                        Some((workflow, stages)) => plan_read(state, &workflow, stages).await,
                        None => (Vec::new(), Progress::Settled),
                    };
                    (id, changes, plan)
                }
            })
            .buffer_unordered(CONCURRENCY)
            // Whatever plans are done when the next would have to be
            // waited for go together: one slow check holds back only the
            // writes of its own workflow.
            .ready_chunks(BATCH as usize);
        while let Some(done) = planned.next().await {
            let mut writes = Vec::new();
            let mut written = Vec::with_capacity(done.len());
            for (id, changes, (decided, progress)) in done {
                writes.extend(decided);
                match progress {
                    Progress::Settled => writes.push(StageWrite::Settle {
                        id: id.clone(),
                        changes,
                    }),
                    Progress::Later => {
                        deferred.0.insert(id.clone(), now + RECHECK);
                    }
                }
                written.push(id);
            }
            // Planning holds no write transaction, so waiting here for this
            // one holds up nothing but the plans still in flight.
            if let Err(error) = apply(state, &writes).await {
                tracing::warn!(
                    workflows = written.len(),
                    %error,
                    "writing a release pass failed; retrying on a later pass"
                );
                for id in written {
                    deferred.0.insert(id, now + RECHECK);
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Writes what a pass decided in one transaction, publishes the events,
/// and wakes the claims when a stage was released.
async fn apply(state: &AppState, writes: &[StageWrite]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let events = state.store.apply_stage_writes(writes, now_ms()).await?;
    if writes
        .iter()
        .any(|write| matches!(write, StageWrite::Release { .. }))
    {
        state.work.notify();
    }
    state.publish(events);
    Ok(())
}

/// Whether [`advance`] did all it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing more to do until a stage finishes.
    Settled,
    /// A stage must be looked at again soon (its plugin could not check it
    /// on this server yet).
    Later,
}

/// Releases or ends what can be released or ended in workflow `id`, and
/// ends the workflow when all its stages have, writing at once.
pub async fn advance(state: &AppState, id: &str) -> Result<Progress, StoreError> {
    let (writes, progress) = plan(state, id).await?;
    apply(state, &writes).await?;
    Ok(progress)
}

/// What [`advance`] would write for workflow `id`, reading only: each
/// round of decisions is applied to the stages as read, so an ended stage
/// settles the stages after it in the same plan.
async fn plan(state: &AppState, id: &str) -> Result<(Vec<StageWrite>, Progress), StoreError> {
    match state
        .store
        .workflows_and_stages(&[id.to_string()])
        .await?
        .pop()
    {
        Some((workflow, stages)) => Ok(plan_read(state, &workflow, stages).await),
        None => Ok((Vec::new(), Progress::Settled)),
    }
}

/// [`plan`] for a workflow and its stages as read (the stages first, so
/// the workflow shows a cancel that ended any of them).
async fn plan_read(
    state: &AppState,
    workflow: &WorkflowRecord,
    mut stages: Vec<TaskRecord>,
) -> (Vec<StageWrite>, Progress) {
    if workflow.state.is_terminal() {
        return (Vec::new(), Progress::Settled);
    }
    let id = workflow.id.as_str();
    let mut progress = Progress::Settled;
    let mut writes = Vec::new();
    // Each round settles at least one more level of the graph.
    for _ in 0..=flowmesh_types::workflow::MAX_DEPTH {
        let by_name: HashMap<&str, &TaskRecord> = stages
            .iter()
            .map(|stage| (stage_name(stage), stage))
            .collect();
        let mut decided = Vec::new();
        for (index, stage) in stages.iter().enumerate() {
            if stage.state == TaskState::Pending && stage.blocked {
                decided.push((index, decide(state, workflow, stage, &by_name).await));
            }
        }
        let mut ended = false;
        for (index, decision) in decided {
            let stage = &mut stages[index];
            match decision {
                Decision::Wait => {}
                Decision::Retry(reason) => {
                    tracing::info!(
                        workflow = workflow.id,
                        task = stage.id,
                        reason,
                        "stage check deferred"
                    );
                    progress = Progress::Later;
                }
                Decision::Release(spec, message) => {
                    stage.blocked = false;
                    writes.push(StageWrite::Release {
                        task_id: stage.id.clone(),
                        spec,
                        message,
                    });
                }
                Decision::End(end, error) => {
                    tracing::info!(
                        workflow = workflow.id,
                        task = stage.id,
                        state = %end,
                        reason = error.message,
                        "workflow stage ended without running"
                    );
                    stage.state = end;
                    stage.blocked = false;
                    stage.finished_at = Some(now_ms());
                    stage.error = Some(error.clone());
                    writes.push(StageWrite::End {
                        task_id: stage.id.clone(),
                        state: end,
                        error,
                    });
                    ended = true;
                }
            }
        }
        if !ended {
            break;
        }
    }
    if stages.iter().all(|stage| stage.state.is_terminal()) {
        let (end, message) = outcome(workflow.cancel_requested, &stages);
        writes.push(StageWrite::Finish {
            id: id.to_string(),
            state: end,
            message,
        });
    }
    (writes, progress)
}

/// How a workflow whose stages have all finished ends, and a summary.
fn outcome(cancel_requested: bool, stages: &[TaskRecord]) -> (WorkflowState, String) {
    let mut counts: Vec<(TaskState, usize)> = Vec::new();
    for stage in stages {
        match counts.iter_mut().find(|(state, _)| *state == stage.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((stage.state, 1)),
        }
    }
    let summary = counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ");
    let failed = stages
        .iter()
        .any(|stage| matches!(stage.state, TaskState::Failed | TaskState::Cancelled));
    let cancelled = stages
        .iter()
        .any(|stage| stage.state == TaskState::Cancelled);
    let state = if cancel_requested && cancelled {
        WorkflowState::Cancelled
    } else if failed {
        WorkflowState::Failed
    } else {
        WorkflowState::Succeeded
    };
    (state, format!("stages: {summary}"))
}

fn stage_name(stage: &TaskRecord) -> &str {
    stage
        .workflow
        .as_ref()
        .map_or(stage.id.as_str(), |at| at.stage.as_str())
}
