//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flowmesh_types::api::PluginRef;
use tokio_util::sync::CancellationToken;

use crate::bus::{EventBus, WorkSignal};
pub use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::group_commit::Submissions;
use crate::metrics::Metrics;
use crate::round_trips::{RoundTrips, Rules};
use crate::store::{Principal, RetryPolicy, Store, StoreError};
use crate::validation::Validator;

/// How long a looked-up token is trusted before it is looked up again: a
/// token revoked through any server of the database is refused within it.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// The server's shared state.
pub struct AppState {
    /// The durable store.
    pub store: Store,
    /// Settings.
    pub config: ServerConfig,
    /// Per-token limits: submit rate, open event streams.
    pub limits: crate::limits::Limits,
    /// Installed plugins, for checking specs.
    pub validator: Validator,
    /// Task events for watchers.
    pub bus: EventBus,
    /// Wakes waiting claims.
    pub work: WorkSignal,
    /// Wakes the workflow releaser ([`crate::releaser`]): a stage finished
    /// or a workflow was submitted.
    pub releaser: tokio::sync::Notify,
    /// The installed plugins as workers are told (name, version, digest);
    /// waiting claims answer with it when it changes. Kept by
    /// [`crate::installed_plugins`].
    pub catalog: tokio::sync::watch::Sender<Arc<Vec<PluginRef>>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The web console's signed-in browsers.
    pub console: crate::browser_sessions::Sessions,
    /// The group-commit writer of new tasks.
    pub submissions: Submissions,
    /// Where workers' exchanges and heartbeats are written, grouped on
    /// SQLite.
    pub round_trips: RoundTrips,
    /// Cancelled when the server stops: long polls and streams end.
    pub shutdown: CancellationToken,
    /// Held while the installed plugins change (install, remove, sync), so
    /// a sync pass never sees a half-done install.
    pub plugin_changes: tokio::sync::Mutex<()>,
    /// Installed digests that do not load on this server (stored by another
    /// server of another build): not tried again while installed.
    pub(crate) broken_plugins: tokio::sync::Mutex<std::collections::HashSet<String>>,
    /// The installed plugins by digest and task type, which decide the task
    /// types each worker is routed. Kept by [`crate::installed_plugins`].
    pub(crate) installed: std::sync::RwLock<Arc<crate::plugin_identity::Installed>>,
    tokens: Mutex<HashMap<String, (Principal, Instant)>>,
    /// How many times each held-back stage's check could not run (see
    /// [`crate::releaser::MAX_STAGE_CHECKS`]).
    stage_checks: Mutex<HashMap<String, u32>>,
}

impl AppState {
    /// Shared state over `store`.
    pub fn new(
        store: Store,
        config: ServerConfig,
        validator: Validator,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            shutdown,
            submissions: Submissions::start(store.clone()),
            round_trips: RoundTrips::start(store.clone(), Rules::of(&config)),
            store,
            limits: crate::limits::Limits::new(config.submit_rate, config.max_streams_per_token),
            config,
            validator,
            bus: EventBus::new(1 << 16),
            work: WorkSignal::default(),
            releaser: tokio::sync::Notify::new(),
            catalog: tokio::sync::watch::Sender::new(Arc::new(Vec::new())),
            metrics: Metrics::default(),
            console: crate::browser_sessions::Sessions::default(),
            plugin_changes: tokio::sync::Mutex::new(()),
            broken_plugins: tokio::sync::Mutex::new(std::collections::HashSet::new()),
            installed: std::sync::RwLock::new(Arc::default()),
            tokens: Mutex::new(HashMap::new()),
            stage_checks: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a live bearer secret; cached for at most a second
    /// so a busy worker does not cost a lookup per call.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        let key = crate::store::token_hash(secret);
        if let Some((principal, at)) = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < TOKEN_CACHE_TTL
            && principal
                .expires_at
                .is_none_or(|expires| expires > now_ms())
        {
            return Ok(Some(principal.clone()));
        }
        let principal = self.store.principal(&key, now_ms()).await?;
        if let Some(principal) = &principal {
            let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if tokens.len() > 10_000 {
                tokens.clear();
            }
            tokens.insert(key, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Counts one more failed check of stage `task_id`; the count so far.
    pub fn count_stage_check(&self, task_id: &str) -> u32 {
        let mut checks = self
            .stage_checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = checks.entry(task_id.to_string()).or_insert(0);
        *count += 1;
        *count
    }

    /// Forgets the failed checks of stage `task_id` (it was checked, or
    /// ended).
    pub fn forget_stage_checks(&self, task_id: &str) {
        self.stage_checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task_id);
    }

    /// Drops every cached token lookup (a token was revoked here).
    pub fn forget_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How retries are spaced.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.round_trips.rules().retry
    }

    /// The lease TTL in milliseconds.
    pub fn lease_ttl_ms(&self) -> i64 {
        self.round_trips.rules().lease_ttl_ms
    }

    /// Records stored events: publishes them, counts finished tasks, and
    /// wakes the workflow releaser when a task finished (it may have been
    /// a stage).
    pub fn publish(&self, events: Vec<crate::store::StoredEvent>) {
        if self.record(events) {
            self.releaser.notify_one();
        }
    }

    /// [`AppState::publish`] for the events of a worker's round trip, which
    /// says whether a stage finished: the releaser wakes only then, not for
    /// every task that is no stage.
    pub fn publish_exchanged(&self, events: Vec<crate::store::StoredEvent>, stages_finished: bool) {
        self.record(events);
        if stages_finished {
            self.releaser.notify_one();
        }
    }

    /// Publishes `events` and counts the finished tasks and workflows;
    /// whether a task finished.
    fn record(&self, events: Vec<crate::store::StoredEvent>) -> bool {
        use flowmesh_types::api::EventBody;
        let mut finished = false;
        for event in &events {
            match &event.body {
                EventBody::Result { state, .. } => {
                    finished = true;
                    self.metrics
                        .finished
                        .get_or_create(&crate::metrics::StateLabel {
                            state: state.as_str().to_string(),
                        })
                        .inc();
                }
                EventBody::Workflow { state, .. } if state.is_terminal() => {
                    self.metrics
                        .workflows_finished
                        .get_or_create(&crate::metrics::StateLabel {
                            state: state.as_str().to_string(),
                        })
                        .inc();
                }
                _ => {}
            }
        }
        self.bus.publish(events);
        finished
    }
}
