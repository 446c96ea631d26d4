//! The server's periodic work: expiring leases and silent workers, keeping
//! pending tasks' reasons current and failing the ones no worker can run
//! after the grace period, deleting old finished tasks, and loading the
//! plugins other servers on the same database installed (once per heartbeat
//! interval).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::{EventBody, WaitKind, Waiting};
use flowmesh_types::{TaskError, TaskErrorCode};
use tokio_util::sync::CancellationToken;

use crate::placement::{Ask, RunningLimit, explain};
use crate::state::{AppState, now_ms};
use crate::store::{PendingShape, ShapeKey, StoreError, Usage, WorkerRecord};

/// How often old finished tasks are collected.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// The placement pass runs at most once per this many times its own
/// length.
const PLACEMENT_SHARE: u32 = 10;

/// The placement pass runs at most once a second per this many pending
/// tasks. It reads every one of them, the database's work, which the
/// pass's own length shows only in part: on the 2-core development machine
/// 50–100 ms a pass over 50,000 of them on PostgreSQL, 120–150 ms over
/// 82,000 on SQLite. 50,000 pending tasks: a pass every 2.5 s at most.
const PENDING_READ_PER_SECOND: f64 = 20_000.0;

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
                // On a deep queue the pass takes a while, and reads much:
                // it may take a tenth of the time, not more.
                let next = (started.elapsed() * PLACEMENT_SHARE)
                    .max(Duration::from_secs_f64(memory.read as f64 / PENDING_READ_PER_SECOND));
                if next > state.config.placement_interval {
                    placement.reset_after(next);
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

/// What the placement pass keeps from one pass to the next, by shape.
#[derive(Default)]
struct PlacementMemory {
    /// When each unplaceable shape was first seen unplaceable.
    unplaceable_since: HashMap<ShapeKey, i64>,
    /// How many pending tasks the last pass that got as far as reading
    /// them read (a pass that failed before keeps the one before's).
    read: u64,
}

/// Explains every shape of pending tasks that no worker takes now, records
/// the reasons that changed (a row per shape), and fails the tasks of a
/// shape no worker could run for the whole grace period. Notes in `memory`
/// how many pending tasks it read.
async fn place(state: &Arc<AppState>, memory: &mut PlacementMemory) -> Result<(), StoreError> {
    let now = now_ms();
    // The recorded reasons first: a shape another server records meanwhile
    // is then among the shapes read next, not forgotten as gone.
    let recorded: HashMap<ShapeKey, Waiting> =
        state.store.shape_waits().await?.into_iter().collect();
    let shapes = state.store.pending_shapes(now).await?;
    memory.read = shapes.iter().map(|shape| shape.count.max(0) as u64).sum();
    if shapes.is_empty() {
        memory.unplaceable_since.clear();
        let (_, forget) = wait_changes(&recorded, &shapes, &[]);
        if !forget.is_empty() {
            state.store.record_waits(&[], &forget).await?;
        }
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
    // Hundreds of shapes against a thousand workers is tens of milliseconds
    // of CPU: off the runtime's threads, which answer the workers' claims.
    let explaining = state.clone();
    let explained = tokio::task::spawn_blocking(move || {
        let reasons = explain_shapes(&explaining, &shapes, &workers, &usage, &running, now);
        (shapes, reasons)
    })
    .await;
    let (shapes, reasons) = match explained {
        Ok(explained) => explained,
        Err(error) => {
            tracing::error!(%error, "explaining the pending tasks failed; retrying on the next pass");
            return Ok(());
        }
    };
    let reasons: Vec<(&PendingShape, ShapeKey, Waiting)> = reasons
        .into_iter()
        .map(|(index, key, waiting)| (&shapes[index], key, waiting))
        .collect();
    let (record, forget) = wait_changes(&recorded, &shapes, &reasons);
    if !record.is_empty() || !forget.is_empty() {
        state.store.record_waits(&record, &forget).await?;
    }
    let unplaceable_since = &mut memory.unplaceable_since;
    let mut still_unplaceable = HashMap::new();
    for (shape, key, waiting) in reasons {
        if matches!(
            waiting.kind,
            WaitKind::NoWorkerForType | WaitKind::MissingLabels | WaitKind::InsufficientHardware
        ) {
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

/// Why each of `shapes` waits, by its index, if it does: the placement
/// constraints run against the live `workers` as they are used now.
fn explain_shapes(
    state: &AppState,
    shapes: &[PendingShape],
    workers: &[WorkerRecord],
    usage: &HashMap<String, Usage>,
    running: &HashMap<String, u64>,
    now: i64,
) -> Vec<(usize, ShapeKey, Waiting)> {
    let rules = &state.round_trips.rules().tenants;
    shapes
        .iter()
        .enumerate()
        .filter_map(|(index, shape)| {
            let provider = state.validator.provider(&shape.task_type);
            let limit = rules.running_limit(&shape.tenant);
            let ask = Ask {
                running_limit: (limit > 0).then(|| RunningLimit {
                    running: running.get(&shape.tenant).copied().unwrap_or(0),
                    limit: limit as u64,
                }),
                ..Ask::of_shape(shape, &state.config.tenants)
            };
            explain(&ask, provider.as_deref(), workers, usage, now)
                .map(|waiting| (index, shape.key(), waiting))
        })
        .collect()
}

/// What a placement pass writes of its shapes' reasons, given those
/// `recorded` before it, the `shapes` it found and the `reasons` it gave:
/// the reasons that read differently (a reason's counts move with every
/// claim and are not worth a write on their own; they are those of when it
/// was recorded), and the shapes to forget. A shape with no task left to
/// place is forgotten. So is one with no reason this pass (a worker could
/// take it just then), unless its reason was that the workers or its
/// tenant's limit were busy: in a busy fleet, shapes flicker between those
/// and placeable, and a reason that reads "busy" most of the time is the
/// truer one.
fn wait_changes<'a>(
    recorded: &HashMap<ShapeKey, Waiting>,
    shapes: &[PendingShape],
    reasons: &'a [(&PendingShape, ShapeKey, Waiting)],
) -> (Vec<(ShapeKey, &'a Waiting)>, Vec<ShapeKey>) {
    let record = reasons
        .iter()
        .filter(|(_, key, waiting)| {
            recorded
                .get(key)
                .is_none_or(|was| was.kind != waiting.kind || was.message != waiting.message)
        })
        .map(|(_, key, waiting)| (key.clone(), waiting))
        .collect();
    let present: HashSet<ShapeKey> = shapes.iter().map(PendingShape::key).collect();
    let explained: HashSet<&ShapeKey> = reasons.iter().map(|(_, key, _)| key).collect();
    let forget = recorded
        .iter()
        .filter(|(key, was)| {
            !present.contains(*key)
                || (!explained.contains(key)
                    && !matches!(was.kind, WaitKind::WorkersBusy | WaitKind::TenantLimit))
        })
        .map(|(key, _)| key.clone())
        .collect();
    (record, forget)
}

async fn collect(state: &AppState) -> Result<(), StoreError> {
    let cutoff = now_ms() - state.config.retention.as_millis() as i64;
    let deleted = state.store.collect_garbage(cutoff).await?;
    if deleted > 0 {
        tracing::info!(deleted, "finished tasks past retention deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use flowmesh_types::api::{WaitKind, Waiting};

    use super::wait_changes;
    use crate::store::{PendingShape, ShapeKey};

    fn shape(task_type: &str) -> PendingShape {
        PendingShape {
            tenant: "t".into(),
            task_type: task_type.into(),
            hardware: Default::default(),
            labels: BTreeMap::new(),
            count: 1,
            oldest_update: 0,
            avoid: None,
        }
    }

    fn reason(kind: WaitKind, message: &str) -> Waiting {
        Waiting {
            kind,
            message: message.into(),
            counts: Default::default(),
        }
    }

    fn keys(keys: &[ShapeKey]) -> Vec<&str> {
        let mut types: Vec<&str> = keys.iter().map(|key| key.task_type.as_str()).collect();
        types.sort();
        types
    }

    #[test]
    fn a_reason_is_written_only_when_it_reads_differently() {
        let (a, b, c) = (shape("a"), shape("b"), shape("c"));
        let recorded = HashMap::from([
            (a.key(), reason(WaitKind::WorkersBusy, "busy")),
            (b.key(), reason(WaitKind::WorkersBusy, "busy")),
        ]);
        let mut moved = reason(WaitKind::WorkersBusy, "busy");
        moved.counts.live_workers = 7;
        let reasons = [
            (&a, a.key(), moved),
            (&b, b.key(), reason(WaitKind::NoWorkerForType, "none")),
            (&c, c.key(), reason(WaitKind::WorkersBusy, "busy")),
        ];
        let (record, forget) =
            wait_changes(&recorded, &[a.clone(), b.clone(), c.clone()], &reasons);
        let written: Vec<ShapeKey> = record.into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys(&written),
            ["b", "c"],
            "new counts alone are not a change"
        );
        assert!(forget.is_empty());
    }

    #[test]
    fn a_placeable_shape_keeps_only_a_busy_reason_and_a_gone_one_keeps_none() {
        let (busy, limited, stale, gone) = (
            shape("busy"),
            shape("limited"),
            shape("stale"),
            shape("gone"),
        );
        let recorded = HashMap::from([
            (busy.key(), reason(WaitKind::WorkersBusy, "busy")),
            (limited.key(), reason(WaitKind::TenantLimit, "at its limit")),
            (stale.key(), reason(WaitKind::NoWorkerForType, "no worker")),
            (gone.key(), reason(WaitKind::WorkersBusy, "busy")),
        ]);
        // A worker could take each present shape just now: no reasons.
        let present = [busy.clone(), limited.clone(), stale.clone()];
        let (record, forget) = wait_changes(&recorded, &present, &[]);
        assert!(record.is_empty());
        assert_eq!(keys(&forget), ["gone", "stale"]);
        let (_, forget) = wait_changes(&recorded, &[], &[]);
        assert_eq!(keys(&forget), ["busy", "gone", "limited", "stale"]);
    }
}
