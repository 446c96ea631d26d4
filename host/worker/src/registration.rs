//! Registering with the server, and registering again when it forgot the
//! worker (a call answered `unknown_worker`).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flowmesh_types::api::{Registered, WorkerRegistration};
use tokio::sync::RwLock;

use crate::backoff::Backoff;
use crate::client::CallError;
use crate::exchange::log_verdicts;
use crate::shared::{Advertised, Shared};

/// The most deliveries sent under a registration the server forgot.
const LAST_DELIVERIES: usize = 16;

/// The current registration id.
pub(crate) async fn current_id(registration: &RwLock<Option<Registered>>) -> Option<String> {
    registration
        .read()
        .await
        .as_ref()
        .map(|registration| registration.worker_id.clone())
}

impl Shared {
    fn registration_message(&self) -> WorkerRegistration {
        let advertised = self.advertised_now();
        WorkerRegistration {
            name: self.config.name.clone(),
            capabilities: advertised.capabilities,
            hardware: advertised.hardware,
            labels: advertised.labels,
            slots: self.config.slots,
            read_ahead: self.config.read_ahead(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Registers, retrying transient failures with backoff until it works
    /// or the worker stops.
    pub(crate) async fn register(&self) -> Result<(), CallError> {
        let mut backoff = Backoff::default();
        loop {
            let message = self.registration_message();
            match self
                .client
                .call::<_, Registered>("register", &message, Duration::from_secs(30))
                .await
            {
                Ok(registered) => {
                    tracing::info!(
                        worker = self.config.name,
                        id = registered.worker_id,
                        task_types = ?message.capabilities.supported_task_types,
                        "registered"
                    );
                    *self
                        .advertised
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(Advertised {
                        capabilities: message.capabilities.clone(),
                        labels: message.labels.clone(),
                        hardware: message.hardware.clone(),
                    });
                    self.catalog.send_replace(Some(registered.plugins.clone()));
                    *self.registration.write().await = Some(registered);
                    return Ok(());
                }
                Err(error) if error.is_transient() && !self.stopping.is_cancelled() => {
                    tracing::warn!(%error, "registration failed; retrying");
                    backoff.wait().await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends what waits in the outbox once more under `stale`, the
    /// registration the server forgot, before it is dropped: the server's
    /// fence then decides each outcome (refused as stale unless its lease
    /// still holds), not this worker. Nothing is retried.
    async fn last_delivery(&self, stale: &str) {
        for _ in 0..LAST_DELIVERIES {
            if self.outbox.is_empty() {
                return;
            }
            let delivery = self.outbox.take();
            self.outbox.answered(&delivery);
            match self
                .send_only(stale, &delivery, Duration::from_secs(10))
                .await
            {
                Ok(response) => log_verdicts(&delivery, &response.verdicts),
                Err(error) => {
                    tracing::warn!(%error, "the outcomes of a forgotten registration were not delivered");
                    return;
                }
            }
        }
    }

    pub(crate) async fn worker_id(&self) -> Option<String> {
        current_id(&self.registration).await
    }

    /// The server forgot registration `stale`: drop the attempts run under
    /// it, and register again (once, whichever loop notices first).
    pub(crate) async fn reregister(&self, stale: &str) {
        {
            let mut registration = self.registration.write().await;
            if registration.as_ref().map(|r| r.worker_id.as_str()) != Some(stale) {
                return;
            }
            *registration = None;
        }
        tracing::warn!(
            worker = self.config.name,
            "the server no longer knows this worker; registering again"
        );
        for running in self.lock_running().values() {
            running.lost.store(true, Ordering::SeqCst);
            running.cancel.cancel();
        }
        // Their leases went with the registration.
        self.lock_ready().clear();
        // Bounded as a whole: registering again must not wait on a slow server.
        let _ = tokio::time::timeout(Duration::from_secs(15), self.last_delivery(stale)).await;
        self.outbox.clear();
        if let Err(error) = self.register().await {
            tracing::error!(%error, "registering again failed");
        }
    }
}
