//! Test fixture `open-socket`: Tries to connect to a TCP port on the host.

use flowmesh_sdk::{Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::Deserialize;

/// The fixture's only task type.
pub struct Fixture;

/// Spec of the fixture's task.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The TCP port to try.
    port: u16,
}

impl TaskType for Fixture {
    const NAME: &'static str = "open-socket";
    const DESCRIPTION: &'static str = "Tries to connect to a TCP port on the host.";
    type Spec = Spec;
    type Output = String;

    fn execute(spec: Spec, _task: &TaskInfo) -> Result<String, TaskError> {
        let address = format!("127.0.0.1:{}", spec.port);
        match std::net::TcpStream::connect(&address) {
            Ok(_) => Ok(format!("connected to {address}")),
            Err(error) => Err(TaskError::failed(format!("connect {address}: {error}"))),
        }
    }
}

/// The fixture plugin.
pub struct FixturePlugin;

impl Plugin for FixturePlugin {
    const NAME: &'static str = "open-socket";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Tries to connect to a TCP port on the host.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Fixture>();
    }
}

flowmesh_sdk::export!(FixturePlugin);
