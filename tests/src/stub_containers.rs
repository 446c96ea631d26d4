//! A `flowmesh:host/containers` capability that starts no container.
//!
//! For the tests of linking and routing that must not depend on a Docker
//! daemon (the gating tests of the runtime, and the server routing test that
//! runs on both database backends): a worker that links the interface with a
//! fixed answer. It says so in its detail, and tests must not read more into
//! a container task's outcome than that the plugin ran on that worker and
//! got the stub's answer. Real Docker is exercised by `runtime_containers`
//! and `server_mixed_fleet`.

use std::any::Any;

use flowmesh_runtime::SandboxState;
use flowmesh_runtime::bindings::flowmesh::host::containers;
use flowmesh_runtime::capability::{Capability, TaskContext};
use flowmesh_types::CapabilityKind;
use wasmtime::component::{HasData, Linker};

/// What every `run` answers.
#[derive(Debug, Clone, Copy)]
pub enum StubContainers {
    /// Exit code 0.
    ExitZero,
    /// A daemon error naming the image and the task (from the per-task
    /// state prepared for the call, so that plumbing is exercised too).
    Refuse,
}

/// Per-task state: the answer, and the task it is for.
struct StubTask {
    stub: StubContainers,
    task_id: String,
}

/// The host side of one call.
pub struct StubHost<'a>(&'a mut SandboxState);

impl HasData for StubContainers {
    type Data<'a> = StubHost<'a>;
}

impl containers::Host for StubHost<'_> {
    async fn run(
        &mut self,
        request: containers::RunRequest,
    ) -> Result<containers::RunResult, containers::ContainerError> {
        let task = self
            .0
            .capability_state::<StubTask>(CapabilityKind::Containers)
            .expect("prepared for this task");
        match task.stub {
            StubContainers::ExitZero => Ok(containers::RunResult {
                exit_code: 0,
                oom_killed: false,
                elapsed_ms: 0,
            }),
            StubContainers::Refuse => Err(containers::ContainerError::Daemon(format!(
                "refusing {} for task {}",
                request.image, task.task_id
            ))),
        }
    }
}

impl Capability for StubContainers {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Containers
    }

    fn detail(&self) -> String {
        match self {
            Self::ExitZero => "test stub: starts no container, answers exit code 0".into(),
            Self::Refuse => "test stub: refuses every container".into(),
        }
    }

    fn add_to_linker(&self, linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
        containers::add_to_linker::<SandboxState, StubContainers>(linker, |state| StubHost(state))
    }

    fn prepare(&self, task: &TaskContext) -> wasmtime::Result<Box<dyn Any + Send>> {
        Ok(Box::new(StubTask {
            stub: *self,
            task_id: task.id.clone(),
        }))
    }
}
