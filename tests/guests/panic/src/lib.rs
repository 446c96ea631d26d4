//! Test fixture `panic`: Panics.

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
    const NAME: &'static str = "panic";
    const DESCRIPTION: &'static str = "Panics.";
    type Spec = Spec;
    type Output = ();

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<(), TaskError> {
        panic!("the panic fixture panics on purpose")
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "panic";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Panics.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
