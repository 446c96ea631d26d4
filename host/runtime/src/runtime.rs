//! The [`Runtime`] itself: its engine, the `Linked` snapshot of the
//! capabilities it runs with and the linker that defines their interfaces,
//! its installed plugins, and what it advertises.
//!
//! This is the hub of the crate: the rest of `Runtime`'s methods live in the
//! sibling modules that import it — `registry` (loading and installing
//! plugins), `linking` (capability changes, labels, GPUs) and `execution`
//! (running `validate()` and `execute()` in a sandbox) — and this module
//! imports none of them.

use std::sync::{Arc, PoisonError, RwLock};

use flowmesh_types::WorkerCapabilities;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::RuntimeConfig;
use crate::artifact_cache::{ArtifactCache, CacheError};
use crate::capability::HostCapabilities;
use crate::engine::{EpochTicker, build_engine};
use crate::plugin::{PluginSet, ReadyPlugin};
use crate::sandbox_state::{SandboxState, add_always_linked};
use crate::scratch::ScratchPool;

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

/// The capabilities a runtime runs with and the linker that defines their
/// interfaces, replaced as a whole when a probe changes them.
pub(crate) struct Linked {
    pub(crate) capabilities: HostCapabilities,
    pub(crate) linker: Linker<SandboxState>,
    /// Counts replacements; a plugin linked against an older generation is
    /// linked again.
    pub(crate) generation: u64,
}

impl Linked {
    /// Links WASI, `log`, `progress` and every present capability. A
    /// capability that cannot define its interface is recorded absent, with
    /// the linker's error as the reason.
    pub(crate) fn new(
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
    pub(crate) engine: Engine,
    pub(crate) linked: RwLock<Arc<Linked>>,
    /// Held while capabilities change and plugins are linked again.
    pub(crate) relinking: tokio::sync::Mutex<()>,
    /// Built by [`HostCapabilities::validation_only`]: never executes tasks.
    pub(crate) validation_only: bool,
    pub(crate) cache: Arc<ArtifactCache>,
    pub(crate) config: RuntimeConfig,
    pub(crate) scratch: Arc<ScratchPool>,
    pub(crate) instances: tokio::sync::Semaphore,
    pub(crate) plugins: RwLock<PluginSet>,
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

    /// The current snapshot of capabilities and linker.
    pub(crate) fn linked(&self) -> Arc<Linked> {
        self.linked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The plugin that serves `task_type`, if any.
    pub(crate) fn route(&self, task_type: &str) -> Option<Arc<ReadyPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .route(task_type)
            .cloned()
    }
}
