//! A worker's executor runtime, end to end, on this machine.
//!
//! Loads the first-party `echo` plugin and a plugin that needs Docker, shows
//! what this worker advertises and why it cannot run the second plugin, then
//! runs example tasks — a success, a progress stream, an invalid spec, a
//! timeout and a cancellation — each in its own sandbox.
//!
//! Run it with `cargo run -p flowmesh-tests --example runtime-demo`.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_runtime::{HostCapabilities, Runtime, RuntimeConfig, TaskLimits, TaskRequest};
use flowmesh_tests::{cancel_after, components};
use flowmesh_types::{PluginStatus, TaskEvent};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join("flowmesh-runtime-demo");
    let config = RuntimeConfig::new(data.join("cache"), data.join("scratch"));
    let runtime = Arc::new(Runtime::new(config, HostCapabilities::none())?);

    println!("== plugins");
    for (name, path) in [
        ("echo", components::ECHO),
        ("container-runner", components::guests::USES_CONTAINERS),
    ] {
        let report = runtime.load_plugin_file(name, path.as_ref()).await?;
        match report.status {
            PluginStatus::Available => println!(
                "  {name} {} ({}): available",
                report.version.as_deref().unwrap_or("?"),
                &report.digest[..19]
            ),
            PluginStatus::Unavailable => println!(
                "  {name}: unavailable: {}",
                report.reason.as_deref().unwrap_or("?")
            ),
        }
    }
    let capabilities = runtime.capabilities();
    println!(
        "== this worker advertises: {:?}",
        capabilities.supported_task_types
    );
    for capability in &capabilities.capabilities {
        println!(
            "  capability {:<10} {:?}: {}",
            capability.kind.name(),
            capability.status,
            capability.detail
        );
    }
    let cache = runtime.artifact_cache().stats();
    println!(
        "== artifact cache: {} compiled, {} loaded from {}",
        cache.compiled,
        cache.loaded,
        data.join("cache").display()
    );

    println!("== tasks");
    let short = TaskLimits {
        timeout: Duration::from_millis(300),
        ..TaskLimits::default()
    };
    let cancel_soon = cancel_after(Duration::from_millis(200));
    let tasks = [
        task("echo", r#"{"message": "hello from a sandbox"}"#),
        task("echo", r#"{"message": "again", "repeat": 3}"#),
        task("sleep", r#"{"duration": "500ms"}"#),
        task("echo", r#"{"message": "hi", "repeat": 0}"#),
        DemoTask {
            limits: short,
            ..task("sleep", r#"{"duration": "1h"}"#)
        },
        DemoTask {
            cancel: cancel_soon,
            ..task("sleep", r#"{"duration": "1h"}"#)
        },
        task("uses-containers", "{}"),
    ];
    let runs = tasks.into_iter().enumerate().map(
        |(
            i,
            DemoTask {
                task_type,
                spec,
                limits,
                cancel,
            },
        )| {
            let runtime = runtime.clone();
            async move {
                let id = format!("demo-{i}");
                let events = {
                    let id = id.clone();
                    Arc::new(move |event: TaskEvent| match event {
                        TaskEvent::Progress { fraction, .. }
                            if ((fraction * 100.0) as u32).is_multiple_of(25) =>
                        {
                            println!("  {id} progress {:>3.0}%", fraction * 100.0)
                        }
                        TaskEvent::Log { message, .. } => println!("  {id} log: {message}"),
                        TaskEvent::Progress { .. } => {}
                    })
                };
                let request = TaskRequest {
                    id: id.clone(),
                    task_type: task_type.to_string(),
                    spec: spec.to_string(),
                    attempt: 1,
                    limits,
                };
                let run = runtime.execute(request, events, cancel).await;
                match &run.outcome {
                    Ok(output) => println!(
                        "  {id} {task_type} {spec}\n      succeeded in {:?}: {}",
                        run.elapsed,
                        output.get()
                    ),
                    Err(error) => println!(
                        "  {id} {task_type} {spec}\n      failed in {:?}: {error}",
                        run.elapsed
                    ),
                }
            }
        },
    );
    futures_join_all(runs).await;
    Ok(())
}

/// One example task of the demo.
struct DemoTask {
    task_type: &'static str,
    spec: &'static str,
    limits: TaskLimits,
    cancel: CancellationToken,
}

/// A task with default limits that nothing cancels.
fn task(task_type: &'static str, spec: &'static str) -> DemoTask {
    DemoTask {
        task_type,
        spec,
        limits: TaskLimits::default(),
        cancel: CancellationToken::new(),
    }
}

/// Runs the futures concurrently on this task and waits for all of them.
async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for handle in handles {
        let _ = handle.await;
    }
}
