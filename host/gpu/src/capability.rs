//! The capability: `flowmesh:host/gpu`, the device inventory and the
//! assignments.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use flowmesh_runtime::bindings::flowmesh::host::gpu;
use flowmesh_runtime::capability::{Capability, TaskContext};
use flowmesh_runtime::{DeviceAssigner, DeviceLease, SandboxState};
use flowmesh_types::{CapabilityKind, GpuDevice, GpuRequest, format_bytes};
use wasmtime::component::{HasData, Linker};

use crate::{DeviceState, Inventory, choose};

/// `flowmesh:host/gpu` on the devices an [`Inventory`] reports. Made by
/// [`GpuProbe`](crate::GpuProbe).
pub struct GpuCapability {
    shared: Arc<Shared>,
}

struct Shared {
    inventory: Arc<dyn Inventory>,
    /// The devices when probed.
    devices: Vec<DeviceState>,
    /// UUIDs of the devices assigned to running tasks.
    taken: Arc<Mutex<HashSet<String>>>,
}

impl GpuCapability {
    /// The capability over `devices` as `inventory` reported them, with
    /// `taken` the UUIDs assigned to running tasks: kept by the probe, so
    /// that a capability made after the device list changed still knows
    /// which devices running tasks hold.
    pub fn new(
        inventory: Arc<dyn Inventory>,
        devices: Vec<DeviceState>,
        taken: Arc<Mutex<HashSet<String>>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                inventory,
                devices,
                taken,
            }),
        }
    }

    /// The devices when probed.
    pub fn probed(&self) -> &[DeviceState] {
        &self.shared.devices
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.shared
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeviceAssigner for GpuCapability {
    fn assign(&self, request: &GpuRequest) -> Result<DeviceLease, String> {
        // Fresh readings: a process started outside since the probe counts.
        let devices = self.shared.inventory.devices()?;
        let mut taken = self.taken();
        let chosen = choose(&devices, &taken, request)?;
        taken.extend(chosen.iter().cloned());
        let release = {
            let (taken, chosen) = (self.shared.taken.clone(), chosen.clone());
            move || {
                let mut taken = taken.lock().unwrap_or_else(PoisonError::into_inner);
                for uuid in &chosen {
                    taken.remove(uuid);
                }
            }
        };
        Ok(DeviceLease::new(chosen, release))
    }
}

/// Per-task state: the task's devices.
struct GpuTask {
    inventory: Arc<dyn Inventory>,
    assigned: Vec<String>,
}

/// The host side of one call.
pub struct GpuHost<'a>(&'a mut SandboxState);

impl HasData for GpuCapability {
    type Data<'a> = GpuHost<'a>;
}

impl gpu::Host for GpuHost<'_> {
    fn assigned(&mut self) -> Result<Vec<gpu::Device>, gpu::GpuError> {
        let Some(task) = self.0.capability_state::<GpuTask>(CapabilityKind::Gpu) else {
            return Err(gpu::GpuError::Nvml(
                "the gpu capability was not prepared for this task".into(),
            ));
        };
        task.assigned
            .iter()
            .map(|uuid| {
                let device = task.inventory.device(uuid).map_err(gpu::GpuError::Nvml)?;
                Ok(gpu::Device {
                    index: device.index,
                    uuid: device.uuid,
                    name: device.name,
                    memory_total_bytes: device.memory_total,
                    memory_free_bytes: device.memory_free,
                    utilization_percent: device.utilization,
                })
            })
            .collect()
    }
}

impl Capability for GpuCapability {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Gpu
    }

    fn detail(&self) -> String {
        let devices: Vec<String> = self
            .probed()
            .iter()
            .map(|device| {
                format!(
                    "{}: {} ({})",
                    device.index,
                    device.name,
                    format_bytes(device.memory_total)
                )
            })
            .collect();
        format!(
            "{} GPU(s) via NVML, driver {}: {}",
            devices.len(),
            self.shared.inventory.driver(),
            devices.join(", ")
        )
    }

    /// The devices free for FlowMesh: those assigned to its tasks, and the
    /// others unless processes from outside FlowMesh use them.
    fn gpus(&self) -> Vec<GpuDevice> {
        let devices = match self.shared.inventory.devices() {
            Ok(devices) => devices,
            Err(error) => {
                tracing::warn!(%error, "could not read the GPUs; advertising them as probed");
                self.probed().to_vec()
            }
        };
        let taken = self.taken();
        devices
            .into_iter()
            .filter(|device| taken.contains(&device.uuid) || !device.has_processes)
            .map(|device| GpuDevice {
                index: device.index,
                model: device.name,
                memory_bytes: device.memory_total,
            })
            .collect()
    }

    fn devices(&self) -> Option<&dyn DeviceAssigner> {
        Some(self)
    }

    fn add_to_linker(&self, linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
        gpu::add_to_linker::<SandboxState, GpuCapability>(linker, |state| GpuHost(state))
    }

    fn prepare(&self, task: &TaskContext) -> wasmtime::Result<Box<dyn Any + Send>> {
        Ok(Box::new(GpuTask {
            inventory: self.shared.inventory.clone(),
            assigned: task.gpus.clone(),
        }))
    }
}
