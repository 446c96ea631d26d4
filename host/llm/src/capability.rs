//! The capability: `flowmesh:host/llm` linked to one endpoint.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use flowmesh_runtime::bindings::flowmesh::host::llm;
use flowmesh_runtime::capability::{Capability, TaskContext};
use flowmesh_runtime::{SandboxState, TaskOutput};
use flowmesh_types::CapabilityKind;
use wasmtime::component::{HasData, Linker};

use crate::endpoint::{Endpoint, ModelInfo};

/// `flowmesh:host/llm` on one endpoint, with the models it served when it
/// was probed. Made by [`LlmProbe`](crate::LlmProbe).
pub struct LlmCapability {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: Arc<Endpoint>,
    models: Vec<ModelInfo>,
}

impl LlmCapability {
    pub(crate) fn new(endpoint: Arc<Endpoint>, models: Vec<ModelInfo>) -> Self {
        Self {
            shared: Arc::new(Shared { endpoint, models }),
        }
    }

    /// The models the endpoint served when probed.
    pub fn models(&self) -> &[ModelInfo] {
        &self.shared.models
    }
}

impl Shared {
    /// The engine, as the endpoint's models name it.
    fn engine(&self) -> String {
        self.models
            .iter()
            .find_map(|model| model.owned_by.clone())
            .unwrap_or_default()
    }

    /// Whether `model` is served: by the probed list, or else by a fresh one
    /// (an adapter loaded since).
    async fn check_model(&self, model: &str, deadline: Instant) -> Result<(), llm::LlmError> {
        if self.models.iter().any(|served| served.id == model) {
            return Ok(());
        }
        let fresh = self.endpoint.models(deadline).await?;
        if fresh.iter().any(|served| served.id == model) {
            return Ok(());
        }
        let served: Vec<&str> = fresh.iter().map(|served| served.id.as_str()).collect();
        Err(llm::LlmError::UnknownModel(format!(
            "model {model:?} is not served by this worker's endpoint at {} (it serves: {})",
            self.endpoint.base(),
            served.join(", ")
        )))
    }
}

/// Per-task state: the endpoint and the task's deadline.
struct LlmTask {
    shared: Arc<Shared>,
    deadline: Instant,
}

/// The host side of one call.
pub struct LlmHost<'a>(&'a mut SandboxState);

impl LlmHost<'_> {
    fn task(&mut self) -> Result<(Arc<Shared>, Instant, TaskOutput), llm::LlmError> {
        let output = self.0.output();
        let task = self
            .0
            .capability_state::<LlmTask>(CapabilityKind::Llm)
            .ok_or_else(|| {
                llm::LlmError::Unavailable(
                    "the llm capability was not prepared for this task".into(),
                )
            })?;
        Ok((task.shared.clone(), task.deadline, output))
    }
}

impl HasData for LlmCapability {
    type Data<'a> = LlmHost<'a>;
}

impl llm::Host for LlmHost<'_> {
    async fn models(&mut self) -> Result<Vec<String>, llm::LlmError> {
        let (shared, deadline, _) = self.task()?;
        let models = shared.endpoint.models(deadline).await?;
        Ok(models.into_iter().map(|model| model.id).collect())
    }

    async fn engine(&mut self) -> String {
        match self.task() {
            Ok((shared, _, _)) => shared.engine(),
            Err(_) => String::new(),
        }
    }

    async fn load_adapter(&mut self, name: String, source: String) -> Result<(), llm::LlmError> {
        let (shared, deadline, output) = self.task()?;
        shared
            .endpoint
            .load_adapter(&name, &source, deadline)
            .await?;
        output.log(
            flowmesh_types::LogStream::Host,
            flowmesh_types::LogLevel::Info,
            format!("LoRA adapter {name} loaded from {source}"),
        );
        Ok(())
    }

    async fn chat(&mut self, request: llm::ChatRequest) -> Result<llm::Response, llm::LlmError> {
        let (shared, deadline, output) = self.task()?;
        shared.check_model(&request.model, deadline).await?;
        shared.endpoint.chat(request, &output, deadline).await
    }

    async fn complete(
        &mut self,
        request: llm::CompletionRequest,
    ) -> Result<llm::Response, llm::LlmError> {
        let (shared, deadline, output) = self.task()?;
        shared.check_model(&request.model, deadline).await?;
        shared.endpoint.complete(request, &output, deadline).await
    }
}

impl Capability for LlmCapability {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Llm
    }

    fn detail(&self) -> String {
        let models: Vec<&str> = self
            .models()
            .iter()
            .map(|model| model.id.as_str())
            .collect();
        let engine = match self.shared.engine() {
            engine if engine.is_empty() => String::new(),
            engine => format!(" ({engine})"),
        };
        format!(
            "OpenAI-compatible endpoint {}{engine} serving {}",
            self.shared.endpoint.base(),
            models.join(", ")
        )
    }

    fn labels(&self) -> Vec<(String, String)> {
        self.models()
            .iter()
            .map(|model| (crate::model_label(&model.id), "served".into()))
            .collect()
    }

    fn add_to_linker(&self, linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
        llm::add_to_linker::<SandboxState, LlmCapability>(linker, |state| LlmHost(state))
    }

    fn prepare(&self, task: &TaskContext) -> wasmtime::Result<Box<dyn Any + Send>> {
        Ok(Box::new(LlmTask {
            shared: self.shared.clone(),
            deadline: task.deadline,
        }))
    }
}
