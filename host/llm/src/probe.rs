//! Finding the endpoint: `GET /v1/models`.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use flowmesh_runtime::{Capability, Probe};
use flowmesh_types::CapabilityKind;

use crate::LlmConfig;
use crate::capability::LlmCapability;
use crate::endpoint::Endpoint;

/// Probes the endpoint. While it answers with the same models, the same
/// capability is returned, so plugins stay linked as they are; a change of
/// models makes a new one (and new labels).
pub struct LlmProbe {
    endpoint: Result<Arc<Endpoint>, String>,
    current: Mutex<Option<Arc<LlmCapability>>>,
}

impl LlmProbe {
    /// A probe for `config`.
    pub fn new(config: LlmConfig) -> Self {
        Self {
            endpoint: Endpoint::new(config).map(Arc::new),
            current: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Probe for LlmProbe {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Llm
    }

    async fn probe(&self) -> Result<Arc<dyn Capability>, String> {
        let endpoint = self.endpoint.clone()?;
        let models = endpoint
            .models(std::time::Instant::now() + PROBE_TIMEOUT)
            .await
            .map_err(|error| {
                format!(
                    "the model endpoint at {} does not answer: {error}",
                    endpoint.base()
                )
            })?;
        if models.is_empty() {
            return Err(format!(
                "the model endpoint at {} serves no model",
                endpoint.base()
            ));
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = current.as_ref()
            && existing.models() == models.as_slice()
        {
            return Ok(existing.clone());
        }
        let capability = Arc::new(LlmCapability::new(endpoint, models));
        *current = Some(capability.clone());
        Ok(capability)
    }
}

/// How long the probe's request may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
