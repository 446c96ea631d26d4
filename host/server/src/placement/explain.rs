//! Why a pending task is not running, in words and counts.

use std::collections::HashMap;

use flowmesh_types::api::{PlacementCounts, WaitKind, Waiting};

use super::{Ask, Candidate, Constraint};
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

/// The refusals a reason names, one per worker at most; the other refused
/// workers are counted.
const MAX_REASONS: usize = 8;

/// Why a task asking `ask` waits at `now`, given the live workers and what
/// they run; `None` when some worker may run it now (it is about to be
/// claimed). `provider` is the plugin that serves the task type, from the
/// server's catalog, to say why workers do not advertise it.
///
/// The workers go through [`Constraint::ALL`] in order; each constraint
/// keeps those it accepts, and the first that keeps none names the case,
/// with each refused worker's reason once.
pub fn explain(
    ask: &Ask<'_>,
    provider: Option<&str>,
    workers: &[WorkerRecord],
    usage: &HashMap<String, Usage>,
    now: i64,
) -> Option<Waiting> {
    let mut counts = PlacementCounts {
        live_workers: workers.len() as u32,
        ..PlacementCounts::default()
    };
    let mut left: Vec<Candidate<'_>> = workers
        .iter()
        .map(|worker| Candidate {
            worker,
            usage: usage.get(&worker.id).copied().unwrap_or_default(),
        })
        .collect();
    let mut hardware_reasons = Vec::new();
    let mut with_labels = 0;
    for constraint in Constraint::ALL {
        let before = left.len();
        let mut reasons: Vec<String> = Vec::new();
        let mut undescribed = 0;
        left.retain(|candidate| {
            let describe = reasons.len() < MAX_REASONS;
            match constraint.judge(ask, candidate, now, describe) {
                Ok(()) => true,
                Err(refusal) => {
                    if !describe {
                        undescribed += 1;
                    } else if !reasons.contains(&refusal.reason) {
                        reasons.push(refusal.reason);
                    }
                    false
                }
            }
        });
        if undescribed > 0 {
            reasons.push(format!("{undescribed} other worker(s) likewise"));
        }
        match constraint {
            Constraint::TaskType => counts.advertising_type = left.len() as u32,
            Constraint::Pool => counts.in_pool = left.len() as u32,
            Constraint::Labels => {
                counts.with_labels = left.len() as u32;
                with_labels = left.len();
            }
            Constraint::Gpu => counts.fitting_hardware = left.len() as u32,
            Constraint::Capacity => counts.with_free_capacity = left.len() as u32,
            _ => {}
        }
        // The hardware constraints are one case: every shortfall counts.
        if constraint.is_hardware() {
            hardware_reasons.extend(reasons.iter().cloned());
        }
        if !left.is_empty() {
            continue;
        }
        return Some(waiting(
            constraint,
            ask,
            provider,
            workers,
            before,
            with_labels,
            &mut hardware_reasons,
            reasons,
            counts,
        ));
    }
    None
}

/// The waiting reason when `constraint` left none of the `before` workers
/// it was given.
#[allow(clippy::too_many_arguments)]
fn waiting(
    constraint: Constraint,
    ask: &Ask<'_>,
    provider: Option<&str>,
    workers: &[WorkerRecord],
    before: usize,
    with_labels: usize,
    hardware_reasons: &mut Vec<String>,
    reasons: Vec<String>,
    counts: PlacementCounts,
) -> Waiting {
    let task_type = ask.task_type;
    let live = workers.len();
    let (kind, message) = match constraint {
        Constraint::TaskType => (
            WaitKind::NoWorkerForType,
            no_worker_for_type(task_type, provider, workers),
        ),
        // No worker of its pool serves the type: as far as this tenant can
        // tell, none does.
        Constraint::Pool => (
            WaitKind::NoWorkerForType,
            format!(
                "no live worker that may run tenant {}'s tasks advertises task type {task_type:?} ({live} live worker(s), {before} advertise it: {}); {}",
                ask.tenant,
                reasons.join("; "),
                if ask.shared_workers {
                    "start a worker with one of the tenant's worker tokens, or a shared one"
                } else {
                    "start a worker with one of the tenant's worker tokens"
                }
            ),
        ),
        Constraint::Labels => (
            WaitKind::MissingLabels,
            format!(
                "{live} live worker(s); {before} advertise task type {task_type:?}, but none carries the labels it requires: {}",
                reasons.join("; ")
            ),
        ),
        Constraint::Cpu | Constraint::Memory | Constraint::Gpu => {
            hardware_reasons.sort();
            hardware_reasons.dedup();
            (
                WaitKind::InsufficientHardware,
                format!(
                    "{live} live worker(s); {} advertise task type {task_type:?}{}, but none has the hardware: {}",
                    counts.advertising_type,
                    labelled(ask, with_labels),
                    hardware_reasons.join("; ")
                ),
            )
        }
        Constraint::Backoff => (
            WaitKind::RetryBackoff,
            format!("{}; then it is queued again", reasons.join("; ")),
        ),
        Constraint::Avoid => (
            WaitKind::RetryBackoff,
            format!(
                "{}; no other worker that can run task type {task_type:?} is live",
                reasons.join("; ")
            ),
        ),
        Constraint::TenantLimit => (
            WaitKind::TenantLimit,
            format!(
                "{}; it starts when one of them ends",
                reasons.first().cloned().unwrap_or_default()
            ),
        ),
        Constraint::Capacity => (
            WaitKind::WorkersBusy,
            format!(
                "all {before} worker(s) that can run task type {task_type:?} are busy: their slots or hardware are in use"
            ),
        ),
    };
    Waiting {
        kind,
        message,
        counts,
    }
}

/// ", 2 of them with its labels" when the task requires labels.
fn labelled(ask: &Ask<'_>, with_labels: usize) -> String {
    if ask.labels.is_empty() {
        String::new()
    } else {
        let labels: Vec<String> = ask
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!(", {with_labels} of them carry {}", labels.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use flowmesh_types::WorkerCapabilities;
    use flowmesh_types::api::{GpuDevice, Hardware, WorkerState};
    use flowmesh_types::document::{GpuRequest, HardwareRequest};

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
            read_ahead: 0,
            version: "test".into(),
            registered_at: 0,
            heartbeat_at: 0,
            token_id: None,
            pool_tenant: None,
            served: flowmesh_types::api::ServedTypes {
                types: types
                    .iter()
                    .map(|task_type| {
                        let plugin = flowmesh_types::api::PluginRef {
                            name: task_type.to_string(),
                            version: "1.0.0".into(),
                            digest: format!("sha256:{task_type}"),
                            local: false,
                        };
                        (task_type.to_string(), plugin)
                    })
                    .collect(),
                refused: Vec::new(),
            },
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

    fn ask<'a>(task_type: &'a str, request: &'a HardwareRequest) -> Ask<'a> {
        static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
        Ask {
            tenant: "alpha",
            shared_workers: true,
            task_type,
            labels: &NO_LABELS,
            hardware: request,
            run_after: 0,
            avoid: None,
            running_limit: None,
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
            &ask("train", &request(0, 0, None)),
            None,
            &workers,
            &HashMap::new(),
            0,
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
            &ask("train", &request(0, 1, Some("H100"))),
            None,
            &workers,
            &HashMap::new(),
            0,
        )
        .expect("cannot run");
        assert_eq!(waiting.kind, WaitKind::InsufficientHardware);
        assert!(
            waiting.message.contains("1 GPU(s) of type H100"),
            "{}",
            waiting.message
        );
        let waiting = explain(
            &ask("train", &request(1 << 40, 0, None)),
            None,
            &workers,
            &HashMap::new(),
            0,
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
                &ask("train", &request(0, 1, Some("a100"))),
                None,
                &workers,
                &HashMap::new(),
                0
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
            &ask("echo", &request(0, 0, None)),
            None,
            &workers,
            &usage,
            0,
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
                &ask("echo", &request(0, 0, None)),
                None,
                &workers,
                &usage,
                0
            )
            .is_none()
        );
    }

    #[test]
    fn labels_are_counted_and_named() {
        let mut eu = worker("eu-1", &["echo"], 1, Vec::new());
        eu.labels.insert("zone".into(), "eu".into());
        let workers = [eu, worker("us-1", &["echo"], 1, Vec::new())];
        let labels = BTreeMap::from([("zone".to_string(), "ap".to_string())]);
        let hardware = request(0, 0, None);
        let asked = Ask {
            labels: &labels,
            ..ask("echo", &hardware)
        };
        let waiting = explain(&asked, None, &workers, &HashMap::new(), 0).expect("no label");
        assert_eq!(waiting.kind, WaitKind::MissingLabels);
        assert_eq!(waiting.counts.advertising_type, 2);
        assert_eq!(waiting.counts.with_labels, 0);
        assert!(
            waiting.message.contains("eu-1 lacks zone=ap"),
            "{}",
            waiting.message
        );
        let labels = BTreeMap::from([("zone".to_string(), "eu".to_string())]);
        let huge = request(1 << 40, 0, None);
        let asked = Ask {
            labels: &labels,
            ..ask("echo", &huge)
        };
        let waiting = explain(&asked, None, &workers, &HashMap::new(), 0).expect("too big");
        assert_eq!(waiting.counts.with_labels, 1);
        assert!(
            waiting
                .message
                .contains("2 advertise task type \"echo\", 1 of them carry zone=eu"),
            "{}",
            waiting.message
        );
    }

    #[test]
    fn workers_of_other_pools_are_named_and_counted() {
        let mut beta = worker("beta-1", &["echo"], 1, Vec::new());
        beta.pool_tenant = Some("beta".into());
        let shared = worker("shared-1", &["echo"], 1, Vec::new());
        let hardware = request(0, 0, None);
        let own_only = Ask {
            shared_workers: false,
            ..ask("echo", &hardware)
        };
        let workers = [beta.clone(), shared.clone()];
        let waiting = explain(&own_only, None, &workers, &HashMap::new(), 0).expect("no pool");
        assert_eq!(waiting.kind, WaitKind::NoWorkerForType);
        assert_eq!(waiting.counts.advertising_type, 2);
        assert_eq!(waiting.counts.in_pool, 0);
        for said in [
            "beta-1 runs only tenant beta's tasks",
            "shared-1 is a shared worker, and tenant alpha's tasks run only on its own workers",
        ] {
            assert!(waiting.message.contains(said), "{}", waiting.message);
        }
        assert!(
            explain(&ask("echo", &hardware), None, &workers, &HashMap::new(), 0).is_none(),
            "a tenant that allows shared workers is served by shared-1"
        );
        let mut alpha = beta;
        alpha.pool_tenant = Some("alpha".into());
        assert!(explain(&own_only, None, &[alpha, shared], &HashMap::new(), 0).is_none());
    }

    #[test]
    fn a_thousand_refusals_name_a_few_workers_and_count_the_rest() {
        let workers: Vec<WorkerRecord> = (0..1000)
            .map(|n| {
                let mut worker = worker(&format!("beta-{n}"), &["echo"], 1, Vec::new());
                worker.pool_tenant = Some("beta".into());
                worker
            })
            .collect();
        let hardware = request(0, 0, None);
        let waiting = explain(&ask("echo", &hardware), None, &workers, &HashMap::new(), 0)
            .expect("no worker of the pool");
        assert_eq!(waiting.counts.advertising_type, 1000);
        assert_eq!(waiting.counts.in_pool, 0);
        let named = (0..1000)
            .filter(|n| waiting.message.contains(&format!("beta-{n} runs")))
            .count();
        assert_eq!(named, MAX_REASONS, "{}", waiting.message);
        assert!(
            waiting.message.contains("992 other worker(s) likewise"),
            "{}",
            waiting.message
        );
    }

    #[test]
    fn the_worker_an_attempt_failed_on_is_passed_over_and_said_so() {
        let workers = [worker("a", &["echo"], 1, Vec::new())];
        let hardware = request(0, 0, None);
        let asked = Ask {
            avoid: Some(("a", 90_000)),
            ..ask("echo", &hardware)
        };
        let waiting = explain(&asked, None, &workers, &HashMap::new(), 0).expect("avoided");
        assert_eq!(waiting.kind, WaitKind::RetryBackoff);
        assert!(
            waiting
                .message
                .contains("failed on a, which is passed over for another 1m 30s"),
            "{}",
            waiting.message
        );
        assert!(
            explain(&asked, None, &workers, &HashMap::new(), 90_000).is_none(),
            "the time out is over"
        );
        let two = [workers[0].clone(), worker("b", &["echo"], 1, Vec::new())];
        assert!(
            explain(&asked, None, &two, &HashMap::new(), 0).is_none(),
            "another worker takes it"
        );
        let asked = Ask {
            run_after: 5_000,
            ..ask("echo", &hardware)
        };
        let waiting = explain(&asked, None, &two, &HashMap::new(), 0).expect("backoff");
        assert_eq!(waiting.kind, WaitKind::RetryBackoff);
        assert!(waiting.message.contains("5s"), "{}", waiting.message);
    }
}
