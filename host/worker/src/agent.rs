//! The worker agent: registers with the server, claims tasks it can run,
//! runs each in the executor runtime, and reports events and outcomes.
//!
//! Four loops share one [`Shared`] state:
//!
//! - **claim**: while a slot is free, a long-poll claim for as many tasks as
//!   there are free slots; each claimed task starts at once.
//! - **heartbeat**: every interval, the leases of the running tasks; the
//!   answer says which to cancel (the user asked) and which are lost (the
//!   lease expired or the task was released).
//! - **outbox**: logs, progress and outcomes, sent in batches; a task's
//!   events always go before its completion. Outcomes are retried until the
//!   server takes them, so a server restart loses none.
//! - **plugin sync**: loads the plugins the server installs and drops the
//!   ones it removes (see [`crate::plugin_sync`]).
//! - one task per running attempt.
//!
//! A call answered `unknown_worker` (the registration expired, or the server
//! lost it) makes the worker register again; the attempts it was running
//! under the old registration are stopped, since the server released them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flowmesh_runtime::{Probe, Runtime, TaskRequest};
use flowmesh_types::api::{
    ClaimRequest, ClaimResponse, ClaimedTask, Completion, CompletionBatch, CompletionResponse,
    CompletionVerdict, EventBatch, Hardware, Heartbeat, HeartbeatResponse, Lease, PluginRef,
    Registered, TaskEvents, WorkerRegistration,
};
use flowmesh_types::{TaskError, TaskErrorCode, TaskEvent, WorkerCapabilities};
use tokio::sync::{Notify, RwLock, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::client::{CallError, Client};
use crate::plugin_sync::PluginSync;
use crate::probing::{probe_all, probe_loop};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The server's base URL (`http://host:7380`).
    pub server: String,
    /// A worker token.
    pub token: String,
    /// Stable name; registering again under it replaces the old registration.
    pub name: String,
    /// Tasks run at once.
    pub slots: u32,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Detected hardware.
    pub hardware: Hardware,
    /// How long one claim long-poll waits. Default 20 s.
    pub claim_wait: Duration,
    /// The host capabilities to look for: probed before registering and
    /// every [`probe_interval`](Self::probe_interval) after.
    pub probes: Vec<Arc<dyn Probe>>,
    /// How often capabilities are probed again. Default 10 s.
    pub probe_interval: Duration,
}

impl WorkerConfig {
    /// Defaults for `server` and `token`: the host's name, one slot per CPU,
    /// detected hardware.
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> Self {
        let hardware = crate::hardware::detect();
        Self {
            server: server.into(),
            token: token.into(),
            name: crate::hardware::host_name(),
            slots: (hardware.cpus as u32).max(1),
            labels: BTreeMap::new(),
            hardware,
            claim_wait: Duration::from_secs(20),
            probes: Vec::new(),
            probe_interval: Duration::from_secs(10),
        }
    }
}

/// What the outbox sends.
enum Outgoing {
    Event(Lease, TaskEvent),
    Complete(Completion),
}

/// What a worker tells the server about itself besides its leases.
#[derive(Debug, Clone, PartialEq)]
struct Advertised {
    capabilities: WorkerCapabilities,
    labels: BTreeMap<String, String>,
    hardware: Hardware,
}

struct Running {
    lease_token: String,
    cancel: CancellationToken,
    /// The lease is gone: stop, and do not report.
    lost: AtomicBool,
}

struct Shared {
    config: WorkerConfig,
    client: Client,
    runtime: Arc<Runtime>,
    registration: Arc<RwLock<Option<Registered>>>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    slot_freed: Notify,
    /// Heartbeat now: what the worker can run changed.
    beat_now: Arc<Notify>,
    /// The server's plugin catalog, as last heard.
    catalog: watch::Sender<Option<Vec<PluginRef>>>,
    /// What the server was last told (registration or heartbeat): a
    /// heartbeat carries what differs.
    advertised: Mutex<Option<Advertised>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Stop claiming; interrupt running attempts and report them as retryable.
    stopping: CancellationToken,
    /// Drop everything at once, reporting nothing (a crash).
    killed: CancellationToken,
}

/// A running worker.
pub struct Worker {
    shared: Arc<Shared>,
    outbox_done: tokio::task::JoinHandle<()>,
    /// Plugin sync passes done.
    synced: watch::Receiver<u64>,
}

impl Worker {
    /// Probes the configured capabilities, registers with the server
    /// (retrying until it answers) and starts the loops.
    pub async fn start(config: WorkerConfig, runtime: Arc<Runtime>) -> Result<Self, CallError> {
        let client = Client::new(&config.server, &config.token)?;
        probe_all(&runtime, &config.probes).await;
        let (outbox, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            client,
            runtime,
            registration: Arc::new(RwLock::new(None)),
            running: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
            beat_now: Arc::new(Notify::new()),
            catalog: watch::Sender::new(None),
            advertised: Mutex::new(None),
            outbox,
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
        spawn(&shared, claim_loop(shared.clone()));
        spawn(&shared, heartbeat_loop(shared.clone()));
        let outbox_done = tokio::spawn({
            let client = shared.client.clone();
            let registration = shared.registration.clone();
            let killed = shared.killed.clone();
            async move {
                tokio::select! {
                    _ = killed.cancelled() => {}
                    _ = outbox_loop(client, registration, receiver) => {}
                }
            }
        });
        Ok(Self {
            shared,
            outbox_done,
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
    /// does not count against `maxAttempts`); the outbox is flushed, waiting
    /// at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.shared.stopping.cancel();
        for running in self.shared.lock_running().values() {
            running.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.shared.lock_running().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The outbox ends once every sender is gone: the shared state's, which
        // leaves with the loops.
        let Self {
            shared,
            outbox_done,
            ..
        } = self;
        let killed = shared.killed.clone();
        drop(shared);
        if tokio::time::timeout_at(deadline, outbox_done)
            .await
            .is_err()
        {
            tracing::warn!("outbox not flushed within the shutdown grace period");
        }
        killed.cancel();
    }

    /// Stops at once, reporting nothing, as if the process were killed: the
    /// server finds out when the leases expire.
    pub fn kill(self) {
        self.shared.killed.cancel();
        self.shared.stopping.cancel();
        self.outbox_done.abort();
    }
}

/// Spawns `future` to stop when the worker is killed or stopping.
fn spawn(shared: &Arc<Shared>, future: impl Future<Output = ()> + Send + 'static) {
    let killed = shared.killed.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = killed.cancelled() => {}
            _ = future => {}
        }
    });
}

impl Shared {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the worker advertises now: what it can run, its labels (the
    /// operator's and its capabilities'), its hardware (detected, and the
    /// GPUs its capabilities find).
    fn advertised_now(&self) -> Advertised {
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

    fn registration_message(&self) -> WorkerRegistration {
        let advertised = self.advertised_now();
        WorkerRegistration {
            name: self.config.name.clone(),
            capabilities: advertised.capabilities,
            hardware: advertised.hardware,
            labels: advertised.labels,
            slots: self.config.slots,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Registers, retrying transient failures with backoff until it works
    /// or the worker stops.
    async fn register(&self) -> Result<(), CallError> {
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

    async fn worker_id(&self) -> Option<String> {
        current_id(&self.registration).await
    }

    /// The server forgot registration `stale`: drop the attempts run under
    /// it, and register again (once, whichever loop notices first).
    async fn reregister(&self, stale: &str) {
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
        if let Err(error) = self.register().await {
            tracing::error!(%error, "registering again failed");
        }
    }

    fn free_slots(&self) -> u32 {
        self.config
            .slots
            .saturating_sub(self.lock_running().len() as u32)
    }

    fn start_task(self: &Arc<Self>, task: ClaimedTask) {
        let running = Arc::new(Running {
            lease_token: task.lease_token.clone(),
            cancel: CancellationToken::new(),
            lost: AtomicBool::new(false),
        });
        self.lock_running().insert(task.id.clone(), running.clone());
        if self.stopping.is_cancelled() {
            // Claimed as shutdown began: hand it straight back.
            running.cancel.cancel();
        }
        let shared = self.clone();
        spawn(self, async move {
            let completion = shared.execute(&task, &running).await;
            shared.lock_running().remove(&task.id);
            if !running.lost.load(Ordering::SeqCst) {
                let _ = shared.outbox.send(Outgoing::Complete(completion));
            }
            shared.slot_freed.notify_one();
        });
    }

    async fn execute(&self, task: &ClaimedTask, running: &Running) -> Completion {
        let mut limits = self.runtime_limits();
        if let Some(timeout) = task.timeout_ms {
            limits.timeout = Duration::from_millis(timeout);
        }
        if task.hardware.memory_bytes > 0 {
            limits.memory_bytes = task.hardware.memory_bytes as usize;
        }
        limits.container_memory_bytes = task.hardware.memory_bytes;
        limits.cpus = task.hardware.cpu;
        // Whole GPUs, this task's alone until it ends (the lease is held to
        // the end of this function).
        let gpu = &task.hardware.gpu;
        let _gpus = if gpu.count > 0 {
            match self.runtime.assign_gpus(gpu) {
                Ok(lease) => {
                    limits.gpus = lease.ids().to_vec();
                    Some(lease)
                }
                Err(reason) => {
                    return Completion {
                        task_id: task.id.clone(),
                        lease_token: running.lease_token.clone(),
                        plugin: None,
                        elapsed_ms: 0,
                        output: None,
                        error: Some(TaskError::new(
                            TaskErrorCode::Retryable,
                            format!(
                                "worker {} could not assign the task's GPUs: {reason}",
                                self.config.name
                            ),
                        )),
                    };
                }
            }
        } else {
            None
        };
        let lease = Lease {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
        };
        let outbox = self.outbox.clone();
        let sink = Arc::new(move |event: TaskEvent| {
            let _ = outbox.send(Outgoing::Event(lease.clone(), event));
        });
        let run = self
            .runtime
            .execute(
                TaskRequest {
                    id: task.id.clone(),
                    task_type: task.task_type.clone(),
                    spec: task.spec.to_string(),
                    attempt: task.attempt,
                    limits,
                },
                sink,
                running.cancel.clone(),
            )
            .await;
        let (output, mut error) = match run.outcome {
            Ok(output) => (serde_json::from_str(output.get()).ok(), None),
            Err(error) => (None, Some(error)),
        };
        if self.stopping.is_cancelled()
            && error
                .as_ref()
                .is_some_and(|error| error.code == TaskErrorCode::Cancelled)
        {
            error = Some(TaskError::new(
                TaskErrorCode::Released,
                format!(
                    "worker {} shut down while the task ran and handed it back",
                    self.config.name
                ),
            ));
        }
        Completion {
            task_id: task.id.clone(),
            lease_token: running.lease_token.clone(),
            plugin: run.plugin.map(|plugin| PluginRef {
                name: plugin.name,
                version: plugin.version,
                digest: plugin.digest,
            }),
            elapsed_ms: run.elapsed.as_millis() as u64,
            output,
            error,
        }
    }

    fn runtime_limits(&self) -> flowmesh_runtime::TaskLimits {
        self.runtime.config().default_limits.clone()
    }
}

async fn claim_loop(shared: Arc<Shared>) {
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

async fn heartbeat_loop(shared: Arc<Shared>) {
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
        let leases: Vec<Lease> = shared
            .lock_running()
            .iter()
            .map(|(id, running)| Lease {
                task_id: id.clone(),
                lease_token: running.lease_token.clone(),
            })
            .collect();
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

/// Most outgoing items sent in one call.
const MAX_BATCH: usize = 1000;

/// The current registration id.
async fn current_id(registration: &RwLock<Option<Registered>>) -> Option<String> {
    registration
        .read()
        .await
        .as_ref()
        .map(|registration| registration.worker_id.clone())
}

/// Sends what the tasks produce until every sender is gone (the worker
/// stopped and its last attempt reported).
async fn outbox_loop(
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

/// Exponential backoff from 50 ms to 5 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    async fn wait(&mut self) {
        let delay = Duration::from_millis(50u64 << self.attempt.min(7)).min(Duration::from_secs(5));
        self.attempt += 1;
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}
