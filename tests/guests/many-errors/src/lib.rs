//! Test fixture `many-errors`: its task type's `validate()` reports 120,000
//! problems with 1 KiB messages (about 127 MB of errors for a 90-byte
//! request). What reaches the client must be capped, with a note that the
//! list was cut.

use flowmesh_guest_support::flowmesh_sdk::{
    FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes,
};
use serde::Deserialize;

/// Spec: anything.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Spec {
    /// Ignored.
    #[serde(default)]
    pub input: Option<String>,
}

/// How many problems it reports.
const PROBLEMS: usize = 120_000;

/// The task type whose check reports too much.
pub struct ManyErrors;

impl TaskType for ManyErrors {
    const NAME: &'static str = "many-errors";
    const DESCRIPTION: &'static str = "validate() reports 120,000 problems.";
    type Spec = Spec;
    type Output = ();

    fn validate(_spec: &Spec) -> Result<(), Vec<FieldError>> {
        let message = "x".repeat(1024);
        Err((0..PROBLEMS)
            .map(|index| FieldError::new(format!("input.{index}"), message.clone()))
            .collect())
    }

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<(), TaskError> {
        Ok(())
    }
}

/// The plugin.
pub struct ManyErrorsPlugin;

impl Plugin for ManyErrorsPlugin {
    const NAME: &'static str = "many-errors";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "validate() reports 120,000 problems.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<ManyErrors>();
    }
}

flowmesh_guest_support::flowmesh_sdk::export!(ManyErrorsPlugin);
