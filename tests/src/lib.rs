//! Shared harness of FlowMesh's end-to-end tests, benchmarks and demos.
//!
//! The build script compiles the first-party plugins and the guest fixtures
//! in `tests/guests/` into real WebAssembly components; [`components`] holds
//! their paths. [`TestRuntime`] is a real [`Runtime`] in a temporary directory.

use std::path::Path;
use std::sync::{Arc, Mutex};

use flowmesh_runtime::{
    EventSink, HostCapabilities, Runtime, RuntimeConfig, TaskLimits, TaskRequest, TaskRun,
};
use flowmesh_types::{LogStream, PluginReport, TaskErrorCode, TaskEvent};
use tokio_util::sync::CancellationToken;

pub mod browser;
pub mod cluster;
pub mod docker;
pub mod fake_gpus;
pub mod model_server;
pub mod private_postgres;
pub mod processes;
pub mod proxy;
pub mod store_fixtures;
pub mod stub_containers;

/// Paths of the components built by the build script.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// A real runtime whose cache and scratch directories live in a temporary
/// directory removed on drop.
pub struct TestRuntime {
    /// The runtime (shared, so a worker can run on it).
    pub runtime: Arc<Runtime>,
    /// Holds the cache (`cache/`) and scratch (`scratch/`) directories.
    pub dir: tempfile::TempDir,
}

impl TestRuntime {
    /// A runtime with no optional capability and default settings.
    pub fn new() -> Self {
        Self::with(HostCapabilities::none(), |_| {})
    }

    /// A runtime with `capabilities`, its configuration adjusted by `configure`.
    ///
    /// Its artifact cache is shared by every test (compiling each component
    /// once per build, not once per test); the scratch root is its own.
    pub fn with(
        capabilities: HostCapabilities,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = Self::config(dir.path());
        config.cache_dir = shared_cache_dir();
        configure(&mut config);
        let runtime = Arc::new(Runtime::new(config, capabilities).expect("runtime starts"));
        Self { runtime, dir }
    }

    /// A runtime whose artifact cache is its own, in [`TestRuntime::dir`].
    pub fn with_private_cache() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = Self::config(dir.path());
        let runtime =
            Arc::new(Runtime::new(config, HostCapabilities::none()).expect("runtime starts"));
        Self { runtime, dir }
    }

    /// The configuration used for a runtime rooted at `dir`.
    pub fn config(dir: &Path) -> RuntimeConfig {
        let mut config = RuntimeConfig::new(dir.join("cache"), dir.join("scratch"));
        config.pool.max_instances = 32;
        config
    }

    /// Loads the component at `path` as plugin `name`.
    pub async fn load(&self, name: &str, path: &str) -> PluginReport {
        self.runtime
            .load_plugin_file(name, Path::new(path))
            .await
            .expect("the component loads")
    }

    /// Runs one task with default limits and no cancellation.
    pub async fn run(&self, task_type: &str, spec: &str) -> TaskRun {
        self.run_with(
            task_type,
            spec,
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await
        .0
    }

    /// Runs one task and returns its run and the events it emitted.
    pub async fn run_with(
        &self,
        task_type: &str,
        spec: &str,
        limits: TaskLimits,
        cancel: CancellationToken,
    ) -> (TaskRun, Vec<TaskEvent>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: Arc<dyn EventSink> = {
            let events = events.clone();
            Arc::new(move |event| events.lock().expect("event lock").push(event))
        };
        let run = self
            .runtime
            .execute(
                TaskRequest {
                    id: format!("test-{task_type}"),
                    task_type: task_type.to_string(),
                    spec: spec.to_string(),
                    attempt: 1,
                    limits,
                },
                sink,
                cancel,
            )
            .await;
        let events = events.lock().expect("event lock").clone();
        (run, events)
    }
}

/// The artifact cache shared by all tests of this build.
fn shared_cache_dir() -> std::path::PathBuf {
    Path::new(env!("OUT_DIR")).join("artifact-cache")
}

impl Default for TestRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// The default task limits, adjusted by `configure`.
pub fn limits(configure: impl FnOnce(&mut TaskLimits)) -> TaskLimits {
    let mut limits = TaskLimits::default();
    configure(&mut limits);
    limits
}

/// A token that cancels itself after `delay` (on the current tokio runtime).
pub fn cancel_after(delay: std::time::Duration) -> CancellationToken {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        trigger.cancel();
    });
    cancel
}

/// The output of a run that must have succeeded, as JSON.
pub fn output(run: &TaskRun) -> serde_json::Value {
    match &run.outcome {
        Ok(output) => serde_json::from_str(output.get()).expect("output is JSON"),
        Err(error) => panic!("the task failed: {error}"),
    }
}

/// The code and message of a run that must have failed.
pub fn failure(run: &TaskRun) -> (TaskErrorCode, String) {
    let error = run.outcome.as_ref().expect_err("the task fails");
    (error.code, error.message.clone())
}

/// The log lines of `stream` among `events`, in order.
pub fn log_lines(events: &[TaskEvent], stream: LogStream) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            TaskEvent::Log {
                stream: s, message, ..
            } if *s == stream => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Prints one benchmark figure: percentiles of `samples`, in microseconds.
pub fn report(name: &str, mut samples: Vec<std::time::Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let total: std::time::Duration = samples.iter().sum();
    println!(
        "{name:<50} n={:<6} p50={:>9.1} µs  p90={:>9.1} µs  p99={:>9.1} µs  mean={:>9.1} µs",
        samples.len(),
        micros(at(0.50)),
        micros(at(0.90)),
        micros(at(0.99)),
        micros(total / samples.len() as u32),
    );
}

/// Which figures a benchmark run asks for: `cargo bench --bench NAME -- task`
/// runs only the figures whose name contains `task`; no argument runs all.
pub fn wanted_figures() -> impl Fn(&str) -> bool {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    move |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}
