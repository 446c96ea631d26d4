//! What the host capabilities cost a task, next to doing the same without
//! FlowMesh.
//!
//! - `container`: a `container` task running `true` in the busybox test
//!   image on the real Docker daemon (create, start, log stream, wait,
//!   inspect, remove), against `docker run --rm` of the same image.
//! - `llm`: an `inference` task (plugin instance, host call, HTTP to the
//!   test's OpenAI-wire server, streamed and whole), against the same request
//!   sent directly with an HTTP client.
//!
//! `cargo bench -p flowmesh-tests --bench capabilities [container|llm]`.

use std::time::{Duration, Instant};

use flowmesh_llm::{LlmConfig, LlmProbe};
use flowmesh_runtime::{HostCapabilities, Probe, TaskLimits};
use flowmesh_tests::docker::{TEST_IMAGE, container_runtime, docker_config};
use flowmesh_tests::model_server::ModelServer;
use flowmesh_tests::{TestRuntime, components, output, report, wanted_figures};
use flowmesh_types::CapabilityKind;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CONTAINERS: usize = 30;
const CALLS: usize = 300;

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let wanted = wanted_figures();
    tokio.block_on(async {
        if wanted("container") {
            containers().await;
        }
        if wanted("llm") {
            llm().await;
        }
    });
}

async fn containers() {
    let test = container_runtime(docker_config("bench")).await;
    let spec = json!({"image": TEST_IMAGE, "command": ["true"]}).to_string();
    let mut tasks = Vec::new();
    for _ in 0..CONTAINERS {
        let started = Instant::now();
        let (run, _) = test
            .run_with(
                "container",
                &spec,
                TaskLimits::default(),
                CancellationToken::new(),
            )
            .await;
        output(&run);
        tasks.push(started.elapsed());
    }
    report("container task: `true` in busybox, removed", tasks);
    let mut direct = Vec::new();
    for _ in 0..CONTAINERS {
        let started = Instant::now();
        let status = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", TEST_IMAGE, "true"])
            .status()
            .expect("docker run");
        assert!(status.success());
        direct.push(started.elapsed());
    }
    report("docker run --rm (reference)", direct);
}

async fn llm() {
    let server = ModelServer::start("vllm").await;
    let capability = LlmProbe::new(LlmConfig::new(&server.url))
        .probe()
        .await
        .expect("the endpoint answers");
    let test = TestRuntime::with(
        HostCapabilities::none().with_probe(CapabilityKind::Llm, Ok(capability)),
        |_| {},
    );
    test.load("inference", components::INFERENCE).await;
    for stream in [false, true] {
        let spec = json!({"model": "test-model", "stream": stream,
                          "messages": [{"role": "user", "content": "one two three four five"}]})
        .to_string();
        let mut calls = Vec::new();
        for _ in 0..CALLS {
            let started = Instant::now();
            let (run, _) = test
                .run_with(
                    "inference",
                    &spec,
                    TaskLimits::default(),
                    CancellationToken::new(),
                )
                .await;
            output(&run);
            calls.push(started.elapsed());
        }
        let name = if stream {
            "inference task, streamed (6 chunks)"
        } else {
            "inference task, whole answer"
        };
        report(name, calls);
    }
    flowmesh_tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let body = json!({"model": "test-model", "stream": false,
                      "messages": [{"role": "user", "content": "one two three four five"}]});
    let mut direct: Vec<Duration> = Vec::new();
    for _ in 0..CALLS {
        let started = Instant::now();
        let answer: serde_json::Value = http
            .post(format!("{}/v1/chat/completions", server.url))
            .json(&body)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        assert!(answer["choices"][0]["message"]["content"].is_string());
        direct.push(started.elapsed());
    }
    report("same request, direct HTTP (reference)", direct);
}
