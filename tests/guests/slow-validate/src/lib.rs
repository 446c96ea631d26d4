//! Test fixture `slow-validate`: its task type's `validate()` never
//! returns when `input` is `loop` (and accepts anything else, such as a
//! workflow placeholder that resolves to `loop` only at release). The
//! server must stop it at its deadline or fuel budget, keep other tenants'
//! submits moving meanwhile, and fail a workflow stage it cannot check after
//! a bounded number of tries.

use flowmesh_guest_support::flowmesh_sdk::{
    FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes,
};
use serde::Deserialize;

/// Spec: anything.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Spec {
    /// `loop` makes `validate()` loop.
    #[serde(default)]
    pub input: Option<String>,
}

/// The task type whose check never ends.
pub struct SlowValidate;

impl TaskType for SlowValidate {
    const NAME: &'static str = "slow-validate";
    const DESCRIPTION: &'static str = "validate() loops forever on input: loop.";
    type Spec = Spec;
    type Output = ();

    fn validate(spec: &Spec) -> Result<(), Vec<FieldError>> {
        if spec.input.as_deref() != Some("loop") {
            return Ok(());
        }
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<(), TaskError> {
        Ok(())
    }
}

/// The plugin.
pub struct SlowValidatePlugin;

impl Plugin for SlowValidatePlugin {
    const NAME: &'static str = "slow-validate";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "validate() loops forever.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<SlowValidate>();
    }
}

flowmesh_guest_support::flowmesh_sdk::export!(SlowValidatePlugin);
