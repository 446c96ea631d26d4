//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use flowmesh_types::{PluginReport, PluginStatus, is_valid_name};
use tokio_util::sync::CancellationToken;

use crate::api::ApiFailure;
use crate::bus::{EventBus, WorkSignal};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::store::{PluginRecord, Principal, RetryPolicy, Store, StoreError};
use crate::submissions::Submissions;
use crate::validation::Validator;

/// How long a looked-up token is trusted before it is looked up again.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

/// The server's shared state.
pub struct AppState {
    /// The durable store.
    pub store: Store,
    /// Settings.
    pub config: ServerConfig,
    /// Installed plugins, for checking specs.
    pub validator: Validator,
    /// Task events for watchers.
    pub bus: EventBus,
    /// Wakes waiting claims.
    pub work: WorkSignal,
    /// Wakes waiting claims when the installed plugins change, so they
    /// answer with the new catalog.
    pub plugins_changed: WorkSignal,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The group-commit writer of new tasks.
    pub submissions: Submissions,
    /// Cancelled when the server stops: long polls and streams end.
    pub shutdown: CancellationToken,
    /// Held while the installed plugins change (install, remove, sync), so
    /// a sync pass never sees a half-done install.
    pub plugin_changes: tokio::sync::Mutex<()>,
    /// Installed digests that do not load on this server (stored by another
    /// server of another build): not tried again while installed.
    broken_plugins: tokio::sync::Mutex<std::collections::HashSet<String>>,
    tokens: Mutex<HashMap<String, (Principal, Instant)>>,
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
            store,
            config,
            validator,
            bus: EventBus::new(1 << 16),
            work: WorkSignal::default(),
            plugins_changed: WorkSignal::default(),
            metrics: Metrics::default(),
            plugin_changes: tokio::sync::Mutex::new(()),
            broken_plugins: tokio::sync::Mutex::new(std::collections::HashSet::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a bearer secret; cached briefly so a busy worker does
    /// not cost a lookup per call.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        let key = crate::store::token_hash(secret);
        if let Some((principal, at)) = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(Some(principal.clone()));
        }
        let principal = self.store.principal(&key).await?;
        if let Some(principal) = &principal {
            let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if tokens.len() > 10_000 {
                tokens.clear();
            }
            tokens.insert(key, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Installs a plugin from its component bytes, under `name` or the name
    /// its manifest gives: checks it is a usable FlowMesh plugin, loads it
    /// for validation, and stores it.
    pub async fn install_plugin(
        &self,
        name: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<(PluginReport, PluginRecord), ApiFailure> {
        let invalid = |message: String| {
            ApiFailure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
        };
        let _changing = self.plugin_changes.lock().await;
        let (manifest, _) = self
            .validator
            .inspect(bytes.clone())
            .await
            .map_err(|error| {
                invalid(format!(
                    "not a WebAssembly component this server can load: {error}"
                ))
            })?
            .map_err(|reason| {
                invalid(format!(
                    "the component is not a usable FlowMesh plugin: it {reason}"
                ))
            })?;
        let name = name.map_or_else(|| manifest.name.clone(), str::to_string);
        if !is_valid_name(&name) {
            return Err(ApiFailure::bad_param(
                "name",
                "letters, digits, '-' and '_' only",
            ));
        }
        // Refuse a task type another plugin provides before loading, so the
        // version installed under this name keeps serving.
        for other in self.validator.reports() {
            let Some(theirs) = other.manifest.filter(|_| other.name != name) else {
                continue;
            };
            if let Some(task_type) = manifest
                .task_types
                .iter()
                .find(|mine| theirs.task_types.iter().any(|t| t.name == mine.name))
            {
                return Err(invalid(format!(
                    "task type {:?} is already provided by plugin {:?}; remove one of them, then install this one again",
                    task_type.name, other.name
                )));
            }
        }
        let report = self
            .validator
            .load(&name, bytes.clone())
            .await
            .map_err(|error| invalid(error.to_string()))?;
        if report.status != PluginStatus::Available {
            // Back to what is installed under that name, if anything.
            self.validator.remove(&name);
            if let Err(error) = self.sync_plugins_locked().await {
                tracing::warn!(%error, "restoring the installed plugins failed; the next sync pass retries");
            }
            return Err(invalid(format!(
                "the plugin cannot be installed: {}",
                report.reason.clone().unwrap_or_default()
            )));
        }
        let record = PluginRecord {
            name: name.clone(),
            version: manifest.version.clone(),
            digest: report.digest.clone(),
            manifest,
            imports: report.imports.clone(),
            installed_at: now_ms(),
        };
        self.store.put_plugin(&record, &bytes).await?;
        self.plugins_changed.notify();
        tracing::info!(plugin = name, digest = record.digest, "plugin installed");
        Ok((report, record))
    }

    /// Brings the plugins this server checks specs with in line with the
    /// store: another server on the same database may have installed or
    /// removed some. Returns whether anything changed.
    pub async fn sync_plugins(&self) -> Result<bool, StoreError> {
        let _changing = self.plugin_changes.lock().await;
        self.sync_plugins_locked().await
    }

    async fn sync_plugins_locked(&self) -> Result<bool, StoreError> {
        let catalog = self.store.plugin_catalog().await?;
        let loaded: HashMap<String, String> = self
            .validator
            .reports()
            .into_iter()
            .map(|report| (report.name, report.digest))
            .collect();
        let mut changed = false;
        let mut broken = self.broken_plugins.lock().await;
        broken.retain(|digest| catalog.iter().any(|entry| &entry.digest == digest));
        for name in loaded.keys() {
            if !catalog.iter().any(|entry| &entry.name == name) {
                self.validator.remove(name);
                tracing::info!(plugin = name, "plugin removed (through another server)");
                changed = true;
            }
        }
        for entry in &catalog {
            if loaded.get(&entry.name) == Some(&entry.digest) || broken.contains(&entry.digest) {
                continue;
            }
            let component = match self.store.plugin_component(&entry.digest).await {
                Ok(Some(component)) => component,
                Ok(None) => continue,
                Err(error) => {
                    if changed {
                        self.plugins_changed.notify();
                    }
                    return Err(error);
                }
            };
            match self.validator.load(&entry.name, component).await {
                Ok(_) => {
                    tracing::info!(
                        plugin = entry.name,
                        digest = entry.digest,
                        "plugin loaded from the store"
                    );
                    changed = true;
                }
                Err(error) => {
                    tracing::warn!(plugin = entry.name, %error, "installed plugin does not load here; not tried again while installed");
                    broken.insert(entry.digest.clone());
                }
            }
        }
        if changed {
            self.plugins_changed.notify();
        }
        Ok(changed)
    }

    /// How retries are spaced.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            backoff_ms: self.config.retry_backoff.as_millis() as i64,
            max_backoff_ms: self.config.max_retry_backoff.as_millis() as i64,
            avoid_ms: self.config.retry_avoid.as_millis() as i64,
        }
    }

    /// The lease TTL in milliseconds.
    pub fn lease_ttl_ms(&self) -> i64 {
        self.config.lease_ttl.as_millis() as i64
    }

    /// Records stored events: publishes them and counts finished tasks.
    pub fn publish(&self, events: Vec<crate::store::StoredEvent>) {
        for event in &events {
            if let flowmesh_types::api::EventBody::Result { state, .. } = &event.body {
                self.metrics
                    .finished
                    .get_or_create(&crate::metrics::StateLabel {
                        state: state.as_str().to_string(),
                    })
                    .inc();
            }
        }
        self.bus.publish(events);
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
