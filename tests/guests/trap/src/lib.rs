//! Test fixture `trap`: Reads far outside its linear memory.
#![allow(unsafe_code)]

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
    const NAME: &'static str = "trap";
    const DESCRIPTION: &'static str = "Reads far outside its linear memory.";
    type Spec = Spec;
    type Output = u64;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<u64, TaskError> {
        let address = std::hint::black_box(0xffff_fff0_usize) as *const u64;
        // SAFETY: it is not; this fixture exists to make the host trap it.
        Ok(unsafe { std::ptr::read_volatile(address) })
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "trap";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Reads far outside its linear memory.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
