//! The containers capability on the real Docker daemon: the `container`
//! plugin runs the test image (busybox, built `FROM scratch`) through
//! `flowmesh:host/containers`, and every test checks that none of its
//! containers is left afterwards.

use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use flowmesh_containers::{DockerConfig, DockerProbe, ImagePolicy, MANAGED_LABEL, WORKER_LABEL};
use flowmesh_runtime::{Probe, TaskLimits, TaskRun};
use flowmesh_tests::docker::{
    TEST_IMAGE, assert_no_containers_left, container_runtime, containers_of, docker_config,
    test_image,
};
use flowmesh_tests::{TestRuntime, cancel_after, components, failure, log_lines, output};
use flowmesh_types::{LogStream, TaskErrorCode, TaskEvent};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Runs a `container` task with `spec` (the image added) and `limits`.
async fn run(
    test: &TestRuntime,
    mut spec: serde_json::Value,
    limits: TaskLimits,
    cancel: CancellationToken,
) -> (TaskRun, Vec<TaskEvent>) {
    if spec.get("image").is_none() {
        spec["image"] = json!(TEST_IMAGE);
    }
    test.run_with("container", &spec.to_string(), limits, cancel)
        .await
}

#[tokio::test]
async fn a_container_runs_with_its_env_and_workdir_and_its_output_streams_into_the_log() {
    let config = docker_config("output");
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    let spec = json!({
        "command": ["sh", "-c", "echo \"$GREETING from $(pwd)\"; echo warning >&2; echo kept > /scratch/f; cat /scratch/f"],
        "env": {"GREETING": "hello"},
        "workdir": "/scratch",
    });
    let (run, events) = run(&test, spec, TaskLimits::default(), CancellationToken::new()).await;
    let out = output(&run);
    assert_eq!(out["exitCode"], 0, "{out}");
    assert_eq!(
        log_lines(&events, LogStream::Stdout),
        ["hello from /scratch", "kept"],
        "{events:?}"
    );
    assert_eq!(log_lines(&events, LogStream::Stderr), ["warning"]);
    let host = log_lines(&events, LogStream::Host);
    assert!(
        host.iter().any(|line| line.contains("exited with code 0")),
        "{host:?}"
    );
    assert_no_containers_left(&owner).await;
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_task_with_its_code() {
    let config = docker_config("exit");
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    let spec = json!({"command": ["sh", "-c", "exit 3"]});
    let (run, _) = run(&test, spec, TaskLimits::default(), CancellationToken::new()).await;
    assert_eq!(
        failure(&run),
        (
            TaskErrorCode::Failed,
            "the container exited with code 3".into()
        )
    );
    assert_no_containers_left(&owner).await;
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_killed() {
    let config = docker_config("memory");
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    // The string doubles until the 32 MiB limit (no swap) kills the shell.
    let spec = json!({"command": ["sh", "-c", "x=0123456789; while true; do x=$x$x; done"]});
    let limits = TaskLimits {
        container_memory_bytes: 32 << 20,
        ..TaskLimits::default()
    };
    let (run, _) = run(&test, spec, limits, CancellationToken::new()).await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Failed);
    assert!(
        message.contains("more memory than its limit") && message.contains("137"),
        "{message}"
    );
    assert_no_containers_left(&owner).await;
}

#[tokio::test]
async fn a_container_past_its_own_timeout_is_killed() {
    let config = docker_config("timeout");
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    test.load("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    let spec = json!({"image": TEST_IMAGE, "command": ["sleep", "60"], "timeout_ms": 1000});
    let run = test.run("uses-containers", &spec.to_string()).await;
    assert_eq!(
        failure(&run),
        (TaskErrorCode::Failed, "ContainerError::TimedOut".into()),
        "the request's timeout-ms ends the container"
    );
    assert_no_containers_left(&owner).await;
}

#[tokio::test]
async fn a_task_past_its_deadline_or_cancelled_leaves_no_container() {
    let config = docker_config("cancel");
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    let spec = json!({"command": ["sleep", "60"]});
    let (run_cancelled, events) = run(
        &test,
        spec.clone(),
        TaskLimits::default(),
        // Long enough for the container to have started on a loaded machine.
        cancel_after(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(failure(&run_cancelled).0, TaskErrorCode::Cancelled);
    assert!(
        log_lines(&events, LogStream::Host)
            .iter()
            .any(|line| line.contains(&format!("started from {TEST_IMAGE}"))),
        "the container had started: {events:?}"
    );
    let limits = TaskLimits {
        timeout: Duration::from_secs(1),
        ..TaskLimits::default()
    };
    let (run_late, _) = run(&test, spec, limits, CancellationToken::new()).await;
    assert_eq!(failure(&run_late).0, TaskErrorCode::Timeout);
    assert_no_containers_left(&owner).await;
}

#[tokio::test]
async fn an_image_off_the_allow_list_or_a_network_request_is_refused() {
    let mut config = docker_config("policy");
    config.images = ImagePolicy::new(["ghcr.io/acme/*"]);
    let owner = config.owner.clone();
    let test = container_runtime(config).await;
    let (run_image, _) = run(
        &test,
        json!({"command": ["true"]}),
        TaskLimits::default(),
        CancellationToken::new(),
    )
    .await;
    let (code, message) = failure(&run_image);
    assert_eq!(code, TaskErrorCode::Failed);
    assert_eq!(
        message,
        "image flowmesh-test/busybox:1 is not allowed on this worker (allowed: ghcr.io/acme/*); add it with --allow-image"
    );

    let (run_network, _) = run(
        &test,
        json!({"image": "ghcr.io/acme/app:1", "network": true}),
        TaskLimits::default(),
        CancellationToken::new(),
    )
    .await;
    let error = run_network.outcome.expect_err("refused");
    assert_eq!(error.code, TaskErrorCode::InvalidInput);
    assert_eq!(error.details[0].path, "network", "{error:?}");
    assert!(
        error.details[0].message.contains("--allow-network"),
        "{error:?}"
    );
    assert!(containers_of(&owner).await.is_empty());
}

#[tokio::test]
async fn an_image_missing_on_the_worker_is_not_pulled() {
    let mut config = docker_config("missing");
    config.images = ImagePolicy::new(["flowmesh-test/absent*"]);
    let test = container_runtime(config).await;
    let (run, _) = run(
        &test,
        json!({"image": "flowmesh-test/absent:1"}),
        TaskLimits::default(),
        CancellationToken::new(),
    )
    .await;
    let (code, message) = failure(&run);
    assert_eq!(code, TaskErrorCode::Failed);
    assert!(
        message.contains("is not on this worker and images are not pulled"),
        "{message}"
    );
}

#[tokio::test]
async fn the_first_probe_removes_containers_an_earlier_run_left_behind() {
    test_image();
    let config = docker_config("reap");
    let owner = config.owner.clone();
    let docker = Docker::connect_with_local_defaults().expect("docker client");
    let leftover = docker
        .create_container(
            None,
            ContainerCreateBody {
                image: Some(TEST_IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "60".into()]),
                labels: Some(
                    [
                        (MANAGED_LABEL.to_string(), "true".to_string()),
                        (WORKER_LABEL.to_string(), owner.clone()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .expect("creating a container");
    docker
        .start_container(&leftover.id, None)
        .await
        .expect("starting it");
    assert_eq!(containers_of(&owner).await, [leftover.id]);

    DockerProbe::new(config)
        .probe()
        .await
        .expect("the daemon answers");
    assert!(containers_of(&owner).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_daemon_is_reported_with_its_address() {
    let mut config = DockerConfig::new("test-unreachable");
    config.host = Some("unix:///nonexistent/docker.sock".into());
    let error = match DockerProbe::new(config).probe().await {
        Ok(_) => panic!("no daemon there"),
        Err(error) => error,
    };
    assert!(
        error.starts_with("cannot reach the Docker daemon at unix:///nonexistent/docker.sock: "),
        "{error}"
    );
}
