//! The exchange loop: the worker's one conversation with the server about
//! work. Each round trip (`POST /worker/claim`) delivers what waits in the
//! outbox — events, then completions — and claims as many tasks as the
//! worker has room for: its free slots plus a small read-ahead, tasks that
//! start as slots free without another round trip.
//!
//! - A busy worker finishes tasks while a round trip is on the way; they
//!   wait in the outbox and go with the next one, so the batch grows with
//!   the load. While tasks still run, the next trip may wait a little for
//!   more of them to end (at most a quarter of a round trip); an idle
//!   worker sends at once ([`crate::pace`]).
//! - How far it claims ahead follows how long its tasks take against a
//!   round trip ([`crate::pace`]), within the configured read-ahead.
//! - A round trip that delivers something answers at once. One that only
//!   claims may wait on the server for work (a long poll). While it waits,
//!   whatever the attempts produce goes at once, in a delivery of its own:
//!   an idle worker never holds back a completion.
//! - One delivery is in flight at a time, so items reach the server in the
//!   order they were produced. One that fails on the way goes again.
//! - When the worker stops, the loop claims nothing more and ends once the
//!   last attempt has ended and the outbox is empty.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::{ClaimRequest, ClaimResponse, CompletionVerdict};

use crate::backoff::Backoff;
use crate::client::CallError;
use crate::outbox::Delivery;
use crate::shared::Shared;

/// Logs the completions of `delivery` the server refused.
pub(crate) fn log_verdicts(delivery: &Delivery, verdicts: &[CompletionVerdict]) {
    let (_, completions) = delivery.contents();
    for (completion, verdict) in completions.iter().zip(verdicts) {
        if *verdict == CompletionVerdict::StaleLease {
            tracing::warn!(
                task = completion.task_id,
                "completion rejected: the lease had expired; another attempt owns the task"
            );
        }
    }
}

impl Shared {
    /// How many tasks one more claim may take: room in the slots and the
    /// read-ahead the pace calls for, less what the worker holds.
    fn room(&self) -> u32 {
        let (running, oldest) = {
            let running = self.lock_running();
            let oldest = running
                .values()
                .map(|attempt| attempt.started.elapsed())
                .max();
            (running.len(), oldest)
        };
        let held = running + self.lock_ready().len();
        let read_ahead = self.pace.read_ahead(
            self.config.slots,
            self.config.read_ahead(),
            self.config.initial_read_ahead(),
            oldest,
        );
        self.config
            .slots
            .saturating_add(read_ahead)
            .saturating_sub(held as u32)
    }

    /// Holds the next round trip back while tasks still run, for at most
    /// the pace's linger, so it carries more outcomes; returns at once
    /// when none runs (an idle worker never waits) or the worker stops.
    async fn gather(&self) {
        let limit = self.pace.linger();
        if limit.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.lock_running().is_empty() || self.stopping.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.stopping.cancelled() => return,
            }
        }
    }

    /// Whether the worker holds no task and nothing waits to be delivered.
    fn idle(&self) -> bool {
        self.lock_running().is_empty() && self.lock_ready().is_empty() && self.outbox.is_empty()
    }

    /// Takes the server's answer to a round trip that carried `delivery`.
    fn answered(self: &Arc<Self>, delivery: &Delivery, response: ClaimResponse) {
        self.outbox.answered(delivery);
        log_verdicts(delivery, &response.verdicts);
        if let Some(plugins) = response.plugins {
            self.catalog.send_replace(Some(plugins));
        }
        self.accept(response.tasks);
    }

    /// What to do with a delivery whose round trip failed with `error`:
    /// put it back to go again when the failure may pass, drop it when it
    /// cannot (the server refused it, or forgot the registration it belongs
    /// to, and with it every lease).
    async fn failed(&self, delivery: Delivery, error: &CallError, worker_id: &str) {
        if error.is_unknown_worker() {
            self.outbox.answered(&delivery);
            self.reregister(worker_id).await;
        } else if error.is_transient() {
            self.outbox.put_back(delivery);
        } else {
            tracing::warn!(%error, "the server refused a delivery; its events and outcomes are dropped");
            self.outbox.answered(&delivery);
        }
    }

    /// Sends `delivery` under registration `worker_id` in a round trip
    /// that claims nothing and does not wait.
    pub(crate) async fn send_only(
        &self,
        worker_id: &str,
        delivery: &Delivery,
        timeout: Duration,
    ) -> Result<ClaimResponse, CallError> {
        let (events, completions) = delivery.contents();
        let request = ClaimRequest {
            worker_id: worker_id.to_string(),
            max_tasks: 0,
            wait_ms: 0,
            events,
            completions,
        };
        self.client.call("claim", &request, timeout).await
    }

    /// Awaits `call`, a round trip that answers at once, and times it for
    /// the pace when it succeeds.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let started = std::time::Instant::now();
        let answer = call.await;
        if answer.is_ok() {
            self.pace.trip_ended(started.elapsed());
        }
        answer
    }

    /// One round trip that only delivers: no claim, no wait.
    async fn deliver(self: &Arc<Self>, worker_id: &str, delivery: Delivery) {
        let sent = self
            .timed(self.send_only(worker_id, &delivery, Duration::from_secs(30)))
            .await;
        match sent {
            Ok(response) => self.answered(&delivery, response),
            Err(error) => {
                tracing::warn!(%error, "delivering events and outcomes failed; retrying");
                let transient = error.is_transient();
                self.failed(delivery, &error, worker_id).await;
                if transient {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

pub(crate) async fn exchange_loop(shared: Arc<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let room = {
            // Dropped before the call: a waiter that is not polled would
            // take the outbox's wake-up from the one that is.
            let added = shared.outbox.added.notified();
            let freed = shared.slot_freed.notified();
            tokio::pin!(added, freed);
            added.as_mut().enable();
            freed.as_mut().enable();
            let stopping = shared.stopping.is_cancelled();
            if stopping && shared.idle() {
                return;
            }
            let room = if stopping { 0 } else { shared.room() };
            if room == 0 && shared.outbox.is_empty() {
                tokio::select! {
                    _ = added => {}
                    _ = freed => {}
                    _ = shared.stopping.cancelled(), if !stopping => {}
                }
                continue;
            }
            room
        };
        let Some(worker_id) = shared.worker_id().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let room = if shared.outbox.is_empty() {
            room
        } else {
            shared.gather().await;
            if shared.stopping.is_cancelled() {
                0
            } else {
                shared.room()
            }
        };
        let delivery = shared.outbox.take();
        let (events, completions) = delivery.contents();
        let long_poll = delivery.is_empty();
        let wait = if long_poll {
            shared.config.claim_wait
        } else {
            Duration::ZERO
        };
        let request = ClaimRequest {
            worker_id: worker_id.clone(),
            max_tasks: room,
            wait_ms: wait.as_millis() as u64,
            events,
            completions,
        };
        let call = shared.client.call::<_, ClaimResponse>(
            "claim",
            &request,
            wait + Duration::from_secs(15),
        );
        let answer = if long_poll {
            match deliver_while_waiting(&shared, &worker_id, call).await {
                Some(answer) => answer,
                // Stopping: claim no more (a task the abandoned call may
                // have claimed goes back when its lease ends).
                None => continue,
            }
        } else {
            shared.timed(call).await
        };
        match answer {
            Ok(response) => {
                backoff.reset();
                shared.answered(&delivery, response);
            }
            Err(error) => {
                if !error.is_unknown_worker() {
                    tracing::warn!(%error, "claim failed; retrying");
                }
                shared.failed(delivery, &error, &worker_id).await;
                if !error.is_unknown_worker() {
                    backoff.wait().await;
                }
            }
        }
    }
}

/// Waits for the long-poll `call`, delivering meanwhile whatever the
/// attempts produce, one delivery at a time; the call's answer, or `None`
/// when the worker began to stop (between deliveries) before it came.
async fn deliver_while_waiting(
    shared: &Arc<Shared>,
    worker_id: &str,
    call: impl Future<Output = Result<ClaimResponse, CallError>>,
) -> Option<Result<ClaimResponse, CallError>> {
    tokio::pin!(call);
    let mut answer = None;
    loop {
        let added = shared.outbox.added.notified();
        tokio::pin!(added);
        added.as_mut().enable();
        if !shared.outbox.is_empty() {
            // A delivery in flight is finished even when the call answers
            // first: dropping it could deliver it twice.
            let send = shared.deliver(worker_id, shared.outbox.take());
            tokio::pin!(send);
            loop {
                tokio::select! {
                    result = &mut call, if answer.is_none() => answer = Some(result),
                    () = &mut send => break,
                }
            }
            if answer.is_some() {
                return answer;
            }
            continue;
        }
        tokio::select! {
            result = &mut call => return Some(result),
            _ = added => {}
            _ = shared.stopping.cancelled() => return None,
        }
    }
}
