//! The worker agent: registers with the server, claims tasks it can run,
//! runs each in the executor runtime, and reports events and outcomes.
//!
//! [`Worker::start`] registers (see [`crate::registration`]) and then
//! starts these, all sharing one [`Shared`](crate::shared::Shared) state:
//!
//! - **the exchange loop** ([`crate::exchange`]): one round trip at a time
//!   that delivers what waits in the outbox ([`crate::outbox`]: logs,
//!   progress and outcomes, a task's events always before its completion,
//!   retried until the server takes them, so a server restart loses none)
//!   and claims tasks for the free slots and a small read-ahead; with
//!   nothing to deliver, a long poll.
//! - **the heartbeat loop** ([`crate::heartbeat`]): every interval, every
//!   lease the worker holds (running, claimed ahead, or finished and not yet
//!   answered); the answer says which to cancel (the user asked) and which
//!   are lost (the lease expired or the task was released).
//! - **plugin sync** ([`crate::plugin_sync`]): loads the plugins the server
//!   installs and drops the ones it removes.
//! - **probing** ([`crate::probing`]), only when probes are configured:
//!   probes the host's capabilities again every probe interval.
//! - **one task per running attempt** ([`crate::attempt`]), started when
//!   it is claimed or, claimed ahead, when a slot frees.
//!
//! A call answered `unknown_worker` (the registration expired, or the server
//! lost it) makes the worker register again; the attempts it was running
//! under the old registration are stopped, since the server released them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowmesh_runtime::Runtime;
use flowmesh_types::WorkerCapabilities;
use flowmesh_types::api::Deregistration;
use tokio::sync::{Notify, RwLock, watch};
use tokio_util::sync::CancellationToken;

use crate::client::{CallError, Client};
use crate::exchange::exchange_loop;
use crate::heartbeat::heartbeat_loop;
use crate::outbox::Outbox;
use crate::plugin_sync::PluginSync;
use crate::probing::{probe_all, probe_loop};
use crate::shared::{Shared, spawn};

pub use crate::config::WorkerConfig;

/// A running worker.
pub struct Worker {
    shared: Arc<Shared>,
    /// The exchange loop: it ends, when the worker stops, once the last
    /// outcome is delivered.
    exchange_done: tokio::task::JoinHandle<()>,
    /// Plugin sync passes done.
    synced: watch::Receiver<u64>,
}

impl Worker {
    /// Probes the configured capabilities, registers with the server
    /// (retrying until it answers) and starts the loops.
    pub async fn start(config: WorkerConfig, runtime: Arc<Runtime>) -> Result<Self, CallError> {
        let client = Client::new(&config.server, &config.token, config.ca_cert.as_deref())?;
        probe_all(&runtime, &config.probes).await;
        let shared = Arc::new(Shared {
            config,
            client,
            runtime,
            registration: Arc::new(RwLock::new(None)),
            running: Mutex::new(HashMap::new()),
            ready: Mutex::new(VecDeque::new()),
            slot_freed: Notify::new(),
            pace: Default::default(),
            beat_now: Arc::new(Notify::new()),
            catalog: watch::Sender::new(None),
            advertised: Mutex::new(None),
            outbox: Outbox::default(),
            stopping: CancellationToken::new(),
            killed: CancellationToken::new(),
        });
        shared.register().await?;
        let (synced_sender, synced) = watch::channel(0);
        spawn(
            &shared,
            PluginSync::new(shared.runtime.clone(), shared.client.clone()).run(
                shared.catalog.subscribe(),
                shared.beat_now.clone(),
                synced_sender,
            ),
        );
        if !shared.config.probes.is_empty() {
            spawn(
                &shared,
                probe_loop(
                    shared.runtime.clone(),
                    shared.config.probes.clone(),
                    shared.config.probe_interval,
                    shared.beat_now.clone(),
                ),
            );
        }
        spawn(&shared, heartbeat_loop(shared.clone()));
        let exchange_done = tokio::spawn({
            let shared = shared.clone();
            let killed = shared.killed.clone();
            async move {
                tokio::select! {
                    _ = killed.cancelled() => {}
                    _ = exchange_loop(shared) => {}
                }
            }
        });
        Ok(Self {
            shared,
            exchange_done,
            synced,
        })
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// What the worker can run now.
    pub fn capabilities(&self) -> WorkerCapabilities {
        self.shared.runtime.capabilities()
    }

    /// Waits until the worker has caught up with the plugins installed on the
    /// server when it registered (fetched and compiled them, or given up on
    /// the ones that cannot load).
    pub async fn plugins_synced(&self) {
        let _ = self.synced.clone().wait_for(|passes| *passes > 0).await;
    }

    /// Stops cleanly: no new claims; running attempts are interrupted and
    /// handed back (`released`: they go back to pending, and the attempt
    /// does not count against `maxAttempts`), and so are the tasks claimed
    /// ahead; the outbox is flushed, waiting at most `grace`; then the
    /// registration is ended
    /// (`POST /worker/deregister`), so the worker stops showing as live at
    /// once.
    pub async fn shutdown(self, grace: Duration) {
        self.shared.stopping.cancel();
        for running in self.shared.lock_running().values() {
            running.cancel.cancel();
        }
        let ahead: Vec<_> = self.shared.lock_ready().drain(..).collect();
        for task in &ahead {
            self.shared.hand_back(task);
        }
        let deadline = tokio::time::Instant::now() + grace;
        let Self {
            shared,
            exchange_done,
            ..
        } = self;
        let killed = shared.killed.clone();
        let client = shared.client.clone();
        let registration = shared.registration.clone();
        drop(shared);
        // The exchange loop ends once the attempts have ended and their
        // outcomes are in.
        if tokio::time::timeout_at(deadline, exchange_done)
            .await
            .is_err()
        {
            tracing::warn!("outbox not flushed within the shutdown grace period");
        }
        killed.cancel();
        // Last, so that the outcomes above are in: the server ends the
        // registration at once instead of when it stops hearing from it, and
        // anything still held goes back to pending.
        let worker_id = registration
            .read()
            .await
            .as_ref()
            .map(|registered| registered.worker_id.clone());
        if let Some(worker_id) = worker_id {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let goodbye = Deregistration { worker_id };
            match client
                .send_only("deregister", &goodbye, left.max(Duration::from_secs(1)))
                .await
            {
                Ok(()) => tracing::info!("deregistered"),
                Err(error) => {
                    tracing::warn!(%error, "could not deregister; the server ends the registration when its heartbeats stop");
                }
            }
        }
    }

    /// Stops at once, reporting nothing, as if the process were killed: the
    /// server finds out when the leases expire.
    pub fn kill(self) {
        self.shared.killed.cancel();
        self.shared.stopping.cancel();
        self.exchange_done.abort();
    }
}
