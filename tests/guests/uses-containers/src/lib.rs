//! Test fixture `uses-containers`: Runs a container through flowmesh:host/containers; only workers with Docker may load it.

use flowmesh_sdk::{Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::Deserialize;

/// The fixture's only task type.
pub struct Fixture;

/// Spec of the fixture's task.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {}

impl TaskType for Fixture {
    const NAME: &'static str = "uses-containers";
    const DESCRIPTION: &'static str =
        "Runs a container through flowmesh:host/containers; only workers with Docker may load it.";
    type Spec = Spec;
    type Output = String;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<String, TaskError> {
        let request = flowmesh_sdk::host::containers::RunRequest {
            image: "busybox:latest".into(),
            entrypoint: Vec::new(),
            command: vec!["true".into()],
            env: Vec::new(),
            workdir: None,
            scratch_mount: None,
            memory_bytes: None,
            cpus: None,
            timeout_ms: None,
            network: false,
        };
        match flowmesh_sdk::host::containers::run(&request) {
            Ok(result) => Ok(format!("exit code {}", result.exit_code)),
            Err(error) => Err(TaskError::failed(format!("{error:?}"))),
        }
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "uses-containers";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Runs a container through flowmesh:host/containers; only workers with Docker may load it.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
