//! The `train` plugin: a training job in a container, on the GPUs assigned
//! to the task.
//!
//! It imports `flowmesh:host/gpu` and `flowmesh:host/containers`, so it runs
//! only on workers that have both NVIDIA GPUs (NVML) and Docker. The task
//! asks for its GPUs in `resources.hardware.gpu`; the worker assigns whole
//! devices exclusively, and the container sees exactly those. The plugin
//! logs what it got (name, memory, utilisation), runs the image with
//! `FLOWMESH_GPUS` set to the devices' UUIDs, and returns them with the exit
//! code.

use std::collections::BTreeMap;

use flowmesh_sdk::host::containers::{self, EnvVar, RunRequest};
use flowmesh_sdk::host::gpu;
use flowmesh_sdk::{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Runs a training container.
pub struct Train;

/// Spec of a `train` task. GPUs, memory and CPUs come from the task's
/// `resources.hardware`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrainSpec {
    /// The training image; it must be on the worker's allow-list.
    pub image: String,
    /// The command and its arguments; the image's default when absent.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment variables (FLOWMESH_GPUS is set by the plugin).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One device the task trained on.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsedGpu {
    /// NVML UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Total memory in bytes.
    pub memory_total_bytes: u64,
}

/// Output of a `train` task.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainOutput {
    /// The devices it ran on.
    pub gpus: Vec<UsedGpu>,
    /// The container's exit code (always 0: others fail the task).
    pub exit_code: i64,
    /// How long the container ran, in milliseconds.
    pub elapsed_ms: u64,
}

impl TaskType for Train {
    const NAME: &'static str = "train";
    const DESCRIPTION: &'static str =
        "Runs a training container on the GPUs assigned to the task (resources.hardware.gpu).";
    type Spec = TrainSpec;
    type Output = TrainOutput;

    fn validate(spec: &TrainSpec) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if spec.image.trim().is_empty() {
            errors.push(FieldError::new("image", "must name an image"));
        }
        if spec.env.contains_key("FLOWMESH_GPUS") {
            errors.push(FieldError::new(
                "env.FLOWMESH_GPUS",
                "is set by the plugin to the assigned devices; remove it",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn execute(spec: TrainSpec, _task: &TaskInfo) -> Result<TrainOutput, TaskError> {
        let devices = gpu::assigned()
            .map_err(|gpu::GpuError::Nvml(message)| TaskError::retryable(message))?;
        if devices.is_empty() {
            return Err(TaskError::failed(
                "no GPU was assigned: ask for some with resources.hardware.gpu.count",
            ));
        }
        for device in &devices {
            flowmesh_sdk::log::info(&format!(
                "GPU {} {} ({} MiB, {} MiB free, {}% busy)",
                device.index,
                device.name,
                device.memory_total_bytes >> 20,
                device.memory_free_bytes >> 20,
                device.utilization_percent
            ));
        }
        let uuids: Vec<&str> = devices.iter().map(|device| device.uuid.as_str()).collect();
        let mut env: Vec<EnvVar> = spec
            .env
            .into_iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect();
        env.push(EnvVar {
            name: "FLOWMESH_GPUS".into(),
            value: uuids.join(","),
        });
        let result = containers::run(&RunRequest {
            image: spec.image,
            entrypoint: Vec::new(),
            command: spec.command,
            env,
            workdir: None,
            scratch_mount: None,
            memory_bytes: None,
            cpus: None,
            // The task's timeout (spec.timeout) ends the container with it.
            timeout_ms: None,
            network: false,
        })?;
        if result.oom_killed || result.exit_code != 0 {
            return Err(TaskError::failed(format!(
                "training exited with code {}{}",
                result.exit_code,
                if result.oom_killed {
                    " (out of memory)"
                } else {
                    ""
                }
            )));
        }
        Ok(TrainOutput {
            gpus: devices
                .into_iter()
                .map(|device| UsedGpu {
                    uuid: device.uuid,
                    name: device.name,
                    memory_total_bytes: device.memory_total_bytes,
                })
                .collect(),
            exit_code: result.exit_code,
            elapsed_ms: result.elapsed_ms,
        })
    }
}

/// The `train` plugin.
pub struct TrainPlugin;

impl Plugin for TrainPlugin {
    const NAME: &'static str = "train";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Training containers on assigned GPUs.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Train>();
    }
}

flowmesh_sdk::export!(TrainPlugin);
