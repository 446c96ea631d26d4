//! The [`Runtime`]: loads plugins against the worker's capabilities and runs
//! each task in a fresh sandbox.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use flowmesh_types::{
    CapabilityKind, FieldError, Manifest, PluginReport, TaskError, TaskErrorCode,
    WorkerCapabilities,
};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::artifact_cache::{ArtifactCache, CacheError, ComponentDigest};
use crate::bindings::PluginFullPre;
use crate::bindings::exports::flowmesh::executor::executor as wit;
use crate::capability::{Capability, HostCapabilities, TaskInfo};
use crate::engine::{EpochTicker, build_engine};
use crate::failure::{self, Interrupted};
use crate::plugin::{Installed, PluginSet, ReadyPlugin, manifest_from_wit};
use crate::scratch::{ScratchPool, disk_usage};
use crate::task_log::{EventSink, TaskLog, discard_events};
use crate::task_state::{TaskState, add_always_linked};
use crate::{RuntimeConfig, TaskLimits};

/// The deadline used when a task's timeout is too large to represent.
const MAX_DEADLINE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a runtime could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The wasmtime engine or linker could not be set up.
    #[error("could not set up the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The artifact cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A directory could not be created, or the ticker thread started.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

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
    digest: ComponentDigest,
    component: Component,
    imports: Vec<String>,
    generation: u64,
    outcome: Result<ReadyPlugin, String>,
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

/// One task to execute.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// Task id, unique in the cluster.
    pub id: String,
    /// Routed to the plugin that declares it.
    pub task_type: String,
    /// The plugin-owned spec fields, a JSON object.
    pub spec: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// What the task may use.
    pub limits: TaskLimits,
}

/// The plugin that ran a task, for the result envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
}

/// How a task ended.
#[derive(Debug)]
pub struct TaskRun {
    /// The plugin that ran it; `None` when no plugin serves its type.
    pub plugin: Option<PluginIdentity>,
    /// Wall-clock time from the start of instantiation to the result.
    pub elapsed: Duration,
    /// The JSON output, or why there is none.
    pub outcome: Result<Box<RawValue>, TaskError>,
}

/// The capabilities a runtime runs with and the linker that defines their
/// interfaces, replaced as a whole when a probe changes them.
struct Linked {
    capabilities: HostCapabilities,
    linker: Linker<TaskState>,
    /// Counts replacements; a plugin linked against an older generation is
    /// linked again.
    generation: u64,
}

impl Linked {
    /// Links WASI, `log`, `progress` and every present capability. A
    /// capability that cannot define its interface is recorded absent, with
    /// the linker's error as the reason.
    fn new(
        engine: &Engine,
        mut capabilities: HostCapabilities,
        generation: u64,
    ) -> Result<Self, RuntimeError> {
        'link: loop {
            let mut linker = Linker::new(engine);
            add_always_linked(&mut linker).map_err(RuntimeError::Engine)?;
            let failed = capabilities.present().find_map(|capability| {
                capability
                    .add_to_linker(&mut linker)
                    .err()
                    .map(|error| (capability.kind(), error))
            });
            if let Some((kind, error)) = failed {
                tracing::error!(%kind, error = format!("{error:#}"), "capability could not be linked");
                capabilities = capabilities.with_probe(
                    kind,
                    Err(format!("its interface could not be linked: {error:#}")),
                );
                continue 'link;
            }
            return Ok(Self {
                capabilities,
                linker,
                generation,
            });
        }
    }
}

/// The executor runtime of one worker.
///
/// One wasmtime [`Engine`] (pooling allocator, epoch interruption), one
/// [`Linker`] that defines WASI with nothing granted, `log`, `progress`, and
/// the interfaces of the capabilities this worker really has, and the set of
/// installed plugins. When a capability appears or disappears
/// ([`Runtime::apply_probe`]), the linker is rebuilt and every plugin linked
/// again.
///
/// Loading a plugin compiles it (or loads it from the artifact cache), checks
/// its imports against the linker with `instantiate_pre`, and calls
/// `describe()`. Executing a task instantiates the plugin in a fresh store —
/// its own memory limit, deadline, scratch directory and log — and calls
/// `execute()`. Whatever a task does, only that task fails: the runtime keeps
/// serving.
pub struct Runtime {
    engine: Engine,
    linked: RwLock<Arc<Linked>>,
    /// Held while capabilities change and plugins are linked again.
    relinking: tokio::sync::Mutex<()>,
    /// Built by [`HostCapabilities::validation_only`]: never executes tasks.
    validation_only: bool,
    cache: Arc<ArtifactCache>,
    config: RuntimeConfig,
    scratch: Arc<ScratchPool>,
    instances: tokio::sync::Semaphore,
    plugins: RwLock<PluginSet>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Creates a runtime with `capabilities` linked.
    pub fn new(
        config: RuntimeConfig,
        capabilities: HostCapabilities,
    ) -> Result<Self, RuntimeError> {
        let engine = build_engine(&config).map_err(RuntimeError::Engine)?;
        let validation_only = capabilities.is_validation_only();
        let linked = Linked::new(&engine, capabilities, 0)?;
        let scratch =
            ScratchPool::new(&config.scratch_root).map_err(|source| RuntimeError::Io {
                what: format!("preparing scratch root {}", config.scratch_root.display()),
                source,
            })?;
        let cache = Arc::new(ArtifactCache::open(&config.cache_dir, &engine)?);
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick).map_err(|source| {
            RuntimeError::Io {
                what: "starting the epoch ticker".into(),
                source,
            }
        })?;
        let instances = tokio::sync::Semaphore::new(config.pool.max_instances as usize);
        Ok(Self {
            engine,
            linked: RwLock::new(Arc::new(linked)),
            relinking: tokio::sync::Mutex::new(()),
            validation_only,
            cache,
            config,
            scratch,
            instances,
            plugins: RwLock::new(PluginSet::default()),
            _ticker: ticker,
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The artifact cache, and through it what it has done
    /// ([`ArtifactCache::stats`]).
    pub fn artifact_cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Everything this worker can run, as it advertises it.
    pub fn capabilities(&self) -> WorkerCapabilities {
        let plugins = self.plugins.read().unwrap_or_else(PoisonError::into_inner);
        WorkerCapabilities {
            supported_task_types: plugins.supported_task_types(),
            plugins: plugins.reports(),
            capabilities: self.linked().capabilities.reports(),
        }
    }

    /// The labels the working capabilities add to the worker's own
    /// ([`Capability::labels`]).
    pub fn capability_labels(&self) -> Vec<(String, String)> {
        self.linked()
            .capabilities
            .present()
            .flat_map(|capability| capability.labels())
            .collect()
    }

    /// The GPUs the working capabilities find ([`Capability::gpus`]).
    pub fn capability_gpus(&self) -> Vec<flowmesh_types::GpuDevice> {
        self.linked()
            .capabilities
            .present()
            .flat_map(|capability| capability.gpus())
            .collect()
    }

    /// Assigns GPUs that fit `request` to one task, exclusively, through the
    /// GPU capability. The error says why not: no GPU capability, or not
    /// enough free devices that fit.
    pub fn assign_gpus(
        &self,
        request: &flowmesh_types::GpuRequest,
    ) -> Result<crate::capability::DeviceLease, String> {
        let linked = self.linked();
        let Some(gpu) = linked.capabilities.get(CapabilityKind::Gpu) else {
            return Err(linked
                .capabilities
                .absence_reason(CapabilityKind::Gpu)
                .unwrap_or("no GPU capability")
                .to_string());
        };
        match gpu.devices() {
            Some(devices) => devices.assign(request),
            None => Err("the GPU capability assigns no devices".into()),
        }
    }

    fn linked(&self) -> Arc<Linked> {
        self.linked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a probe's outcome for `kind` (see [`crate::Probe`]). When the
    /// capability appeared, disappeared, was replaced by another instance or
    /// is absent for another reason, the linker is rebuilt and every
    /// installed plugin linked again: plugins that import it become
    /// available or unavailable, and [`Runtime::capabilities`] says so.
    /// Tasks already running keep the instances they started with.
    ///
    /// Returns whether anything changed. Also links again any plugin that
    /// was prepared against an older linker and installed since.
    pub async fn apply_probe(
        &self,
        kind: CapabilityKind,
        outcome: Result<Arc<dyn Capability>, String>,
    ) -> bool {
        let _relinking = self.relinking.lock().await;
        let current = self.linked();
        let next = current.capabilities.clone().with_probe(kind, outcome);
        let changed = !next.same_as(&current.capabilities);
        if changed {
            match Linked::new(&self.engine, next, current.generation + 1) {
                Ok(linked) => {
                    match linked.capabilities.absence_reason(kind) {
                        None => tracing::info!(%kind, "capability available"),
                        Some(reason) => tracing::warn!(%kind, reason, "capability absent"),
                    }
                    *self.linked.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(linked);
                }
                Err(error) => {
                    tracing::error!(%error, "could not rebuild the linker; keeping the old one");
                    return false;
                }
            }
        }
        self.relink_stale().await;
        changed
    }

    /// Links every plugin installed against an older linker again.
    async fn relink_stale(&self) {
        let linked = self.linked();
        let stale = self
            .plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .linked_before(linked.generation);
        for (name, digest, component, imports) in stale {
            let outcome = self
                .instantiate_pre(&linked, &digest, &component, &imports)
                .await;
            let mut plugins = self.plugins.write().unwrap_or_else(PoisonError::into_inner);
            // Replaced or removed meanwhile: the newer install stands.
            if plugins.get_if(&name, &digest).is_none() {
                continue;
            }
            let prepared = PreparedPlugin {
                digest,
                component,
                imports,
                generation: linked.generation,
                outcome,
            };
            install_locked(&mut plugins, &name, prepared);
        }
    }

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

    async fn instantiate_pre(
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
            linker
                .define_unknown_imports_as_traps(component)
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
            let error = failure::from_wasmtime(&error, &log, self.config.describe_timeout);
            format!("describe() failed: {}", error.message)
        })?;
        let manifest = manifest_from_wit(manifest)?;
        Ok(ReadyPlugin {
            digest: digest.clone(),
            manifest,
            pre,
            capabilities,
        })
    }

    fn route(&self, task_type: &str) -> Option<Arc<ReadyPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .route(task_type)
            .cloned()
    }

    /// Checks `spec` (plugin-owned fields, a JSON object) for `task_type` with
    /// the serving plugin's `validate()`.
    ///
    /// The outer error says the check itself could not run (no plugin serves
    /// the type here, or the plugin trapped or timed out): the spec is then
    /// neither valid nor invalid. The inner error lists the spec's problems,
    /// with paths relative to the spec. Runs under
    /// [`RuntimeConfig::default_limits`] and
    /// [`describe_timeout`](RuntimeConfig::describe_timeout).
    pub async fn validate(
        &self,
        task_type: &str,
        spec: &str,
    ) -> Result<Result<(), Vec<FieldError>>, TaskError> {
        let Some(plugin) = self.route(task_type) else {
            return Err(TaskError::new(
                TaskErrorCode::UnknownTaskType,
                format!("no plugin on this worker executes task type {task_type:?}"),
            ));
        };
        let limits = self.config.default_limits.clone();
        let deadline = Instant::now() + self.config.describe_timeout;
        let log = Arc::new(TaskLog::new(discard_events(), limits.max_log_bytes));
        let mut store = self
            .new_store(&log, &limits, None, deadline, None)
            .map_err(|error| {
                TaskError::new(
                    TaskErrorCode::Host,
                    format!("could not set up the sandbox: {error:#}"),
                )
            })?;
        let mut permit = None;
        let call = async {
            permit = Some(self.admit().await);
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .flowmesh_executor_executor()
                .call_validate(&mut store, task_type, spec)
                .await
        };
        let result = guarded(call, deadline, None, None).await;
        drop(store);
        drop(permit);
        match result {
            Ok(result) => {
                Ok(result.map_err(|errors| errors.into_iter().map(failure::field_error).collect()))
            }
            Err(error) => Err(failure::from_wasmtime(
                &error,
                &log,
                self.config.describe_timeout,
            )),
        }
    }

    /// Executes one task in a fresh sandbox, sending its logs and progress to
    /// `events`. Cancelling `cancel` interrupts it promptly.
    pub async fn execute(
        &self,
        task: TaskRequest,
        events: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> TaskRun {
        let started = Instant::now();
        if self.validation_only {
            return TaskRun {
                plugin: None,
                elapsed: started.elapsed(),
                outcome: Err(TaskError::new(
                    TaskErrorCode::Host,
                    "this runtime was built to validate specs only; run tasks on a worker",
                )),
            };
        }
        let Some(plugin) = self.route(&task.task_type) else {
            return TaskRun {
                plugin: None,
                elapsed: started.elapsed(),
                outcome: Err(TaskError::new(
                    TaskErrorCode::UnknownTaskType,
                    format!(
                        "no plugin on this worker executes task type {:?}",
                        task.task_type
                    ),
                )),
            };
        };
        let log = Arc::new(TaskLog::new(events, task.limits.max_log_bytes));
        let outcome = self
            .execute_in_sandbox(&plugin, &task, &log, &cancel, started)
            .await;
        log.finish();
        TaskRun {
            plugin: Some(PluginIdentity {
                name: plugin.manifest.name.clone(),
                version: plugin.manifest.version.clone(),
                digest: plugin.digest.to_string(),
            }),
            elapsed: started.elapsed(),
            outcome,
        }
    }

    async fn execute_in_sandbox(
        &self,
        plugin: &ReadyPlugin,
        task: &TaskRequest,
        log: &Arc<TaskLog>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Box<RawValue>, TaskError> {
        let limits = &task.limits;
        let deadline = started
            .checked_add(limits.timeout)
            .unwrap_or_else(|| started + MAX_DEADLINE);
        let host_error = |what: &str, error: &dyn std::fmt::Display| {
            TaskError::new(TaskErrorCode::Host, format!("{what}: {error}"))
        };
        let mut scratch = self
            .scratch
            .acquire()
            .map_err(|error| host_error("could not create the task's scratch directory", &error))?;
        let mut store = self
            .new_store(
                log,
                limits,
                Some(scratch.path()),
                deadline,
                Some(cancel.clone()),
            )
            .map_err(|error| host_error("could not set up the sandbox", &error))?;
        // Only plugins that import capabilities pay for their preparation.
        if !plugin.capabilities.is_empty() {
            let info = TaskInfo {
                id: task.id.clone(),
                task_type: task.task_type.clone(),
                attempt: task.attempt,
                scratch_dir: scratch.path().to_path_buf(),
                deadline,
                memory_bytes: limits.container_memory_bytes,
                cpus: limits.cpus,
                gpus: limits.gpus.clone(),
                cancel: cancel.clone(),
            };
            for capability in &plugin.capabilities {
                let kind = capability.kind();
                let state = capability.prepare(&info).map_err(|error| {
                    host_error(&format!("could not prepare the {kind} capability"), &error)
                })?;
                store.data_mut().add_capability_state(kind, state);
            }
        }
        let wit_task = wit::Task {
            id: task.id.clone(),
            task_type: task.task_type.clone(),
            spec: task.spec.clone(),
            attempt: task.attempt,
        };
        let mut permit = None;
        let call = async {
            permit = Some(self.admit().await);
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .flowmesh_executor_executor()
                .call_execute(&mut store, &wit_task)
                .await
        };
        let watch = ScratchWatch {
            path: scratch.path(),
            limit: limits.scratch_bytes,
            interval: self.config.scratch_check_interval,
        };
        let result = guarded(call, deadline, Some(cancel), Some(watch)).await;
        drop(store);
        drop(permit);
        if result.is_err() {
            // The call may have been abandoned inside a host call whose
            // blocking file operation still runs: never hand this directory
            // to another task.
            scratch.discard();
        }
        drop(scratch);
        let output = result
            .map_err(|error| failure::from_wasmtime(&error, log, limits.timeout))?
            .map_err(failure::from_plugin)?;
        if output.len() > limits.max_output_bytes {
            return Err(TaskError::new(
                TaskErrorCode::InvalidOutput,
                format!(
                    "the plugin returned {} bytes of output, over the limit of {} bytes; write large results elsewhere and return a reference",
                    output.len(),
                    limits.max_output_bytes
                ),
            ));
        }
        RawValue::from_string(output).map_err(|error| {
            TaskError::new(
                TaskErrorCode::InvalidOutput,
                format!("the plugin returned output that is not a JSON document: {error}"),
            )
        })
    }

    /// Waits for a free instance slot, so that more concurrent calls than the
    /// pool holds queue up instead of failing.
    async fn admit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.instances
            .acquire()
            .await
            .expect("the instance semaphore is never closed")
    }

    /// A fresh store: limits, epoch deadline checks, optional fuel.
    fn new_store(
        &self,
        log: &Arc<TaskLog>,
        limits: &TaskLimits,
        scratch: Option<&Path>,
        deadline: Instant,
        cancel: Option<CancellationToken>,
    ) -> wasmtime::Result<Store<TaskState>> {
        let memory_limit = limits.memory_bytes.min(self.config.pool.max_memory_bytes);
        let state = TaskState::new(log.clone(), memory_limit, scratch)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.fuel_metering {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        }
        // On every epoch tick: stop if cancelled or past the deadline,
        // otherwise let other tasks run and check again at the next tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
                return Err(Interrupted::Cancelled.into());
            }
            if Instant::now() >= deadline {
                return Err(Interrupted::Timeout.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// Installs (or replaces) `name` in `plugins`: available unless it could not
/// be linked or one of its task types is served by another plugin.
fn install_locked(plugins: &mut PluginSet, name: &str, prepared: PreparedPlugin) -> PluginReport {
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

/// Runs a plugin call until it finishes, `deadline` passes, `cancel` fires or
/// the task's scratch directory (when given) grows past its limit.
///
/// Guest code is interrupted by the store's epoch callback; this covers the
/// time the guest spends blocked in host calls (a sleep, a container), where
/// no epoch check runs: dropping the call's future abandons it there. Since
/// guest code yields at every epoch tick, every stop takes effect within about
/// a tick, even in a busy loop.
async fn guarded<R>(
    call: impl Future<Output = wasmtime::Result<R>>,
    deadline: Instant,
    cancel: Option<&CancellationToken>,
    scratch: Option<ScratchWatch<'_>>,
) -> wasmtime::Result<R> {
    let cancelled = async {
        match cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = call => result,
        () = cancelled => Err(Interrupted::Cancelled.into()),
        interrupted = watchdog(deadline, scratch) => Err(interrupted.into()),
    }
}

/// A scratch directory to measure while its task runs.
struct ScratchWatch<'a> {
    path: &'a Path,
    limit: u64,
    interval: Duration,
}

/// Resolves at `deadline`, or earlier once the watched scratch directory holds
/// more than its limit (measured every interval, off the async threads). One
/// timer serves both, so watching costs a task nothing until it runs long.
async fn watchdog(deadline: Instant, scratch: Option<ScratchWatch<'_>>) -> Interrupted {
    let Some(scratch) = scratch else {
        tokio::time::sleep_until(deadline.into()).await;
        return Interrupted::Timeout;
    };
    loop {
        let next = (Instant::now() + scratch.interval).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        if next >= deadline {
            return Interrupted::Timeout;
        }
        let dir = scratch.path.to_path_buf();
        let used = tokio::task::spawn_blocking(move || disk_usage(&dir))
            .await
            .unwrap_or(0);
        if used > scratch.limit {
            return Interrupted::ScratchFull {
                used,
                limit: scratch.limit,
            };
        }
    }
}
