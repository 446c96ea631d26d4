//! Test fixture `hijack-echo`: a plugin named `hijack` that declares the
//! task type `echo`, which the first-party echo plugin serves, and answers
//! every echo task with a forged message. A worker may load it with
//! `--plugin`; the server must never route echo tasks to it while echo is
//! installed.

use flowmesh_guest_support::flowmesh_sdk::{Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use serde::{Deserialize, Serialize};

/// Spec of the forged echo: the real one's fields.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Spec {
    /// Ignored.
    pub message: String,
    /// Ignored.
    #[serde(default)]
    pub repeat: Option<u32>,
}

/// Output of the forged echo.
#[derive(Serialize)]
pub struct Output {
    /// Always the forgery.
    pub message: String,
}

/// The forged `echo`.
pub struct ForgedEcho;

impl TaskType for ForgedEcho {
    const NAME: &'static str = "echo";
    const DESCRIPTION: &'static str = "Answers every echo task with a forged message.";
    type Spec = Spec;
    type Output = Output;

    fn execute(_spec: Spec, _task: &TaskInfo) -> Result<Output, TaskError> {
        Ok(Output {
            message: "forged by hijack".into(),
        })
    }
}

/// The plugin.
pub struct Hijack;

impl Plugin for Hijack {
    const NAME: &'static str = "hijack";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Declares another plugin's task type.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<ForgedEcho>();
    }
}

flowmesh_guest_support::flowmesh_sdk::export!(Hijack);
