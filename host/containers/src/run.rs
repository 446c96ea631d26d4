//! Running one container to its end, and removing it on every path.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    KillContainerOptions, LogsOptions, RemoveContainerOptions, WaitContainerOptions,
};
use flowmesh_runtime::TaskOutput;
use flowmesh_runtime::bindings::flowmesh::host::containers::{
    ContainerError, RunRequest, RunResult,
};
use flowmesh_runtime::capability::TaskContext;
use flowmesh_types::{LogLevel, LogStream};
use futures::StreamExt;

use crate::{DockerConfig, MANAGED_LABEL, TASK_LABEL, WORKER_LABEL};

/// Where the scratch directory is mounted when the request does not say.
const DEFAULT_SCRATCH_MOUNT: &str = "/scratch";
/// Docker refuses memory limits below this.
const MIN_MEMORY_BYTES: u64 = 6 << 20;

/// One `run` call of one task.
pub(crate) struct ContainerRun<'a> {
    pub(crate) docker: &'a Docker,
    pub(crate) config: &'a DockerConfig,
    pub(crate) task: &'a TaskContext,
    pub(crate) output: TaskOutput,
}

/// How the container's wait ended.
enum Ended {
    Exited,
    TimedOut,
    Cancelled,
}

impl ContainerRun<'_> {
    pub(crate) async fn run(self, request: RunRequest) -> Result<RunResult, ContainerError> {
        let image = crate::normalize(&request.image);
        self.config
            .images
            .check(&image)
            .map_err(ContainerError::ImageNotAllowed)?;
        let body = self.create_body(&image, &request)?;
        match self.docker.inspect_image(&image).await {
            Ok(_) => {}
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(ContainerError::ImageNotFound(format!(
                    "image {image} is not on this worker and images are not pulled; load it with `docker pull {image}` or `docker load`"
                )));
            }
            Err(error) => return Err(daemon("inspecting the image", &error)),
        }
        let created = self
            .docker
            .create_container(None, body)
            .await
            .map_err(|error| daemon("creating the container", &error))?;
        // From here on the container is removed on every path, including
        // this future being dropped (deadline, cancellation).
        let guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let id = created.id.as_str();
        let started = Instant::now();
        self.docker
            .start_container(id, None)
            .await
            .map_err(|error| daemon("starting the container", &error))?;
        self.output.log(
            LogStream::Host,
            LogLevel::Info,
            format!("container {} started from {image}", short(id)),
        );
        let timeout = request.timeout_ms.map(Duration::from_millis);
        let ended = self.follow(id, timeout).await;
        self.output.flush();
        let result = match ended {
            Ended::Exited => self.exit_status(id, started).await,
            Ended::TimedOut => Err(ContainerError::TimedOut),
            Ended::Cancelled => Err(ContainerError::Cancelled),
        };
        guard.remove().await;
        result
    }

    /// The container's configuration; an error names the request field.
    fn create_body(
        &self,
        image: &str,
        request: &RunRequest,
    ) -> Result<ContainerCreateBody, ContainerError> {
        let invalid = |message: String| Err(ContainerError::InvalidRequest(message));
        let scratch_mount = request
            .scratch_mount
            .clone()
            .unwrap_or_else(|| DEFAULT_SCRATCH_MOUNT.into());
        if !scratch_mount.starts_with('/') || scratch_mount == "/" {
            return invalid(format!(
                "scratch-mount: {scratch_mount:?} must be an absolute path other than /"
            ));
        }
        if let Some(workdir) = &request.workdir
            && !workdir.starts_with('/')
        {
            return invalid(format!("workdir: {workdir:?} must be an absolute path"));
        }
        if request.network && !self.config.allow_network {
            return invalid(
                "network: this worker runs containers without a network; ask for none, or run the task on a worker started with --allow-network".into(),
            );
        }
        if let Some(env) = request
            .env
            .iter()
            .find(|env| env.name.is_empty() || env.name.contains('='))
        {
            return invalid(format!(
                "env: {:?} is not a variable name (no '=' and not empty)",
                env.name
            ));
        }
        // The request's, else the task's (0: none asked, no limit).
        let memory = request.memory_bytes.unwrap_or(self.task.memory_bytes);
        if memory > 0 && memory < MIN_MEMORY_BYTES {
            return invalid(format!(
                "memory-bytes: {memory} is below Docker's minimum of {MIN_MEMORY_BYTES} bytes"
            ));
        }
        let memory = (memory > 0).then(|| i64::try_from(memory).unwrap_or(i64::MAX));
        let cpus = request.cpus.unwrap_or(self.task.cpus);
        if !cpus.is_finite() || cpus < 0.0 {
            return invalid(format!("cpus: {cpus} must be a positive number of cores"));
        }
        let scratch = self.task.scratch_dir.to_string_lossy().into_owned();
        // Run as the owner of the scratch directory (the worker's user), so
        // the container can write there and the worker can clean it up.
        let user = std::fs::metadata(&self.task.scratch_dir)
            .map(|meta| format!("{}:{}", meta.uid(), meta.gid()))
            .map_err(|error| {
                ContainerError::Daemon(format!("the task's scratch directory is gone: {error}"))
            })?;
        let labels = HashMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (WORKER_LABEL.to_string(), self.config.owner.clone()),
            (TASK_LABEL.to_string(), self.task.id.clone()),
        ]);
        let gpus = (!self.task.gpus.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                device_ids: Some(self.task.gpus.clone()),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]
        });
        let host_config = HostConfig {
            mounts: Some(vec![Mount {
                typ: Some(MountType::BIND),
                source: Some(scratch),
                target: Some(scratch_mount),
                read_only: Some(false),
                ..Default::default()
            }]),
            memory,
            memory_swap: memory,
            nano_cpus: (cpus > 0.0).then_some((cpus * 1e9) as i64),
            pids_limit: Some(self.config.pids_limit),
            network_mode: Some(if request.network { "bridge" } else { "none" }.into()),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            device_requests: gpus,
            ..Default::default()
        };
        let non_empty = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
        Ok(ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: non_empty(&request.entrypoint),
            cmd: non_empty(&request.command),
            env: Some(
                request
                    .env
                    .iter()
                    .map(|env| format!("{}={}", env.name, env.value))
                    .collect(),
            ),
            working_dir: request.workdir.clone(),
            user: Some(user),
            labels: Some(labels),
            network_disabled: Some(!request.network),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    /// Streams the container's output into the task log until it exits, its
    /// timeout passes (it is killed) or the task is cancelled.
    async fn follow(&self, id: &str, timeout: Option<Duration>) -> Ended {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut logs = self.docker.logs(id, Some(options));
        let timed_out = async {
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timed_out);
        loop {
            tokio::select! {
                chunk = logs.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                        self.output.write(LogStream::Stdout, &message);
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        self.output.write(LogStream::Stderr, &message);
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    // The stream ends when the container exits (an error
                    // too: the wait below tells).
                    Some(Err(_)) | None => return Ended::Exited,
                },
                () = &mut timed_out => {
                    self.kill(id).await;
                    return Ended::TimedOut;
                }
                () = self.task.cancel.cancelled() => {
                    self.kill(id).await;
                    return Ended::Cancelled;
                }
            }
        }
    }

    /// The exit code and whether the kernel killed it for memory.
    async fn exit_status(&self, id: &str, started: Instant) -> Result<RunResult, ContainerError> {
        // Returns once it has stopped (bollard reports a non-zero exit as a
        // wait error); anything else means the daemon lost track of it.
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match wait.next().await {
            Some(Ok(_) | Err(DockerError::DockerContainerWaitError { .. })) => {}
            Some(Err(error)) => return Err(daemon("waiting for the container", &error)),
            None => {
                return Err(ContainerError::Daemon(
                    "waiting for the container: the daemon closed the wait without a status".into(),
                ));
            }
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|error| daemon("reading the container's exit status", &error))?;
        let state = inspected.state.unwrap_or_default();
        if state.running == Some(true) {
            return Err(ContainerError::Daemon(
                "the container still runs after its wait ended".into(),
            ));
        }
        let exit_code = state.exit_code.unwrap_or(-1);
        let oom_killed = state.oom_killed.unwrap_or(false);
        let level = if exit_code == 0 {
            LogLevel::Info
        } else {
            LogLevel::Warn
        };
        self.output.log(
            LogStream::Host,
            level,
            format!(
                "container {} exited with code {exit_code}{} after {elapsed_ms} ms",
                short(id),
                if oom_killed {
                    " (killed: out of memory)"
                } else {
                    ""
                }
            ),
        );
        Ok(RunResult {
            exit_code,
            oom_killed,
            elapsed_ms,
        })
    }

    async fn kill(&self, id: &str) {
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        if let Err(error) = self.docker.kill_container(id, Some(options)).await {
            tracing::debug!(container = id, %error, "kill failed (it may have exited)");
        }
    }
}

/// Force-removes the container when dropped, unless removed already.
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

impl RemoveOnDrop {
    /// Removes it now, waiting for the daemon.
    async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.docker, &id).await;
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let docker = self.docker.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { remove(&docker, &id).await });
            }
            Err(_) => tracing::warn!(
                container = id,
                "no runtime to remove the container; the next start of this worker will"
            ),
        }
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(error) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(container = id, %error, "could not remove the container; the next start of this worker will");
    }
}

fn daemon(what: &str, error: &DockerError) -> ContainerError {
    ContainerError::Daemon(format!("{what}: {error}"))
}

/// The first 12 characters of a container id, as `docker ps` shows it.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
