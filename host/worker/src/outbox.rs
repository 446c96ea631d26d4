//! The outbox: logs, progress and outcomes, sent in batches; a task's events
//! always go before its completion. Events are retried a few times, outcomes
//! until the server takes them, so a server restart loses none.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::{
    CompletionBatch, CompletionResponse, CompletionVerdict, EventBatch, Registered, TaskEvents,
};
use tokio::sync::{RwLock, mpsc};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::registration::current_id;
use crate::shared::Outgoing;

/// Most outgoing items sent in one call.
const MAX_BATCH: usize = 1000;

/// Sends what the tasks produce until every sender is gone (the worker
/// stopped and its last attempt reported).
pub(crate) async fn outbox_loop(
    client: Client,
    registration: Arc<RwLock<Option<Registered>>>,
    mut receiver: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut batch = Vec::new();
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        send_batch(&client, &registration, std::mem::take(&mut batch)).await;
    }
}

async fn send_batch(
    client: &Client,
    registration: &RwLock<Option<Registered>>,
    batch: Vec<Outgoing>,
) {
    let mut events: Vec<TaskEvents> = Vec::new();
    let mut completions = Vec::new();
    for item in batch {
        match item {
            Outgoing::Event(lease, event) => match events.last_mut() {
                Some(last)
                    if last.task_id == lease.task_id && last.lease_token == lease.lease_token =>
                {
                    last.events.push(event)
                }
                _ => events.push(TaskEvents {
                    task_id: lease.task_id,
                    lease_token: lease.lease_token,
                    events: vec![event],
                }),
            },
            Outgoing::Complete(completion) => completions.push(completion),
        }
    }
    let mut backoff = Backoff::default();
    if !events.is_empty() {
        for _ in 0..5 {
            let Some(worker_id) = current_id(registration).await else {
                break;
            };
            let batch = EventBatch {
                worker_id,
                tasks: events.clone(),
            };
            match client
                .send_only("events", &batch, Duration::from_secs(30))
                .await
            {
                Ok(()) => break,
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "sending events failed; retrying");
                    backoff.wait().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "events dropped");
                    break;
                }
            }
        }
    }
    if completions.is_empty() {
        return;
    }
    backoff.reset();
    loop {
        let Some(worker_id) = current_id(registration).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let batch = CompletionBatch {
            worker_id,
            completions: completions.clone(),
        };
        match client
            .call::<_, CompletionResponse>("complete", &batch, Duration::from_secs(30))
            .await
        {
            Ok(answer) => {
                for (completion, verdict) in completions.iter().zip(answer.verdicts) {
                    if verdict == CompletionVerdict::StaleLease {
                        tracing::warn!(
                            task = completion.task_id,
                            "completion rejected: the lease had expired; another attempt owns the task"
                        );
                    }
                }
                return;
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, pending = completions.len(), "reporting outcomes failed; retrying");
                backoff.wait().await;
            }
            Err(error) => {
                tracing::warn!(%error, "outcomes dropped: the server refused them");
                return;
            }
        }
    }
}
