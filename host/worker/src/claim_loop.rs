//! The claim loop: while a slot is free, a long-poll claim for as many tasks
//! as there are free slots; each claimed task starts at once (see
//! [`crate::attempt`]). A claim answer may carry the server's plugin catalog,
//! which goes to the plugin sync.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::{ClaimRequest, ClaimResponse};

use crate::backoff::Backoff;
use crate::shared::Shared;

impl Shared {
    fn free_slots(&self) -> u32 {
        self.config
            .slots
            .saturating_sub(self.lock_running().len() as u32)
    }
}

pub(crate) async fn claim_loop(shared: Arc<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let freed = shared.slot_freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if shared.stopping.is_cancelled() {
            return;
        }
        let free = shared.free_slots();
        if free == 0 {
            tokio::select! {
                _ = freed => {}
                _ = shared.stopping.cancelled() => return,
            }
            continue;
        }
        let Some(worker_id) = shared.worker_id().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let request = ClaimRequest {
            worker_id: worker_id.clone(),
            max_tasks: free,
            wait_ms: shared.config.claim_wait.as_millis() as u64,
        };
        let call = shared.client.call::<_, ClaimResponse>(
            "claim",
            &request,
            shared.config.claim_wait + Duration::from_secs(15),
        );
        let answer = tokio::select! {
            answer = call => answer,
            _ = shared.stopping.cancelled() => return,
        };
        match answer {
            Ok(response) => {
                backoff.reset();
                if let Some(plugins) = response.plugins {
                    shared.catalog.send_replace(Some(plugins));
                }
                for task in response.tasks {
                    tracing::debug!(
                        task = task.id,
                        task_type = task.task_type,
                        attempt = task.attempt,
                        "claimed"
                    );
                    shared.start_task(task);
                }
            }
            Err(error) if error.is_unknown_worker() => shared.reregister(&worker_id).await,
            Err(error) => {
                tracing::warn!(%error, "claim failed; retrying");
                backoff.wait().await;
            }
        }
    }
}
