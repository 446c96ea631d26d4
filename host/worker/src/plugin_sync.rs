//! Keeping a worker's plugins in step with the server.
//!
//! Every registration and heartbeat answer carries the server's plugin
//! catalog: name, version and content digest of each installed plugin; a
//! waiting claim is answered with it at once when the plugins change. The
//! sync loop compares it with what the runtime has loaded:
//!
//! - a plugin the worker lacks, or has at another digest, is fetched by
//!   digest (`GET /worker/plugins/{digest}`), compiled through the runtime's
//!   artifact cache, and swapped in; until the new version is loaded the old
//!   one keeps serving its task types;
//! - a plugin the worker got from the server that the catalog no longer
//!   lists is removed, withdrawing its task types (running tasks keep their
//!   instance).
//!
//! When anything changed, the heartbeat loop is woken so the new set of task
//! types reaches the server at once rather than one interval later. Plugins
//! loaded from local files at start (`flowmesh worker --plugin`) are left
//! alone unless the server installs one under the same name, which then
//! replaces it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flowmesh_runtime::{ComponentDigest, Runtime};
use flowmesh_types::api::PluginRef;
use tokio::sync::{Notify, watch};

use crate::client::Client;

/// How long one component download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Reconciles the runtime's plugins with the server's catalog.
pub(crate) struct PluginSync {
    runtime: Arc<Runtime>,
    client: Client,
    /// Name → digest of each plugin loaded from the server.
    managed: BTreeMap<String, String>,
    /// Digests whose bytes do not compile here, with the reason: not
    /// fetched again while the catalog lists them.
    broken: BTreeMap<String, String>,
}

impl PluginSync {
    pub(crate) fn new(runtime: Arc<Runtime>, client: Client) -> Self {
        Self {
            runtime,
            client,
            managed: BTreeMap::new(),
            broken: BTreeMap::new(),
        }
    }

    /// Runs until `catalog` closes: reconciles on every catalog it receives
    /// (heartbeats resend it, so failed downloads are retried each beat),
    /// wakes `changed` when the set of plugins moved, and bumps `synced`
    /// after each pass.
    pub(crate) async fn run(
        mut self,
        mut catalog: watch::Receiver<Option<Vec<PluginRef>>>,
        changed: Arc<Notify>,
        synced: watch::Sender<u64>,
    ) {
        loop {
            let current = catalog.borrow_and_update().clone();
            if let Some(current) = current {
                if self.reconcile(&current).await {
                    changed.notify_one();
                }
                synced.send_modify(|passes| *passes += 1);
            }
            if catalog.changed().await.is_err() {
                return;
            }
        }
    }

    /// One pass; whether the loaded set changed.
    async fn reconcile(&mut self, catalog: &[PluginRef]) -> bool {
        let mut changed = false;
        // Withdrawals first: a task type that moved from a removed plugin to
        // a new one must be free before the new one loads.
        let listed: BTreeSet<&str> = catalog.iter().map(|entry| entry.name.as_str()).collect();
        let withdrawn: Vec<String> = self
            .managed
            .keys()
            .filter(|name| !listed.contains(name.as_str()))
            .cloned()
            .collect();
        for name in withdrawn {
            self.managed.remove(&name);
            if self.runtime.remove_plugin(&name) {
                tracing::info!(
                    plugin = name,
                    "plugin removed on the server; its task types are withdrawn"
                );
                changed = true;
            }
        }
        // A digest no longer listed may come back (a reinstall): forget it.
        let digests: BTreeSet<&str> = catalog.iter().map(|entry| entry.digest.as_str()).collect();
        self.broken
            .retain(|digest, _| digests.contains(digest.as_str()));
        let loaded: BTreeMap<String, String> = self
            .runtime
            .capabilities()
            .plugins
            .into_iter()
            .map(|report| (report.name, report.digest))
            .collect();
        for entry in catalog {
            if loaded.get(&entry.name) == Some(&entry.digest) {
                self.managed
                    .insert(entry.name.clone(), entry.digest.clone());
                continue;
            }
            if self.broken.contains_key(&entry.digest) {
                continue;
            }
            match self.load(entry).await {
                Ok(()) => {
                    self.managed
                        .insert(entry.name.clone(), entry.digest.clone());
                    changed = true;
                }
                Err(Failure::Transient(reason)) => {
                    tracing::warn!(plugin = entry.name, %reason, "fetching the plugin failed; retrying on the next heartbeat");
                }
                Err(Failure::Broken(reason)) => {
                    tracing::error!(plugin = entry.name, digest = entry.digest, %reason, "the plugin cannot be loaded");
                    self.broken.insert(entry.digest.clone(), reason);
                }
            }
        }
        changed
    }

    async fn load(&self, entry: &PluginRef) -> Result<(), Failure> {
        let bytes = self
            .client
            .fetch_plugin(&entry.digest, FETCH_TIMEOUT)
            .await
            // Whatever the server answers (gone mid-fetch, refused, down),
            // the next heartbeat's catalog decides again.
            .map_err(|error| Failure::Transient(error.to_string()))?;
        let digest = ComponentDigest::of(&bytes).to_string();
        if digest != entry.digest {
            // Damaged in transit or in storage: keep what is loaded.
            return Err(Failure::Transient(format!(
                "the server sent a component with digest {digest} for {}",
                entry.digest
            )));
        }
        let report = self
            .runtime
            .load_plugin(&entry.name, bytes)
            .await
            .map_err(|error| Failure::Broken(error.to_string()))?;
        tracing::info!(
            plugin = entry.name,
            version = entry.version,
            digest = entry.digest,
            status = ?report.status,
            reason = report.reason.as_deref().unwrap_or(""),
            "plugin loaded from the server"
        );
        Ok(())
    }
}

enum Failure {
    /// Try again on the next heartbeat.
    Transient(String),
    /// These bytes do not compile here.
    Broken(String),
}
