//! The llm capability against a real HTTP server speaking the OpenAI wire
//! format ([`ModelServer`]), through the `inference` plugin.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_llm::{LlmConfig, LlmProbe};
use flowmesh_runtime::{Capability, HostCapabilities, Probe, TaskLimits, TaskRun};
use flowmesh_tests::model_server::ModelServer;
use flowmesh_tests::{TestRuntime, components, failure, log_lines, output};
use flowmesh_types::{CapabilityKind, LogStream, TaskErrorCode, TaskEvent};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn probed(config: LlmConfig) -> Arc<dyn Capability> {
    LlmProbe::new(config)
        .probe()
        .await
        .expect("the endpoint answers")
}

/// A runtime linked to `server` with the inference plugin loaded.
async fn runtime(server: &ModelServer, configure: impl FnOnce(&mut LlmConfig)) -> TestRuntime {
    let mut config = LlmConfig::new(format!("{}/v1", server.url));
    configure(&mut config);
    let capabilities =
        HostCapabilities::none().with_probe(CapabilityKind::Llm, Ok(probed(config).await));
    let test = TestRuntime::with(capabilities, |_| {});
    let report = test.load("inference", components::INFERENCE).await;
    assert!(report.reason.is_none(), "{report:?}");
    test
}

async fn infer(test: &TestRuntime, spec: Value) -> (TaskRun, Vec<TaskEvent>) {
    test.run_with(
        "inference",
        &spec.to_string(),
        TaskLimits::default(),
        CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn a_streamed_chat_is_logged_as_it_arrives_and_assembled() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |_| {}).await;
    let (run, events) = infer(
        &test,
        json!({"model": "test-model", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there model"}]}),
    )
    .await;
    let out = output(&run);
    assert_eq!(out["content"], "you said: hello there model");
    assert_eq!(out["model"], "test-model");
    assert_eq!(out["finishReason"], "stop");
    assert_eq!(
        out["usage"],
        json!({"promptTokens": 3, "completionTokens": 4})
    );
    assert_eq!(
        log_lines(&events, LogStream::Model),
        ["you said: hello there model"]
    );
    let request = &server.requests()[0];
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
    assert_eq!(request["messages"][0]["role"], "system");
}

#[tokio::test]
async fn a_text_completion_stops_at_max_tokens_and_long_streams_log_in_pieces() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |_| {}).await;
    let (run, _) = infer(
        &test,
        json!({"model": "test-model", "prompt": "one two three four", "maxTokens": 3,
               "stream": false, "temperature": 0.5, "seed": 7}),
    )
    .await;
    let out = output(&run);
    assert_eq!(out["content"], "you said: one two");
    assert_eq!(out["finishReason"], "length");
    let request = &server.requests()[0];
    assert_eq!(
        (
            &request["prompt"],
            &request["max_tokens"],
            &request["seed"],
            &request["stream"]
        ),
        (
            &json!("one two three four"),
            &json!(3),
            &json!(7),
            &json!(false)
        )
    );

    let (run, events) = infer(
        &test,
        json!({"model": "test-model", "prompt": "repeat 100"}),
    )
    .await;
    assert_eq!(output(&run)["content"], vec!["lorem"; 100].join(" "));
    let lines = log_lines(&events, LogStream::Model);
    assert!(lines.len() > 1, "logged in pieces: {lines:?}");
    assert_eq!(lines.concat(), vec!["lorem"; 100].join(" "));
}

#[tokio::test]
async fn vllm_options_reach_the_endpoint_and_cannot_replace_the_request() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |_| {}).await;
    let (run, _) = infer(
        &test,
        json!({"model": "test-model", "messages": [{"role": "user", "content": "yes or no"}],
               "vllm": {"guidedChoice": ["yes", "no"], "topK": 5}}),
    )
    .await;
    output(&run);
    let request = &server.requests()[0];
    assert_eq!(request["guided_choice"], json!(["yes", "no"]));
    assert_eq!(request["top_k"], 5);
}

#[tokio::test]
async fn endpoint_errors_become_task_errors() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |config| {
        config.timeout = Duration::from_secs(1);
        config.max_response_bytes = 1000;
    })
    .await;
    let chat = |model: &str, content: &str| json!({"model": model, "messages": [{"role": "user", "content": content}]});

    let (run, _) = infer(&test, chat("no-such-model", "hi")).await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Failed);
    assert!(
        message.contains("model \"no-such-model\" is not served by this worker's endpoint")
            && message.contains("test-model"),
        "{message}"
    );

    let (run, _) = infer(&test, chat("broken-model", "hi")).await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Retryable, "{message}");
    assert!(
        message.contains("HTTP 500: the engine crashed"),
        "{message}"
    );

    let (run, _) = infer(&test, chat("slow-model", "hi")).await;
    assert_eq!(
        failure(&run),
        (
            TaskErrorCode::Failed,
            "the model endpoint did not answer in time".into()
        )
    );

    let (run, _) = infer(&test, chat("test-model", "repeat 1000")).await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Failed);
    assert!(message.contains("limit of 1000 bytes"), "{message}");
}

#[tokio::test]
async fn a_lora_adapter_is_loaded_and_answers_as_the_model() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |_| {}).await;
    let spec = json!({"model": "test-model", "prompt": "hi",
                      "lora": {"name": "sql-adapter", "path": "/adapters/sql"}});
    for _ in 0..2 {
        // Loading it again is not an error.
        let (run, events) = infer(&test, spec.clone()).await;
        assert_eq!(output(&run)["model"], "sql-adapter");
        assert!(
            events.iter().any(|event| matches!(event,
                TaskEvent::Log { stream: LogStream::Host, message, .. }
                    if message == "LoRA adapter sql-adapter loaded from /adapters/sql")),
            "{events:?}"
        );
    }
    let (run, _) = infer(
        &test,
        json!({"model": "test-model", "prompt": "hi",
               "lora": {"name": "gone", "path": "/missing/adapter"}}),
    )
    .await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Failed);
    assert!(
        message.contains("refused the request: HTTP 400: No adapter found for /missing/adapter"),
        "{message}"
    );
}

#[tokio::test]
async fn device_cpu_is_refused_by_a_vllm_endpoint_and_served_by_another() {
    let spec = json!({"model": "test-model", "prompt": "hi", "device": "cpu"});
    let vllm = ModelServer::start("vllm").await;
    let (run, _) = infer(&runtime(&vllm, |_| {}).await, spec.clone()).await;
    assert!(failure(&run).1.contains("is vLLM"), "{:?}", failure(&run));
    let cpu = ModelServer::start("llamacpp").await;
    let (run, _) = infer(&runtime(&cpu, |_| {}).await, spec).await;
    assert_eq!(output(&run)["content"], "you said: hi");
}

#[tokio::test]
async fn validate_refuses_combinations_that_would_fail_late_and_defers_placeholders() {
    let server = ModelServer::start("vllm").await;
    let test = runtime(&server, |_| {}).await;
    let check = |spec: Value| {
        let runtime = test.runtime.clone();
        async move {
            runtime
                .validate("inference", &spec.to_string())
                .await
                .expect("validate() runs")
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|error| (error.path, error.message))
                .collect::<Vec<_>>()
        }
    };
    let chat = json!([{"role": "user", "content": "hi"}]);

    let errors = check(json!({"model": "m", "messages": chat, "device": "cpu",
                              "vllm": {"guidedRegex": "[0-9]+"}}))
    .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "vllm");
    assert!(errors[0].1.contains("device: cpu"), "{errors:?}");

    let errors = check(json!({"model": "m", "messages": chat, "lora": {"name": "a"}})).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "lora");
    assert!(errors[0].1.contains("path") && errors[0].1.contains("url"));

    let errors = check(json!({"model": "m", "prompt": "p", "messages": chat})).await;
    assert_eq!(errors[0].0, "prompt", "{errors:?}");

    // Placeholders wait for the resolved spec.
    let errors = check(json!({"model": "m", "messages": chat,
                              "device": "${pick.output.device}",
                              "vllm": {"guidedRegex": "x"},
                              "lora": {"name": "a", "url": "${train.output.adapterUrl}"}}))
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let errors = check(json!({"model": "m", "messages": chat, "device": "tpu"})).await;
    assert_eq!(errors[0].0, "device", "{errors:?}");
}

#[tokio::test]
async fn the_probe_reports_the_models_as_labels_and_an_unreachable_endpoint_with_its_address() {
    let server = ModelServer::start("vllm").await;
    let capability = probed(LlmConfig::new(&server.url)).await;
    assert!(
        capability
            .labels()
            .contains(&("llm.model/test-model".into(), "served".into()))
    );
    assert!(
        capability.detail().contains("(vllm) serving test-model"),
        "{}",
        capability.detail()
    );
    let error = match LlmProbe::new(LlmConfig::new("http://127.0.0.1:9"))
        .probe()
        .await
    {
        Ok(_) => panic!("nothing listens there"),
        Err(error) => error,
    };
    assert!(
        error.starts_with("the model endpoint at http://127.0.0.1:9 does not answer:"),
        "{error}"
    );
    let error = match LlmProbe::new(LlmConfig::new("https://models.example"))
        .probe()
        .await
    {
        Ok(_) => panic!("no TLS client"),
        Err(error) => error,
    };
    assert!(error.contains("has no TLS client yet"), "{error}");
}
