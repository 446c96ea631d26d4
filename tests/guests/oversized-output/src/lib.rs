//! Test fixture `oversized-output`: Returns 2 MiB of output.

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
    const NAME: &'static str = "oversized-output";
    const DESCRIPTION: &'static str = "Returns 2 MiB of output.";
    type Spec = Spec;
    type Output = String;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<String, TaskError> {
        Ok("x".repeat(2 << 20))
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "oversized-output";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Returns 2 MiB of output.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
