//! Runtime benchmarks: per-task cost with a warm plugin, and loading a
//! component from the artifact cache, for a Rust plugin (`echo`) and a
//! Python one (`text`, built by componentize-py) side by side.
//!
//! `cargo bench -p flowmesh-tests --bench runtime` prints one line per figure.
//! Figures are percentiles over many iterations, not single timings; compare
//! them only between runs on the same machine.

/// The allocator of the `flowmesh` binary (host/cli/src/main.rs), whose
/// worker runs these tasks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use flowmesh_runtime::{
    ArtifactCache, ComponentDigest, HostCapabilities, Runtime, TaskLimits, TaskRequest,
    discard_events,
};
use flowmesh_tests::{TestRuntime, components, report, wanted_figures};
use tokio_util::sync::CancellationToken;

const WARMUP_TASKS: usize = 1_000;
const TASKS: usize = 10_000;
/// Rounds of [`TASKS`] tasks; each is reported, so noise from other processes
/// on a shared machine shows as spread between rounds.
const ROUNDS: usize = 5;
const LOADS: usize = 30;

fn main() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let wanted = wanted_figures();
    for plugin in &PLUGINS {
        let size = std::fs::metadata(plugin.component).map_or(0, |m| m.len());
        println!(
            "{:<50} {:.1} MB",
            format!("component size ({})", plugin.language),
            size as f64 / 1e6
        );
    }
    tokio.block_on(async {
        for plugin in &PLUGINS {
            if wanted("task") {
                per_task(plugin).await;
            }
            if wanted("load") {
                cold_load(plugin).await;
            }
        }
    });
}

/// One plugin measured: a task type with a small spec whose work is trivial,
/// so the figure is the sandbox's overhead.
struct Plugin {
    language: &'static str,
    name: &'static str,
    component: &'static str,
    task_type: &'static str,
    spec: &'static str,
}

const PLUGINS: [Plugin; 2] = [
    Plugin {
        language: "Rust",
        name: "echo",
        component: components::ECHO,
        task_type: "echo",
        spec: r#"{"message": "hello"}"#,
    },
    Plugin {
        language: "Python",
        name: "text",
        component: components::python::TEXT,
        task_type: "text-stats",
        spec: r#"{"text": "hello", "top": 0}"#,
    },
];

/// Fresh store + instantiate + `execute`, plugin already loaded.
async fn per_task(plugin: &Plugin) {
    let test = TestRuntime::new();
    test.load(plugin.name, plugin.component).await;
    let request = TaskRequest {
        id: "bench".into(),
        task_type: plugin.task_type.into(),
        spec: plugin.spec.into(),
        attempt: 1,
        limits: TaskLimits::default(),
    };
    let events = discard_events();
    let run = async |count: usize| {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            let run = test
                .runtime
                .execute(
                    request.clone(),
                    Arc::clone(&events),
                    CancellationToken::new(),
                )
                .await;
            samples.push(started.elapsed());
            assert!(run.outcome.is_ok(), "{:?}", run.outcome);
        }
        samples
    };
    run(WARMUP_TASKS).await;
    for round in 1..=ROUNDS {
        let samples = run(TASKS).await;
        report(
            &format!(
                "task: store + instantiate + execute ({}) #{round}",
                plugin.language
            ),
            samples,
        );
    }
}

/// Loading a component whose compiled artifact is cached, as a restarted
/// worker does: read, verify, deserialise, `instantiate_pre`, `describe()`.
async fn cold_load(plugin: &Plugin) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bytes = std::fs::read(plugin.component).expect("component");
    let digest = ComponentDigest::of(&bytes);

    let mut compiles = Vec::new();
    let mut loads = Vec::new();
    let mut plugin_loads = Vec::new();
    for i in 0..LOADS {
        let runtime = Runtime::new(TestRuntime::config(dir.path()), HostCapabilities::none())
            .expect("runtime");
        if i < 3 {
            // Compile from scratch for comparison (a fresh cache each time).
            let cache_dir = dir.path().join(format!("compile-{i}"));
            let cache = ArtifactCache::open(&cache_dir, runtime.engine()).expect("cache");
            let started = Instant::now();
            cache
                .load(runtime.engine(), &digest, &bytes)
                .expect("compiles");
            compiles.push(started.elapsed());
        }
        let cache =
            ArtifactCache::open(&dir.path().join("cache"), runtime.engine()).expect("cache");
        let started = Instant::now();
        cache
            .load(runtime.engine(), &digest, &bytes)
            .expect("loads");
        if i > 0 {
            loads.push(started.elapsed());
        }
        let started = Instant::now();
        runtime
            .load_plugin_file(plugin.name, Path::new(plugin.component))
            .await
            .expect("plugin loads");
        plugin_loads.push(started.elapsed());
    }
    let language = plugin.language;
    report(
        &format!("compile: component, no cache ({language})"),
        compiles,
    );
    report(
        &format!("cold load: artifact from cache ({language})"),
        loads,
    );
    report(
        &format!("cold load: + instantiate_pre, describe ({language})"),
        plugin_loads,
    );
}
