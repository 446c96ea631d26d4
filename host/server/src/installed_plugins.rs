//! The installed plugins: installing, removing, and keeping this server's
//! validator and the catalog workers are told in step with the store.
//!
//! Components live in the store, addressed by their sha256. Each server
//! loads them into its [`Validator`](crate::validation::Validator) to check
//! specs, and publishes the catalog (name, version, digest) in
//! [`AppState::catalog`]: registration and heartbeat answers carry it, and a
//! waiting claim answers with it as soon as it changes. With several servers
//! on one database, each reloads the store's catalog every heartbeat
//! interval ([`AppState::sync_plugins`]). Changes are serialised per server
//! by [`AppState::plugin_changes`].

use std::collections::HashMap;
use std::sync::Arc;

use flowmesh_runtime::PreparedPlugin;
use flowmesh_types::api::{PluginRef, ServedTypes};
use flowmesh_types::{PluginReport, PluginStatus, is_valid_name};

use crate::plugin_identity::{Installed, served};
use crate::state::{AppState, now_ms};
use crate::store::{PluginRecord, StoreError};

/// Why a plugin was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The component is not a usable plugin, or clashes with one installed.
    #[error("{0}")]
    Invalid(String),
    /// The name asked for is not a valid plugin name.
    #[error("invalid plugin name: {}", flowmesh_types::NAME_RULE)]
    InvalidName,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: String) -> InstallError {
    InstallError::Invalid(message)
}

impl AppState {
    /// Installs a plugin from its component bytes, under `name` or the name
    /// its manifest gives: checks it is a usable FlowMesh plugin whose task
    /// types no other plugin serves, loads it for validation (replacing the
    /// version installed under that name only then), and stores it.
    pub async fn install_plugin(
        &self,
        name: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<(PluginReport, PluginRecord), InstallError> {
        let _changing = self.plugin_changes.lock().await;
        let prepared = self.prepare(&bytes).await?;
        let name = name.map_or_else(|| manifest_name(&prepared), str::to_string);
        self.install_prepared(&name, prepared, bytes).await
    }

    /// Installs a plugin under the name its manifest gives unless a plugin
    /// of that name is installed already (an operator's own version is left
    /// alone). Returns the record in effect.
    pub async fn install_plugin_unless_named(
        &self,
        bytes: Vec<u8>,
    ) -> Result<PluginRecord, InstallError> {
        let _changing = self.plugin_changes.lock().await;
        let prepared = self.prepare(&bytes).await?;
        let name = manifest_name(&prepared);
        if let Some(record) = self
            .store
            .plugins()
            .await?
            .into_iter()
            .find(|record| record.name == name)
        {
            return Ok(record);
        }
        Ok(self.install_prepared(&name, prepared, bytes).await?.1)
    }

    /// Removes the plugin `name`; whether it was installed.
    pub async fn remove_plugin(&self, name: &str) -> Result<bool, StoreError> {
        let _changing = self.plugin_changes.lock().await;
        let stored = self.store.delete_plugin(name).await?;
        let loaded = self.validator.remove(name);
        if stored || loaded {
            self.publish_catalog().await?;
        }
        Ok(stored || loaded)
    }

    /// Brings the plugins this server checks specs with, and the catalog it
    /// tells workers, in line with the store: another server on the same
    /// database may have installed or removed some.
    pub async fn sync_plugins(&self) -> Result<(), StoreError> {
        let _changing = self.plugin_changes.lock().await;
        let records = self.store.plugins().await?;
        let catalog = catalog_of(&records);
        let loaded: HashMap<String, String> = self
            .validator
            .reports()
            .into_iter()
            .map(|report| (report.name, report.digest))
            .collect();
        for name in loaded.keys() {
            if !catalog.iter().any(|entry| &entry.name == name) {
                self.validator.remove(name);
                tracing::info!(plugin = name, "plugin removed (through another server)");
            }
        }
        let mut broken = self.broken_plugins.lock().await;
        broken.retain(|digest| catalog.iter().any(|entry| &entry.digest == digest));
        for entry in &catalog {
            if loaded.get(&entry.name) == Some(&entry.digest) || broken.contains(&entry.digest) {
                continue;
            }
            let Some(component) = self.store.plugin_component(&entry.digest).await? else {
                continue;
            };
            match self.validator.load(&entry.name, component).await {
                Ok(_) => tracing::info!(
                    plugin = entry.name,
                    digest = entry.digest,
                    "plugin loaded from the store"
                ),
                Err(error) => {
                    tracing::warn!(plugin = entry.name, %error, "installed plugin does not load here; not tried again while installed");
                    broken.insert(entry.digest.clone());
                }
            }
        }
        drop(broken);
        self.set_installed(&records).await
    }

    /// Compiles and links `bytes` for validation and reads the manifest.
    async fn prepare(&self, bytes: &[u8]) -> Result<PreparedPlugin, InstallError> {
        let prepared = self
            .validator
            .prepare(bytes.to_vec())
            .await
            .map_err(|error| {
                invalid(format!(
                    "not a WebAssembly component this server can load: {error}"
                ))
            })?;
        if let Err(reason) = prepared.manifest() {
            return Err(invalid(format!(
                "the component is not a usable FlowMesh plugin: it {reason}"
            )));
        }
        Ok(prepared)
    }

    /// Installs a prepared (usable) plugin as `name` and stores it.
    async fn install_prepared(
        &self,
        name: &str,
        prepared: PreparedPlugin,
        bytes: Vec<u8>,
    ) -> Result<(PluginReport, PluginRecord), InstallError> {
        if !is_valid_name(name) {
            return Err(InstallError::InvalidName);
        }
        let manifest = prepared
            .manifest()
            .map_err(|reason| invalid(reason.to_string()))?
            .clone();
        // Refused before anything is replaced: the version installed under
        // this name keeps serving.
        if let Some((task_type, other)) = self.validator.conflict(name, &manifest) {
            return Err(invalid(format!(
                "task type {task_type:?} is already provided by plugin {other:?}; remove one of them, then install this one again"
            )));
        }
        let report = self
            .validator
            .install(name, prepared)
            .map_err(|error| invalid(error.to_string()))?;
        debug_assert_eq!(report.status, PluginStatus::Available);
        let record = PluginRecord {
            name: name.to_string(),
            version: manifest.version.clone(),
            digest: report.digest.clone(),
            manifest,
            imports: report.imports.clone(),
            installed_at: now_ms(),
        };
        self.store.put_plugin(&record, &bytes).await?;
        self.publish_catalog().await?;
        tracing::info!(plugin = name, digest = record.digest, "plugin installed");
        Ok((report, record))
    }

    /// Reads the installed plugins from the store and publishes them.
    async fn publish_catalog(&self) -> Result<(), StoreError> {
        let records = self.store.plugins().await?;
        self.set_installed(&records).await
    }

    /// Publishes the installed plugins `records`: the catalog workers are
    /// told, the index of installed digests and types, and the task types
    /// each live worker is routed ([`crate::plugin_identity::served`]),
    /// written where they changed.
    async fn set_installed(&self, records: &[PluginRecord]) -> Result<(), StoreError> {
        self.set_catalog(catalog_of(records));
        let installed = Arc::new(Installed::of(records));
        *self
            .installed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = installed.clone();
        let local_plugins = self.config.local_plugins;
        let rerouted = self
            .store
            .reroute_workers(|capabilities| {
                served(&capabilities.plugins, &installed, local_plugins)
            })
            .await?;
        if rerouted > 0 {
            tracing::info!(
                workers = rerouted,
                "workers rerouted to the installed plugins"
            );
            self.work.notify();
        }
        Ok(())
    }

    /// The task types a worker reporting `capabilities` is routed now.
    pub fn served(&self, capabilities: &flowmesh_types::WorkerCapabilities) -> ServedTypes {
        let installed = self
            .installed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        served(&capabilities.plugins, &installed, self.config.local_plugins)
    }

    /// Publishes `catalog` if it differs from the one published.
    fn set_catalog(&self, catalog: Vec<PluginRef>) {
        let changed = self.catalog.send_if_modified(|current| {
            let changed = **current != catalog;
            if changed {
                *current = Arc::new(catalog);
            }
            changed
        });
        if changed {
            crate::component_files::prune(&self.config.data_dir, &self.installed_digests());
        }
    }

    /// The digests of the installed plugins, as the catalog lists them.
    pub fn installed_digests(&self) -> Vec<String> {
        self.catalog
            .borrow()
            .iter()
            .map(|entry| entry.digest.clone())
            .collect()
    }
}

/// The catalog (name, version, digest) of the installed plugins `records`.
fn catalog_of(records: &[PluginRecord]) -> Vec<PluginRef> {
    records
        .iter()
        .map(|record| PluginRef {
            name: record.name.clone(),
            version: record.version.clone(),
            digest: record.digest.clone(),
            local: false,
        })
        .collect()
}

fn manifest_name(prepared: &PreparedPlugin) -> String {
    prepared
        .manifest()
        .map(|manifest| manifest.name.clone())
        .unwrap_or_default()
}
