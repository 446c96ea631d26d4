//! Test fixture `infinite-loop`: Spins forever; must be stopped by its deadline.

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
    const NAME: &'static str = "infinite-loop";
    const DESCRIPTION: &'static str = "Spins forever; must be stopped by its deadline.";
    type Spec = Spec;
    type Output = ();

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<(), TaskError> {
        loop {
            std::hint::black_box(());
        }
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "infinite-loop";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Spins forever; must be stopped by its deadline.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
