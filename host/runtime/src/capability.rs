//! Host capabilities: what a worker really has, as linked WIT interfaces.
//!
//! A capability is one `flowmesh:host` interface backed by a real resource of
//! the host — a Docker daemon, NVIDIA GPUs, a model endpoint. It goes through
//! three stages, in the spirit of Spin's factors:
//!
//! 1. **probe**: at worker start (and again periodically) the capability checks
//!    that its resource answers. Success yields a [`Capability`]; failure yields
//!    a reason, kept verbatim.
//! 2. **link**: [`Capability::add_to_linker`] defines its interface in the
//!    worker's linker. Interfaces of capabilities that did not probe are never
//!    defined, so a plugin importing one fails `instantiate_pre`, and the
//!    worker reports it unavailable with the probe's reason.
//! 3. **prepare**: per task, [`Capability::prepare`] creates the state its host
//!    functions use for that task (the GPUs assigned to it, its container
//!    labels) from its [`TaskContext`], stored in the [`SandboxState`] of the
//!    task's store.
//!
//! `log` and `progress` are not capabilities: every worker links them.
//! [`HostCapabilities`] is the set a worker runs with: one entry per
//! [`CapabilityKind`], present or absent.
//!
//! Resources come and go — a Docker daemon restarts, an endpoint goes down —
//! so a worker probes again every interval through a [`Probe`], and hands
//! each outcome to [`Runtime::apply_probe`](crate::Runtime::apply_probe):
//! when a capability appears or disappears the runtime links its plugins
//! again, and what the worker advertises follows.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use flowmesh_types::{CapabilityKind, CapabilityReport, CapabilityStatus, GpuRequest};
use wasmtime::component::Linker;

use crate::SandboxState;

/// A probed, working host capability. See the module docs.
pub trait Capability: Send + Sync + 'static {
    /// Which capability this is; decides the interface it must define.
    fn kind(&self) -> CapabilityKind;

    /// What was found, for reports: e.g. `Docker 28.2.2 at unix:///var/run/docker.sock`.
    fn detail(&self) -> String;

    /// Defines the capability's interface ([`CapabilityKind::interface`]) in
    /// `linker`.
    fn add_to_linker(&self, linker: &mut Linker<SandboxState>) -> wasmtime::Result<()>;

    /// Labels the worker advertises while it has this capability (the
    /// models an endpoint serves); tasks can require them
    /// (`spec.resources.labels`). None by default.
    fn labels(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Devices the worker advertises while it has this capability (the GPUs
    /// NVML finds), added to its detected hardware. None by default.
    fn gpus(&self) -> Vec<flowmesh_types::GpuDevice> {
        Vec::new()
    }

    /// The devices this capability hands out to tasks, one task at a time
    /// each (the GPU capability's). None by default.
    fn devices(&self) -> Option<&dyn DeviceAssigner> {
        None
    }

    /// Creates the per-task state the host functions use, for a task of a
    /// plugin that imports this capability. Retrieved with
    /// [`SandboxState::capability_state`].
    fn prepare(&self, task: &TaskContext) -> wasmtime::Result<Box<dyn Any + Send>>;
}

/// Finds one capability on the host: at worker start, and again every probe
/// interval while the worker runs.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// Which capability it looks for.
    fn kind(&self) -> CapabilityKind;

    /// The capability when its resource answers, or why it does not (kept
    /// verbatim as the reason). A probe that finds nothing changed should
    /// return the same `Arc` as last time: the runtime then leaves its
    /// plugins linked as they are.
    async fn probe(&self) -> Result<Arc<dyn Capability>, String>;
}

/// Assigns a host's devices to tasks, exclusively: a device is in at most
/// one [`DeviceLease`] at a time.
pub trait DeviceAssigner: Send + Sync {
    /// Devices that fit `request` and are free now, or why there are not
    /// enough.
    fn assign(&self, request: &GpuRequest) -> Result<DeviceLease, String>;
}

/// Devices assigned to one task, by id (NVML UUIDs for GPUs); they are free
/// again when this is dropped.
pub struct DeviceLease {
    ids: Vec<String>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl DeviceLease {
    /// A lease of `ids`, running `release` when dropped.
    pub fn new(ids: Vec<String>, release: impl FnOnce() + Send + 'static) -> Self {
        Self {
            ids,
            release: Some(Box::new(release)),
        }
    }

    /// The assigned devices' ids.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for DeviceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeviceLease").field(&self.ids).finish()
    }
}

impl std::fmt::Debug for dyn Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe({})", self.kind())
    }
}

/// What a capability may know about the task it prepares for
/// ([`Capability::prepare`]).
///
/// Host functions of a capability run while the task's call is in progress,
/// and the runtime abandons that call — dropping the host function's future at
/// whatever `.await` it is in — when the deadline passes or `cancel` fires.
/// Anything that must be cleaned up (a container, a connection) therefore
/// needs a drop guard, and long waits should also watch `cancel` themselves.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The task id.
    pub id: String,
    /// Its type.
    pub task_type: String,
    /// Its attempt number, from 1.
    pub attempt: u32,
    /// The task's scratch directory on the host (what the guest sees at
    /// `/scratch`), e.g. to mount into a container.
    pub scratch_dir: std::path::PathBuf,
    /// When the task times out.
    pub deadline: std::time::Instant,
    /// Memory its containers may use, in bytes; 0 for no limit.
    pub memory_bytes: u64,
    /// CPU cores its containers may use; 0 for no limit.
    pub cpus: f64,
    /// The GPUs assigned to it, by NVML UUID.
    pub gpus: Vec<String>,
    /// Fires when the task is cancelled.
    pub cancel: tokio_util::sync::CancellationToken,
}

#[derive(Clone)]
enum Entry {
    Present(Arc<dyn Capability>),
    Absent {
        kind: CapabilityKind,
        reason: String,
    },
}

impl Entry {
    fn kind(&self) -> CapabilityKind {
        match self {
            Self::Present(capability) => capability.kind(),
            Self::Absent { kind, .. } => *kind,
        }
    }

    /// The same capability instance, or absent for the same reason.
    fn same_as(&self, other: &Entry) -> bool {
        match (self, other) {
            (Self::Present(a), Self::Present(b)) => Arc::ptr_eq(a, b),
            (Self::Absent { kind, reason }, Self::Absent { kind: k, reason: r }) => {
                kind == k && reason == r
            }
            _ => false,
        }
    }
}

/// The capabilities a worker runs with: for each [`CapabilityKind`], either a
/// working [`Capability`] or the reason it is absent.
#[derive(Clone)]
pub struct HostCapabilities {
    entries: Vec<Entry>,
    validation_only: bool,
}

impl HostCapabilities {
    /// No optional capability: every kind absent because it was not configured.
    pub fn none() -> Self {
        Self {
            entries: CapabilityKind::ALL
                .into_iter()
                .map(|kind| Entry::Absent {
                    kind,
                    reason: format!(
                        "no {} capability: this worker was not configured with one",
                        kind.requirement()
                    ),
                })
                .collect(),
            validation_only: false,
        }
    }

    /// For a runtime that only calls `describe()` and `validate()`, such as
    /// the server checking submitted specs: every plugin loads, and a
    /// capability import that is absent here is linked to a function that
    /// traps, so a plugin that calls one from `validate()` fails that call
    /// instead of being refused. Such a runtime must not execute tasks.
    pub fn validation_only() -> Self {
        Self {
            validation_only: true,
            ..Self::none()
        }
    }

    /// Whether this is [`HostCapabilities::validation_only`].
    pub fn is_validation_only(&self) -> bool {
        self.validation_only
    }

    /// Records the outcome of probing one capability: the capability, or the
    /// probe's error as the reason `kind` is absent. Replaces an earlier entry
    /// of the same kind (for a capability, of [`Capability::kind`]).
    pub fn with_probe(
        mut self,
        kind: CapabilityKind,
        outcome: Result<Arc<dyn Capability>, String>,
    ) -> Self {
        let (kind, entry) = match outcome {
            // The capability's own kind decides which entry it is.
            Ok(capability) => (capability.kind(), Entry::Present(capability)),
            Err(error) => (
                kind,
                Entry::Absent {
                    kind,
                    reason: format!("no {} capability: {error}", kind.requirement()),
                },
            ),
        };
        self.entries.retain(|existing| existing.kind() != kind);
        self.entries.push(entry);
        self.entries.sort_by_key(Entry::kind);
        self
    }

    /// Whether both hold the same capability instances and the same reasons
    /// for the absent ones.
    pub fn same_as(&self, other: &HostCapabilities) -> bool {
        self.validation_only == other.validation_only
            && self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.same_as(b))
    }

    /// The working capabilities.
    pub fn present(&self) -> impl Iterator<Item = &Arc<dyn Capability>> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Present(capability) => Some(capability),
            Entry::Absent { .. } => None,
        })
    }

    /// The working capability of `kind`, if any.
    pub fn get(&self, kind: CapabilityKind) -> Option<&Arc<dyn Capability>> {
        self.present().find(|capability| capability.kind() == kind)
    }

    /// Why `kind` is absent, or `None` if it is present.
    pub fn absence_reason(&self, kind: CapabilityKind) -> Option<&str> {
        self.entries.iter().find_map(|entry| match entry {
            Entry::Absent { kind: k, reason } if *k == kind => Some(reason.as_str()),
            _ => None,
        })
    }

    /// One report per capability kind, for [`WorkerCapabilities`](flowmesh_types::WorkerCapabilities).
    pub fn reports(&self) -> Vec<CapabilityReport> {
        self.entries
            .iter()
            .map(|entry| match entry {
                Entry::Present(capability) => CapabilityReport {
                    kind: capability.kind(),
                    interface: capability.kind().interface().to_string(),
                    status: CapabilityStatus::Available,
                    detail: capability.detail(),
                },
                Entry::Absent { kind, reason } => CapabilityReport {
                    kind: *kind,
                    interface: kind.interface().to_string(),
                    status: CapabilityStatus::Absent,
                    detail: reason.clone(),
                },
            })
            .collect()
    }
}

impl Default for HostCapabilities {
    fn default() -> Self {
        Self::none()
    }
}
