//! The first-party `echo` plugin, run for real: outputs, validation, logs,
//! progress and the identity of the plugin that ran the task.

use std::time::Duration;

use flowmesh_runtime::TaskLimits;
use flowmesh_tests::{TestRuntime, components, output};
use flowmesh_types::{LogStream, TaskErrorCode, TaskEvent};
use tokio_util::sync::CancellationToken;

async fn echo_runtime() -> TestRuntime {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    test
}

#[tokio::test]
async fn echo_returns_its_message() {
    let test = echo_runtime().await;
    let run = test.run("echo", r#"{"message": "hello"}"#).await;
    assert_eq!(output(&run), serde_json::json!({"message": "hello"}));
    let plugin = run.plugin.expect("identity");
    assert_eq!(plugin.name, "echo");
    assert_eq!(plugin.version, env!("CARGO_PKG_VERSION"));
    assert!(plugin.digest.starts_with("sha256:") && plugin.digest.len() == 7 + 64);
}

#[tokio::test]
async fn the_manifest_carries_a_json_schema_per_task_type() {
    let test = TestRuntime::new();
    let report = test.load("echo", components::ECHO).await;
    let manifest = report.manifest.expect("available");
    assert_eq!(manifest.name, "echo");
    let echo = &manifest.task_types[0];
    assert_eq!(echo.name, "echo");
    assert_eq!(
        echo.description,
        "Returns its message, optionally repeated."
    );
    assert_eq!(echo.spec_schema["type"], "object");
    assert_eq!(echo.spec_schema["required"], serde_json::json!(["message"]));
    assert_eq!(echo.spec_schema["additionalProperties"], false);
    assert_eq!(
        echo.spec_schema["properties"]["message"]["description"],
        "The text to return."
    );
    let sleep = &manifest.task_types[1];
    assert_eq!(sleep.name, "sleep");
    assert_eq!(
        sleep.spec_schema["required"],
        serde_json::json!(["duration"])
    );
}

#[tokio::test]
async fn echo_repeats_its_message() {
    let test = echo_runtime().await;
    let run = test.run("echo", r#"{"message": "hi", "repeat": 3}"#).await;
    assert_eq!(output(&run)["message"], "hi hi hi");
}

#[tokio::test]
async fn validate_names_the_offending_field() {
    let test = echo_runtime().await;
    let errors = test
        .runtime
        .validate("echo", r#"{"message": "hi", "repeat": 0}"#)
        .await
        .expect("the check runs")
        .expect_err("repeat 0 is invalid");
    assert_eq!(errors[0].path, "repeat");
    assert!(
        errors[0].message.contains("between 1 and 1000"),
        "{errors:?}"
    );
    test.runtime
        .validate("echo", r#"{"message": "hi"}"#)
        .await
        .expect("the check runs")
        .expect("valid");
    let errors = test
        .runtime
        .validate("sleep", r#"{"duration": "soon"}"#)
        .await
        .expect("the check runs")
        .expect_err("not a duration");
    assert_eq!(errors[0].path, "duration");
    let error = test
        .runtime
        .validate("transcode", "{}")
        .await
        .expect_err("no plugin serves it");
    assert_eq!(error.code, TaskErrorCode::UnknownTaskType);
}

#[tokio::test]
async fn an_invalid_spec_fails_as_invalid_input_with_paths() {
    let test = echo_runtime().await;
    let run = test
        .run("echo", r#"{"message": "hi", "colour": "red"}"#)
        .await;
    let error = run.outcome.expect_err("unknown field");
    assert_eq!(error.code, TaskErrorCode::InvalidInput);
    assert!(
        error.details[0].message.contains("unknown field `colour`"),
        "{error}"
    );
    assert!(!error.is_retryable());

    let run = test.run("echo", r#"{"message": 5}"#).await;
    let error = run.outcome.expect_err("wrong type");
    assert_eq!(error.details[0].path, "message");
}

#[tokio::test]
async fn sleep_waits_and_reports_progress_and_logs() {
    let test = echo_runtime().await;
    let (run, events) = test
        .run_with(
            "sleep",
            r#"{"duration": "200ms"}"#,
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(output(&run)["sleptMs"], 200);
    assert!(run.elapsed >= Duration::from_millis(200));
    let fractions: Vec<f32> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::Progress { fraction, .. } => Some(*fraction),
            TaskEvent::Log { .. } => None,
        })
        .collect();
    assert_eq!(fractions.len(), 20);
    assert!(fractions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(fractions.last(), Some(&1.0));
    assert!(events.iter().any(|e| matches!(
        e,
        TaskEvent::Log { stream: LogStream::Plugin, message, .. } if message == "sleeping for 200ms"
    )));
}

#[tokio::test]
async fn a_task_type_no_plugin_serves_fails_clearly() {
    let test = echo_runtime().await;
    let run = test.run("transcode", "{}").await;
    let error = run.outcome.expect_err("unknown");
    assert_eq!(error.code, TaskErrorCode::UnknownTaskType);
    assert!(error.message.contains("\"transcode\""), "{error}");
}

#[tokio::test]
async fn many_tasks_run_side_by_side() {
    let test = std::sync::Arc::new(echo_runtime().await);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let test = test.clone();
            tokio::spawn(async move {
                let kind = if i % 2 == 0 { "sleep" } else { "echo" };
                let spec = if i % 2 == 0 {
                    r#"{"duration": "100ms"}"#.to_string()
                } else {
                    format!(r#"{{"message": "task {i}"}}"#)
                };
                (i, test.run(kind, &spec).await)
            })
        })
        .collect();
    for task in tasks {
        let (i, run) = task.await.expect("task");
        let out = output(&run);
        if i % 2 == 1 {
            assert_eq!(out["message"], format!("task {i}"));
        }
    }
}
