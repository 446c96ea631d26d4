//! Mixed fleets behind a real server over HTTP. On real Docker: one worker
//! whose Docker daemon answers and one whose daemon does not; `container`
//! tasks go only where the capability is linked, and when no live worker has
//! it, the server says which worker lacks what, and why. With a model
//! endpoint: the models it serves are worker labels that tasks require, and
//! they follow the endpoint as it loads adapters. The GPU fleet runs on
//! devices from memory (`FakeGpus`) where the machine has no NVIDIA GPU.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_containers::{DockerConfig, DockerProbe};
use flowmesh_llm::{LlmConfig, LlmProbe};
use flowmesh_runtime::Probe;
use flowmesh_tests::cluster::{Db, TestServer, eventually, task_types};
use flowmesh_tests::components;
use flowmesh_tests::docker::{DockerProxy, TEST_IMAGE, assert_no_containers_left, docker_config};
use flowmesh_tests::fake_gpus::FakeGpus;
use flowmesh_tests::model_server::ModelServer;
use reqwest::StatusCode;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

flowmesh_tests::on_both_backends!(tasks_that_require_labels_go_only_to_workers_carrying_them);

const PLUGINS: [(&str, &str); 2] = [
    ("echo", components::ECHO),
    ("container", components::CONTAINER),
];

fn probe(config: DockerConfig) -> Vec<Arc<dyn Probe>> {
    vec![Arc::new(DockerProbe::new(config))]
}

fn container_document(command: &str) -> String {
    format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: container\n  image: {TEST_IMAGE}\n  command: [sh, -c, {command:?}]\n  resources: {{hardware: {{memory: 64Mi}}}}\n"
    )
}

/// The containers capability and the `container` plugin as `GET
/// /workers/{name}` shows them.
fn docker_view(worker: &Value) -> (Value, Value) {
    let capability = worker["capabilities"]["capabilities"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["kind"] == "containers"))
        .cloned()
        .unwrap_or_default();
    let plugin = worker["capabilities"]["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "container"))
        .cloned()
        .unwrap_or_default();
    (capability, plugin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_tasks_go_only_to_the_worker_with_docker_and_fail_fast_names_the_docker_error() {
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    server.install("container", components::CONTAINER).await;
    let config = docker_config("fleet");
    let owner = config.owner.clone();
    let mut with_docker = server
        .probed_worker("with-docker", &PLUGINS, probe(config), 2)
        .await;
    let mut unreachable = DockerConfig::new("without-docker");
    unreachable.host = Some("unix:///nonexistent/docker.sock".into());
    let _without = server
        .probed_worker("without-docker", &PLUGINS, probe(unreachable), 2)
        .await;
    let api = server.admin();

    let documents: Vec<String> = (0..6)
        .map(|i| container_document(&format!("echo task {i}")))
        .collect();
    let ids: Vec<String> =
        futures::future::join_all(documents.iter().map(|document| api.submit(document))).await;
    let messages: Vec<String> = (0..6).map(|i| i.to_string()).collect();
    let echoes: Vec<String> =
        futures::future::join_all(messages.iter().map(|message| api.echo(message))).await;
    for (i, id) in ids.iter().enumerate() {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert_eq!(task["worker"], "with-docker", "{task:#}");
        assert_eq!(task["result"]["output"]["exitCode"], 0, "{task:#}");
        let events = api.events(id, LONG).await;
        assert!(
            events
                .iter()
                .any(|(_, event)| event["data"]["message"] == format!("task {i}")),
            "the container's output is in the task's events: {events:?}"
        );
    }
    for id in &echoes {
        assert_eq!(api.finished(id, LONG).await["state"], "succeeded");
    }

    // The worker without Docker says why it cannot run the plugin.
    let (status, without) = api.get("/workers/without-docker").await;
    assert_eq!(status, StatusCode::OK, "{without}");
    assert_eq!(task_types(&without), ["echo", "sleep"]);
    let (capability, plugin) = docker_view(&without);
    assert_eq!(capability["status"], "absent", "{without:#}");
    let docker_error = "cannot reach the Docker daemon at unix:///nonexistent/docker.sock";
    assert!(
        capability["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(docker_error),
        "{capability:#}"
    );
    assert_eq!(plugin["status"], "unavailable", "{plugin:#}");
    assert!(
        plugin["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(docker_error),
        "{plugin:#}"
    );

    // Only the worker without Docker left: fail-fast refuses, naming the
    // type, the worker and the Docker error.
    with_docker.kill();
    let refused = eventually("fail-fast to refuse", LONG, || {
        let api = api.clone();
        async move {
            let document = container_document("true");
            match api.submit_raw("?failFast=true", &document).await {
                (StatusCode::UNPROCESSABLE_ENTITY, body) => Ok(body),
                (status, body) => Err(format!("{status}: {body}")),
            }
        }
    })
    .await;
    assert_eq!(
        refused["error"]["code"], "no_eligible_worker",
        "{refused:#}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    for expected in [
        "task type \"container\"",
        "on without-docker, plugin \"container\" imports flowmesh:host/containers@0.1.0",
        docker_error,
        "the task was not stored",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert_no_containers_left(&owner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_withdraws_container_while_its_daemon_is_gone_and_offers_it_again_when_it_is_back()
{
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    server.install("container", components::CONTAINER).await;
    let socket_dir = tempfile::tempdir().expect("temporary directory");
    let mut daemon = DockerProxy::start(&socket_dir.path().join("docker.sock"));
    let mut config = docker_config("comes-and-goes");
    config.host = Some(daemon.url());
    let owner = config.owner.clone();
    let _worker = server
        .probed_worker("flaky-docker", &PLUGINS, probe(config), 2)
        .await;
    let api = server.admin();
    let advertised = |expected: bool| {
        let api = api.clone();
        async move {
            let (_, worker) = api.get("/workers/flaky-docker").await;
            let types = task_types(&worker);
            if types.contains(&"container".to_string()) == expected {
                Ok(worker)
            } else {
                Err(format!("task types {types:?}"))
            }
        }
    };
    eventually("container to be advertised", LONG, || advertised(true)).await;

    daemon.stop();
    let worker = eventually("container to be withdrawn", LONG, || advertised(false)).await;
    let (capability, plugin) = docker_view(&worker);
    assert_eq!(capability["status"], "absent", "{worker:#}");
    assert!(
        plugin["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach the Docker daemon at unix://"),
        "{plugin:#}"
    );

    daemon.resume();
    eventually("container to be advertised again", LONG, || {
        advertised(true)
    })
    .await;
    let id = api.submit(&container_document("echo back")).await;
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_no_containers_left(&owner).await;
}

fn document(task_type: &str, fields: &str, labels: &str) -> String {
    format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: {task_type}\n{fields}  resources: {{labels: {labels}}}\n"
    )
}

async fn tasks_that_require_labels_go_only_to_workers_carrying_them(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server.install("inference", components::INFERENCE).await;
    let models = ModelServer::start("vllm").await;
    let plugins = [
        ("echo", components::ECHO),
        ("inference", components::INFERENCE),
    ];
    let llm: Vec<Arc<dyn Probe>> = vec![Arc::new(LlmProbe::new(LlmConfig::new(&models.url)))];
    let _model_box = server.probed_worker("model-box", &plugins, llm, 2).await;
    let _plain = server
        .worker_with(
            "plain",
            &plugins,
            flowmesh_runtime::HostCapabilities::none(),
            2,
            |config| {
                config.labels.insert("zone".into(), "b".into());
            },
        )
        .await;
    let api = server.admin();
    let (_, model_box) = api.get("/workers/model-box").await;
    assert_eq!(
        model_box["labels"]["llm.model/test-model"], "served",
        "{model_box:#}"
    );

    let chat = "  model: test-model\n  messages: [{role: user, content: hi}]\n";
    let inference = api
        .submit(&document(
            "inference",
            chat,
            "{llm.model/test-model: served}",
        ))
        .await;
    let zoned = api
        .submit(&document("echo", "  message: zoned\n", "{zone: b}"))
        .await;
    let task = api.finished(&inference, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["worker"], "model-box");
    assert_eq!(task["result"]["output"]["content"], "you said: hi");
    assert_eq!(api.finished(&zoned, LONG).await["worker"], "plain");

    // Nobody carries it: the task waits and says what is missing where.
    let lost = api
        .submit(&document("echo", "  message: lost\n", "{zone: mars}"))
        .await;
    let waiting = api
        .until(&lost, LONG, |task| {
            task["waiting"]["kind"] == "missing_labels"
        })
        .await;
    let reason = waiting["waiting"]["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("plain lacks zone=mars") && reason.contains("model-box lacks zone=mars"),
        "{reason}"
    );

    // A model the endpoint starts serving later: the task waits for the
    // label, another task loads the adapter, the worker's next probe
    // advertises it, and the waiting task runs.
    let adapter_chat = "  model: sql-adapter\n  messages: [{role: user, content: select}]\n";
    let later = api
        .submit(&document(
            "inference",
            adapter_chat,
            "{llm.model/sql-adapter: served}",
        ))
        .await;
    api.until(&later, LONG, |task| {
        task["waiting"]["kind"] == "missing_labels"
    })
    .await;
    let loader = api
        .submit(&document(
            "inference",
            "  model: test-model\n  prompt: warm up\n  lora: {name: sql-adapter, path: /adapters/sql}\n",
            "{}",
        ))
        .await;
    assert_eq!(api.finished(&loader, LONG).await["state"], "succeeded");
    let task = api.finished(&later, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["result"]["output"]["model"], "sql-adapter");
    api.delete(&format!("/tasks/{lost}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gpu_tasks_go_to_the_worker_with_gpus_and_each_gets_its_own_devices() {
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    server
        .install("uses-gpu", components::guests::USES_GPU)
        .await;
    server.install("train", components::TRAIN).await;
    let gpus = FakeGpus::new(2, "NVIDIA H100 80GB HBM3", 80);
    let docker = docker_config("train");
    let owner = docker.owner.clone();
    let plugins = [
        ("echo", components::ECHO),
        ("uses-gpu", components::guests::USES_GPU),
        ("train", components::TRAIN),
    ];
    let probes: Vec<Arc<dyn Probe>> =
        vec![Arc::new(gpus.probe()), Arc::new(DockerProbe::new(docker))];
    let _gpu_box = server.probed_worker("gpu-box", &plugins, probes, 4).await;
    let _cpu_box = server
        .worker(
            "cpu-box",
            &plugins,
            flowmesh_runtime::HostCapabilities::none(),
            4,
        )
        .await;
    let api = server.admin();
    let (_, gpu_box) = api.get("/workers/gpu-box").await;
    assert_eq!(
        gpu_box["hardware"]["gpus"].as_array().map(Vec::len),
        Some(2),
        "{gpu_box:#}"
    );
    let (_, cpu_box) = api.get("/workers/cpu-box").await;
    assert!(!task_types(&cpu_box).contains(&"uses-gpu".to_string()));

    // Two tasks that hold one GPU each for a while: seen running at the
    // same time, they hold different devices.
    let one_gpu = "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: uses-gpu\n  hold_ms: 5000\n  resources: {hardware: {gpu: {count: 1, type: H100}}}\n";
    let first = api.submit(one_gpu).await;
    let second = api.submit(one_gpu).await;
    eventually("both to run at once", LONG, || {
        let api = api.clone();
        let (first, second) = (first.clone(), second.clone());
        async move {
            let states = (
                api.task(&first).await["state"].clone(),
                api.task(&second).await["state"].clone(),
            );
            if states.0 == "running" && states.1 == "running" {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        }
    })
    .await;
    let mut devices = Vec::new();
    for id in [&first, &second] {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert_eq!(task["worker"], "gpu-box");
        let held = task["result"]["output"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(held.len(), 1, "exactly one device: {task:#}");
        devices.push(held[0].clone());
    }
    assert_ne!(
        devices[0], devices[1],
        "tasks running together shared a device"
    );

    // The train plugin asks Docker for the task's devices: with the fake
    // devices there is no NVIDIA runtime to give them, and Docker says so.
    let train = format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: train\n  image: {TEST_IMAGE}\n  command: [sh, -c, 'echo $FLOWMESH_GPUS']\n  maxAttempts: 1\n  resources: {{hardware: {{gpu: {{count: 2}}}}}}\n"
    );
    let id = api.submit(&train).await;
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["worker"], "gpu-box", "{task:#}");
    assert_eq!(task["state"], "failed", "{task:#}");
    let message = task["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains("could not select device driver \"nvidia\"")
            // Where the NVIDIA runtime is installed, it refuses the fake ids.
            || (std::path::Path::new("/dev/nvidiactl").exists() && message.contains("gpu-fake")),
        "the device request reached Docker: {task:#}"
    );
    let events = api.events(&id, LONG).await;
    assert!(
        events.iter().any(|(_, event)| event["data"]["message"]
            .as_str()
            .is_some_and(|line| line.starts_with("GPU 0 NVIDIA H100"))),
        "the plugin logged its devices: {events:?}"
    );
    assert_no_containers_left(&owner).await;

    // A type no worker has: the task waits and says so.
    let a100 = "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: uses-gpu\n  resources: {hardware: {gpu: {count: 1, type: A100}}}\n";
    let id = api.submit(a100).await;
    let task = api
        .until(&id, LONG, |task| {
            task["waiting"]["kind"] == "insufficient_hardware"
        })
        .await;
    assert!(
        task["waiting"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("A100"),
        "{task:#}"
    );
    api.delete(&format!("/tasks/{id}")).await;
}
