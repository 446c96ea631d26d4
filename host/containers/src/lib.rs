//! `flowmesh:host/containers` on a real Docker daemon.
//!
//! # The idea
//!
//! A plugin that imports `containers` runs images on the worker's Docker
//! daemon, and the worker answers for what those containers may do. The
//! plugin asks for an image, a command and limits; the worker decides:
//!
//! - **Which images**: only those on its allow-list ([`ImagePolicy`]). Images
//!   are never pulled: an operator loads them (`docker pull`, `docker load`).
//! - **What they see**: the task's scratch directory, mounted read-write, and
//!   nothing else of the host; no privileges (all capabilities dropped, no
//!   new privileges); the worker's user id, so the files it writes belong to
//!   the worker; no network unless the worker allows it and the request asks;
//!   the task's GPUs and no others.
//! - **What they use**: the task's memory (without swap) and CPU limits, and
//!   a process limit.
//! - **How long they live**: until they exit, their timeout, the task's
//!   deadline or its cancellation, whichever comes first. A container is
//!   removed on every one of these paths, including the task's call being
//!   abandoned mid-way (a drop guard). Every container carries the worker's
//!   name as a label, and the first successful probe of a worker removes
//!   what an earlier process of the same worker left behind (a crash).
//!
//! Output is streamed into the task log, line by line, as it is produced.
//!
//! [`DockerProbe`] finds the daemon (`_ping` and `/version`) at worker start
//! and every probe interval; the capability is linked only while it answers.

mod capability;
mod policy;
mod probe;
mod run;

pub use capability::DockerCapability;
pub use policy::{ImagePolicy, normalize};
pub use probe::DockerProbe;

/// Label every container of FlowMesh carries.
pub const MANAGED_LABEL: &str = "io.flowmesh.managed";
/// Label naming the worker that started a container.
pub const WORKER_LABEL: &str = "io.flowmesh.worker";
/// Label naming the task that started a container.
pub const TASK_LABEL: &str = "io.flowmesh.task";

/// How a worker uses Docker.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The daemon: `unix:///var/run/docker.sock`, `tcp://host:2375`. `None`
    /// reads `DOCKER_HOST`, else the local socket.
    pub host: Option<String>,
    /// Which images may run.
    pub images: ImagePolicy,
    /// Whether a container may have a network when it asks for one.
    pub allow_network: bool,
    /// The worker's name: the label that lets a restarted worker find the
    /// containers it left behind.
    pub owner: String,
    /// Most processes in one container. Default 1024.
    pub pids_limit: i64,
}

impl DockerConfig {
    /// Defaults for a worker named `owner`: the local daemon, no images
    /// allowed, no network.
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            host: None,
            images: ImagePolicy::default(),
            allow_network: false,
            owner: owner.into(),
            pids_limit: 1024,
        }
    }

    /// The daemon address, as messages name it.
    pub fn host_name(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }
}
