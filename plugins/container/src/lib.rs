//! The `container` plugin: runs an image on the worker's Docker daemon.
//!
//! It imports `flowmesh:host/containers`, so it is available only on workers
//! whose Docker probe succeeded, and tasks of type `container` are routed
//! only to those. The worker decides what the container may do (allowed
//! images, no network unless allowed, the task's memory, CPU and GPU limits,
//! the task's scratch directory at `/scratch`); the plugin turns the task's
//! spec into a request and the container's end into the task's outcome: exit
//! code 0 succeeds, anything else fails the task with the code. The task's
//! timeout (`spec.timeout`) is the container's: past it, the container is
//! killed and removed.

use std::collections::BTreeMap;

use flowmesh_sdk::host::containers::{self, EnvVar, RunRequest};
use flowmesh_sdk::{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Runs a container.
pub struct Container;

/// Spec of a `container` task. Memory, CPUs and GPUs come from the task's
/// `resources.hardware`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// The image, e.g. `busybox:latest`; it must be on the worker's
    /// allow-list and present on the worker (images are not pulled).
    pub image: String,
    /// The command and its arguments; the image's default when absent.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's entrypoint when given.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Environment variables of the container process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the container (an absolute path).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Give the container a network (only on workers that allow it).
    #[serde(default)]
    pub network: bool,
}

/// Output of a `container` task that exited with code 0.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOutput {
    /// Always 0: other codes fail the task.
    pub exit_code: i64,
    /// How long the container ran, in milliseconds.
    pub elapsed_ms: u64,
}

impl ContainerSpec {
    fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.image.trim().is_empty() {
            errors.push(FieldError::new("image", "must name an image"));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') {
                errors.push(FieldError::new(
                    format!("env.{name}"),
                    "is not a variable name (no '=' and not empty)",
                ));
            }
        }
        if let Some(workdir) = &self.workdir
            && !workdir.starts_with('/')
        {
            errors.push(FieldError::new("workdir", "must be an absolute path"));
        }
        errors
    }
}

impl TaskType for Container {
    const NAME: &'static str = "container";
    const DESCRIPTION: &'static str =
        "Runs an image on the worker's Docker daemon; exit code 0 succeeds.";
    type Spec = ContainerSpec;
    type Output = ContainerOutput;

    fn validate(spec: &ContainerSpec) -> Result<(), Vec<FieldError>> {
        match spec.check() {
            errors if errors.is_empty() => Ok(()),
            errors => Err(errors),
        }
    }

    fn execute(spec: ContainerSpec, _task: &TaskInfo) -> Result<ContainerOutput, TaskError> {
        let request = RunRequest {
            image: spec.image.clone(),
            entrypoint: spec.entrypoint,
            command: spec.command,
            env: spec
                .env
                .into_iter()
                .map(|(name, value)| EnvVar { name, value })
                .collect(),
            workdir: spec.workdir,
            scratch_mount: None,
            memory_bytes: None,
            cpus: None,
            // The task's timeout (spec.timeout) ends the container with it.
            timeout_ms: None,
            network: spec.network,
        };
        let result = containers::run(&request)?;
        if result.oom_killed {
            return Err(TaskError::failed(format!(
                "the container was killed for using more memory than its limit (exit code {}); ask for more with resources.hardware.memory",
                result.exit_code
            )));
        }
        if result.exit_code != 0 {
            return Err(TaskError::failed(format!(
                "the container exited with code {}",
                result.exit_code
            )));
        }
        Ok(ContainerOutput {
            exit_code: result.exit_code,
            elapsed_ms: result.elapsed_ms,
        })
    }
}

/// The `container` plugin.
pub struct ContainerPlugin;

impl Plugin for ContainerPlugin {
    const NAME: &'static str = "container";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs images on the worker's Docker daemon.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Container>();
    }
}

flowmesh_sdk::export!(ContainerPlugin);
