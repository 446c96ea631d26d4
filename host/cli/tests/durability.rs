//! The `flowmesh` binary as operators run it: a server process and a worker
//! process. The server is killed with SIGKILL in the middle of a run and
//! started again on the same database: no task is lost, none completes
//! twice, all finish, and a workflow in flight completes. On SQLite and on
//! PostgreSQL.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flowmesh_tests::cluster::{Api, Db, TestDb, eventually};
use flowmesh_tests::components;
use serde_json::Value;

const TASKS: usize = 120;
const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_server_killed_mid_run_loses_nothing() {
    killed_server_loses_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_server_killed_mid_run_loses_nothing() {
    killed_server_loses_nothing(Db::Postgres).await;
}

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn server(data_dir: &Path, database_url: &str, port: u16) -> Process {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))
        .expect("log file");
    Process(
        Command::new(env!("CARGO_BIN_EXE_flowmesh"))
            .args(["server", "--bind", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--database-url", database_url])
            .args([
                "--heartbeat-interval",
                "200ms",
                "--lease-ttl",
                "3s",
                "--retry-backoff",
                "50ms",
            ])
            .arg("--plugin")
            .arg(components::ECHO)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("server starts"),
    )
}

async fn wait_healthy(url: &str) {
    flowmesh_tls::install_crypto_provider();
    eventually(&format!("{url} to answer /healthz"), LONG, || async {
        match reqwest::get(format!("{url}/healthz")).await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
}

async fn count(api: &Api, state: &str) -> usize {
    let (_, page) = api.get(&format!("/tasks?state={state}&limit=500")).await;
    page["tasks"].as_array().map_or(0, Vec::len)
}

async fn killed_server_loses_nothing(db: Db) {
    let db = TestDb::new(db).await;
    let data_dir = db.dir.path().join("server");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut running = server(&data_dir, &db.url, port);
    wait_healthy(&url).await;
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).expect("admin token");
    let api = Api::new(&url, admin.trim());

    let worker_dir = db.dir.path().join("worker");
    let _worker = Process(
        Command::new(env!("CARGO_BIN_EXE_flowmesh"))
            .args([
                "worker", "--server", &url, "--name", "survivor", "--slots", "4",
            ])
            .arg("--token-file")
            .arg(data_dir.join("worker.token"))
            .arg("--plugin")
            .arg(components::ECHO)
            .arg("--data-dir")
            .arg(&worker_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts"),
    );

    // A workflow whose stages run, and are released, across the kill.
    let workflow = api
        .submit(
            "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  stages:\n    - {name: s0, spec: {taskType: sleep, duration: 300ms}}\n    - {name: s1, spec: {taskType: echo, message: 'slept ${s0.output.sleptMs}'}}\n    - {name: s2, spec: {taskType: sleep, duration: 300ms}}\n    - {name: s3, spec: {taskType: echo, message: '${s1.output.message}+${s2.output.sleptMs}'}}\n",
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        let document = if i % 2 == 0 {
            format!(
                "apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: sleep, duration: 100ms}}\n# {i}\n"
            )
        } else {
            format!(
                "apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: echo, message: m{i}}}\n"
            )
        };
        ids.push(api.submit(&document).await);
    }
    // Mid-run: some done, many not.
    eventually("ten tasks done before the kill", LONG, || async {
        match count(&api, "succeeded").await {
            done if done >= 10 => Ok(()),
            done => Err(format!("{done} done")),
        }
    })
    .await;
    running.0.kill().expect("SIGKILL");
    running.0.wait().expect("reaped");
    drop(running);

    let _restarted = server(&data_dir, &db.url, port);
    wait_healthy(&url).await;
    let mut succeeded_twice = Vec::new();
    for id in &ids {
        let task: Value = api.finished(id, Duration::from_secs(120)).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        let successes = task["attempts"].as_array().map_or(0, |attempts| {
            attempts
                .iter()
                .filter(|a| a["outcome"] == "succeeded")
                .count()
        });
        if successes != 1 {
            succeeded_twice.push(id.clone());
        }
    }
    assert!(
        succeeded_twice.is_empty(),
        "completed more than once: {succeeded_twice:?}"
    );
    let workflow = api
        .workflow_finished(&workflow, Duration::from_secs(120))
        .await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
    assert_eq!(workflow["stages"][3]["output"]["message"], "slept 300+300");
    assert_eq!(
        count(&api, "succeeded").await,
        TASKS + 4,
        "no task or stage lost"
    );
}
