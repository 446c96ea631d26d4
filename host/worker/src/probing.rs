//! Capability probing: once before the worker registers, then every probe
//! interval while it runs.
//!
//! Each [`Probe`] looks for its resource (a Docker daemon, GPUs, a model
//! endpoint) and its outcome goes to [`Runtime::apply_probe`], which links
//! the plugins again when a capability appeared or disappeared. A change
//! makes the worker heartbeat at once, so the server stops routing a type the
//! worker lost (or starts routing one it gained) within one probe interval.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_runtime::{Probe, Runtime};
use tokio::sync::Notify;

/// How long one probe may take before its capability counts as absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every probe once and applies the outcomes; whether anything changed.
pub(crate) async fn probe_all(runtime: &Runtime, probes: &[Arc<dyn Probe>]) -> bool {
    let outcomes = futures::future::join_all(probes.iter().map(|probe| async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe.probe()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the probe did not answer within {}",
                humantime::format_duration(PROBE_TIMEOUT)
            )),
        };
        (probe.kind(), outcome)
    }))
    .await;
    let mut changed = false;
    for (kind, outcome) in outcomes {
        changed |= runtime.apply_probe(kind, outcome).await;
    }
    changed
}

/// Probes every `interval`, and wakes the heartbeat when something changed.
pub(crate) async fn probe_loop(
    runtime: Arc<Runtime>,
    probes: Vec<Arc<dyn Probe>>,
    interval: Duration,
    beat_now: Arc<Notify>,
) {
    loop {
        tokio::time::sleep(interval).await;
        if probe_all(&runtime, &probes).await {
            beat_now.notify_one();
        }
    }
}
