//! The FlowMesh executor runtime.
//!
//! Executors are WebAssembly components written by anyone: they export
//! `flowmesh:executor` and may import the host capabilities of
//! `flowmesh:host`. This crate is what a worker uses to run them.
//!
//! # The idea
//!
//! **What a worker can run is decided by linking, not by configuration.** A
//! worker probes the capabilities it really has (a Docker daemon, GPUs, a model
//! endpoint; see [`capability`]) and its [`Linker`](wasmtime::component::Linker)
//! defines exactly those interfaces, plus WASI with nothing granted, `log` and
//! `progress`. Each installed plugin is checked with `instantiate_pre` against
//! that linker: if it imports an interface the worker lacks, it is
//! *unavailable*, with a reason naming the interface and the probe's error.
//! The task types of the available plugins are what the worker advertises
//! ([`WorkerCapabilities`](flowmesh_types::WorkerCapabilities)).
//!
//! **Every task runs in a fresh sandbox.** [`Runtime::execute`] instantiates
//! the plugin into a new [`Store`](wasmtime::Store) (its data a
//! [`SandboxState`]) from a pre-allocated pool, with a memory limit, a
//! deadline enforced by epoch interruption, optional fuel, a private scratch
//! directory at `/scratch` under a size limit that no other task ever sees,
//! stdout and stderr captured into the task log under a size cap, and no
//! environment, arguments, sockets or other files. Whatever the plugin does —
//! loop forever, exhaust memory or stack, panic, return garbage — only its task
//! fails, with a [`TaskError`](flowmesh_types::TaskError) that says what
//! happened, and the runtime keeps serving.
//!
//! **Compiled code is cached, and only trusted from ourselves.** Components are
//! compiled once per engine configuration and cached on disk, sealed with a key
//! private to the cache ([`artifact_cache`]).
//!
//! # Layout
//!
//! [`Runtime`] is one struct whose methods are split by concern over private
//! modules. Each module imports only from modules listed before it:
//!
//! - the building blocks: `config` (the settings), [`artifact_cache`],
//!   [`bindings`], `engine` (the wasmtime engine and its epoch ticker),
//!   `scratch` (the pool of scratch directories), `task_log`,
//!   `sandbox_state` (the data of one task's store, [`SandboxState`], and
//!   the host side of `log` and `progress`) and `failure` (what stopped a
//!   plugin call, as a [`TaskError`](flowmesh_types::TaskError));
//! - [`capability`]: what a worker has, and the
//!   [`TaskContext`](capability::TaskContext) a capability prepares a task
//!   from; then `plugin`: the installed plugins and the route from task type
//!   to plugin;
//! - `runtime`: the [`Runtime`] struct, its constructor and accessors,
//!   [`Runtime::capabilities`], [`RuntimeError`], and the snapshot of the
//!   capabilities it runs with together with the linker that defines their
//!   interfaces;
//! - `execution`: [`Runtime::execute`] and [`Runtime::validate`], the sandbox
//!   every plugin call runs in and the watchdog that stops it, with
//!   [`TaskRequest`], [`TaskRun`] and [`PluginIdentity`];
//! - `registry`: loading, preparing, installing, inspecting and removing
//!   plugins ([`Runtime::load_plugin`], [`PreparedPlugin`], [`LoadError`]);
//! - `linking`: following capability changes ([`Runtime::apply_probe`]
//!   rebuilds the linker and links the plugins again), the labels and GPUs
//!   the capabilities add, and [`Runtime::assign_gpus`].
//!
//! # Performance
//!
//! With a warm plugin, a whole task — fresh store, instantiate from the pool,
//! `execute` of the echo plugin — takes about 14.5 µs at the median on a 2-core
//! machine; loading a plugin whose compiled artifact is cached takes about
//! 5.5 ms, against about 170 ms to compile it. `cargo bench -p flowmesh-tests
//! --bench runtime` measures these; the README has the table.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use flowmesh_runtime::{HostCapabilities, Runtime, RuntimeConfig, TaskLimits, TaskRequest};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RuntimeConfig::new("/var/lib/flowmesh/cache", "/var/lib/flowmesh/scratch");
//! let runtime = Runtime::new(config, HostCapabilities::none())?;
//! let report = runtime.load_plugin_file("echo", "echo.wasm".as_ref()).await?;
//! println!("{:?}: {:?}", report.status, runtime.capabilities().supported_task_types);
//!
//! let run = runtime
//!     .execute(
//!         TaskRequest {
//!             id: "t-1".into(),
//!             task_type: "echo".into(),
//!             spec: r#"{"message": "hi"}"#.into(),
//!             attempt: 1,
//!             limits: TaskLimits::default(),
//!         },
//!         Arc::new(|event| println!("{event:?}")),
//!         CancellationToken::new(),
//!     )
//!     .await;
//! println!("{:?}", run.outcome);
//! # Ok(())
//! # }
//! ```

pub mod artifact_cache;
pub mod bindings;
pub mod capability;
mod config;
mod engine;
mod execution;
mod failure;
mod linking;
mod plugin;
mod registry;
mod runtime;
mod sandbox_state;
mod scratch;
mod task_log;

pub use artifact_cache::{ArtifactCache, CacheStats, ComponentDigest};
pub use capability::{Capability, DeviceAssigner, DeviceLease, HostCapabilities, Probe};
pub use config::{PoolConfig, RuntimeConfig, TaskLimits};
pub use execution::{
    MAX_FIELD_ERROR_BYTES, MAX_FIELD_ERRORS, PluginIdentity, TaskRequest, TaskRun,
};
pub use registry::{LoadError, PreparedPlugin};
pub use runtime::{Runtime, RuntimeError};
pub use sandbox_state::{SCRATCH_GUEST_PATH, SandboxState, TaskOutput};
pub use task_log::{EventSink, discard_events};
