//! [`SandboxState`], what the [`Store`](wasmtime::Store) of one task's
//! sandbox holds: its WASI context, its resource table, its memory limiter,
//! its log, and the per-task state of the capabilities its plugin imports.
//! Also the host side of `log` and `progress`, which every worker links.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use flowmesh_types::{CapabilityKind, LogLevel, LogStream};
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::flowmesh::host::{log, progress};
use crate::task_log::{CapturedStdio, TaskLog};

/// Where the task's scratch directory appears inside the sandbox.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// The data of one task's store: the sandbox its plugin calls run in (not
/// the task's lifecycle state, `flowmesh_types::api::TaskState`). Host
/// functions of capabilities reach their per-task state through
/// [`SandboxState::capability_state`].
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: Arc<TaskLog>,
    capabilities: Vec<(CapabilityKind, Box<dyn Any + Send>)>,
}

impl SandboxState {
    /// A sandbox with nothing granted: no environment, no arguments, no
    /// network, no stdin, stdout and stderr captured into `log`, and — when
    /// `scratch` is given — that directory preopened read-write at
    /// [`SCRATCH_GUEST_PATH`] as the only file system access.
    pub(crate) fn new(
        log: Arc<TaskLog>,
        memory_limit: usize,
        scratch: Option<&Path>,
    ) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(CapturedStdio::new(log.clone(), LogStream::Stdout))
            .stderr(CapturedStdio::new(log.clone(), LogStream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(scratch) = scratch {
            wasi.preopened_dir(scratch, SCRATCH_GUEST_PATH, FsPerms::ReadWrite)?;
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_limit,
                total: 0,
            },
            log,
            capabilities: Vec::new(),
        })
    }

    pub(crate) fn add_capability_state(
        &mut self,
        kind: CapabilityKind,
        state: Box<dyn Any + Send>,
    ) {
        self.capabilities.push((kind, state));
    }

    /// The per-task state that the capability of `kind` prepared for this task,
    /// if it is of type `S`.
    pub fn capability_state<S: Any>(&mut self, kind: CapabilityKind) -> Option<&mut S> {
        self.capabilities
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, state)| state.downcast_mut())
    }

    /// An owned handle on the task log: how capabilities stream what they
    /// run (container output, model tokens) while they wait on it.
    pub fn output(&self) -> TaskOutput {
        TaskOutput(self.log.clone())
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The task log of one task, as a capability writes to it: records under
/// the task's log cap, and raw output split into lines.
#[derive(Clone)]
pub struct TaskOutput(Arc<TaskLog>);

impl TaskOutput {
    /// One record.
    pub fn log(&self, stream: LogStream, level: LogLevel, message: String) {
        self.0.record_from(stream, level, message);
    }

    /// Bytes written to `stream` (`Stdout` or `Stderr`): each complete line
    /// becomes a record.
    pub fn write(&self, stream: LogStream, bytes: &[u8]) {
        self.0.write(stream, bytes);
    }

    /// Emits the partial lines left, once what was writing has ended.
    pub fn flush(&self) {
        self.0.finish();
    }
}

/// Raised when a plugin tries to grow its memory past the task's limit; traps
/// the plugin at once.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin tried to grow its memory to {desired} bytes, over the task's limit of {limit} bytes"
)]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) desired: usize,
    pub(crate) limit: usize,
}

/// Caps the total linear memory of a task's instance, over all its memories.
pub(crate) struct MemoryLimiter {
    limit: usize,
    total: usize,
}

/// Upper bound on table elements; tables are small in practice.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            return Err(MemoryLimitExceeded {
                desired: total,
                limit: self.limit,
            }
            .into());
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// `log` and `progress`, which every worker provides.
struct AlwaysLinked;

impl HasData for AlwaysLinked {
    type Data<'a> = &'a mut SandboxState;
}

impl log::Host for SandboxState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log.record(level, message);
    }
}

impl progress::Host for SandboxState {
    fn report(&mut self, fraction: f32, message: Option<String>) {
        self.log.progress(fraction, message);
    }
}

/// Defines WASI (with nothing granted) plus `log` and `progress` in `linker`.
pub(crate) fn add_always_linked(linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    log::add_to_linker::<SandboxState, AlwaysLinked>(linker, |state| state)?;
    progress::add_to_linker::<SandboxState, AlwaysLinked>(linker, |state| state)?;
    Ok(())
}
