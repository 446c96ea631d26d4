//! Capability-gated instantiation: a worker advertises exactly the task types
//! of the plugins it can instantiate, and says why it cannot run the others.

use std::sync::Arc;

use flowmesh_runtime::{Capability, HostCapabilities, LoadError};
use flowmesh_tests::stub_containers::StubContainers;
use flowmesh_tests::{TestRuntime, components};
use flowmesh_types::{CapabilityKind, CapabilityStatus, PluginStatus, TaskErrorCode};

#[tokio::test]
async fn a_worker_without_docker_advertises_echo_and_sleep_and_reports_the_containers_plugin_unavailable()
 {
    let test = TestRuntime::new();
    let echo = test.load("echo", components::ECHO).await;
    let gated = test
        .load("uses-containers", components::guests::USES_CONTAINERS)
        .await;

    assert_eq!(echo.status, PluginStatus::Available);
    assert_eq!(gated.status, PluginStatus::Unavailable);
    let reason = gated
        .reason
        .as_deref()
        .expect("an unavailable plugin has a reason");
    assert!(
        reason.starts_with(
            "imports flowmesh:host/containers@0.1.0, which this worker does not provide: no Docker capability"
        ),
        "{reason}"
    );
    assert!(
        gated
            .imports
            .iter()
            .any(|i| i == "flowmesh:host/containers@0.1.0")
    );

    let report = test.runtime.capabilities();
    let types: Vec<&str> = report
        .supported_task_types
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(types, ["echo", "sleep"]);
    assert!(!report.supports("uses-containers"));
    let docker = report
        .capabilities
        .iter()
        .find(|c| c.kind == CapabilityKind::Containers)
        .expect("every capability kind is reported");
    assert_eq!(docker.status, CapabilityStatus::Absent);
    assert_eq!(report.plugin("uses-containers"), Some(&gated));
}

#[tokio::test]
async fn a_worker_without_plugins_is_incapable() {
    let test = TestRuntime::new();
    let report = test.runtime.capabilities();
    assert!(report.supported_task_types.is_empty());
    assert_eq!(report.capabilities.len(), CapabilityKind::ALL.len());
}

#[tokio::test]
async fn a_task_of_an_unavailable_plugin_is_not_executed() {
    let test = TestRuntime::new();
    test.load("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    let run = test.run("uses-containers", "{}").await;
    let error = run.outcome.expect_err("no plugin serves the type here");
    assert_eq!(error.code, TaskErrorCode::UnknownTaskType);
    assert!(run.plugin.is_none());
}

#[tokio::test]
async fn removing_a_plugin_withdraws_its_task_types() {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    assert!(test.runtime.remove_plugin("echo"));
    assert!(test.runtime.capabilities().supported_task_types.is_empty());
    assert!(!test.runtime.remove_plugin("echo"));
}

#[tokio::test]
async fn a_second_plugin_declaring_the_same_task_type_is_unavailable() {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    let copy = test.load("echo-copy", components::ECHO).await;
    assert_eq!(copy.status, PluginStatus::Unavailable);
    let reason = copy.reason.expect("reason");
    assert!(
        reason.contains("already provided by plugin \"echo\""),
        "{reason}"
    );
    assert!(test.runtime.capabilities().supports("echo"));
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_rejected() {
    let test = TestRuntime::new();
    let error = test
        .runtime
        .load_plugin("junk", b"definitely not wasm".to_vec())
        .await
        .expect_err("not a component");
    assert!(matches!(error, LoadError::Compile(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("not a valid WebAssembly component"),
        "{error}"
    );
    let error = test
        .runtime
        .load_plugin("Bad Name", Vec::new())
        .await
        .expect_err("bad name");
    assert!(matches!(error, LoadError::InvalidName(_)), "{error}");
}

#[tokio::test]
async fn linking_the_containers_interface_makes_the_gated_plugin_available() {
    let capabilities = HostCapabilities::none().with_probe(
        CapabilityKind::Containers,
        Ok(Arc::new(StubContainers::Refuse)),
    );
    let test = TestRuntime::with(capabilities, |_| {});
    let gated = test
        .load("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    assert_eq!(gated.status, PluginStatus::Available, "{:?}", gated.reason);
    let report = test.runtime.capabilities();
    assert!(report.supports("uses-containers"));
    let docker = &report.capabilities[0];
    assert_eq!(docker.status, CapabilityStatus::Available);
    assert_eq!(docker.detail, "test stub: refuses every container");

    let run = test.run("uses-containers", "{}").await;
    let error = run.outcome.expect_err("the daemon refuses");
    assert_eq!(error.code, TaskErrorCode::Failed);
    assert!(
        error
            .message
            .contains("refusing busybox:latest for task test-uses-containers"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_probe_is_reported_with_its_error() {
    let capabilities = HostCapabilities::none().with_probe(
        CapabilityKind::Containers,
        Err("cannot connect to unix:///var/run/docker.sock: connection refused".into()),
    );
    let test = TestRuntime::with(capabilities, |_| {});
    let gated = test
        .load("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    let reason = gated.reason.expect("unavailable");
    assert!(reason.ends_with("no Docker capability: cannot connect to unix:///var/run/docker.sock: connection refused"), "{reason}");
}

#[tokio::test]
async fn a_capability_that_comes_and_goes_relinks_the_plugins_that_import_it() {
    let test = TestRuntime::new();
    let gated = test
        .load("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    assert_eq!(gated.status, PluginStatus::Unavailable);
    assert!(!test.runtime.capabilities().supports("uses-containers"));

    let stub: Arc<dyn Capability> = Arc::new(StubContainers::Refuse);
    assert!(
        test.runtime
            .apply_probe(CapabilityKind::Containers, Ok(stub.clone()))
            .await,
        "the capability appeared"
    );
    let report = test.runtime.capabilities();
    assert!(report.supports("uses-containers"), "{report:?}");
    assert_eq!(report.capabilities[0].status, CapabilityStatus::Available);
    let run = test.run("uses-containers", "{}").await;
    assert!(
        run.outcome
            .expect_err("the stub refuses")
            .message
            .contains("refusing busybox:latest"),
        "the relinked plugin calls the new capability"
    );

    assert!(
        !test
            .runtime
            .apply_probe(CapabilityKind::Containers, Ok(stub))
            .await,
        "the same instance again changes nothing"
    );

    let gone = "cannot connect to unix:///run/docker.sock: connection refused";
    assert!(
        test.runtime
            .apply_probe(CapabilityKind::Containers, Err(gone.into()))
            .await
    );
    let report = test.runtime.capabilities();
    assert!(!report.supports("uses-containers"));
    let plugin = &report.plugins[0];
    assert_eq!(plugin.status, PluginStatus::Unavailable);
    assert!(
        plugin.reason.as_deref().unwrap_or("").ends_with(gone),
        "{plugin:?}"
    );
    assert!(
        !test
            .runtime
            .apply_probe(CapabilityKind::Containers, Err(gone.into()))
            .await,
        "absent for the same reason changes nothing"
    );
}
