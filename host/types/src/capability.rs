//! What a worker can run, as data.
//!
//! A worker probes the host capabilities it really has (a Docker daemon, GPUs,
//! a model endpoint), links exactly those WIT interfaces, and tries to
//! instantiate every installed plugin against them. The outcome is a
//! [`WorkerCapabilities`] report: the task types it serves, every plugin with
//! its status and, when unavailable, the reason, and every capability with its
//! probe result. The server routes by it and `flowmesh worker inspect` shows it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::Manifest;

/// A host capability that a worker may or may not have. Each one is exactly
/// one WIT interface of `flowmesh:host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CapabilityKind {
    /// `flowmesh:host/containers`: a Docker daemon.
    Containers,
    /// `flowmesh:host/gpu`: NVIDIA GPUs through NVML.
    Gpu,
    /// `flowmesh:host/llm`: an OpenAI-compatible model endpoint.
    Llm,
}

impl CapabilityKind {
    /// Every optional capability, in a stable order.
    pub const ALL: [CapabilityKind; 3] = [Self::Containers, Self::Gpu, Self::Llm];

    /// Short name, e.g. `containers`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::Gpu => "gpu",
            Self::Llm => "llm",
        }
    }

    /// The WIT interface this capability provides, with its version.
    pub fn interface(self) -> &'static str {
        match self {
            Self::Containers => "flowmesh:host/containers@0.1.0",
            Self::Gpu => "flowmesh:host/gpu@0.1.0",
            Self::Llm => "flowmesh:host/llm@0.1.0",
        }
    }

    /// What the host needs for this capability, for messages: `Docker`.
    pub fn requirement(self) -> &'static str {
        match self {
            Self::Containers => "Docker",
            Self::Gpu => "GPU",
            Self::Llm => "model endpoint",
        }
    }

    /// The capability that provides `interface` (with or without version).
    pub fn from_interface(interface: &str) -> Option<Self> {
        let unversioned = interface.split('@').next().unwrap_or(interface);
        Self::ALL
            .into_iter()
            .find(|kind| kind.interface().split('@').next() == Some(unversioned))
    }
}

impl std::fmt::Display for CapabilityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a worker has a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CapabilityStatus {
    /// The probe succeeded; the interface is linked.
    Available,
    /// The probe failed or the capability is not configured; the interface is
    /// not linked and plugins importing it are unavailable.
    Absent,
}

/// One capability on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapabilityReport {
    /// Which capability.
    pub kind: CapabilityKind,
    /// Its WIT interface.
    pub interface: String,
    /// Whether it is linked.
    pub status: CapabilityStatus,
    /// What the probe found: a description of the resource when available
    /// (`Docker 28.2.2 at unix:///var/run/docker.sock`), the probe's error when
    /// absent.
    pub detail: String,
}

/// Whether a worker can run a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    /// Instantiated against this worker's linker; its task types are served.
    Available,
    /// Could not be instantiated here; `reason` says why.
    Unavailable,
}

/// One installed plugin on one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginReport {
    /// The name it was installed under.
    pub name: String,
    /// Version from its manifest; unknown when it could not be instantiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Available or not.
    pub status: PluginStatus,
    /// Why it is unavailable, naming the missing interface and the probe's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every interface the component imports (`wasi:*` included).
    pub imports: Vec<String>,
    /// The manifest, when the plugin is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// Everything a worker can do, as it advertises it to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerCapabilities {
    /// Union of the task types of every available plugin. Empty means this
    /// worker is incapable and is never handed a task.
    pub supported_task_types: BTreeSet<String>,
    /// Every installed plugin, available or not.
    pub plugins: Vec<PluginReport>,
    /// Every optional capability, present or not.
    pub capabilities: Vec<CapabilityReport>,
}

impl WorkerCapabilities {
    /// Whether this worker can run tasks of `task_type`.
    pub fn supports(&self, task_type: &str) -> bool {
        self.supported_task_types.contains(task_type)
    }

    /// The report of the plugin installed as `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginReport> {
        self.plugins.iter().find(|plugin| plugin.name == name)
    }
}

/// A GPU as the worker detected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    /// Device index on the host.
    pub index: u32,
    /// Product name (`NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
}

/// `spec.resources.hardware.gpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// Whole devices, assigned exclusively.
    pub count: u32,
    /// A substring the device name must contain (`H100`); `None` for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Memory each device must have, in bytes; 0 for any.
    pub memory_bytes: u64,
}

impl GpuRequest {
    /// Whether a device named `name` with `memory_bytes` could serve this
    /// request: it contains the requested name (case-insensitive) and has
    /// the memory. The server's placement and the worker's assignment both
    /// ask this.
    pub fn fits(&self, name: &str, memory_bytes: u64) -> bool {
        memory_bytes >= self.memory_bytes
            && self
                .model
                .as_ref()
                .is_none_or(|model| name.to_lowercase().contains(&model.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_kind_is_found_by_interface_with_or_without_version() {
        assert_eq!(
            CapabilityKind::from_interface("flowmesh:host/containers@0.1.0"),
            Some(CapabilityKind::Containers)
        );
        assert_eq!(
            CapabilityKind::from_interface("flowmesh:host/gpu"),
            Some(CapabilityKind::Gpu)
        );
        assert_eq!(
            CapabilityKind::from_interface("flowmesh:host/log@0.1.0"),
            None
        );
    }

    #[test]
    fn worker_capabilities_round_trip_as_camel_case_json() {
        let report = WorkerCapabilities {
            supported_task_types: ["echo".to_string()].into(),
            plugins: vec![],
            capabilities: vec![CapabilityReport {
                kind: CapabilityKind::Containers,
                interface: CapabilityKind::Containers.interface().into(),
                status: CapabilityStatus::Absent,
                detail: "no Docker daemon configured".into(),
            }],
        };
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["supportedTaskTypes"][0], "echo");
        assert_eq!(json["capabilities"][0]["status"], "absent");
        let back: WorkerCapabilities = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, report);
    }
}
