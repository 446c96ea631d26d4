//! The options that say which host capabilities a worker looks for, shared
//! by `flowmesh worker` and `flowmesh up`.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_containers::{DockerConfig, DockerProbe, ImagePolicy};
use flowmesh_gpu::GpuProbe;
use flowmesh_llm::{LlmConfig, LlmProbe};
use flowmesh_runtime::Probe;

/// Host capability options.
#[derive(Debug, Default, clap::Args)]
pub struct CapabilityArgs {
    /// The Docker daemon containers run on (default: DOCKER_HOST, else
    /// unix:///var/run/docker.sock). Probed at start and every probe interval.
    #[arg(long, env = "FLOWMESH_DOCKER_HOST", value_name = "URL")]
    docker_host: Option<String>,
    /// Do not use Docker even if a daemon answers: plugins that run
    /// containers are unavailable on this worker.
    #[arg(long, conflicts_with = "docker_host")]
    no_docker: bool,
    /// An image containers may run (repeatable); a trailing * allows every
    /// reference that starts with the rest (`ghcr.io/acme/*`). None by default.
    #[arg(long = "allow-image", value_name = "IMAGE")]
    allow_images: Vec<String>,
    /// Give a container a network when its task asks for one (default: never).
    #[arg(long)]
    allow_network: bool,
    /// Do not look for NVIDIA GPUs (by default NVML is asked; where it is
    /// missing, the GPU capability is absent and says why).
    #[arg(long)]
    no_gpu: bool,
    /// An OpenAI-compatible model endpoint (vLLM, llama.cpp server, …) that
    /// plugins may use, e.g. http://127.0.0.1:8000. Probed with GET /v1/models;
    /// the models it serves become labels llm.model/<id>=served.
    #[arg(long, env = "FLOWMESH_LLM_URL", value_name = "URL")]
    llm_url: Option<String>,
    /// A bearer token for the model endpoint.
    #[arg(
        long,
        env = "FLOWMESH_LLM_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    llm_api_key: Option<String>,
    /// Longest one model call may take, e.g. 10m (the default).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    llm_timeout: Option<Duration>,
    /// How often capabilities are probed again, e.g. 10s (the default).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    probe_interval: Option<Duration>,
}

impl CapabilityArgs {
    /// Whether no option was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.docker_host.is_none()
            && !self.no_docker
            && self.allow_images.is_empty()
            && !self.allow_network
            && !self.no_gpu
            && self.llm_url.is_none()
            && self.llm_api_key.is_none()
            && self.llm_timeout.is_none()
            && self.probe_interval.is_none()
    }

    /// The probes of a worker named `worker`.
    pub(crate) fn probes(&self, worker: &str) -> Vec<Arc<dyn Probe>> {
        let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
        if !self.no_docker {
            let mut docker = DockerConfig::new(worker);
            docker.host = self.docker_host.clone();
            docker.images = ImagePolicy::new(self.allow_images.iter().cloned());
            docker.allow_network = self.allow_network;
            probes.push(Arc::new(DockerProbe::new(docker)));
        }
        if !self.no_gpu {
            probes.push(Arc::new(GpuProbe::new()));
        }
        if let Some(url) = &self.llm_url {
            let mut llm = LlmConfig::new(url);
            llm.api_key = self.llm_api_key.clone();
            if let Some(timeout) = self.llm_timeout {
                llm.timeout = timeout;
            }
            probes.push(Arc::new(LlmProbe::new(llm)));
        }
        probes
    }

    /// The probe interval asked for, if any.
    pub(crate) fn probe_interval(&self) -> Option<Duration> {
        self.probe_interval
    }
}
