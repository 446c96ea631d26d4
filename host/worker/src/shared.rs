//! The state the worker's loops and attempts share: [`Shared`], with the
//! attempts it is running ([`Running`]), the tasks it claimed ahead, what it
//! last told the server about itself ([`Advertised`]), and the outbox of
//! what goes to the server ([`Outbox`]).
//!
//! This module imports nothing from the loops: they build on it. The
//! methods of [`Shared`] are spread over the modules that use them:
//! registering in [`crate::registration`], starting and running an attempt
//! in [`crate::attempt`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flowmesh_runtime::Runtime;
use flowmesh_types::WorkerCapabilities;
use flowmesh_types::api::{ClaimedTask, Hardware, PluginRef, Registered};
use tokio::sync::{Notify, RwLock, watch};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::WorkerConfig;
use crate::outbox::Outbox;
use crate::pace::Pace;

/// What a worker tells the server about itself besides its leases.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Advertised {
    pub(crate) capabilities: WorkerCapabilities,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) hardware: Hardware,
}

pub(crate) struct Running {
    pub(crate) lease_token: String,
    /// When the attempt started.
    pub(crate) started: std::time::Instant,
    pub(crate) cancel: CancellationToken,
    /// The lease is gone: stop, and do not report.
    pub(crate) lost: AtomicBool,
}

pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) client: Client,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) registration: Arc<RwLock<Option<Registered>>>,
    pub(crate) running: Mutex<HashMap<String, Arc<Running>>>,
    /// Tasks claimed ahead (leased to this worker), each to start as a
    /// slot frees.
    pub(crate) ready: Mutex<VecDeque<ClaimedTask>>,
    pub(crate) slot_freed: Notify,
    /// How long tasks and round trips take: the read-ahead and the linger.
    pub(crate) pace: Pace,
    /// Heartbeat now: what the worker can run changed.
    pub(crate) beat_now: Arc<Notify>,
    /// The server's plugin catalog, as last heard.
    pub(crate) catalog: watch::Sender<Option<Vec<PluginRef>>>,
    /// What the server was last told (registration or heartbeat): a
    /// heartbeat carries what differs.
    pub(crate) advertised: Mutex<Option<Advertised>>,
    pub(crate) outbox: Outbox,
    /// Stop claiming; interrupt running attempts and report them as retryable.
    pub(crate) stopping: CancellationToken,
    /// Drop everything at once, reporting nothing (a crash).
    pub(crate) killed: CancellationToken,
}

/// Spawns `future` to stop when the worker is killed or stopping.
pub(crate) fn spawn(shared: &Arc<Shared>, future: impl Future<Output = ()> + Send + 'static) {
    let killed = shared.killed.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = killed.cancelled() => {}
            _ = future => {}
        }
    });
}

impl Shared {
    pub(crate) fn lock_running(&self) -> MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_ready(&self) -> MutexGuard<'_, VecDeque<ClaimedTask>> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the worker advertises now: what it can run, its labels (the
    /// operator's and its capabilities'), its hardware (detected, and the
    /// GPUs its capabilities find).
    pub(crate) fn advertised_now(&self) -> Advertised {
        let mut labels = self.config.labels.clone();
        labels.extend(self.runtime.capability_labels());
        let mut hardware = self.config.hardware.clone();
        hardware.gpus.extend(self.runtime.capability_gpus());
        Advertised {
            capabilities: self.runtime.capabilities(),
            labels,
            hardware,
        }
    }
}
