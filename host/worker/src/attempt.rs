//! One attempt of a claimed task: [`Shared::start_task`] spawns it in a task
//! of its own, holding a slot until it ends; it runs the task in the executor
//! runtime with the task's limits and GPUs, streams the task's events to the
//! outbox, and hands the outbox the [`Completion`] unless the lease was
//! lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowmesh_runtime::TaskRequest;
use flowmesh_types::api::{ClaimedTask, Completion, Lease, PluginRef};
use flowmesh_types::{TaskError, TaskErrorCode, TaskEvent};
use tokio_util::sync::CancellationToken;

use crate::shared::{Outgoing, Running, Shared, spawn};

impl Shared {
    pub(crate) fn start_task(self: &Arc<Self>, task: ClaimedTask) {
        let running = Arc::new(Running {
            lease_token: task.lease_token.clone(),
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
            let completion = shared.execute(&task, &running).await;
            shared.lock_running().remove(&task.id);
            if !running.lost.load(Ordering::SeqCst) {
                let _ = shared.outbox.send(Outgoing::Complete(completion));
            }
            shared.slot_freed.notify_one();
        });
    }

    async fn execute(&self, task: &ClaimedTask, running: &Running) -> Completion {
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
                    return Completion {
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
                }
            }
        } else {
            None
        };
        let lease = Lease {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
        };
        let outbox = self.outbox.clone();
        let sink = Arc::new(move |event: TaskEvent| {
            let _ = outbox.send(Outgoing::Event(lease.clone(), event));
        });
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
        let (output, mut error) = match run.outcome {
            Ok(output) => (serde_json::from_str(output.get()).ok(), None),
            Err(error) => (None, Some(error)),
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
        Completion {
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
        }
    }

    fn runtime_limits(&self) -> flowmesh_runtime::TaskLimits {
        self.runtime.config().default_limits.clone()
    }
}
