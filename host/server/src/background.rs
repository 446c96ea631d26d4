//! The server's periodic work: expiring leases and silent workers, keeping
//! pending tasks' reasons current and failing the ones no worker can run
//! after the grace period, deleting old finished tasks, and loading the
//! plugins other servers on the same database installed (once per heartbeat
//! interval).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::{EventBody, WaitKind, Waiting};
use flowmesh_types::{TaskError, TaskErrorCode};
use tokio_util::sync::CancellationToken;

use crate::placement::{Ask, RunningLimit, explain};
use crate::state::{AppState, now_ms};
use crate::store::{PendingShape, StoreError, WaitingRows};

/// How often old finished tasks are collected.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// The placement pass runs at most once per this many times its own
/// length.
const PLACEMENT_SHARE: u32 = 10;

/// Runs until `shutdown`.
pub async fn run(state: Arc<AppState>) {
    let shutdown = state.shutdown.clone();
    let lease_tick = (state.config.heartbeat_interval / 2).max(Duration::from_millis(50));
    let mut leases = tokio::time::interval(lease_tick);
    let mut placement = tokio::time::interval(state.config.placement_interval);
    let mut gc = tokio::time::interval(GC_INTERVAL);
    for timer in [&mut leases, &mut placement, &mut gc] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // Loading plugins compiles them: off this loop, which must keep leases.
    tokio::spawn(sync_plugins(state.clone(), shutdown.clone()));
    // Checkpoints copy and sync megabytes: off this loop and off the writer.
    tokio::spawn(checkpoints(state.clone(), shutdown.clone()));
    let mut memory = PlacementMemory::default();
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = leases.tick() => expire(&state).await,
            _ = placement.tick() => {
                let started = std::time::Instant::now();
                let result = place(&state, &mut memory).await;
                // On a deep queue the pass takes a while: it may take a
                // tenth of the time, not more.
                let spent = started.elapsed() * PLACEMENT_SHARE;
                if spent > state.config.placement_interval {
                    placement.reset_after(spent);
                }
                result
            }
            _ = gc.tick() => collect(&state).await,
        };
        if let Err(error) = result {
            tracing::warn!(%error, "background pass failed; retrying on the next tick");
        }
    }
}

/// Reloads the installed plugins from the store every heartbeat interval,
/// until `shutdown`.
async fn sync_plugins(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut timer = tokio::time::interval(state.config.heartbeat_interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timer.tick() => {
                if let Err(error) = state.sync_plugins().await {
                    tracing::warn!(%error, "plugin sync failed; retrying on the next tick");
                }
            }
        }
    }
}

/// Checkpoints the store's write-ahead log every
/// [`crate::store::CHECKPOINT_INTERVAL`], until `shutdown`.
async fn checkpoints(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut timer = tokio::time::interval(crate::store::CHECKPOINT_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timer.tick() => {
                if let Err(error) = state.store.checkpoint().await {
                    tracing::warn!(%error, "checkpoint failed; retrying on the next tick");
                }
            }
        }
    }
}

async fn expire(state: &AppState) -> Result<(), StoreError> {
    let now = now_ms();
    let ttl = state.lease_ttl_ms();
    let gone = state.store.expire_workers(now - ttl).await?;
    for worker in &gone {
        tracing::warn!(
            worker,
            "worker stopped heartbeating; its registration expired"
        );
    }
    let (expired, events) = state
        .store
        .expire_leases(now, &state.retry_policy())
        .await?;
    if expired > 0 {
        tracing::warn!(expired, "leases expired; their tasks are retried or failed");
        state.metrics.leases_expired.inc_by(expired as u64);
        state.publish(events);
        state.work.notify();
    }
    Ok(())
}

fn shape_key(shape: &PendingShape) -> String {
    // The worker a retry passes over is part of the shape: its tasks and
    // the same shape's other tasks can wait for different reasons.
    format!(
        "{}|{}|{:?}|{:?}|{:?}",
        shape.tenant,
        shape.task_type,
        shape.hardware,
        shape.labels,
        shape.avoid.as_ref().map(|(worker, _)| worker)
    )
}

/// What the placement pass keeps from one pass to the next, by shape.
#[derive(Default)]
struct PlacementMemory {
    /// When each unplaceable shape was first seen unplaceable.
    unplaceable_since: HashMap<String, i64>,
    /// The reason recorded for each shape's tasks (its kind and message),
    /// and the newest task it was recorded for. A shape whose reason reads
    /// the same is recorded again only for the tasks it gained since: the
    /// pass never rewrites a deep queue's rows every second. (The counts
    /// stored with a reason are those of when it was recorded.)
    recorded: HashMap<String, (WaitKind, String, i64)>,
    /// Passes so far: every [`FULL_PASS_EVERY`]th records each shape's
    /// reason on every task of it that has none, catching those that came
    /// back to the queue behind the newest (a retry whose delay ran out, a
    /// workflow stage released).
    passes: u64,
}

/// How often the placement pass records reasons on every pending task.
const FULL_PASS_EVERY: u64 = 10;

async fn place(state: &AppState, memory: &mut PlacementMemory) -> Result<(), StoreError> {
    let now = now_ms();
    let shapes = state.store.pending_shapes(now).await?;
    if shapes.is_empty() {
        memory.unplaceable_since.clear();
        memory.recorded.clear();
        return Ok(());
    }
    let workers = state.store.live_workers().await?;
    let usage = state.store.usage().await?;
    let rules = &state.round_trips.rules().tenants;
    let limited = rules.default_max_running > 0 || rules.max_running.values().any(|n| *n > 0);
    let running = if limited {
        state.store.running_by_tenant().await?
    } else {
        HashMap::new()
    };
    let grace = state.config.no_worker_grace.as_millis() as i64;
    let reasons: Vec<(&PendingShape, Waiting)> = shapes
        .iter()
        .filter_map(|shape| {
            let provider = state.validator.provider(&shape.task_type);
            let limit = rules.running_limit(&shape.tenant);
            let ask = Ask {
                running_limit: (limit > 0).then(|| RunningLimit {
                    running: running.get(&shape.tenant).copied().unwrap_or(0),
                    limit: limit as u64,
                }),
                ..Ask::of_shape(shape, &state.config.tenants)
            };
            explain(&ask, provider.as_deref(), &workers, &usage, now)
                .map(|waiting| (shape, waiting))
        })
        .collect();
    memory.passes += 1;
    let full = memory.passes % FULL_PASS_EVERY == 1;
    let mut recorded = HashMap::with_capacity(reasons.len());
    let changes: Vec<(&PendingShape, &Waiting, WaitingRows)> = reasons
        .iter()
        .filter_map(|(shape, waiting)| {
            let key = shape_key(shape);
            let unchanged = memory
                .recorded
                .get(&key)
                .filter(|(kind, message, _)| *kind == waiting.kind && *message == waiting.message)
                .map(|(_, _, newest)| *newest);
            recorded.insert(key, (waiting.kind, waiting.message.clone(), shape.newest));
            let rows = match unchanged {
                None => WaitingRows::All,
                Some(_) if full => WaitingRows::Unexplained,
                // Nothing gained since: nothing to record.
                Some(newest) if newest >= shape.newest => return None,
                Some(newest) => WaitingRows::After(newest),
            };
            Some((*shape, waiting, rows))
        })
        .collect();
    state.store.set_waiting(&changes, now).await?;
    // A shape with no reason this pass (a worker could take it just then)
    // keeps what its tasks carry: in a busy fleet, shapes flicker between
    // "busy" and placeable, and forgetting them would rewrite every task of
    // each one the next time it reads "busy" again.
    for shape in &shapes {
        let key = shape_key(shape);
        if !recorded.contains_key(&key)
            && let Some(kept) = memory.recorded.remove(&key)
        {
            recorded.insert(key, kept);
        }
    }
    memory.recorded = recorded;
    let unplaceable_since = &mut memory.unplaceable_since;
    let mut still_unplaceable = HashMap::new();
    for (shape, waiting) in &reasons {
        if matches!(
            waiting.kind,
            WaitKind::NoWorkerForType | WaitKind::MissingLabels | WaitKind::InsufficientHardware
        ) {
            let key = shape_key(shape);
            let since = unplaceable_since.get(&key).copied().unwrap_or(now);
            still_unplaceable.insert(key, since);
            if since <= now - grace && shape.oldest_update <= now - grace {
                let error = TaskError::new(
                    TaskErrorCode::NoEligibleWorker,
                    format!(
                        "no worker could run this task for {}: {}",
                        humantime::format_duration(state.config.no_worker_grace),
                        waiting.message
                    ),
                );
                let events = state
                    .store
                    .fail_unplaceable(shape, now - grace, &error, now)
                    .await?;
                let failed = events
                    .iter()
                    .filter(|event| matches!(event.body, EventBody::Result { .. }))
                    .count();
                if failed > 0 {
                    tracing::warn!(
                        task_type = shape.task_type,
                        failed,
                        reason = waiting.message,
                        "tasks failed: no eligible worker within the grace period"
                    );
                }
                state.publish(events);
            }
        }
    }
    *unplaceable_since = still_unplaceable;
    Ok(())
}

async fn collect(state: &AppState) -> Result<(), StoreError> {
    let cutoff = now_ms() - state.config.retention.as_millis() as i64;
    let deleted = state.store.collect_garbage(cutoff).await?;
    if deleted > 0 {
        tracing::info!(deleted, "finished tasks past retention deleted");
    }
    Ok(())
}
