//! Python plugins, built by componentize-py on the SDK in `sdk/python`, run
//! for real: the first-party `text` plugin; the hostile Python fixtures,
//! each of which fails only its own task with the error kind a Rust guest
//! doing the same gets; the sandbox a Python task sees (deny-all WASI: no
//! environment, no files but scratch, no network); validation on a server's
//! runtime; and the llm capability from Python, refused and granted.

use std::time::Duration;

use flowmesh_llm::{LlmConfig, LlmProbe};
use flowmesh_runtime::{HostCapabilities, Probe, TaskLimits, TaskRun};
use flowmesh_tests::fake_gpus::FakeGpus;
use flowmesh_tests::model_server::ModelServer;
use flowmesh_tests::{TestRuntime, components, limits, log_lines, output};
use flowmesh_types::{CapabilityKind, LogStream, TaskError, TaskErrorCode, TaskEvent};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn text_runtime() -> TestRuntime {
    let test = TestRuntime::new();
    let report = test.load("text", components::python::TEXT).await;
    assert!(report.reason.is_none(), "{report:?}");
    test
}

async fn hostile_runtime() -> TestRuntime {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    let report = test.load("py-hostile", components::python::HOSTILE).await;
    assert!(report.reason.is_none(), "{report:?}");
    test
}

/// The task failed with `code`; a Rust and a Python task on the same
/// runtime still succeed afterwards.
async fn fails_alone(test: &TestRuntime, run: TaskRun, code: TaskErrorCode) -> TaskError {
    let error = run.outcome.expect_err("the hostile task must fail");
    assert_eq!(error.code, code, "{error}");
    let echo = test.run("echo", r#"{"message": "still serving"}"#).await;
    assert_eq!(output(&echo)["message"], "still serving");
    let python = test.run("py-print", "{}").await;
    assert_eq!(output(&python)["printed"], 2);
    error
}

#[tokio::test]
async fn the_text_plugin_declares_schemas_derived_from_its_dataclasses() {
    let test = TestRuntime::new();
    let report = test.load("text", components::python::TEXT).await;
    let manifest = report.manifest.expect("available");
    assert_eq!(manifest.name, "text");
    assert_eq!(manifest.version, "0.1.0");
    let names: Vec<&str> = manifest
        .task_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["text-stats", "regex-extract", "json-reshape"]);
    let stats = &manifest.task_types[0].spec_schema;
    assert_eq!(stats["type"], "object");
    assert_eq!(stats["additionalProperties"], false);
    assert_eq!(stats["required"], json!(["text"]));
    assert_eq!(stats["properties"]["top"]["type"], "integer");
    assert_eq!(stats["properties"]["top"]["maximum"], 1000);
    assert_eq!(stats["properties"]["top"]["default"], 10);
    assert_eq!(
        stats["properties"]["text"]["description"],
        "The text to measure."
    );
    let reshape = &manifest.task_types[2].spec_schema;
    assert_eq!(
        reshape["properties"]["missing"]["enum"],
        json!(["null", "error"])
    );
    assert_eq!(
        reshape["properties"]["fields"]["additionalProperties"]["type"],
        "string"
    );
    assert!(
        report
            .imports
            .iter()
            .all(|i| !i.starts_with("flowmesh:host/llm"))
    );
}

#[tokio::test]
async fn text_stats_counts_words_lines_and_sentences() {
    let test = text_runtime().await;
    let (run, events) = test
        .run_with(
            "text-stats",
            r#"{"text": "The cat sat. The cat ran!\n\nA dog?", "top": 2}"#,
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    let out = output(&run);
    assert_eq!(out["words"], 8);
    assert_eq!(out["lines"], 3);
    assert_eq!(out["blank_lines"], 1);
    assert_eq!(out["sentences"], 3);
    assert_eq!(
        out["top_words"],
        json!([{"word": "the", "count": 2}, {"word": "cat", "count": 2}])
    );
    assert!(
        events.iter().any(
            |e| matches!(e, TaskEvent::Log { message, .. } if message == "8 words in 3 lines")
        ),
        "{events:?}"
    );
    let plugin = run.plugin.expect("identity");
    assert_eq!(
        (plugin.name.as_str(), plugin.version.as_str()),
        ("text", "0.1.0")
    );
}

#[tokio::test]
async fn regex_extract_lists_matches_and_validate_names_a_bad_pattern() {
    let test = text_runtime().await;
    let run = test
        .run(
            "regex-extract",
            r#"{"pattern": "(?P<key>\\w+)=(\\d+)", "text": "a=1, b=22, c=x", "max_matches": 5}"#,
        )
        .await;
    let out = output(&run);
    assert_eq!(out["count"], 2);
    assert_eq!(out["truncated"], false);
    assert_eq!(out["matches"][1]["match"], "b=22");
    assert_eq!(out["matches"][1]["groups"], json!(["b", "22"]));
    assert_eq!(out["matches"][1]["named"], json!({"key": "b"}));
    assert_eq!(out["matches"][1]["start"], 5);

    let errors = test
        .runtime
        .validate("regex-extract", r#"{"pattern": "(unclosed", "text": "x"}"#)
        .await
        .expect("the check runs")
        .expect_err("not a regular expression");
    assert_eq!(errors[0].path, "pattern");
    assert!(
        errors[0].message.contains("not a valid regular expression"),
        "{errors:?}"
    );
    let errors = test
        .runtime
        .validate(
            "regex-extract",
            r#"{"pattern": "x", "text": 5, "colour": "red"}"#,
        )
        .await
        .expect("the check runs")
        .expect_err("wrong shape");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["colour", "text"], "{errors:?}");
}

#[tokio::test]
async fn json_reshape_picks_paths_and_a_missing_one_is_null_or_an_error() {
    let test = text_runtime().await;
    let data = json!({"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
                      "meta": {"owner": "ada", "odd key": true}});
    let (run, events) = test
        .run_with(
            "json-reshape",
            &json!({"data": data, "fields": {
                "names": "items[*].name", "first": "items[0].n",
                "owner": "meta.owner", "odd": "meta[\"odd key\"]", "gone": "meta.nothing"}})
            .to_string(),
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(
        output(&run),
        json!({"names": ["a", "b"], "first": 1, "owner": "ada", "odd": true, "gone": null})
    );
    let progress: Vec<f32> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::Progress { fraction, .. } => Some(*fraction),
            _ => None,
        })
        .collect();
    assert_eq!(progress.last(), Some(&1.0), "{events:?}");

    let run = test
        .run(
            "json-reshape",
            &json!({"data": data, "fields": {"gone": "meta.nothing"}, "missing": "error"})
                .to_string(),
        )
        .await;
    let error = run.outcome.expect_err("the path is missing");
    assert_eq!(error.code, TaskErrorCode::InvalidInput, "{error}");
    assert_eq!(error.details[0].path, "fields.gone", "{error:?}");

    let errors = test
        .runtime
        .validate("json-reshape", r#"{"data": {}, "fields": {"x": "a..b"}}"#)
        .await
        .expect("the check runs")
        .expect_err("not a path");
    assert_eq!(errors[0].path, "fields.x");
}

#[tokio::test]
async fn a_server_runtime_loads_python_plugins_and_validates_with_them() {
    // A server only validates: WASI is linked with nothing granted, and a
    // capability the plugin imports is stubbed. A Python component imports
    // an older WASI 0.2 release than the one linked, which semver matches.
    let test = TestRuntime::with(HostCapabilities::validation_only(), |_| {});
    let report = test.load("text", components::python::TEXT).await;
    assert!(report.reason.is_none(), "{report:?}");
    assert!(
        report
            .imports
            .iter()
            .any(|i| i.starts_with("wasi:cli/environment@0.2.")),
        "{report:?}"
    );
    let errors = test
        .runtime
        .validate("regex-extract", r#"{"pattern": "[", "text": ""}"#)
        .await
        .expect("the check runs")
        .expect_err("invalid");
    assert_eq!(errors[0].path, "pattern");
    let report = test.load("py-chat", components::python::USES_LLM).await;
    assert!(report.reason.is_none(), "{report:?}");
    test.runtime
        .validate("py-chat", r#"{"model": "m", "prompt": "hi"}"#)
        .await
        .expect("the check runs")
        .expect("valid");
    // A validate() that calls a capability on the server reaches a stub
    // that traps, not a model endpoint.
    let error = test
        .runtime
        .validate(
            "py-chat",
            r#"{"model": "m", "prompt": "ask the model while validating"}"#,
        )
        .await
        .expect_err("the stub traps");
    assert_eq!(error.code, TaskErrorCode::Host, "{error}");
    assert!(error.message.contains("only being validated"), "{error}");
}

#[tokio::test]
async fn an_endless_loop_hits_the_deadline() {
    let test = hostile_runtime().await;
    let (run, _) = test
        .run_with(
            "py-loop",
            "{}",
            limits(|l| l.timeout = Duration::from_secs(1)),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::Timeout).await;
    assert!(error.message.contains("timeout of 1s"), "{error}");
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_memory_limit() {
    let test = hostile_runtime().await;
    let (run, _) = test
        .run_with(
            "py-grow",
            "{}",
            limits(|l| l.memory_bytes = 128 << 20),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::MemoryLimit).await;
    assert!(error.message.contains("limit of 128.0 MiB"), "{error}");
}

#[tokio::test]
async fn an_exception_fails_the_task_with_its_type_and_logs_the_traceback() {
    let test = hostile_runtime().await;
    let (run, events) = test
        .run_with(
            "py-raise",
            "{}",
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::Failed).await;
    assert_eq!(error.message, "ZeroDivisionError: division by zero");
    let logged = events.iter().any(|e| {
        matches!(e, TaskEvent::Log { message, .. }
            if message.starts_with("Traceback") && message.contains("in explode"))
    });
    assert!(logged, "the traceback is in the task log: {events:?}");
}

#[tokio::test]
async fn a_huge_output_is_refused() {
    let test = hostile_runtime().await;
    let run = test.run("py-huge-output", r#"{"megabytes": 4}"#).await;
    let error = fails_alone(&test, run, TaskErrorCode::InvalidOutput).await;
    assert!(
        error.message.contains("over the limit of 1048576 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_module_the_component_does_not_hold_fails_with_what_to_do() {
    let test = hostile_runtime().await;
    let run = test.run("py-missing-module", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Failed).await;
    assert!(
        error.message.starts_with("No module named 'numpy'")
            && error
                .message
                .contains("import 'numpy' at the top of app.py"),
        "{error}"
    );
}

#[tokio::test]
async fn endless_recursion_fails_only_its_task() {
    let test = hostile_runtime().await;
    let run = test.run("py-recurse", "{}").await;
    let error = run.outcome.expect_err("it cannot recurse forever");
    // With the recursion limit lifted, CPython's frames fill the task's
    // memory, or the wasm stack runs out, or CPython stops it after all.
    assert!(
        matches!(
            error.code,
            TaskErrorCode::MemoryLimit | TaskErrorCode::StackOverflow | TaskErrorCode::Failed
        ),
        "{error}"
    );
    let echo = test.run("py-print", "{}").await;
    assert_eq!(output(&echo)["printed"], 2);
}

#[tokio::test]
async fn retryable_and_attempts_reach_python() {
    let test = hostile_runtime().await;
    let run = test.run("py-retryable", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Retryable).await;
    assert_eq!(error.message, "the dependency is busy; try again");
}

#[tokio::test]
async fn stdout_and_stderr_go_to_the_task_log() {
    let test = hostile_runtime().await;
    let (run, events) = test
        .run_with(
            "py-print",
            "{}",
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(output(&run)["printed"], 2);
    assert_eq!(log_lines(&events, LogStream::Stdout), ["to stdout"]);
    assert_eq!(log_lines(&events, LogStream::Stderr), ["to stderr"]);
}

#[tokio::test]
async fn a_python_task_sees_no_environment_no_files_and_no_network() {
    let test = hostile_runtime().await;
    let run = test.run("py-sandbox", "{}").await;
    let seen = output(&run);
    assert_eq!(seen["environ"], json!({}), "{seen}");
    assert_eq!(seen["scratch"], "scratch works");
    assert_ne!(seen["socket"], "connected", "{seen}");
    assert!(
        seen["etc_passwd"]
            .as_str()
            .is_some_and(|e| e.ends_with("Error")),
        "{seen}"
    );
    // The root holds the scratch mount and nothing of the host's.
    let root = seen["root"].clone();
    assert!(
        root == json!(["scratch"]) || root.as_str().is_some_and(|e| e.ends_with("Error")),
        "{seen}"
    );
}

async fn llm_capability(server: &ModelServer) -> HostCapabilities {
    let probed = LlmProbe::new(LlmConfig::new(format!("{}/v1", server.url)))
        .probe()
        .await
        .expect("the endpoint answers");
    HostCapabilities::none().with_probe(CapabilityKind::Llm, Ok(probed))
}

#[tokio::test]
async fn a_python_plugin_that_imports_llm_is_refused_without_an_endpoint_like_a_rust_one() {
    let test = TestRuntime::with(
        HostCapabilities::none().with_probe(
            CapabilityKind::Llm,
            Err("no model endpoint is configured (--llm-endpoint)".into()),
        ),
        |_| {},
    );
    let python = test.load("py-chat", components::python::USES_LLM).await;
    let rust = test.load("inference", components::INFERENCE).await;
    let reason = python.reason.clone().expect("refused");
    assert!(reason.contains("flowmesh:host/llm"), "{reason}");
    assert_eq!(python.reason, rust.reason);
    assert!(
        !test
            .runtime
            .capabilities()
            .supported_task_types
            .iter()
            .any(|t| t == "py-chat")
    );
}

#[tokio::test]
async fn a_python_plugin_that_imports_gpu_is_refused_without_gpus_like_a_rust_one() {
    let reason = "NVML is not available (no NVIDIA driver on this host)";
    let test = TestRuntime::with(
        HostCapabilities::none().with_probe(CapabilityKind::Gpu, Err(reason.into())),
        |_| {},
    );
    let python = test.load("py-gpu", components::python::USES_GPU).await;
    let rust = test.load("uses-gpu", components::guests::USES_GPU).await;
    let why = python.reason.clone().expect("refused");
    assert!(
        why.contains("flowmesh:host/gpu") && why.contains(reason),
        "{why}"
    );
    assert_eq!(python.reason, rust.reason);
}

#[tokio::test]
async fn a_python_task_reads_exactly_its_assigned_gpus() {
    let gpus = FakeGpus::new(3, "NVIDIA H100 80GB HBM3", 80);
    let capability = gpus.probe().probe().await.expect("the fake devices answer");
    let test = TestRuntime::with(
        HostCapabilities::none().with_probe(CapabilityKind::Gpu, Ok(capability)),
        |_| {},
    );
    let report = test.load("py-gpu", components::python::USES_GPU).await;
    assert!(report.reason.is_none(), "{report:?}");
    let request = flowmesh_types::GpuRequest {
        count: 2,
        model: None,
        memory_bytes: 0,
    };
    let lease = test.runtime.assign_gpus(&request).expect("two devices");
    let limits = TaskLimits {
        gpus: lease.ids().to_vec(),
        ..TaskLimits::default()
    };
    let (run, _) = test
        .run_with("py-gpu", "{}", limits, CancellationToken::new())
        .await;
    assert_eq!(
        output(&run),
        json!([
            "GPU-fake-0 NVIDIA H100 80GB HBM3 80 GiB",
            "GPU-fake-1 NVIDIA H100 80GB HBM3 80 GiB"
        ])
    );
}

#[tokio::test]
async fn a_python_plugin_chats_with_the_model_endpoint() {
    let server = ModelServer::start("vllm").await;
    let test = TestRuntime::with(llm_capability(&server).await, |_| {});
    let report = test.load("py-chat", components::python::USES_LLM).await;
    assert!(report.reason.is_none(), "{report:?}");
    let (run, events) = test
        .run_with(
            "py-chat",
            r#"{"model": "test-model", "prompt": "hello there model"}"#,
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    let out = output(&run);
    assert_eq!(out["content"], "you said: hello there model");
    assert_eq!(out["model"], "test-model");
    assert_eq!(out["finish_reason"], "stop");
    assert_eq!(out["completion_tokens"], 4);
    assert_eq!(
        log_lines(&events, LogStream::Model),
        ["you said: hello there model"]
    );
    let request = &server.requests()[0];
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["content"], "hello there model");

    // An unknown model fails the task for good, with the endpoint's words.
    let run = test
        .run("py-chat", r#"{"model": "no-such-model", "prompt": "hi"}"#)
        .await;
    let error = run.outcome.expect_err("unknown model");
    assert_eq!(error.code, TaskErrorCode::Failed, "{error}");
    assert!(error.message.contains("does not serve"), "{error}");
    // A failing endpoint is worth retrying.
    let run = test
        .run("py-chat", r#"{"model": "broken-model", "prompt": "hi"}"#)
        .await;
    let error = run.outcome.expect_err("the endpoint fails");
    assert_eq!(error.code, TaskErrorCode::Retryable, "{error}");
}

/// The SDK's and the `text` plugin's own tests, as plain Python (pytest in
/// the virtual environment of `scripts/python.sh`).
#[test]
fn the_sdk_and_the_text_plugin_pass_their_plain_python_tests() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::process::Command::new(workspace.join("scripts/python.sh"))
        .output()
        .expect("scripts/python.sh runs");
    assert!(venv.status.success(), "scripts/python.sh failed");
    let python =
        std::path::PathBuf::from(String::from_utf8_lossy(&venv.stdout).trim()).join("bin/python");
    for (dir, tests) in [("sdk/python", "tests"), ("plugins/text", "test_app.py")] {
        let run = std::process::Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", tests])
            .current_dir(workspace.join(dir))
            .env("PYTHONPATH", workspace.join("sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("pytest runs");
        assert!(
            run.status.success(),
            "pytest in {dir}:\n{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
