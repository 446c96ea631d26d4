//! Finding the GPUs: NVML init, then the device list.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use flowmesh_runtime::{Capability, Probe};
use flowmesh_types::CapabilityKind;

use crate::{GpuCapability, Inventory, NvmlInventory};

/// Probes NVML. While the same devices answer, the same capability is
/// returned (its assignments live on); a device that appears or disappears
/// makes a new one.
pub struct GpuProbe {
    inventory: Mutex<Option<Arc<dyn Inventory>>>,
    current: Mutex<Option<Arc<GpuCapability>>>,
    /// UUIDs of the devices assigned to running tasks, across capabilities.
    taken: Arc<Mutex<HashSet<String>>>,
    init: Box<dyn Fn() -> Result<Arc<dyn Inventory>, String> + Send + Sync>,
}

impl GpuProbe {
    /// A probe of the host's NVIDIA GPUs through NVML.
    pub fn new() -> Self {
        Self::with(|| NvmlInventory::init().map(|nvml| nvml as Arc<dyn Inventory>))
    }

    /// A probe whose inventory `init` opens (until it succeeds once), e.g.
    /// an inventory without NVML in tests.
    pub fn with(
        init: impl Fn() -> Result<Arc<dyn Inventory>, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inventory: Mutex::new(None),
            current: Mutex::new(None),
            taken: Arc::default(),
            init: Box::new(init),
        }
    }

    fn inventory(&self) -> Result<Arc<dyn Inventory>, String> {
        let mut inventory = self
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(inventory) = inventory.as_ref() {
            return Ok(inventory.clone());
        }
        let opened = (self.init)()?;
        *inventory = Some(opened.clone());
        Ok(opened)
    }
}

impl Default for GpuProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Probe for GpuProbe {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Gpu
    }

    async fn probe(&self) -> Result<Arc<dyn Capability>, String> {
        let inventory = self.inventory()?;
        let devices = {
            let inventory = inventory.clone();
            tokio::task::spawn_blocking(move || inventory.devices())
                .await
                .map_err(|error| format!("the NVML query panicked: {error}"))??
        };
        if devices.is_empty() {
            return Err("NVML found no GPU".into());
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let uuids = |devices: &[crate::DeviceState]| -> Vec<String> {
            devices.iter().map(|device| device.uuid.clone()).collect()
        };
        if let Some(existing) = current.as_ref()
            && uuids(existing.probed()) == uuids(&devices)
        {
            return Ok(existing.clone());
        }
        let capability = Arc::new(GpuCapability::new(inventory, devices, self.taken.clone()));
        *current = Some(capability.clone());
        Ok(capability)
    }
}
