//! `flowmesh:host/gpu`: NVIDIA GPUs through NVML, assigned to tasks
//! exclusively.
//!
//! # The idea
//!
//! A worker's GPUs are found, not configured: [`GpuProbe`] initialises NVML
//! (the library the NVIDIA driver installs) and lists the devices. Where
//! NVML is missing or finds no device, the capability is absent and says
//! why, and plugins that import `gpu` are unavailable there.
//!
//! The devices become the worker's advertised hardware (name and memory), so
//! the server routes a task that asks for GPUs (`resources.hardware.gpu`:
//! count, a name substring, memory per device) only to a worker that has
//! them. A device that processes outside FlowMesh are using is not offered.
//!
//! When such a task starts, the worker assigns it whole devices, exclusively,
//! until it ends ([`DeviceAssigner`](flowmesh_runtime::DeviceAssigner)). The
//! containers the task starts see exactly those devices, and a plugin that
//! imports `gpu` reads them (with fresh memory and utilisation readings)
//! through `assigned()`.

mod allocator;
mod capability;
mod inventory;
mod probe;

pub use allocator::choose;
pub use capability::GpuCapability;
pub use inventory::{DeviceState, Inventory, NvmlInventory};
pub use probe::GpuProbe;
