//! The plugin registry of a [`Runtime`]: compiling a component (through the
//! artifact cache), linking it against the worker's capabilities with
//! `instantiate_pre` and reading its manifest with `describe()`
//! ([`Runtime::prepare_plugin`]), then installing, replacing, inspecting and
//! removing plugins, refusing one whose task types another plugin serves.

use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use flowmesh_types::{CapabilityKind, Manifest, PluginReport};
use wasmtime::component::Component;

use crate::artifact_cache::{CacheError, ComponentDigest};
use crate::bindings::PluginFullPre;
use crate::execution::guarded;
use crate::failure;
use crate::plugin::{Installed, PluginSet, ReadyPlugin, manifest_from_wit};
use crate::runtime::{Linked, Runtime};
use crate::task_log::{TaskLog, discard_events};

/// Why a plugin could not be loaded at all (as opposed to loaded but
/// unavailable on this worker, which is a [`PluginReport`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The install name is not a valid plugin name.
    #[error("invalid plugin name {0:?}: use lowercase letters, digits and '-'")]
    InvalidName(String),
    /// The component file could not be read.
    #[error("could not read the component {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component this engine can compile.
    #[error(transparent)]
    Compile(#[from] CacheError),
}

/// A component compiled and linked against a runtime, with its manifest
/// read, but not installed: [`Runtime::prepare_plugin`] makes one,
/// [`Runtime::install_prepared`] installs it.
pub struct PreparedPlugin {
    pub(crate) digest: ComponentDigest,
    pub(crate) component: Component,
    pub(crate) imports: Vec<String>,
    pub(crate) generation: u64,
    pub(crate) outcome: Result<ReadyPlugin, String>,
}

impl PreparedPlugin {
    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> String {
        self.digest.to_string()
    }

    /// Every interface it imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// What it declares, or why this runtime cannot use it.
    pub fn manifest(&self) -> Result<&Manifest, &str> {
        self.outcome
            .as_ref()
            .map(|ready| &ready.manifest)
            .map_err(String::as_str)
    }
}

impl Runtime {
    /// Loads the component at `path` under `name`; see [`Runtime::load_plugin`].
    pub async fn load_plugin_file(
        &self,
        name: &str,
        path: &Path,
    ) -> Result<PluginReport, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        self.load_plugin(name, bytes).await
    }

    /// Loads (or replaces) the plugin installed as `name` from its component
    /// `bytes`: [`Runtime::prepare_plugin`], then [`Runtime::install_prepared`].
    ///
    /// Returns an error only when the name is invalid or the bytes are not a
    /// component at all. A component that this worker cannot run — it imports
    /// an interface this worker does not provide, does not export
    /// `flowmesh:executor`, fails `describe()`, or declares a task type
    /// another plugin serves — is recorded as unavailable, and the returned
    /// report says why.
    pub async fn load_plugin(&self, name: &str, bytes: Vec<u8>) -> Result<PluginReport, LoadError> {
        if !flowmesh_types::is_valid_name(name) {
            return Err(LoadError::InvalidName(name.to_string()));
        }
        let prepared = self.prepare_plugin(bytes).await?;
        self.install_prepared(name, prepared)
    }

    /// Compiles a component (through the artifact cache), links it against
    /// this runtime's capabilities and reads its manifest, without
    /// installing it. The error says the bytes are not a component; whether
    /// this runtime can use it is in the result.
    pub async fn prepare_plugin(&self, bytes: Vec<u8>) -> Result<PreparedPlugin, LoadError> {
        let (digest, component, imports) = self.compile(bytes).await?;
        let linked = self.linked();
        let outcome = self
            .instantiate_pre(&linked, &digest, &component, &imports)
            .await;
        Ok(PreparedPlugin {
            digest,
            component,
            imports,
            generation: linked.generation,
            outcome,
        })
    }

    /// The installed plugin (other than `name`) that already serves one of
    /// `manifest`'s task types: `(task type, plugin)`.
    pub fn conflict(&self, name: &str, manifest: &Manifest) -> Option<(String, String)> {
        self.plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .conflict(name, manifest)
    }

    /// Installs (or replaces) `name` with a prepared plugin; see
    /// [`Runtime::load_plugin`].
    pub fn install_prepared(
        &self,
        name: &str,
        prepared: PreparedPlugin,
    ) -> Result<PluginReport, LoadError> {
        if !flowmesh_types::is_valid_name(name) {
            return Err(LoadError::InvalidName(name.to_string()));
        }
        let mut plugins = self.plugins.write().unwrap_or_else(PoisonError::into_inner);
        Ok(install_locked(&mut plugins, name, prepared))
    }

    /// Reads what a component declares without installing it: its manifest
    /// (from `describe()`) and the interfaces it imports. The outer error
    /// says the bytes are not a component; the inner one, why this runtime
    /// cannot use it.
    pub async fn inspect(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Result<(Manifest, Vec<String>), String>, LoadError> {
        let prepared = self.prepare_plugin(bytes).await?;
        Ok(prepared
            .outcome
            .map(|ready| (ready.manifest, prepared.imports)))
    }

    /// Compiles (or loads from the cache) a component and lists its imports.
    async fn compile(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(ComponentDigest, Component, Vec<String>), LoadError> {
        let digest = ComponentDigest::of(&bytes);
        let component = {
            let (cache, engine, digest) = (self.cache.clone(), self.engine.clone(), digest.clone());
            tokio::task::spawn_blocking(move || cache.load(&engine, &digest, &bytes))
                .await
                .map_err(|error| {
                    CacheError::Compile(wasmtime::Error::msg(format!(
                        "compilation panicked: {error}"
                    )))
                })??
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Ok((digest, component, imports))
    }

    /// Removes the plugin installed as `name`, withdrawing its task types.
    /// Tasks already running keep their instance. Whether it was installed.
    pub fn remove_plugin(&self, name: &str) -> bool {
        self.plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    /// Links a compiled component against `linked` and reads its manifest
    /// with `describe()`; the error says why this runtime cannot use it.
    pub(crate) async fn instantiate_pre(
        &self,
        linked: &Linked,
        digest: &ComponentDigest,
        component: &Component,
        imports: &[String],
    ) -> Result<ReadyPlugin, String> {
        let mut capabilities = Vec::new();
        let mut stubbed = None;
        if linked.capabilities.is_validation_only() {
            let mut linker = linked.linker.clone();
            stub_capabilities(&mut linker, &self.engine, component)
                .map_err(|error| format!("cannot be linked for validation: {error:#}"))?;
            stubbed = Some(linker);
        }
        if stubbed.is_none() {
            for import in imports {
                if let Some(kind) = CapabilityKind::from_interface(import) {
                    match linked.capabilities.get(kind) {
                        Some(capability) => capabilities.push(capability.clone()),
                        None => {
                            let reason = linked.capabilities.absence_reason(kind).unwrap_or("");
                            return Err(format!(
                                "imports {import}, which this worker does not provide: {reason}"
                            ));
                        }
                    }
                }
            }
        }
        let instance_pre = stubbed
            .as_ref()
            .unwrap_or(&linked.linker)
            .instantiate_pre(component)
            .map_err(|error| format!("cannot be linked on this worker: {error:#}"))?;
        let pre = PluginFullPre::new(instance_pre).map_err(|error| {
            format!("is not a FlowMesh plugin: it does not export flowmesh:executor/executor@0.1.0 ({error:#})")
        })?;
        let limits = self.config.default_limits.clone();
        let log = Arc::new(TaskLog::new(discard_events(), limits.max_log_bytes));
        let mut store = self
            .new_store(
                &log,
                &limits,
                None,
                Instant::now() + self.config.describe_timeout,
                None,
            )
            .map_err(|error| format!("could not set up a sandbox for describe(): {error:#}"))?;
        let mut permit = None;
        let call = async {
            permit = Some(self.admit().await);
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .flowmesh_executor_executor()
                .call_describe(&mut store)
                .await
        };
        let manifest = guarded(
            call,
            Instant::now() + self.config.describe_timeout,
            None,
            None,
        )
        .await;
        drop(store);
        drop(permit);
        let manifest = manifest.map_err(|error| {
            let error = failure::from_wasmtime(
                &error,
                &log,
                failure::TimeLimit {
                    call: "describe()",
                    timeout: self.config.describe_timeout,
                    remedy: "a plugin must describe itself promptly (RuntimeConfig::describe_timeout)",
                },
            );
            format!("describe() failed: {}", error.message)
        })?;
        let manifest = manifest_from_wit(manifest)?;
        Ok(ReadyPlugin {
            digest: digest.clone(),
            manifest,
            pre,
            scratch: ReadyPlugin::needs_scratch(imports, &capabilities),
            capabilities,
        })
    }
}

/// Defines every capability interface `component` imports (`containers`,
/// `gpu`, `llm`) in `linker` as functions that trap, for a runtime that only
/// validates: its `describe()` and `validate()` may not use them, but the
/// component must link.
///
/// Only those interfaces are stubbed. WASI, `log` and `progress` stay the
/// linker's own, so an import of an older WASI 0.2 release (a Python
/// component's `wasi:cli/environment@0.2.9`, say) still finds the linked
/// one by semver, with nothing granted; and an import no worker provides at
/// all is refused here, as every worker would refuse it.
fn stub_capabilities(
    linker: &mut wasmtime::component::Linker<crate::SandboxState>,
    engine: &wasmtime::Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        let (Some(kind), ComponentItem::ComponentInstance(instance)) =
            (CapabilityKind::from_interface(name), item.ty)
        else {
            continue;
        };
        let mut stub = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let call = format!("{name}#{export}");
                    stub.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!(
                            "{call} ({kind}) cannot be called while a plugin is only being validated"
                        )
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stub.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Installs (or replaces) `name` in `plugins`: available unless it could not
/// be linked or one of its task types is served by another plugin.
pub(crate) fn install_locked(
    plugins: &mut PluginSet,
    name: &str,
    prepared: PreparedPlugin,
) -> PluginReport {
    let PreparedPlugin {
        digest,
        component,
        imports,
        generation,
        outcome,
    } = prepared;
    let outcome = match outcome {
        Ok(ready) => match plugins.conflict(name, &ready.manifest) {
            Some((task_type, other)) => Err(format!(
                "task type {task_type:?} is already provided by plugin {other:?}; remove one of them, then install this one again"
            )),
            None => Ok(Arc::new(ready)),
        },
        Err(reason) => Err(reason),
    };
    match &outcome {
        Ok(ready) => tracing::info!(
            plugin = name,
            version = %ready.manifest.version,
            task_types = ?ready.manifest.task_types.iter().map(|t| &t.name).collect::<Vec<_>>(),
            "plugin available"
        ),
        Err(reason) => {
            tracing::warn!(plugin = name, %reason, "plugin unavailable on this worker")
        }
    }
    plugins.insert(
        name.to_string(),
        Installed {
            digest,
            component,
            imports,
            generation,
            outcome,
        },
    );
    plugins
        .report(name)
        .expect("the plugin was inserted just above")
}
