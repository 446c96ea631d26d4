//! Runtime benchmarks: per-task cost with a warm plugin, and loading a
//! component from the artifact cache.
//!
//! `cargo bench -p flowmesh-tests --bench runtime` prints one line per figure.
//! Figures are percentiles over many iterations, not single timings; compare
//! them only between runs on the same machine.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use flowmesh_runtime::{
    ArtifactCache, ComponentDigest, HostCapabilities, Runtime, TaskLimits, TaskRequest,
    discard_events,
};
use flowmesh_tests::{TestRuntime, components, report, wanted_figures};
use tokio_util::sync::CancellationToken;

const WARMUP_TASKS: usize = 2_000;
const TASKS: usize = 20_000;
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
    tokio.block_on(async {
        if wanted("task") {
            per_task().await;
        }
        if wanted("load") {
            cold_load().await;
        }
    });
}

/// Fresh store + instantiate + `execute` of echo, plugin already loaded.
async fn per_task() {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    let request = TaskRequest {
        id: "bench".into(),
        task_type: "echo".into(),
        spec: r#"{"message": "hello"}"#.into(),
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
            &format!("task: store + instantiate + execute (echo) #{round}"),
            samples,
        );
    }
}

/// Loading a component whose compiled artifact is cached, as a restarted
/// worker does: read, verify, deserialise, `instantiate_pre`, `describe()`.
async fn cold_load() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bytes = std::fs::read(components::ECHO).expect("component");
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
            .load_plugin_file("echo", Path::new(components::ECHO))
            .await
            .expect("plugin loads");
        plugin_loads.push(started.elapsed());
    }
    report("compile: component, no cache (reference)", compiles);
    report("cold load: artifact from cache", loads);
    report(
        "cold load: plugin (+ instantiate_pre, describe)",
        plugin_loads,
    );
}
