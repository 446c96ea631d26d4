//! The capability: `flowmesh:host/containers` linked to a Docker client.

use std::any::Any;
use std::sync::Arc;

use bollard::Docker;
use flowmesh_runtime::bindings::flowmesh::host::containers;
use flowmesh_runtime::capability::{Capability, TaskContext};
use flowmesh_runtime::{SandboxState, TaskOutput};
use flowmesh_types::CapabilityKind;
use wasmtime::component::{HasData, Linker};

use crate::DockerConfig;
use crate::run::ContainerRun;

/// `flowmesh:host/containers` on one Docker daemon. Made by
/// [`DockerProbe`](crate::DockerProbe).
pub struct DockerCapability {
    shared: Arc<Shared>,
    detail: String,
}

/// What every task's calls share.
pub(crate) struct Shared {
    pub(crate) docker: Docker,
    pub(crate) config: DockerConfig,
}

impl DockerCapability {
    pub(crate) fn new(docker: Docker, config: DockerConfig, found: String) -> Self {
        let network = if config.allow_network {
            "network on request"
        } else {
            "no network"
        };
        let images = match config.images.patterns() {
            [] => "no images allowed".to_string(),
            patterns => format!("images {}", patterns.join(", ")),
        };
        Self {
            detail: format!("{found}; {images}; {network}"),
            shared: Arc::new(Shared { docker, config }),
        }
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.shared.docker
    }
}

/// The per-task state: the daemon and the task the containers belong to.
struct DockerTask {
    shared: Arc<Shared>,
    task: TaskContext,
}

/// The host side of one call.
pub struct DockerHost<'a>(&'a mut SandboxState);

impl HasData for DockerCapability {
    type Data<'a> = DockerHost<'a>;
}

impl containers::Host for DockerHost<'_> {
    async fn run(
        &mut self,
        request: containers::RunRequest,
    ) -> Result<containers::RunResult, containers::ContainerError> {
        let output: TaskOutput = self.0.output();
        let Some(task) = self
            .0
            .capability_state::<DockerTask>(CapabilityKind::Containers)
        else {
            return Err(containers::ContainerError::Daemon(
                "the containers capability was not prepared for this task".into(),
            ));
        };
        let run = ContainerRun {
            docker: &task.shared.docker,
            config: &task.shared.config,
            task: &task.task,
            output,
        };
        run.run(request).await
    }
}

impl Capability for DockerCapability {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Containers
    }

    fn detail(&self) -> String {
        self.detail.clone()
    }

    fn add_to_linker(&self, linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
        containers::add_to_linker::<SandboxState, DockerCapability>(linker, |state| {
            DockerHost(state)
        })
    }

    fn prepare(&self, task: &TaskContext) -> wasmtime::Result<Box<dyn Any + Send>> {
        Ok(Box::new(DockerTask {
            shared: self.shared.clone(),
            task: task.clone(),
        }))
    }
}
