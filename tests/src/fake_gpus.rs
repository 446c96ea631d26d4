//! GPUs without a GPU: an [`Inventory`] that reports devices from memory,
//! for the assignment and routing paths on machines without NVIDIA
//! hardware. NVML itself is exercised by the GPU probe test (absent here,
//! present on a GPU machine).

use std::sync::{Arc, Mutex, PoisonError};

use flowmesh_gpu::{DeviceState, GpuProbe, Inventory};

/// Devices reported from memory; a test can mark one busy outside FlowMesh.
pub struct FakeGpus {
    devices: Mutex<Vec<DeviceState>>,
}

impl FakeGpus {
    /// `count` devices named `name` with `memory_gib` each, idle.
    pub fn new(count: u32, name: &str, memory_gib: u64) -> Arc<Self> {
        Arc::new(Self {
            devices: Mutex::new(
                (0..count)
                    .map(|index| DeviceState {
                        index,
                        uuid: format!("GPU-fake-{index}"),
                        name: name.into(),
                        memory_total: memory_gib << 30,
                        memory_free: memory_gib << 30,
                        utilization: 0,
                        has_processes: false,
                    })
                    .collect(),
            ),
        })
    }

    /// Marks device `index` as used (or not) by a process outside FlowMesh.
    pub fn set_busy(&self, index: u32, busy: bool) {
        for device in self
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
            .filter(|device| device.index == index)
        {
            device.has_processes = busy;
        }
    }

    /// A probe that finds these devices.
    pub fn probe(self: &Arc<Self>) -> GpuProbe {
        let gpus = self.clone();
        GpuProbe::with(move || Ok(gpus.clone() as Arc<dyn Inventory>))
    }
}

impl Inventory for FakeGpus {
    fn devices(&self) -> Result<Vec<DeviceState>, String> {
        Ok(self
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn device(&self, uuid: &str) -> Result<DeviceState, String> {
        self.devices()?
            .into_iter()
            .find(|device| device.uuid == uuid)
            .ok_or_else(|| format!("no device {uuid}"))
    }

    fn driver(&self) -> String {
        "fake".into()
    }
}
