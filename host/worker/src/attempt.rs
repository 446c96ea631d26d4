//! Claimed tasks and their attempts. [`Shared::accept`] starts each claimed
//! task while a slot is free and keeps the rest (claimed ahead) until one
//! frees. An attempt runs in a task of its own, holding a slot until it
//! ends; it runs the task in the executor runtime with the task's limits and
//! GPUs, streams the task's events to the outbox, hands the outbox the
//! [`Completion`] unless the lease was lost, and starts the next task
//! claimed ahead in its slot, with no round trip to the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowmesh_runtime::TaskRequest;
use flowmesh_types::api::{ClaimedTask, Completion, Lease, PluginRef};
use flowmesh_types::{TaskError, TaskErrorCode, TaskEvent};
use tokio_util::sync::CancellationToken;

use crate::shared::{Running, Shared, spawn};

impl Shared {
    /// Takes tasks the server leased to this worker: each starts now if a
    /// slot is free, or waits for one. While the worker stops, they go back.
    pub(crate) fn accept(self: &Arc<Self>, tasks: Vec<ClaimedTask>) {
        for task in tasks {
            tracing::debug!(
                task = task.id,
                task_type = task.task_type,
                attempt = task.attempt,
                "claimed"
            );
            if self.stopping.is_cancelled() {
                self.hand_back(&task);
            } else if (self.lock_running().len() as u32) < self.config.slots {
                self.start_task(task);
            } else {
                self.lock_ready().push_back(task);
            }
        }
    }

    /// Gives a task claimed ahead back to the server without running it
    /// (the worker is stopping): it goes back to pending at once, and the
    /// attempt does not count.
    pub(crate) fn hand_back(&self, task: &ClaimedTask) {
        let completion = Completion {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
            plugin: None,
            elapsed_ms: 0,
            output: None,
            error: Some(TaskError::new(
                TaskErrorCode::Released,
                format!(
                    "worker {} shut down before the task started and handed it back",
                    self.config.name
                ),
            )),
        };
        self.outbox.complete(completion, 0);
    }

    fn start_task(self: &Arc<Self>, task: ClaimedTask) {
        let running = Arc::new(Running {
            lease_token: task.lease_token.clone(),
            started: std::time::Instant::now(),
            cancel: CancellationToken::new(),
            lost: AtomicBool::new(false),
        });
        self.lock_running().insert(task.id.clone(), running.clone());
        if self.stopping.is_cancelled() {
            // Claimed as shutdown began: hand it straight back.
            running.cancel.cancel();
        }
        let shared = self.clone();
        spawn(self, async move {
            let (completion, output_bytes) = shared.execute(&task, &running).await;
            shared.pace.task_ended(running.started.elapsed());
            shared.lock_running().remove(&task.id);
            if !running.lost.load(Ordering::SeqCst) {
                shared.outbox.complete(completion, output_bytes);
            }
            if !shared.stopping.is_cancelled() {
                let next = shared.lock_ready().pop_front();
                if let Some(next) = next {
                    shared.start_task(next);
                }
            }
            shared.slot_freed.notify_one();
        });
    }

    /// Runs one attempt; its completion, and the size of its output as JSON
    /// text.
    async fn execute(
        self: &Arc<Self>,
        task: &ClaimedTask,
        running: &Running,
    ) -> (Completion, usize) {
        let mut limits = self.runtime_limits();
        if let Some(timeout) = task.timeout_ms {
            limits.timeout = Duration::from_millis(timeout);
        }
        if task.hardware.memory_bytes > 0 {
            limits.memory_bytes = task.hardware.memory_bytes as usize;
        }
        limits.container_memory_bytes = task.hardware.memory_bytes;
        limits.cpus = task.hardware.cpu;
        // Whole GPUs, this task's alone until it ends (the lease is held to
        // the end of this function).
        let gpu = &task.hardware.gpu;
        let _gpus = if gpu.count > 0 {
            match self.runtime.assign_gpus(gpu) {
                Ok(lease) => {
                    limits.gpus = lease.ids().to_vec();
                    Some(lease)
                }
                Err(reason) => {
                    let completion = Completion {
                        task_id: task.id.clone(),
                        lease_token: running.lease_token.clone(),
                        plugin: None,
                        elapsed_ms: 0,
                        output: None,
                        error: Some(TaskError::new(
                            TaskErrorCode::Retryable,
                            format!(
                                "worker {} could not assign the task's GPUs: {reason}",
                                self.config.name
                            ),
                        )),
                    };
                    return (completion, 0);
                }
            }
        } else {
            None
        };
        let lease = Lease {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
        };
        let shared = self.clone();
        let sink = Arc::new(move |event: TaskEvent| shared.outbox.event(&lease, event));
        let run = self
            .runtime
            .execute(
                TaskRequest {
                    id: task.id.clone(),
                    task_type: task.task_type.clone(),
                    spec: task.spec.to_string(),
                    attempt: task.attempt,
                    limits,
                },
                sink,
                running.cancel.clone(),
            )
            .await;
        let (output, output_bytes, mut error) = match run.outcome {
            Ok(output) => (
                serde_json::from_str(output.get()).ok(),
                output.get().len(),
                None,
            ),
            Err(error) => (None, 0, Some(error)),
        };
        if self.stopping.is_cancelled()
            && error
                .as_ref()
                .is_some_and(|error| error.code == TaskErrorCode::Cancelled)
        {
            error = Some(TaskError::new(
                TaskErrorCode::Released,
                format!(
                    "worker {} shut down while the task ran and handed it back",
                    self.config.name
                ),
            ));
        }
        let completion = Completion {
            task_id: task.id.clone(),
            lease_token: running.lease_token.clone(),
            plugin: run.plugin.map(|plugin| PluginRef {
                name: plugin.name,
                version: plugin.version,
                digest: plugin.digest,
                // The server knows which plugins are its own.
                local: false,
            }),
            elapsed_ms: run.elapsed.as_millis() as u64,
            output,
            error,
        };
        (completion, output_bytes)
    }

    fn runtime_limits(&self) -> flowmesh_runtime::TaskLimits {
        self.runtime.config().default_limits.clone()
    }
}
