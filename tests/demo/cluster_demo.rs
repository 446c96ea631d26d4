//! FlowMesh end to end on this machine: a server on SQLite, a worker with
//! the echo plugin, and the example task documents in `examples/tasks`,
//! submitted over the REST API.
//!
//! Run it with `cargo run -p flowmesh-tests --example demo`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_runtime::{HostCapabilities, Runtime, RuntimeConfig};
use flowmesh_server::{Server, ServerConfig};
use flowmesh_tests::cluster::Api;
use flowmesh_tests::components;
use flowmesh_worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let mut config = ServerConfig::new(data.path().join("server"));
    config.bind = "127.0.0.1:0".parse()?;
    config.install.push(components::ECHO.into());
    let server = Server::start(config).await?;
    let tokens = server
        .bootstrap_tokens()
        .cloned()
        .ok_or("fresh data directory")?;
    println!(
        "== server on {} (SQLite in {})",
        server.url(),
        data.path().display()
    );

    let runtime = Arc::new(Runtime::new(
        RuntimeConfig::new(
            data.path().join("worker/cache"),
            data.path().join("worker/scratch"),
        ),
        HostCapabilities::none(),
    )?);
    runtime
        .load_plugin_file("echo", Path::new(components::ECHO))
        .await?;
    let mut worker_config = WorkerConfig::new(server.url(), &tokens.worker);
    worker_config.name = "demo-worker".into();
    worker_config.slots = 4;
    let worker = Worker::start(worker_config, runtime).await?;
    let api = Api::new(&server.url(), &tokens.admin);
    let (_, workers) = api.get("/workers").await;
    for w in workers.as_array().into_iter().flatten() {
        println!(
            "== worker {}: {} slots, {} CPUs, serves {}",
            w["name"], w["slots"], w["hardware"]["cpus"], w["capabilities"]["supportedTaskTypes"]
        );
    }

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tasks");
    let mut files: Vec<_> = std::fs::read_dir(&examples)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut waiting = Vec::new();
    for file in files {
        let document = std::fs::read_to_string(&file)?;
        let (status, body) = api.submit_raw("?wait=5s", &document).await;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let task = &body["task"];
        println!(
            "\n== {name}: HTTP {status}, task {} is {}",
            body["id"], task["state"]
        );
        match task["state"].as_str() {
            Some("succeeded") => {
                println!("   output:  {}", task["result"]["output"]);
                println!(
                    "   summary: {}",
                    task["result"]["summary"].as_str().unwrap_or("")
                );
            }
            Some("pending") => {
                println!(
                    "   waiting: {}",
                    task["waiting"]["message"]
                        .as_str()
                        .unwrap_or("(placement pending)")
                );
                waiting.push(body["id"].as_str().unwrap_or_default().to_string());
            }
            _ => println!("   {body:#}"),
        }
    }

    println!("\n== events of a sleep task, streamed as they happen (SSE)");
    let id = api
        .submit(&std::fs::read_to_string(examples.join("sleep.yaml"))?)
        .await;
    for (event, data) in api.events(&id, Duration::from_secs(30)).await {
        match event.as_str() {
            "progress" => print!(
                "{:.0}% ",
                data["data"]["fraction"].as_f64().unwrap_or(0.0) * 100.0
            ),
            "result" => println!("\n   result: {}", data["data"]["state"]),
            _ => println!("   {event}: {}", data["data"]),
        }
    }

    println!("\n== a document with mistakes is refused, with paths");
    let (status, body) = api
        .submit_raw("", "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: echo\n  mesage: typo\n  timeout: soon\n")
        .await;
    println!("   HTTP {status}: {}", body["error"]["message"]);
    for detail in body["error"]["details"].as_array().into_iter().flatten() {
        println!(
            "   - {}: {}",
            detail["path"].as_str().unwrap_or(""),
            detail["message"].as_str().unwrap_or("")
        );
    }

    for id in waiting {
        let (_, task) = api.delete(&format!("/tasks/{id}")).await;
        println!(
            "\n== cancelled the task no worker here can run: {}",
            task["state"]
        );
    }
    worker.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
    Ok(())
}
