//! Running plugin calls in a sandbox: [`Runtime::execute`] runs one task and
//! [`Runtime::validate`] checks a spec, each in a fresh store with its own
//! memory limit, deadline, log and (for a task) scratch directory, prepared
//! capabilities and size-limited output. The pieces every plugin call uses —
//! admission to the instance pool, the store, and the watchdog that stops a
//! call blocked in a host call — are here too; the registry uses them to call
//! `describe()`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_types::{FieldError, TaskError, TaskErrorCode};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};

use crate::TaskLimits;
use crate::bindings::exports::flowmesh::executor::executor as wit;
use crate::capability::TaskContext;
use crate::failure::{self, Interrupted};
use crate::plugin::ReadyPlugin;
use crate::runtime::Runtime;
use crate::sandbox_state::SandboxState;
use crate::scratch::{ScratchDir, disk_usage};
use crate::task_log::{EventSink, TaskLog, discard_events};

/// The deadline used when a task's timeout is too large to represent.
const MAX_DEADLINE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// One task to execute.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// Task id, unique in the cluster.
    pub id: String,
    /// Routed to the plugin that declares it.
    pub task_type: String,
    /// The plugin-owned spec fields, a JSON object.
    pub spec: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// What the task may use.
    pub limits: TaskLimits,
}

/// The plugin that ran a task, for the result envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
}

/// How a task ended.
#[derive(Debug)]
pub struct TaskRun {
    /// The plugin that ran it; `None` when no plugin serves its type.
    pub plugin: Option<PluginIdentity>,
    /// Wall-clock time from the start of instantiation to the result.
    pub elapsed: Duration,
    /// The JSON output, or why there is none.
    pub outcome: Result<Box<RawValue>, TaskError>,
}

/// The most problems [`Runtime::validate`] passes on from one call.
pub const MAX_FIELD_ERRORS: usize = 100;
/// The longest path or message of one problem it passes on, in bytes.
pub const MAX_FIELD_ERROR_BYTES: usize = 1024;

/// At most [`MAX_FIELD_ERRORS`] of `errors`, each cut to
/// [`MAX_FIELD_ERROR_BYTES`], with a note of how many were left out.
fn capped(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    let total = errors.len();
    if total > MAX_FIELD_ERRORS {
        errors.truncate(MAX_FIELD_ERRORS - 1);
    }
    for error in &mut errors {
        cut(&mut error.path);
        cut(&mut error.message);
    }
    if total > MAX_FIELD_ERRORS {
        errors.push(FieldError::new(
            "",
            format!(
                "and {} more problem(s) the plugin reported, not shown: {total} in all, over the limit of {MAX_FIELD_ERRORS}",
                total - errors.len()
            ),
        ));
    }
    errors
}

/// Cuts `text` to [`MAX_FIELD_ERROR_BYTES`] at a character boundary, with an
/// ellipsis.
fn cut(text: &mut String) {
    if text.len() > MAX_FIELD_ERROR_BYTES {
        let mut end = MAX_FIELD_ERROR_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
}

impl Runtime {
    /// Checks `spec` (plugin-owned fields, a JSON object) for `task_type` with
    /// the serving plugin's `validate()`.
    ///
    /// The outer error says the check itself could not run (no plugin serves
    /// the type here, or the plugin trapped or timed out): the spec is then
    /// neither valid nor invalid. The inner error lists the spec's problems,
    /// with paths relative to the spec: at most [`MAX_FIELD_ERRORS`] of
    /// them, each cut to [`MAX_FIELD_ERROR_BYTES`], with a last one saying
    /// how many were left out. Runs under
    /// [`RuntimeConfig::default_limits`](crate::RuntimeConfig::default_limits)
    /// and [`validate_timeout`](crate::RuntimeConfig::validate_timeout).
    pub async fn validate(
        &self,
        task_type: &str,
        spec: &str,
    ) -> Result<Result<(), Vec<FieldError>>, TaskError> {
        let Some(plugin) = self.route(task_type) else {
            return Err(TaskError::new(
                TaskErrorCode::UnknownTaskType,
                format!("no plugin on this worker executes task type {task_type:?}"),
            ));
        };
        let limits = self.config.default_limits.clone();
        let deadline = Instant::now() + self.config.validate_timeout;
        let log = Arc::new(TaskLog::new(discard_events(), limits.max_log_bytes));
        let mut store = self
            .new_store(&log, &limits, None, deadline, None)
            .map_err(|error| {
                TaskError::new(
                    TaskErrorCode::Host,
                    format!("could not set up the sandbox: {error:#}"),
                )
            })?;
        let mut permit = None;
        let call = async {
            permit = Some(self.admit().await);
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .flowmesh_executor_executor()
                .call_validate(&mut store, task_type, spec)
                .await
        };
        let result = guarded(call, deadline, None, None).await;
        drop(store);
        drop(permit);
        match result {
            Ok(result) => Ok(result
                .map_err(|errors| capped(errors.into_iter().map(failure::field_error).collect()))),
            Err(error) => Err(failure::from_wasmtime(
                &error,
                &log,
                failure::TimeLimit {
                    call: "validate()",
                    timeout: self.config.validate_timeout,
                    remedy: "validate() must return quickly: the operator's validation timeout governs it (RuntimeConfig::validate_timeout; `flowmesh server --validation-timeout`), not spec.timeout",
                },
            )),
        }
    }

    /// Executes one task in a fresh sandbox, sending its logs and progress to
    /// `events`. Cancelling `cancel` interrupts it promptly.
    pub async fn execute(
        &self,
        task: TaskRequest,
        events: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> TaskRun {
        let started = Instant::now();
        if self.validation_only {
            return TaskRun {
                plugin: None,
                elapsed: started.elapsed(),
                outcome: Err(TaskError::new(
                    TaskErrorCode::Host,
                    "this runtime was built to validate specs only; run tasks on a worker",
                )),
            };
        }
        let Some(plugin) = self.route(&task.task_type) else {
            return TaskRun {
                plugin: None,
                elapsed: started.elapsed(),
                outcome: Err(TaskError::new(
                    TaskErrorCode::UnknownTaskType,
                    format!(
                        "no plugin on this worker executes task type {:?}",
                        task.task_type
                    ),
                )),
            };
        };
        let log = Arc::new(TaskLog::new(events, task.limits.max_log_bytes));
        let outcome = self
            .execute_in_sandbox(&plugin, &task, &log, &cancel, started)
            .await;
        log.finish();
        TaskRun {
            plugin: Some(PluginIdentity {
                name: plugin.manifest.name.clone(),
                version: plugin.manifest.version.clone(),
                digest: plugin.digest.to_string(),
            }),
            elapsed: started.elapsed(),
            outcome,
        }
    }

    /// Runs one task's `execute()` in a fresh sandbox: scratch directory
    /// (for a plugin that can reach one), store, the capabilities its plugin
    /// imports, the watchdog.
    async fn execute_in_sandbox(
        &self,
        plugin: &ReadyPlugin,
        task: &TaskRequest,
        log: &Arc<TaskLog>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Box<RawValue>, TaskError> {
        let limits = &task.limits;
        let deadline = started
            .checked_add(limits.timeout)
            .unwrap_or_else(|| started + MAX_DEADLINE);
        let host_error = |what: &str, error: &dyn std::fmt::Display| {
            TaskError::new(TaskErrorCode::Host, format!("{what}: {error}"))
        };
        let mut scratch = if plugin.scratch {
            Some(self.scratch.acquire().map_err(|error| {
                host_error("could not create the task's scratch directory", &error)
            })?)
        } else {
            None
        };
        debug_assert!(
            plugin.scratch || plugin.capabilities.is_empty(),
            "a plugin with capabilities has a scratch directory"
        );
        let scratch_path = scratch.as_ref().map(ScratchDir::path);
        let mut store = self
            .new_store(log, limits, scratch_path, deadline, Some(cancel.clone()))
            .map_err(|error| host_error("could not set up the sandbox", &error))?;
        // Only plugins that import capabilities pay for their preparation
        // (and such a plugin always has a scratch directory).
        if let (false, Some(scratch_path)) = (plugin.capabilities.is_empty(), scratch_path) {
            let context = TaskContext {
                id: task.id.clone(),
                task_type: task.task_type.clone(),
                attempt: task.attempt,
                scratch_dir: scratch_path.to_path_buf(),
                deadline,
                memory_bytes: limits.container_memory_bytes,
                cpus: limits.cpus,
                gpus: limits.gpus.clone(),
                cancel: cancel.clone(),
            };
            for capability in &plugin.capabilities {
                let kind = capability.kind();
                let state = capability.prepare(&context).map_err(|error| {
                    host_error(&format!("could not prepare the {kind} capability"), &error)
                })?;
                store.data_mut().add_capability_state(kind, state);
            }
        }
        let wit_task = wit::Task {
            id: task.id.clone(),
            task_type: task.task_type.clone(),
            spec: task.spec.clone(),
            attempt: task.attempt,
        };
        let mut permit = None;
        let call = async {
            permit = Some(self.admit().await);
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .flowmesh_executor_executor()
                .call_execute(&mut store, &wit_task)
                .await
        };
        let watch = scratch_path.map(|path| ScratchWatch {
            path,
            limit: limits.scratch_bytes,
            interval: self.config.scratch_check_interval,
        });
        let result = guarded(call, deadline, Some(cancel), watch).await;
        drop(store);
        drop(permit);
        if let (Err(_), Some(scratch)) = (&result, &mut scratch) {
            // The call may have been abandoned inside a host call whose
            // blocking file operation still runs: never hand this directory
            // to another task.
            scratch.discard();
        }
        drop(scratch);
        let output = result
            .map_err(|error| {
                failure::from_wasmtime(&error, log, failure::TimeLimit::task(limits.timeout))
            })?
            .map_err(failure::from_plugin)?;
        if output.len() > limits.max_output_bytes {
            return Err(TaskError::new(
                TaskErrorCode::InvalidOutput,
                format!(
                    "the plugin returned {} bytes of output, over the limit of {} bytes; write large results elsewhere and return a reference",
                    output.len(),
                    limits.max_output_bytes
                ),
            ));
        }
        RawValue::from_string(output).map_err(|error| {
            TaskError::new(
                TaskErrorCode::InvalidOutput,
                format!("the plugin returned output that is not a JSON document: {error}"),
            )
        })
    }

    /// Waits for a free instance slot, so that more concurrent calls than the
    /// pool holds queue up instead of failing.
    pub(crate) async fn admit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.instances
            .acquire()
            .await
            .expect("the instance semaphore is never closed")
    }

    /// A fresh store: limits, epoch deadline checks, optional fuel.
    pub(crate) fn new_store(
        &self,
        log: &Arc<TaskLog>,
        limits: &TaskLimits,
        scratch: Option<&Path>,
        deadline: Instant,
        cancel: Option<CancellationToken>,
    ) -> wasmtime::Result<Store<SandboxState>> {
        let memory_limit = limits.memory_bytes.min(self.config.pool.max_memory_bytes);
        let state = SandboxState::new(log.clone(), memory_limit, scratch)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.fuel_metering {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        }
        // On every epoch tick: stop if cancelled or past the deadline,
        // otherwise let other tasks run and check again at the next tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
                return Err(Interrupted::Cancelled.into());
            }
            if Instant::now() >= deadline {
                return Err(Interrupted::Timeout.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// Runs a plugin call until it finishes, `deadline` passes, `cancel` fires or
/// the task's scratch directory (when given) grows past its limit.
///
/// Guest code is interrupted by the store's epoch callback; this covers the
/// time the guest spends blocked in host calls (a sleep, a container), where
/// no epoch check runs: dropping the call's future abandons it there. Since
/// guest code yields at every epoch tick, every stop takes effect within about
/// a tick, even in a busy loop.
pub(crate) async fn guarded<R>(
    call: impl Future<Output = wasmtime::Result<R>>,
    deadline: Instant,
    cancel: Option<&CancellationToken>,
    scratch: Option<ScratchWatch<'_>>,
) -> wasmtime::Result<R> {
    let cancelled = async {
        match cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = call => result,
        () = cancelled => Err(Interrupted::Cancelled.into()),
        interrupted = watchdog(deadline, scratch) => Err(interrupted.into()),
    }
}

/// A scratch directory to measure while its task runs.
pub(crate) struct ScratchWatch<'a> {
    path: &'a Path,
    limit: u64,
    interval: Duration,
}

/// Resolves at `deadline`, or earlier once the watched scratch directory holds
/// more than its limit (measured every interval, off the async threads). One
/// timer serves both, so watching costs a task nothing until it runs long.
async fn watchdog(deadline: Instant, scratch: Option<ScratchWatch<'_>>) -> Interrupted {
    let Some(scratch) = scratch else {
        tokio::time::sleep_until(deadline.into()).await;
        return Interrupted::Timeout;
    };
    loop {
        let next = (Instant::now() + scratch.interval).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        if next >= deadline {
            return Interrupted::Timeout;
        }
        let dir = scratch.path.to_path_buf();
        let used = tokio::task::spawn_blocking(move || disk_usage(&dir))
            .await
            .unwrap_or(0);
        if used > scratch.limit {
            return Interrupted::ScratchFull {
                used,
                limit: scratch.limit,
            };
        }
    }
}
