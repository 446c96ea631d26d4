//! Test fixture `memory-bomb`: Allocates until something stops it.

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
    const NAME: &'static str = "memory-bomb";
    const DESCRIPTION: &'static str = "Allocates until something stops it.";
    type Spec = Spec;
    type Output = usize;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<usize, TaskError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 8 << 20]));
            if hoard.len() == usize::MAX {
                return Ok(hoard.len());
            }
        }
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "memory-bomb";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Allocates until something stops it.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
