//! Finding the Docker daemon.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use flowmesh_runtime::{Capability, Probe};
use flowmesh_types::CapabilityKind;

use crate::capability::DockerCapability;
use crate::{DockerConfig, WORKER_LABEL};

/// How long a daemon request other than a container's own run may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Probes the daemon: `_ping`, then `/version`. The first success also
/// removes the containers an earlier process of this worker left behind.
pub struct DockerProbe {
    config: DockerConfig,
    /// The capability handed out last, returned again while the daemon
    /// answers so that the plugins stay linked as they are.
    current: Mutex<Option<Arc<DockerCapability>>>,
    /// Whether leftovers were reaped.
    reaped: tokio::sync::OnceCell<()>,
}

impl DockerProbe {
    /// A probe for `config`.
    pub fn new(config: DockerConfig) -> Self {
        Self {
            config,
            current: Mutex::new(None),
            reaped: tokio::sync::OnceCell::new(),
        }
    }

    /// Connects and asks the daemon who it is: `Docker 28.2.2 (API 1.50)`.
    async fn connect(&self) -> Result<(Docker, String), String> {
        let host = self.config.host_name();
        let unreachable = |error: &dyn std::fmt::Display| {
            format!("cannot reach the Docker daemon at {host}: {error}")
        };
        let docker = Docker::connect_with_host(&host)
            .map_err(|error| unreachable(&error))?
            .with_timeout(REQUEST_TIMEOUT);
        docker.ping().await.map_err(|error| unreachable(&error))?;
        let version = docker
            .version()
            .await
            .map_err(|error| unreachable(&error))?;
        let version = format!(
            "Docker {} (API {})",
            version.version.as_deref().unwrap_or("?"),
            version.api_version.as_deref().unwrap_or("?")
        );
        Ok((docker, version))
    }
}

#[async_trait]
impl Probe for DockerProbe {
    fn kind(&self) -> CapabilityKind {
        CapabilityKind::Containers
    }

    async fn probe(&self) -> Result<Arc<dyn Capability>, String> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(current) = current {
            // Only whether it still answers matters.
            return match current.docker().ping().await {
                Ok(_) => Ok(current),
                Err(error) => {
                    *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    Err(format!(
                        "cannot reach the Docker daemon at {}: {error}",
                        self.config.host_name()
                    ))
                }
            };
        }
        let (docker, version) = self.connect().await?;
        self.reaped
            .get_or_init(|| reap(&docker, &self.config.owner))
            .await;
        let capability = Arc::new(DockerCapability::new(
            docker,
            self.config.clone(),
            format!("{version} at {}", self.config.host_name()),
        ));
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(capability.clone());
        Ok(capability)
    }
}

/// Removes every container labelled with `owner`: what a crashed process of
/// this worker left behind.
async fn reap(docker: &Docker, owner: &str) {
    let options = ListContainersOptions {
        all: true,
        filters: Some([("label".to_string(), vec![format!("{WORKER_LABEL}={owner}")])].into()),
        ..Default::default()
    };
    let leftovers = match docker.list_containers(Some(options)).await {
        Ok(leftovers) => leftovers,
        Err(error) => {
            tracing::warn!(%error, "could not list containers left by an earlier run");
            return;
        }
    };
    for container in leftovers {
        let Some(id) = container.id else { continue };
        let force = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(&id, Some(force)).await {
            Ok(()) => tracing::info!(container = id, "removed a container left by an earlier run"),
            Err(error) => {
                tracing::warn!(container = id, %error, "could not remove a leftover container")
            }
        }
    }
}
