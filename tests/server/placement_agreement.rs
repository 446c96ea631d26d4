//! The claim SQL and the placement checkers agree, on SQLite and on
//! PostgreSQL.
//!
//! A table of workers (a small CPU box in zone eu, a box with two A100s in
//! zone us, an H100 box whose only slot is taken, a worker with no task
//! types, all shared; an echo box of tenant beta's own and a train box of
//! tenant private's own) × a table of requests (plain, labels that match
//! and that do not, CPU, memory, GPU count, model and memory, a task whose
//! last attempt failed on a worker that is now passed over, a task in its
//! retry delay, and tasks of tenant beta, which allows shared workers, of
//! tenant private, which does not, and of tenant capped, which runs its
//! limit of one task). One more shared worker runs a component of its own
//! that declares the installed types echo, train and translate beside a type
//! nobody installed: it is served only that last one, as a local plugin
//! ([`plugin_identity::served`], by digest), so it never takes an installed
//! type's task, and translate, which no worker runs from the installed
//! component, waits for a worker of its type.
//! For each pair the task is stored alone and claimed by that one worker
//! through the store's SQL; `placement::check` must say the same, and
//! `placement::explain` must say "no reason" exactly when some worker
//! claimed it, and otherwise give the expected kind of reason.

use std::collections::BTreeMap;

use flowmesh_server::config::{TenantPolicies, TenantPolicy};
use flowmesh_server::placement::{self, Ask, Candidate, RunningLimit};
use flowmesh_server::plugin_identity::{self, Installed};
use flowmesh_server::store::PluginRecord;
use flowmesh_server::store::{Claim, NewTask, RetryPolicy, Store};
use flowmesh_tests::cluster::{Db, TestDb};
use flowmesh_tests::store_fixtures::{self as fixtures, TestRegistration, claim_for};
use flowmesh_types::api::{Completion, GpuDevice, Hardware, TaskState, WaitKind};
use flowmesh_types::{
    Manifest, PluginReport, PluginStatus, TaskError, TaskErrorCode, TaskTypeInfo, parse_document,
};

flowmesh_tests::on_both_backends!(the_claim_and_the_checkers_agree_on_every_pair);

const HOUR: i64 = 3_600_000;
const LEASE: i64 = 60_000;

/// How a request's task is prepared before the claims are tried.
#[derive(Clone, Copy)]
enum Setup {
    /// Stored as is.
    Fresh,
    /// Its first attempt failed (retryable) on the A100 box, which is then
    /// passed over for an hour; no retry delay.
    FailedOnA100,
    /// Its first attempt failed (retryable) on the A100 box, with an hour's
    /// retry delay.
    InBackoff,
}

struct Request {
    name: &'static str,
    /// Whose task it is: `t` unless a pool is what the request is about.
    tenant: &'static str,
    task_type: &'static str,
    resources: &'static str,
    setup: Setup,
    /// The waiting kind `explain` gives, `None` for "some worker runs it".
    waits: Option<WaitKind>,
}

fn requests() -> Vec<Request> {
    let request = |name, task_type, resources, waits| Request {
        name,
        tenant: "t",
        task_type,
        resources,
        setup: Setup::Fresh,
        waits,
    };
    vec![
        request("plain echo", "echo", "{}", None),
        request("plain train", "train", "{}", None),
        request(
            "unknown type",
            "render",
            "{}",
            Some(WaitKind::NoWorkerForType),
        ),
        request("label match", "echo", "{labels: {zone: eu}}", None),
        request(
            "label miss",
            "echo",
            "{labels: {zone: ap}}",
            Some(WaitKind::MissingLabels),
        ),
        request(
            "label of a busy worker",
            "echo",
            "{labels: {rack: r7}}",
            Some(WaitKind::WorkersBusy),
        ),
        request("cpu 4", "echo", "{hardware: {cpu: 4}}", None),
        request(
            "cpu 64",
            "echo",
            "{hardware: {cpu: 64}}",
            Some(WaitKind::InsufficientHardware),
        ),
        request(
            "memory 1Ti",
            "echo",
            "{hardware: {memory: 1Ti}}",
            Some(WaitKind::InsufficientHardware),
        ),
        request(
            "cpu 4 in zone eu",
            "echo",
            "{hardware: {cpu: 4}, labels: {zone: eu}}",
            Some(WaitKind::InsufficientHardware),
        ),
        request(
            "one A100",
            "train",
            "{hardware: {gpu: {count: 1, type: a100}}}",
            None,
        ),
        request(
            "two GPUs of 40Gi",
            "train",
            "{hardware: {gpu: {count: 2, memory: 40Gi}}}",
            None,
        ),
        request(
            "one H100",
            "train",
            "{hardware: {gpu: {count: 1, type: H100}}}",
            Some(WaitKind::WorkersBusy),
        ),
        request(
            "three GPUs",
            "train",
            "{hardware: {gpu: {count: 3}}}",
            Some(WaitKind::InsufficientHardware),
        ),
        request(
            "80Gi of GPU memory",
            "train",
            "{hardware: {gpu: {count: 1, memory: 80Gi}}}",
            Some(WaitKind::WorkersBusy),
        ),
        Request {
            tenant: "beta",
            ..request("an echo of tenant beta", "echo", "{}", None)
        },
        Request {
            tenant: "private",
            ..request(
                "an echo of tenant private, which has no echo worker of its own",
                "echo",
                "{}",
                Some(WaitKind::NoWorkerForType),
            )
        },
        Request {
            tenant: "private",
            ..request("a train task of tenant private", "train", "{}", None)
        },
        Request {
            tenant: "capped",
            ..request(
                "an echo of tenant capped, which runs its limit of one task",
                "echo",
                "{}",
                Some(WaitKind::TenantLimit),
            )
        },
        Request {
            tenant: "beta",
            ..request(
                "a train task of tenant beta, on shared workers only",
                "train",
                "{hardware: {gpu: {count: 1, type: a100}}}",
                None,
            )
        },
        request(
            "a type only a worker's own plugin declares",
            "summarize",
            "{}",
            None,
        ),
        request(
            "an installed type that only another component claims to run",
            "translate",
            "{}",
            Some(WaitKind::NoWorkerForType),
        ),
        Request {
            name: "a GPU task whose attempt failed on the A100 box",
            tenant: "t",
            task_type: "train",
            resources: "{hardware: {gpu: {count: 1, type: a100}}}",
            setup: Setup::FailedOnA100,
            waits: Some(WaitKind::RetryBackoff),
        },
        Request {
            name: "an echo whose attempt failed on the A100 box",
            tenant: "t",
            task_type: "echo",
            resources: "{}",
            setup: Setup::FailedOnA100,
            waits: None,
        },
        Request {
            name: "an echo in its retry delay",
            tenant: "t",
            task_type: "echo",
            resources: "{}",
            setup: Setup::InBackoff,
            waits: Some(WaitKind::RetryBackoff),
        },
    ]
}

async fn register(
    store: &Store,
    name: &str,
    types: &[&str],
    labels: &[(&str, &str)],
    slots: u32,
    hardware: Hardware,
) -> String {
    register_in(store, None, name, types, labels, slots, hardware).await
}

/// A worker of tenant `pool`'s own, or a shared one (`None`).
async fn register_in(
    store: &Store,
    pool: Option<&str>,
    name: &str,
    types: &[&str],
    labels: &[(&str, &str)],
    slots: u32,
    hardware: Hardware,
) -> String {
    fixtures::register(
        store,
        TestRegistration {
            name,
            pool,
            types,
            labels,
            slots,
            hardware,
        },
    )
    .await
}

fn manifest(name: &str, types: &[&str]) -> Manifest {
    Manifest {
        name: name.into(),
        version: "1.0.0".into(),
        description: String::new(),
        task_types: types
            .iter()
            .map(|task_type| TaskTypeInfo {
                name: (*task_type).into(),
                description: String::new(),
                spec_schema: serde_json::json!({}),
            })
            .collect(),
    }
}

/// A shared worker whose one plugin, a component of its own, declares the
/// installed types echo, train and translate and the type summarize, which
/// nobody installed; its served types are what the server makes of that
/// report.
async fn register_impostor(store: &Store) -> String {
    let installed: Vec<PluginRecord> = ["echo", "train", "translate"]
        .into_iter()
        .map(|name| PluginRecord {
            name: name.into(),
            version: "1.0.0".into(),
            digest: format!("sha256:{name}"),
            manifest: manifest(name, &[name]),
            imports: Vec::new(),
            installed_at: 0,
        })
        .collect();
    let types = ["echo", "train", "translate", "summarize"];
    let report = PluginReport {
        name: "impostor".into(),
        version: Some("1.0.0".into()),
        digest: "sha256:impostor".into(),
        status: PluginStatus::Available,
        reason: None,
        imports: Vec::new(),
        manifest: Some(manifest("impostor", &types)),
    };
    let served = plugin_identity::served(&[report], &Installed::of(&installed), true);
    assert_eq!(
        served.types.keys().collect::<Vec<_>>(),
        ["summarize"],
        "{served:?}"
    );
    assert!(served.types["summarize"].local);
    fixtures::register_served(
        store,
        TestRegistration {
            name: "impostor",
            pool: None,
            types: &types,
            labels: &[],
            slots: 4,
            hardware: Hardware {
                cpus: 64.0,
                memory_bytes: 1 << 40,
                gpus: vec![gpu(0, "NVIDIA A100-SXM4-80GB", 80); 4],
            },
        },
        &served,
    )
    .await
}

fn gpu(index: u32, model: &str, gib: u64) -> GpuDevice {
    GpuDevice {
        index,
        model: model.into(),
        memory_bytes: gib << 30,
    }
}

async fn submit(store: &Store, task_type: &str, resources: &str, now: i64) -> String {
    submit_as(store, "t", task_type, resources, now).await
}

async fn submit_as(
    store: &Store,
    tenant: &str,
    task_type: &str,
    resources: &str,
    now: i64,
) -> String {
    let yaml = format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: {task_type}, maxAttempts: 5, resources: {resources}}}\n"
    );
    let document = parse_document(&yaml).expect("valid document");
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_task(NewTask {
            id: &id,
            tenant,
            document: &document,
            now,
            stage: None,
        })
        .await
        .expect("stored");
    id
}

/// Ends the one task `worker` holds, with `error` (or success).
async fn finish(
    store: &Store,
    worker: &str,
    claimed: &str,
    lease: &str,
    now: i64,
    policy: &RetryPolicy,
    error: Option<TaskError>,
) {
    let completion = Completion {
        task_id: claimed.to_string(),
        lease_token: lease.to_string(),
        plugin: None,
        elapsed_ms: 1,
        output: error.is_none().then(|| serde_json::json!({"ok": true})),
        error,
    };
    store
        .complete(worker, &[completion], now, policy)
        .await
        .expect("complete");
}

async fn the_claim_and_the_checkers_agree_on_every_pair(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = Store::open(&test_db.url).await.expect("store opens");
    let cpu_small = register(
        &store,
        "cpu-small",
        &["echo"],
        &[("zone", "eu")],
        4,
        Hardware {
            cpus: 2.0,
            memory_bytes: 4 << 30,
            gpus: Vec::new(),
        },
    )
    .await;
    let a100 = register(
        &store,
        "gpu-a100",
        &["echo", "train"],
        &[("zone", "us")],
        4,
        Hardware {
            cpus: 16.0,
            memory_bytes: 64 << 30,
            gpus: vec![
                gpu(0, "NVIDIA A100-SXM4-40GB", 40),
                gpu(1, "NVIDIA A100-SXM4-40GB", 40),
            ],
        },
    )
    .await;
    let h100 = register(
        &store,
        "busy-h100",
        &["echo", "train", "fill"],
        &[("rack", "r7")],
        1,
        Hardware {
            cpus: 8.0,
            memory_bytes: 32 << 30,
            gpus: vec![gpu(0, "NVIDIA H100 80GB HBM3", 80)],
        },
    )
    .await;
    let idle = register(
        &store,
        "no-types",
        &[],
        &[],
        8,
        Hardware {
            cpus: 64.0,
            memory_bytes: 2 << 40,
            gpus: vec![gpu(0, "NVIDIA H100 80GB HBM3", 80); 4],
        },
    )
    .await;
    // The H100 box's only slot holds a task for the whole test.
    let mut now = 2_000;
    submit(&store, "fill", "{}", now).await;
    let (filled, _) = store
        .claim(&claim_for(&h100, 1, 10), now, 100 * HOUR)
        .await
        .expect("claim");
    assert_eq!(filled.len(), 1, "the filler runs on the H100 box");

    let small = Hardware {
        cpus: 4.0,
        memory_bytes: 8 << 30,
        gpus: Vec::new(),
    };
    let beta = register_in(
        &store,
        Some("beta"),
        "beta-echo",
        &["echo"],
        &[],
        4,
        small.clone(),
    )
    .await;
    let private = register_in(
        &store,
        Some("private"),
        "private-train",
        &["train"],
        &[],
        4,
        small,
    )
    .await;
    let tenants = TenantPolicies {
        default: TenantPolicy::default(),
        tenants: BTreeMap::from([
            (
                "private".to_string(),
                TenantPolicy {
                    shared_workers: false,
                    ..TenantPolicy::default()
                },
            ),
            (
                "capped".to_string(),
                TenantPolicy {
                    max_running: Some(1),
                    ..TenantPolicy::default()
                },
            ),
        ]),
    };
    let rules = tenants.claim_rules();
    // Tenant capped runs one task, its limit, for the whole test.
    let holder = register_in(
        &store,
        Some("capped"),
        "capped-holder",
        &["hold"],
        &[],
        1,
        Hardware {
            cpus: 1.0,
            memory_bytes: 1 << 30,
            gpus: Vec::new(),
        },
    )
    .await;
    submit_as(&store, "capped", "hold", "{}", now).await;
    let (held, _) = store
        .claim(
            &Claim {
                rules: &rules,
                ..claim_for(&holder, 1, 10)
            },
            now,
            100 * HOUR,
        )
        .await
        .expect("claim");
    assert_eq!(held.len(), 1, "tenant capped's one task runs");
    let impostor = register_impostor(&store).await;
    let workers = [
        ("impostor", impostor),
        ("cpu-small", cpu_small),
        ("gpu-a100", a100.clone()),
        ("busy-h100", h100),
        ("no-types", idle),
        ("beta-echo", beta),
        ("private-train", private),
    ];
    let retry_now = RetryPolicy {
        backoff_ms: 0,
        max_backoff_ms: 0,
        avoid_ms: HOUR,
    };
    let retry_later = RetryPolicy {
        backoff_ms: HOUR,
        max_backoff_ms: HOUR,
        avoid_ms: 0,
    };
    let done = RetryPolicy {
        backoff_ms: 0,
        max_backoff_ms: 0,
        avoid_ms: 0,
    };
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for request in requests() {
        let mut claimed_by = Vec::new();
        let mut explained = None;
        for (name, worker) in &workers {
            now += 1_000;
            let id = submit_as(
                &store,
                request.tenant,
                request.task_type,
                request.resources,
                now,
            )
            .await;
            let policy = match request.setup {
                Setup::Fresh => None,
                Setup::FailedOnA100 => Some(&retry_now),
                Setup::InBackoff => Some(&retry_later),
            };
            if let Some(policy) = policy {
                let (first, _) = store
                    .claim(&claim_for(&a100, 1, 10), now, LEASE)
                    .await
                    .expect("claim");
                assert_eq!(
                    first.len(),
                    1,
                    "{}: the first attempt runs on the A100 box",
                    request.name
                );
                let error = TaskError::new(TaskErrorCode::Retryable, "flaky");
                finish(
                    &store,
                    &a100,
                    &id,
                    &first[0].lease_token,
                    now,
                    policy,
                    Some(error),
                )
                .await;
            }
            // What the checkers say, from what the store holds.
            let task = store.task(None, &id).await.expect("read").expect("stored");
            assert_eq!(task.state, TaskState::Pending, "{}", request.name);
            let live = store.live_workers().await.expect("workers");
            let usage = store.usage().await.expect("usage");
            let running = store.running_by_tenant().await.expect("running");
            let limit_of = |tenant: &str| {
                let limit = rules.running_limit(tenant);
                (limit > 0).then(|| RunningLimit {
                    running: running.get(tenant).copied().unwrap_or(0),
                    limit: limit as u64,
                })
            };
            let ask = Ask {
                running_limit: limit_of(&task.tenant),
                ..Ask::of(&task, &tenants)
            };
            let record = live.iter().find(|live| live.name == *name).expect("live");
            let candidate = Candidate {
                worker: record,
                usage: usage.get(&record.id).copied().unwrap_or_default(),
            };
            let expected = placement::check(&ask, &candidate, now);
            let reason = placement::explain(&ask, None, &live, &usage, now);
            // The background pass explains groups of tasks: the same answer.
            let shapes = store.pending_shapes(now).await.expect("shapes");
            let by_shape: Vec<_> = shapes
                .iter()
                .map(|shape| {
                    let ask = Ask {
                        running_limit: limit_of(&shape.tenant),
                        ..Ask::of_shape(shape, &tenants)
                    };
                    placement::explain(&ask, None, &live, &usage, now)
                })
                .collect();
            let expected_shapes = if task.run_after > now {
                vec![]
            } else {
                vec![reason.clone()]
            };
            if by_shape != expected_shapes {
                disagreements.push(format!(
                    "{} on {name}: the task's reason is {reason:?}, its group's {by_shape:?}",
                    request.name
                ));
            }
            explained = Some(reason);
            // What the SQL does.
            let (claimed, _) = store
                .claim(
                    &Claim {
                        rules: &rules,
                        ..claim_for(worker, 1, 100)
                    },
                    now,
                    LEASE,
                )
                .await
                .expect("claim");
            let took = claimed.iter().any(|task| task.id == id);
            if took != expected.is_ok() {
                disagreements.push(format!(
                    "{} on {name}: the claim {} it, the checkers say {:?}",
                    request.name,
                    if took { "took" } else { "left" },
                    expected
                ));
            }
            if took {
                claimed_by.push(*name);
                finish(
                    &store,
                    worker,
                    &id,
                    &claimed[0].lease_token,
                    now,
                    &done,
                    None,
                )
                .await;
            } else {
                store
                    .cancel_task(request.tenant, &id, now)
                    .await
                    .expect("cancel");
            }
            checked += 1;
        }
        let waiting = explained.expect("checked").map(|waiting| waiting.kind);
        if waiting.is_none() == claimed_by.is_empty() || waiting != request.waits {
            disagreements.push(format!(
                "{}: claimed by {claimed_by:?}, explain says {waiting:?}, expected {:?}",
                request.name, request.waits
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {checked} pairs disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
