//! The GPU capability: NVML as this machine has it (absent without NVIDIA
//! hardware, present on a GPU machine), and exclusive assignment over an
//! inventory of devices from memory ([`FakeGpus`]).

use std::sync::Arc;

use flowmesh_gpu::GpuProbe;
use flowmesh_runtime::{HostCapabilities, Probe, TaskLimits};
use flowmesh_tests::fake_gpus::FakeGpus;
use flowmesh_tests::{TestRuntime, components, output};
use flowmesh_types::{CapabilityKind, GpuRequest, PluginStatus};
use tokio_util::sync::CancellationToken;

fn request(count: u32, model: Option<&str>) -> GpuRequest {
    GpuRequest {
        count,
        model: model.map(str::to_string),
        memory_bytes: 0,
    }
}

async fn runtime_with(gpus: &Arc<FakeGpus>) -> TestRuntime {
    let capability = gpus.probe().probe().await.expect("the fake devices answer");
    let test = TestRuntime::with(
        HostCapabilities::none().with_probe(CapabilityKind::Gpu, Ok(capability)),
        |_| {},
    );
    let report = test.load("uses-gpu", components::guests::USES_GPU).await;
    assert_eq!(report.status, PluginStatus::Available, "{report:?}");
    test
}

#[tokio::test]
async fn nvml_is_probed_for_real_and_its_absence_is_the_reason() {
    let outcome = GpuProbe::new().probe().await;
    if std::path::Path::new("/dev/nvidiactl").exists() {
        let capability = outcome.expect("NVML answers on a machine with an NVIDIA driver");
        assert!(!capability.gpus().is_empty());
        assert!(
            capability.detail().contains("via NVML"),
            "{}",
            capability.detail()
        );
    } else {
        let reason = match outcome {
            Ok(capability) => panic!("NVML answered without a driver: {}", capability.detail()),
            Err(reason) => reason,
        };
        assert!(reason.starts_with("NVML is not available ("), "{reason}");
        // Plugins importing gpu are unavailable, and say why.
        let test = TestRuntime::with(
            HostCapabilities::none().with_probe(CapabilityKind::Gpu, Err(reason.clone())),
            |_| {},
        );
        let report = test.load("uses-gpu", components::guests::USES_GPU).await;
        let why = report.reason.expect("unavailable");
        assert!(
            why.contains("flowmesh:host/gpu") && why.contains(&reason),
            "{why}"
        );
        let error = test
            .runtime
            .assign_gpus(&request(1, None))
            .expect_err("no GPUs to assign");
        assert!(error.contains("NVML is not available"), "{error}");
    }
}

#[tokio::test]
async fn gpus_are_assigned_exclusively_and_come_back_when_the_lease_ends() {
    let gpus = FakeGpus::new(2, "NVIDIA H100 80GB HBM3", 80);
    let test = runtime_with(&gpus).await;
    let runtime = &test.runtime;
    assert_eq!(runtime.capability_gpus().len(), 2);

    let first = runtime.assign_gpus(&request(1, Some("h100"))).expect("one");
    let second = runtime.assign_gpus(&request(1, None)).expect("the other");
    assert_ne!(first.ids(), second.ids());
    let error = runtime
        .assign_gpus(&request(1, None))
        .expect_err("both taken");
    assert!(error.contains("2 assigned to other tasks"), "{error}");
    drop(first);
    let third = runtime.assign_gpus(&request(1, None)).expect("freed");
    drop((second, third));

    // A device used outside FlowMesh is neither assigned nor advertised.
    gpus.set_busy(0, true);
    assert_eq!(runtime.capability_gpus().len(), 1);
    let lease = runtime.assign_gpus(&request(1, None)).expect("device 1");
    assert_eq!(lease.ids(), ["GPU-fake-1"]);
    let error = runtime
        .assign_gpus(&request(1, None))
        .expect_err("0 busy outside, 1 taken");
    assert!(
        error.contains("1 busy with processes outside FlowMesh"),
        "{error}"
    );
    // The device it holds stays advertised while a FlowMesh task uses it.
    assert_eq!(runtime.capability_gpus().len(), 1);
}

#[tokio::test]
async fn a_task_reads_exactly_its_assigned_devices() {
    let gpus = FakeGpus::new(4, "NVIDIA A100-SXM4-80GB", 80);
    let test = runtime_with(&gpus).await;
    let lease = test
        .runtime
        .assign_gpus(&request(2, Some("A100")))
        .expect("two");
    let limits = TaskLimits {
        gpus: lease.ids().to_vec(),
        ..TaskLimits::default()
    };
    let (run, _) = test
        .run_with("uses-gpu", "{}", limits, CancellationToken::new())
        .await;
    assert_eq!(
        output(&run),
        serde_json::json!([
            "GPU-fake-0 NVIDIA A100-SXM4-80GB",
            "GPU-fake-1 NVIDIA A100-SXM4-80GB"
        ])
    );
}
