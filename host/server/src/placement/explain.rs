//! Why a pending task is not running.
//!
//! Like Nomad's feasibility checkers, placement is a chain of small checks,
//! each narrowing the live workers and each with its own reason: does the
//! worker advertise the task type; could its hardware hold the request at
//! all; does it have a slot and the hardware free now. The first check that
//! leaves no worker names the case, and the counts show how far each got.
//! The claim applies the same checks in SQL; this module explains them.

use std::collections::{BTreeMap, HashMap};

use flowmesh_types::api::{PlacementCounts, WaitKind, Waiting};
use flowmesh_types::document::HardwareRequest;
use flowmesh_types::format_bytes;

use crate::store::{Usage, WorkerRecord};

/// Why no live worker advertises `task_type`, for a task's waiting reason
/// and a refused fail-fast submission. When the plugin that provides it
/// (`provider`, from the server's catalog) is installed on workers that
/// cannot run it, their reasons are the answer: the missing capability and
/// its probe's error, grouped by reason.
pub fn no_worker_for_type(
    task_type: &str,
    provider: Option<&str>,
    workers: &[WorkerRecord],
) -> String {
    if workers.is_empty() {
        return format!(
            "no live worker advertises task type {task_type:?}: no worker is connected"
        );
    }
    // Each reason once, with its workers, in the order first seen.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    if let Some(provider) = provider {
        for worker in workers {
            let reason = worker
                .capabilities
                .plugins
                .iter()
                .find(|plugin| plugin.name == provider)
                .and_then(|plugin| plugin.reason.as_deref());
            let Some(reason) = reason else { continue };
            match reasons.iter_mut().find(|(seen, _)| *seen == reason) {
                Some((_, names)) => names.push(&worker.name),
                None => reasons.push((reason, vec![&worker.name])),
            }
        }
    }
    let live = workers.len();
    match provider {
        Some(provider) if !reasons.is_empty() => {
            let reasons: Vec<String> = reasons
                .into_iter()
                .map(|(reason, names)| {
                    format!("on {}, plugin {provider:?} {reason}", names.join(", "))
                })
                .collect();
            format!(
                "no live worker advertises task type {task_type:?} ({live} live worker(s)): {}",
                reasons.join("; ")
            )
        }
        _ => format!(
            "no live worker advertises task type {task_type:?} ({live} live worker(s); install the plugin that provides it, or start a worker with the capability it needs)"
        ),
    }
}

/// Why a task with this type and request waits, given the live workers and
/// what they run; `None` when some worker has room for it now (it is about to
/// be claimed).
pub fn explain(
    task_type: &str,
    provider: Option<&str>,
    labels: &BTreeMap<String, String>,
    request: &HardwareRequest,
    workers: &[WorkerRecord],
    usage: &HashMap<String, Usage>,
) -> Option<Waiting> {
    let mut counts = PlacementCounts {
        live_workers: workers.len() as u32,
        ..PlacementCounts::default()
    };
    let advertising: Vec<&WorkerRecord> = workers
        .iter()
        .filter(|worker| worker.capabilities.supports(task_type))
        .collect();
    counts.advertising_type = advertising.len() as u32;
    if advertising.is_empty() {
        return Some(Waiting {
            kind: WaitKind::NoWorkerForType,
            message: no_worker_for_type(task_type, provider, workers),
            counts,
        });
    }
    let labelled: Vec<&WorkerRecord> = advertising
        .iter()
        .copied()
        .filter(|worker| missing_labels(labels, worker).is_empty())
        .collect();
    if labelled.is_empty() {
        let missing: Vec<String> = advertising
            .iter()
            .map(|worker| {
                format!(
                    "{} lacks {}",
                    worker.name,
                    missing_labels(labels, worker).join(", ")
                )
            })
            .collect();
        return Some(Waiting {
            kind: WaitKind::MissingLabels,
            message: format!(
                "{} worker(s) advertise task type {task_type:?}, but none carries the labels it requires: {}",
                advertising.len(),
                missing.join("; ")
            ),
            counts,
        });
    }
    let mut shortfalls = Vec::new();
    let fitting: Vec<&&WorkerRecord> = labelled
        .iter()
        .filter(|worker| match hardware_shortfall(request, worker) {
            None => true,
            Some(shortfall) => {
                shortfalls.push(shortfall);
                false
            }
        })
        .collect();
    counts.fitting_hardware = fitting.len() as u32;
    if fitting.is_empty() {
        shortfalls.sort();
        shortfalls.dedup();
        return Some(Waiting {
            kind: WaitKind::InsufficientHardware,
            message: format!(
                "{} worker(s) advertise task type {task_type:?}, but none has the hardware: {}",
                labelled.len(),
                shortfalls.join("; ")
            ),
            counts,
        });
    }
    counts.with_free_capacity = fitting
        .iter()
        .filter(|worker| has_room(request, worker, usage.get(&worker.id)))
        .count() as u32;
    if counts.with_free_capacity > 0 {
        return None;
    }
    Some(Waiting {
        kind: WaitKind::WorkersBusy,
        message: format!(
            "all {} worker(s) that can run task type {task_type:?} are busy: their slots or hardware are in use",
            fitting.len()
        ),
        counts,
    })
}

/// The required labels `worker` does not carry with the required value, as
/// `key=value`.
fn missing_labels(labels: &BTreeMap<String, String>, worker: &WorkerRecord) -> Vec<String> {
    labels
        .iter()
        .filter(|(key, value)| worker.labels.get(*key) != Some(*value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// What the worker's hardware lacks for the request even when idle, in words.
fn hardware_shortfall(request: &HardwareRequest, worker: &WorkerRecord) -> Option<String> {
    let hardware = &worker.hardware;
    if request.cpu_millis() > hardware.cpu_millis() {
        return Some(format!(
            "needs cpu {} but the largest has {}",
            request.cpu, hardware.cpus
        ));
    }
    if request.memory_bytes > hardware.memory_bytes {
        return Some(format!(
            "needs memory {} but {} has {}",
            format_bytes(request.memory_bytes),
            worker.name,
            format_bytes(hardware.memory_bytes)
        ));
    }
    let gpu = &request.gpu;
    if gpu.count > 0 {
        let matching = hardware
            .gpus
            .iter()
            .filter(|device| gpu.fits(&device.model, device.memory_bytes))
            .count();
        if (matching as u32) < gpu.count {
            let mut wanted = format!("{} GPU(s)", gpu.count);
            if let Some(model) = &gpu.model {
                wanted.push_str(&format!(" of type {model}"));
            }
            if gpu.memory_bytes > 0 {
                wanted.push_str(&format!(" with {} each", format_bytes(gpu.memory_bytes)));
            }
            return Some(format!(
                "needs {wanted} but {} has {matching} such GPU(s)",
                worker.name
            ));
        }
    }
    None
}

/// Whether the worker has a slot and the hardware free for the request now.
fn has_room(request: &HardwareRequest, worker: &WorkerRecord, usage: Option<&Usage>) -> bool {
    let usage = usage.copied().unwrap_or_default();
    let hardware = &worker.hardware;
    usage.tasks < worker.slots
        && request.cpu_millis() <= hardware.cpu_millis() - usage.cpu_millis
        && request.memory_bytes as i64 <= hardware.memory_bytes as i64 - usage.memory_bytes
        && i64::from(request.gpu.count) <= hardware.gpus.len() as i64 - usage.gpus
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use flowmesh_types::WorkerCapabilities;
    use flowmesh_types::api::{GpuDevice, Hardware, WorkerState};
    use flowmesh_types::document::GpuRequest;

    use super::*;

    fn worker(name: &str, types: &[&str], slots: u32, gpus: Vec<GpuDevice>) -> WorkerRecord {
        WorkerRecord {
            id: name.to_string(),
            name: name.to_string(),
            state: WorkerState::Live,
            capabilities: WorkerCapabilities {
                supported_task_types: types.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>(),
                plugins: Vec::new(),
                capabilities: Vec::new(),
            },
            hardware: Hardware {
                cpus: 4.0,
                memory_bytes: 8 << 30,
                gpus,
            },
            labels: BTreeMap::new(),
            slots,
            version: "test".into(),
            registered_at: 0,
            heartbeat_at: 0,
        }
    }

    fn request(memory_bytes: u64, gpus: u32, model: Option<&str>) -> HardwareRequest {
        HardwareRequest {
            cpu: 1.0,
            memory_bytes,
            gpu: GpuRequest {
                count: gpus,
                model: model.map(str::to_string),
                memory_bytes: 0,
            },
        }
    }

    #[test]
    fn workers_that_cannot_run_the_providing_plugin_give_their_reasons() {
        let unavailable = |name: &str, reason: &str| {
            let mut worker = worker(name, &["echo"], 1, Vec::new());
            worker
                .capabilities
                .plugins
                .push(flowmesh_types::PluginReport {
                    name: "container".into(),
                    version: None,
                    digest: "sha256:00".into(),
                    status: flowmesh_types::PluginStatus::Unavailable,
                    reason: Some(reason.into()),
                    imports: Vec::new(),
                    manifest: None,
                });
            worker
        };
        let workers = [
            unavailable("a", "imports containers: no Docker capability: refused"),
            unavailable("b", "imports containers: no Docker capability: refused"),
            unavailable("c", "imports containers: no Docker capability: no socket"),
        ];
        assert_eq!(
            no_worker_for_type("container", Some("container"), &workers),
            "no live worker advertises task type \"container\" (3 live worker(s)): on a, b, plugin \"container\" imports containers: no Docker capability: refused; on c, plugin \"container\" imports containers: no Docker capability: no socket"
        );
        assert!(
            no_worker_for_type("train", None, &workers).contains("install the plugin"),
            "no provider: the generic advice"
        );
    }

    #[test]
    fn no_worker_advertising_the_type_is_the_first_reason() {
        let workers = [worker("a", &["echo"], 1, Vec::new())];
        let waiting = explain(
            "train",
            None,
            &BTreeMap::new(),
            &request(0, 0, None),
            &workers,
            &HashMap::new(),
        )
        .expect("cannot run");
        assert_eq!(waiting.kind, WaitKind::NoWorkerForType);
        assert_eq!(waiting.counts.live_workers, 1);
        assert_eq!(waiting.counts.advertising_type, 0);
    }

    #[test]
    fn missing_hardware_names_the_constraint() {
        let a100 = GpuDevice {
            index: 0,
            model: "NVIDIA A100-SXM4-40GB".into(),
            memory_bytes: 40 << 30,
        };
        let workers = [worker("gpu-box", &["train"], 1, vec![a100])];
        let waiting = explain(
            "train",
            None,
            &BTreeMap::new(),
            &request(0, 1, Some("H100")),
            &workers,
            &HashMap::new(),
        )
        .expect("cannot run");
        assert_eq!(waiting.kind, WaitKind::InsufficientHardware);
        assert!(
            waiting.message.contains("1 GPU(s) of type H100"),
            "{}",
            waiting.message
        );
        let waiting = explain(
            "train",
            None,
            &BTreeMap::new(),
            &request(1 << 40, 0, None),
            &workers,
            &HashMap::new(),
        )
        .expect("cannot run");
        assert!(
            waiting
                .message
                .contains("needs memory 1.0 TiB but gpu-box has 8.0 GiB"),
            "{}",
            waiting.message
        );
        assert!(
            explain(
                "train",
                None,
                &BTreeMap::new(),
                &request(0, 1, Some("a100")),
                &workers,
                &HashMap::new()
            )
            .is_none()
        );
    }

    #[test]
    fn full_slots_mean_busy_and_a_free_slot_means_no_reason() {
        let workers = [worker("a", &["echo"], 2, Vec::new())];
        let mut usage = HashMap::new();
        usage.insert(
            "a".to_string(),
            Usage {
                tasks: 2,
                ..Usage::default()
            },
        );
        let waiting = explain(
            "echo",
            None,
            &BTreeMap::new(),
            &request(0, 0, None),
            &workers,
            &usage,
        )
        .expect("busy");
        assert_eq!(waiting.kind, WaitKind::WorkersBusy);
        assert_eq!(waiting.counts.fitting_hardware, 1);
        assert_eq!(waiting.counts.with_free_capacity, 0);
        usage.insert(
            "a".to_string(),
            Usage {
                tasks: 1,
                ..Usage::default()
            },
        );
        assert!(
            explain(
                "echo",
                None,
                &BTreeMap::new(),
                &request(0, 0, None),
                &workers,
                &usage
            )
            .is_none()
        );
    }
}
