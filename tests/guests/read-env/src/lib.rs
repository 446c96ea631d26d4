//! Test fixture `read-env`: Reads its environment variables and arguments.

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
    const NAME: &'static str = "read-env";
    const DESCRIPTION: &'static str = "Reads its environment variables and arguments.";
    type Spec = Spec;
    type Output = Vec<String>;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<Vec<String>, TaskError> {
        let found: Vec<String> = std::env::vars()
            .map(|(name, value)| format!("{name}={value}"))
            .chain(std::env::args().map(|arg| format!("arg {arg}")))
            .collect();
        if found.is_empty() {
            Err(TaskError::failed(
                "no environment variables and no arguments are visible",
            ))
        } else {
            Ok(found)
        }
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "read-env";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Reads its environment variables and arguments.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
