//! The heartbeat loop: every interval (or at once when what the worker can
//! run changed), every lease the worker holds — of the running attempts,
//! of the tasks claimed ahead, and of the completions the server has not
//! answered yet, which must not expire while they wait — and what the worker
//! advertises where it differs from what the server was last told. The
//! answer carries the plugin catalog and says which attempts to cancel (the
//! user asked) and which are lost (the lease expired or the task was
//! released).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use flowmesh_types::api::{Heartbeat, HeartbeatResponse, Lease};

use crate::shared::{Advertised, Shared};

pub(crate) async fn heartbeat_loop(shared: Arc<Shared>) {
    loop {
        let interval = shared
            .registration
            .read()
            .await
            .as_ref()
            .map_or(Duration::from_secs(1), |registration| {
                Duration::from_millis(registration.heartbeat_interval_ms)
            });
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.beat_now.notified() => {}
            _ = shared.stopping.cancelled() => return,
        }
        let Some(worker_id) = shared.worker_id().await else {
            continue;
        };
        let mut leases: Vec<Lease> = shared
            .lock_running()
            .iter()
            .map(|(id, running)| Lease {
                task_id: id.clone(),
                lease_token: running.lease_token.clone(),
            })
            .collect();
        leases.extend(shared.lock_ready().iter().map(|task| Lease {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
        }));
        leases.extend(shared.outbox.unanswered_leases());
        let now = shared.advertised_now();
        let before = shared
            .advertised
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let changed = before.as_ref() != Some(&now);
        let differs = |same: fn(&Advertised, &Advertised) -> bool| {
            before.as_ref().is_none_or(|before| !same(before, &now))
        };
        let beat = Heartbeat {
            worker_id: worker_id.clone(),
            leases,
            capabilities: differs(|a, b| a.capabilities == b.capabilities)
                .then(|| now.capabilities.clone()),
            labels: differs(|a, b| a.labels == b.labels).then(|| now.labels.clone()),
            hardware: differs(|a, b| a.hardware == b.hardware).then(|| now.hardware.clone()),
        };
        match shared
            .client
            .call::<_, HeartbeatResponse>("heartbeat", &beat, interval.max(Duration::from_secs(5)))
            .await
        {
            Ok(answer) => {
                if changed {
                    *shared
                        .advertised
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(now);
                }
                shared.catalog.send_replace(Some(answer.plugins));
                shared.drop_ready(&answer.cancel, &answer.lost);
                let running = shared.lock_running();
                for id in &answer.cancel {
                    if let Some(task) = running.get(id) {
                        tracing::info!(task = id, "cancel requested; interrupting");
                        task.cancel.cancel();
                    }
                }
                for id in &answer.lost {
                    if let Some(task) = running.get(id) {
                        tracing::warn!(
                            task = id,
                            "lease lost; stopping the attempt without reporting it"
                        );
                        task.lost.store(true, Ordering::SeqCst);
                        task.cancel.cancel();
                    }
                }
            }
            Err(error) if error.is_unknown_worker() => shared.reregister(&worker_id).await,
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
    }
}

impl Shared {
    /// Removes from the tasks claimed ahead those the server cancelled
    /// (completed as cancelled, without running) and those whose lease is
    /// lost (dropped).
    fn drop_ready(&self, cancel: &[String], lost: &[String]) {
        let mut cancelled = Vec::new();
        self.lock_ready().retain(|task| {
            if lost.contains(&task.id) {
                tracing::warn!(
                    task = task.id,
                    "lease lost before the task started; dropping it"
                );
                false
            } else if cancel.contains(&task.id) {
                cancelled.push(task.clone());
                false
            } else {
                true
            }
        });
        for task in cancelled {
            tracing::info!(task = task.id, "cancel requested before the task started");
            let completion = flowmesh_types::api::Completion {
                task_id: task.id.clone(),
                lease_token: task.lease_token.clone(),
                plugin: None,
                elapsed_ms: 0,
                output: None,
                error: Some(flowmesh_types::TaskError::new(
                    flowmesh_types::TaskErrorCode::Cancelled,
                    "cancelled before it started",
                )),
            };
            self.outbox.complete(completion, 0);
        }
        if !cancel.is_empty() || !lost.is_empty() {
            self.slot_freed.notify_one();
        }
    }
}
