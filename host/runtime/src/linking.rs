//! How a [`Runtime`] follows the capabilities it has: when a probe makes one
//! appear or disappear ([`Runtime::apply_probe`]), its linker is rebuilt and
//! every installed plugin linked again; and what the working capabilities add
//! to the worker — labels, GPUs, and the assignment of GPUs to tasks.

use std::sync::{Arc, PoisonError};

use flowmesh_types::CapabilityKind;

use crate::capability::Capability;
use crate::registry::{PreparedPlugin, install_locked};
use crate::runtime::{Linked, Runtime};

impl Runtime {
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
}
