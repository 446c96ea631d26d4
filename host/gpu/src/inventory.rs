//! What the devices look like now: NVML, behind a trait so that the
//! assignment logic can be exercised without a GPU.

use std::sync::Arc;

use nvml_wrapper::Nvml;

/// One device, read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// NVML index.
    pub index: u32,
    /// Stable id, `GPU-…`.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Free memory in bytes.
    pub memory_free: u64,
    /// Utilisation over the last sample period, percent.
    pub utilization: u32,
    /// Processes are running on it (compute or graphics).
    pub has_processes: bool,
}

/// Reads the host's devices.
pub trait Inventory: Send + Sync + 'static {
    /// Every device.
    fn devices(&self) -> Result<Vec<DeviceState>, String>;
    /// One device by UUID.
    fn device(&self, uuid: &str) -> Result<DeviceState, String>;
    /// The driver version, for reports.
    fn driver(&self) -> String;
}

/// The real inventory: NVML.
pub struct NvmlInventory {
    nvml: Nvml,
}

impl NvmlInventory {
    /// Initialises NVML; the error says why it is not available.
    pub fn init() -> Result<Arc<Self>, String> {
        Nvml::init()
            .map(|nvml| Arc::new(Self { nvml }))
            .map_err(|error| format!("NVML is not available ({error}); install the NVIDIA driver, or run without GPUs"))
    }

    fn read(&self, device: &nvml_wrapper::Device<'_>) -> Result<DeviceState, String> {
        let text = |error: nvml_wrapper::error::NvmlError| error.to_string();
        let memory = device.memory_info().map_err(text)?;
        let processes = device.running_compute_processes().map_err(text)?.len()
            + device
                .running_graphics_processes()
                .map(|processes| processes.len())
                .unwrap_or(0);
        Ok(DeviceState {
            index: device.index().map_err(text)?,
            uuid: device.uuid().map_err(text)?,
            name: device.name().map_err(text)?,
            memory_total: memory.total,
            memory_free: memory.free,
            // Not every device reports utilisation.
            utilization: device
                .utilization_rates()
                .map(|rates| rates.gpu)
                .unwrap_or(0),
            has_processes: processes > 0,
        })
    }
}

impl Inventory for NvmlInventory {
    fn devices(&self) -> Result<Vec<DeviceState>, String> {
        let count = self
            .nvml
            .device_count()
            .map_err(|error| format!("NVML could not count devices: {error}"))?;
        (0..count)
            .map(|index| {
                let device = self
                    .nvml
                    .device_by_index(index)
                    .map_err(|error| format!("NVML device {index}: {error}"))?;
                self.read(&device)
                    .map_err(|error| format!("NVML device {index}: {error}"))
            })
            .collect()
    }

    fn device(&self, uuid: &str) -> Result<DeviceState, String> {
        let device = self
            .nvml
            .device_by_uuid(uuid)
            .map_err(|error| format!("NVML device {uuid}: {error}"))?;
        self.read(&device)
            .map_err(|error| format!("NVML device {uuid}: {error}"))
    }

    fn driver(&self) -> String {
        self.nvml
            .sys_driver_version()
            .unwrap_or_else(|_| "unknown".into())
    }
}
