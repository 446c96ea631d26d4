//! A containers capability that runs nothing and answers exit code 0: a
//! stand-in for a Docker host in routing tests, which check *where* a task
//! runs, not what the container does. The Docker capability itself is tested
//! against a real daemon.

use std::any::Any;

use flowmesh_runtime::TaskState;
use flowmesh_runtime::bindings::flowmesh::host::containers;
use flowmesh_runtime::capability::{Capability, TaskInfo};
use flowmesh_types::CapabilityKind;
use wasmtime::component::{HasData, Linker};

/// Answers every `run` with exit code 0.
pub struct FakeDocker;

/// The per-task view.
pub struct FakeDockerHost;

impl HasData for FakeDocker {
    type Data<'a> = FakeDockerHost;
}

impl containers::Host for FakeDockerHost {
    async fn run(
        &mut self,
        request: containers::RunRequest,
    ) -> Result<containers::RunResult, containers::ContainerError> {
        let _ = request;
        Ok(containers::RunResult {
            exit_code: 0,
            oom_killed: false,
            elapsed_ms: 0,
        })
    }
}

impl Capability for FakeDocker {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Containers
    }

    fn detail(&self) -> String {
        "test stand-in: every container exits 0".into()
    }

    fn add_to_linker(&self, linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
        containers::add_to_linker::<TaskState, FakeDocker>(linker, |_| FakeDockerHost)
    }

    fn prepare(&self, _task: &TaskInfo) -> wasmtime::Result<Box<dyn Any + Send>> {
        Ok(Box::new(()))
    }
}
