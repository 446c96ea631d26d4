//! Test fixture `stack-overflow`: Recurses without bound.

use flowmesh_sdk::{Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::Deserialize;

/// The fixture's only task type.
pub struct Fixture;

/// Spec of the fixture's task.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {}

fn descend(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    descend(depth + 1) + 1
}

impl TaskType for Fixture {
    const NAME: &'static str = "stack-overflow";
    const DESCRIPTION: &'static str = "Recurses without bound.";
    type Spec = Spec;
    type Output = u64;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<u64, TaskError> {
        Ok(descend(std::hint::black_box(1)))
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "stack-overflow";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Recurses without bound.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
