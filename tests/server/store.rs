//! The store on its own, on SQLite and on PostgreSQL: the claim's routing,
//! capacity and atomicity, lease expiry, and fencing.

use std::collections::HashSet;

use flowmesh_server::store::{
    EventStream, Exchange, Exchanged, NewStage, NewTask, NewToken, NewWorkflow, RetryPolicy,
    Revoked, RoundTrip, RoundTripDone, StagePlan, StageWrite, Store, StoreError, StoredEvent,
};
use flowmesh_tests::cluster::{Db, TestDb};
use flowmesh_tests::store_fixtures::{self as fixtures, TestRegistration, claim_for};
use flowmesh_types::TaskError;
use flowmesh_types::api::{
    Completion, CompletionVerdict, GpuDevice, Hardware, Heartbeat, Lease, TaskState,
};
use flowmesh_types::api::{EventBody, WaitKind, Waiting, WorkflowState};
use flowmesh_types::{TaskDocument, parse_document};

flowmesh_tests::on_both_backends!(
    a_claim_hands_out_only_advertised_types,
    a_worker_with_no_task_types_never_receives_a_task,
    a_claim_respects_free_slots_and_hardware,
    a_window_passes_over_what_does_not_fit_and_a_full_worker_takes_nothing,
    concurrent_claims_never_hand_out_a_task_twice,
    an_expired_lease_sends_the_task_back_with_the_next_attempt,
    a_stale_or_forged_lease_cannot_complete,
    garbage_collection_deletes_only_old_finished_tasks,
    garbage_collection_keeps_the_stages_of_a_running_workflow,
    a_release_pass_writes_once_and_only_what_is_still_held,
    a_round_trip_says_whether_a_stage_finished,
    round_trips_in_one_transaction_answer_each_as_alone,
    a_gpu_request_is_matched_device_by_device,
    a_shape_s_reason_reaches_its_tasks_unless_one_has_its_own,
    the_last_live_admin_token_is_never_revoked,
    a_write_dropped_at_any_point_leaves_the_store_whole_and_writable,
    a_closed_store_refuses_writes_at_once,
);

const RETRY: RetryPolicy = RetryPolicy {
    backoff_ms: 0,
    max_backoff_ms: 0,
    avoid_ms: 0,
};

async fn open(db: Db) -> (Store, TestDb) {
    let test_db = TestDb::new(db).await;
    let store = Store::open(&test_db.url).await.expect("store opens");
    (store, test_db)
}

async fn submit(store: &Store, yaml: &str) -> String {
    let document = parse_document(yaml).expect("valid document");
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_task(new_task(&id, &document))
        .await
        .expect("stored");
    id
}

/// Task `id` of tenant `t`, submitted at 1,000, no stage.
fn new_task<'a>(id: &'a str, document: &'a TaskDocument) -> NewTask<'a> {
    NewTask {
        id,
        tenant: "t",
        document,
        now: 1_000,
        stage: None,
    }
}

fn task(task_type: &str) -> String {
    format!("apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: {task_type}}}\n")
}

async fn register(
    store: &Store,
    name: &str,
    types: &[&str],
    slots: u32,
    hardware: Hardware,
) -> String {
    fixtures::register(
        store,
        TestRegistration {
            name,
            pool: None,
            types,
            labels: &[],
            slots,
            hardware,
        },
    )
    .await
}

fn big() -> Hardware {
    Hardware {
        cpus: 8.0,
        memory_bytes: 16 << 30,
        gpus: Vec::new(),
    }
}

/// A host of `cpus` CPUs and 64 GiB, no GPU.
fn cpus(cpus: f64) -> Hardware {
    Hardware {
        cpus,
        memory_bytes: 64 << 30,
        gpus: Vec::new(),
    }
}

async fn a_claim_hands_out_only_advertised_types(db: Db) {
    let (store, _db) = open(db).await;
    let echo = submit(&store, &task("echo")).await;
    let gpu = submit(&store, &task("train")).await;
    let worker = register(&store, "w", &["echo"], 8, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 8, 100), 2_000, 30_000)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|task| task.id.as_str()).collect();
    assert_eq!(ids, [echo.as_str()]);
    let left = store.task(None, &gpu).await.expect("read").expect("exists");
    assert_eq!(left.state, TaskState::Pending);
}

async fn a_worker_with_no_task_types_never_receives_a_task(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, &task("echo")).await;
    let worker = register(&store, "idle", &[], 8, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 8, 100), 2_000, 30_000)
        .await
        .expect("claim");
    assert!(claimed.is_empty());
}

/// The window's index carries each task's CPU, memory and GPU count: a
/// task too big for the worker's free capacity is passed over there, and
/// the ones behind it are still taken, oldest first; a worker with no free
/// slot takes nothing; a bigger worker takes what the smaller passed over.
async fn a_window_passes_over_what_does_not_fit_and_a_full_worker_takes_nothing(db: Db) {
    let (store, _db) = open(db).await;
    let sized = |cpu: u32| {
        format!(
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: echo, resources: {{hardware: {{cpu: {cpu}}}}}}}\n"
        )
    };
    let big_first = submit(&store, &sized(16)).await;
    let exact = submit(&store, &sized(4)).await;
    let big_second = submit(&store, &sized(16)).await;
    let small = submit(&store, &sized(1)).await;
    let four = register(&store, "four", &["echo"], 1, cpus(4.0)).await;
    let (taken, _) = store
        .claim(&claim_for(&four, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    let ids: Vec<&str> = taken.iter().map(|task| task.id.as_str()).collect();
    assert_eq!(
        ids,
        [exact.as_str()],
        "one slot: the oldest that fits, exactly"
    );
    let (full, _) = store
        .claim(&claim_for(&four, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    assert!(full.is_empty(), "its one slot is taken");
    let large = register(&store, "large", &["echo"], 4, cpus(64.0)).await;
    let (taken, _) = store
        .claim(&claim_for(&large, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    let mut ids: Vec<&str> = taken.iter().map(|task| task.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = [big_first.as_str(), big_second.as_str(), small.as_str()];
    expected.sort_unstable();
    assert_eq!(
        ids, expected,
        "the large worker takes what the small one passed over"
    );
}

async fn a_claim_respects_free_slots_and_hardware(db: Db) {
    let (store, _db) = open(db).await;
    let heavy = "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, resources: {hardware: {cpu: 3, memory: 6Gi}}}\n";
    for _ in 0..5 {
        submit(&store, heavy).await;
    }
    let worker = register(
        &store,
        "w",
        &["echo"],
        4,
        Hardware {
            cpus: 8.0,
            memory_bytes: 16 << 30,
            gpus: Vec::new(),
        },
    )
    .await;
    // 8 CPUs and 16 GiB hold two tasks of 3 CPUs / 6 GiB, though 4 slots are free.
    let (first, _) = store
        .claim(&claim_for(&worker, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    assert_eq!(first.len(), 2);
    let (second, _) = store
        .claim(&claim_for(&worker, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    assert!(second.is_empty(), "the hardware is in use");
    let gpu = "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, resources: {hardware: {gpu: {count: 1}}}}\n";
    let gpu_task = submit(&store, gpu).await;
    let light = submit(&store, &task("echo")).await;
    let (third, _) = store
        .claim(&claim_for(&worker, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    let ids: Vec<&str> = third.iter().map(|task| task.id.as_str()).collect();
    assert_eq!(
        ids,
        [light.as_str()],
        "no GPU here; the light task fits beside the heavy ones"
    );
    assert_eq!(
        store
            .task(None, &gpu_task)
            .await
            .expect("read")
            .expect("exists")
            .state,
        TaskState::Pending
    );
}

async fn concurrent_claims_never_hand_out_a_task_twice(db: Db) {
    let (store, _db) = open(db).await;
    for _ in 0..200 {
        submit(&store, &task("echo")).await;
    }
    let mut workers = Vec::new();
    for i in 0..4 {
        workers.push(register(&store, &format!("w{i}"), &["echo"], 1000, big()).await);
    }
    let claims = workers.into_iter().map(|worker| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..20 {
                let (claimed, _) = store
                    .claim(&claim_for(&worker, 7, 64), 2_000, 30_000)
                    .await
                    .expect("claim");
                mine.extend(claimed.into_iter().map(|task| task.id));
            }
            mine
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for claim in claims {
        for id in claim.await.expect("claimer") {
            total += 1;
            assert!(seen.insert(id.clone()), "task {id} was claimed twice");
        }
    }
    assert_eq!(total, 200, "every task was claimed exactly once");
}

async fn an_expired_lease_sends_the_task_back_with_the_next_attempt(db: Db) {
    let (store, _db) = open(db).await;
    let id = submit(&store, &task("echo")).await;
    let first = register(&store, "first", &["echo"], 1, big()).await;
    let second = register(&store, "second", &["echo"], 1, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&first, 1, 10), 2_000, 1_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let policy = RetryPolicy {
        backoff_ms: 0,
        max_backoff_ms: 0,
        avoid_ms: 60_000,
    };
    let (expired, _) = store.expire_leases(3_001, &policy).await.expect("expire");
    assert_eq!(expired, 1);
    let task = store.task(None, &id).await.expect("read").expect("exists");
    assert_eq!(task.state, TaskState::Pending);
    assert_eq!(task.attempt, 2);
    // The failed worker is passed over while another can take it.
    let (again, _) = store
        .claim(&claim_for(&first, 1, 10), 3_002, 30_000)
        .await
        .expect("claim");
    assert!(again.is_empty());
    let (other, _) = store
        .claim(&claim_for(&second, 1, 10), 3_002, 30_000)
        .await
        .expect("claim");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].attempt, 2);
    let attempts = store.attempts(&id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, "lease_expired");
}

/// Under steady writes SQLite starts its write-ahead log over only when,
/// as a write begins, every frame has been copied and no reader still reads
/// one. Once the log passes `RESTART_PAGES` the checkpointer makes that
/// happen itself; while a reader keeps an old snapshot open it gives up (to
/// try again next time) and writes go on.
#[tokio::test]
async fn a_long_write_ahead_log_is_started_over_by_the_checkpointer() {
    use flowmesh_server::store::RESTART_PAGES;
    use sqlx::Connection;

    let (store, db) = open(Db::Sqlite).await;
    // Tasks with a 16 KiB message: four or more pages of the log each.
    let bulky = format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: echo, message: {}}}\n",
        "x".repeat(16 << 10)
    );
    let fill = |count: i64| {
        let (store, bulky) = (&store, &bulky);
        async move {
            for _ in 0..count {
                submit(store, bulky).await;
            }
        }
    };
    fill(RESTART_PAGES / 4 + 64).await;
    let done = store.checkpoint().await.expect("checkpoint");
    assert!(done.log_pages >= RESTART_PAGES, "{done:?}");
    assert!(done.restarted, "{done:?}");
    submit(&store, &task("echo")).await;
    let after = store.checkpoint().await.expect("checkpoint");
    assert!(
        after.log_pages < 64 && !after.restarted,
        "the log started over: {after:?}"
    );

    // A reader on a snapshot of its own, taken while the log holds frames.
    fill(RESTART_PAGES / 4 + 64).await;
    let mut reader = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("connects");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begins");
    sqlx::query("SELECT COUNT(*) FROM tasks")
        .fetch_one(&mut reader)
        .await
        .expect("reads");
    fill(64).await;
    let held = store.checkpoint().await.expect("checkpoint");
    assert!(
        held.log_pages >= RESTART_PAGES && !held.restarted,
        "a reader holds old frames: {held:?}"
    );
    // Writes go on meanwhile.
    submit(&store, &task("echo")).await;
    sqlx::query("COMMIT")
        .execute(&mut reader)
        .await
        .expect("ends");
    let done = store.checkpoint().await.expect("checkpoint");
    assert!(done.restarted, "the reader is gone: {done:?}");
}

/// A worker that hangs up while its claim is being written never hears of
/// the task it was given: the writer of round trips hands that attempt back
/// at once, instead of leaving the task leased until the lease runs out.
/// (SQLite: there the writer groups round trips; on PostgreSQL the claim
/// runs in the caller's own task.)
#[tokio::test]
async fn a_claim_whose_worker_hung_up_is_retried_at_once() {
    use flowmesh_server::round_trips::{ExchangeRequest, RoundTrips, Rules};
    use sqlx::Connection;

    let (store, db) = open(Db::Sqlite).await;
    let id = submit(&store, &task("echo")).await;
    let worker = register(&store, "w", &["echo"], 1, big()).await;
    let round_trips = std::sync::Arc::new(RoundTrips::start(
        store.clone(),
        Rules {
            tenants: flowmesh_server::store::TenantRules::OPEN,
            retry: RETRY,
            lease_ttl_ms: 600_000,
            claim_scan: 10,
        },
    ));
    // SQLite's write lock, held from a connection of the test's own: the
    // writer takes the request, then waits to begin its transaction.
    let mut blocker = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("connects");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("locked");
    let caller = tokio::spawn({
        let (round_trips, worker) = (round_trips.clone(), worker.clone());
        async move {
            round_trips
                .exchange(ExchangeRequest {
                    worker_id: worker,
                    token_id: fixtures::TOKEN.into(),
                    max_tasks: 1,
                    events: Vec::new(),
                    completions: std::sync::Arc::new(Vec::new()),
                })
                .await
        }
    });
    // The worker hangs up once the writer holds its request.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    caller.abort();
    assert!(caller.await.is_err_and(|error| error.is_cancelled()));
    sqlx::query("COMMIT")
        .execute(&mut blocker)
        .await
        .expect("unlocked");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let attempts = store.attempts(&id).await.expect("attempts");
        if let Some(attempt) = attempts.first() {
            assert_eq!(attempt.outcome, "released");
            assert!(
                attempt
                    .error
                    .as_ref()
                    .is_some_and(|error| error.message.contains("hung up")),
                "{attempts:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim was never written or never handed back (or the writer had not taken the request within 300 ms)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let task = store.task(None, &id).await.expect("read").expect("exists");
    assert_eq!((task.state, task.attempt), (TaskState::Pending, 2));
}

async fn a_stale_or_forged_lease_cannot_complete(db: Db) {
    let (store, _db) = open(db).await;
    let id = submit(&store, &task("echo")).await;
    let worker = register(&store, "w", &["echo"], 1, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 1, 10), 2_000, 1_000)
        .await
        .expect("claim");
    let lease = claimed[0].lease_token.clone();
    let completion = Completion {
        task_id: id.clone(),
        lease_token: lease.clone(),
        plugin: None,
        elapsed_ms: 1,
        output: Some(serde_json::json!({"ok": true})),
        error: None,
    };
    // Past the lease's expiry, even before the reaper runs.
    let (verdicts, _) = store
        .complete(&worker, std::slice::from_ref(&completion), 3_500, &RETRY)
        .await
        .expect("complete");
    assert_eq!(verdicts, [CompletionVerdict::StaleLease]);
    let wrong = Completion {
        lease_token: "forged".into(),
        ..completion.clone()
    };
    let (verdicts, _) = store
        .complete(&worker, &[wrong], 2_500, &RETRY)
        .await
        .expect("complete");
    assert_eq!(verdicts, [CompletionVerdict::StaleLease]);
    let (verdicts, events) = store
        .complete(&worker, &[completion], 2_500, &RETRY)
        .await
        .expect("complete");
    assert_eq!(verdicts, [CompletionVerdict::Accepted]);
    assert_eq!(events.len(), 2, "a state event and a result event");
    let task = store.task(None, &id).await.expect("read").expect("exists");
    assert_eq!(task.state, TaskState::Succeeded);
}

async fn garbage_collection_deletes_only_old_finished_tasks(db: Db) {
    let (store, _db) = open(db).await;
    let old = submit(&store, &task("echo")).await;
    let waiting = submit(&store, &task("echo")).await;
    store.cancel_task("t", &old, 5_000).await.expect("cancel");
    assert_eq!(
        store.collect_garbage(5_000).await.expect("gc"),
        0,
        "finished at the cutoff: kept"
    );
    assert_eq!(store.collect_garbage(5_001).await.expect("gc"), 1);
    assert!(store.task(None, &old).await.expect("read").is_none());
    assert!(
        store
            .events_after(EventStream::Task(&old), 0, 100)
            .await
            .expect("events")
            .is_empty()
    );
    assert!(
        store.task(None, &waiting).await.expect("read").is_some(),
        "pending tasks are kept"
    );
}

/// Stores workflow `id` of tenant `t`: stage a (`ids[0]`), then stage b
/// (`ids[1]`) reading a's output, held back when `hold_b`.
async fn insert_two_stages(store: &Store, id: &str, ids: [&str; 2], hold_b: bool) {
    let document = match flowmesh_types::parse(
        "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  stages:\n    - {name: a, spec: {taskType: echo}}\n    - {name: b, spec: {taskType: echo, message: '${a.output.message}'}}\n",
    ) {
        Ok(flowmesh_types::Document::Workflow(workflow)) => workflow,
        other => panic!("not a workflow: {other:?}"),
    };
    let plans: Vec<StagePlan> = document
        .stages
        .iter()
        .map(|stage| StagePlan {
            depends_on: stage.depends_on.clone(),
            condition: None,
        })
        .collect();
    let tasks: Vec<TaskDocument> = document
        .stages
        .iter()
        .map(|stage| TaskDocument {
            metadata: Default::default(),
            spec: stage.spec.clone(),
        })
        .collect();
    let held = Waiting {
        kind: WaitKind::Dependencies,
        message: "waits for stage(s) a to finish".into(),
        counts: Default::default(),
    };
    let stages = (0..2)
        .map(|i| NewTask {
            id: ids[i],
            tenant: "t",
            document: &tasks[i],
            now: 1_000,
            stage: Some(NewStage {
                workflow_id: id,
                name: &document.stages[i].name,
                plan: &plans[i],
                blocked: (hold_b && i == 1).then(|| held.clone()),
            }),
        })
        .collect();
    store
        .insert_workflow(NewWorkflow {
            id,
            tenant: "t",
            metadata: &document.metadata,
            stages,
            now: 1_000,
        })
        .await
        .expect("stored");
}

async fn garbage_collection_keeps_the_stages_of_a_running_workflow(db: Db) {
    let (store, _db) = open(db).await;
    insert_two_stages(&store, "wf", ["a-task", "b-task"], false).await;
    store
        .cancel_task("t", "a-task", 2_000)
        .await
        .expect("cancel");
    assert_eq!(
        store.collect_garbage(9_000).await.expect("gc"),
        0,
        "the workflow is running: its finished stage is kept"
    );
    store
        .cancel_workflow("t", "wf", 3_000)
        .await
        .expect("cancel")
        .expect("exists");
    store
        .apply_stage_writes(
            &[StageWrite::Finish {
                id: "wf".into(),
                state: WorkflowState::Cancelled,
                message: "cancelled".into(),
            }],
            3_000,
        )
        .await
        .expect("finish");
    assert_eq!(store.collect_garbage(9_000).await.expect("gc"), 2);
    assert!(store.workflow(None, "wf").await.expect("read").is_none());
    assert!(
        store
            .events_after(EventStream::Workflow("wf"), 0, 100)
            .await
            .expect("events")
            .is_empty()
    );
}

/// The releaser's writes for several workflows in one transaction: a held
/// stage is released, another ended (its workflow marked changed), a
/// workflow finished and one settled; applied again, the same writes find
/// nothing still held or running and write nothing.
async fn a_release_pass_writes_once_and_only_what_is_still_held(db: Db) {
    let (store, _db) = open(db).await;
    insert_two_stages(&store, "wf-1", ["a-1", "b-1"], true).await;
    insert_two_stages(&store, "wf-2", ["a-2", "b-2"], true).await;
    let changes = |workflows: &[(i64, String, i64)], id: &str| {
        workflows
            .iter()
            .find(|(_, workflow, _)| workflow == id)
            .map(|(_, _, changes)| *changes)
    };
    let before = store.unsettled_workflows(0, 10).await.expect("unsettled");
    let skipped = TaskError::new(
        flowmesh_types::TaskErrorCode::Skipped,
        "the condition does not hold",
    );
    let writes = vec![
        StageWrite::Release {
            task_id: "b-1".into(),
            spec: serde_json::json!({"taskType": "echo", "message": "hi"})
                .as_object()
                .cloned()
                .expect("an object"),
            message: "released".into(),
        },
        StageWrite::End {
            task_id: "b-2".into(),
            state: TaskState::Skipped,
            error: skipped.clone(),
        },
        StageWrite::Finish {
            id: "wf-2".into(),
            state: WorkflowState::Succeeded,
            message: "stages: 2 done".into(),
        },
        StageWrite::Settle {
            id: "wf-1".into(),
            changes: changes(&before, "wf-1").unwrap_or(0),
        },
    ];
    let events = store
        .apply_stage_writes(&writes, 5_000)
        .await
        .expect("applied");
    let mut written: Vec<(String, String)> = events
        .iter()
        .map(|event| {
            let kind = match event.body {
                EventBody::State { .. } => "state",
                EventBody::Result { .. } => "result",
                EventBody::Workflow { .. } => "workflow",
                EventBody::Task(_) => "task",
            };
            (event.task_id.clone(), kind.to_string())
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            ("b-1".to_string(), "state".to_string()),
            ("b-2".to_string(), "result".to_string()),
            ("b-2".to_string(), "state".to_string()),
            ("wf-2".to_string(), "workflow".to_string()),
        ],
        "{events:?}"
    );
    // The sequence numbers handed back are the ones stored (SQLite's are
    // worked out from the last row id, not returned per row).
    let stored: Vec<_> = store
        .events_after(EventStream::Task("b-2"), 0, 100)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.at == 5_000)
        .collect();
    let returned: Vec<_> = events
        .iter()
        .filter(|event| event.task_id == "b-2")
        .cloned()
        .collect();
    assert_eq!(stored, returned);
    let released = store.task(None, "b-1").await.expect("read").expect("b-1");
    assert_eq!(released.state, TaskState::Pending);
    assert!(!released.blocked, "released stages can be claimed");
    assert_eq!(released.spec["message"], "hi");
    let ended = store.task(None, "b-2").await.expect("read").expect("b-2");
    assert_eq!(ended.state, TaskState::Skipped);
    assert_eq!(ended.error, Some(skipped));
    let after = store.unsettled_workflows(0, 10).await.expect("unsettled");
    assert_eq!(changes(&after, "wf-1"), None, "wf-1 is settled");
    assert_eq!(
        changes(&after, "wf-2"),
        Some(changes(&before, "wf-2").unwrap_or(0) + 1),
        "ending b-2 marked wf-2 changed for the next pass"
    );
    let finished = store
        .workflow(None, "wf-2")
        .await
        .expect("read")
        .expect("wf-2");
    assert_eq!(finished.state, WorkflowState::Succeeded);

    let again = store
        .apply_stage_writes(&writes, 6_000)
        .await
        .expect("applied again");
    assert!(again.is_empty(), "nothing was still held: {again:?}");
    let ended = store.task(None, "b-2").await.expect("read").expect("b-2");
    assert_eq!(ended.updated_at, 5_000, "the ended stage is untouched");
}

async fn a_gpu_request_is_matched_device_by_device(db: Db) {
    let (store, _db) = open(db).await;
    let two_h100 = submit(&store, "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: train, resources: {hardware: {gpu: {count: 2, type: H100}}}}\n").await;
    let big_memory = submit(&store, "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: train, resources: {hardware: {gpu: {count: 1, memory: 40Gi}}}}\n").await;
    let device = |index, model: &str, memory_bytes| GpuDevice {
        index,
        model: model.to_string(),
        memory_bytes,
    };
    let mixed = Hardware {
        cpus: 8.0,
        memory_bytes: 16 << 30,
        gpus: vec![
            device(0, "NVIDIA H100 80GB HBM3", 80 << 30),
            device(1, "Tesla T4", 16 << 30),
        ],
    };
    let worker = register(&store, "mixed", &["train"], 4, mixed).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 4, 100), 2_000, 30_000)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|task| task.id.as_str()).collect();
    assert_eq!(
        ids,
        [big_memory.as_str()],
        "one H100, not two; the 80 GB device fits 40 GiB"
    );
    let waiting = store
        .task(None, &two_h100)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(waiting.state, TaskState::Pending);
}

/// A reason recorded for a shape is what each of its pending tasks reads,
/// a task submitted after it included, with no write to the tasks. A task
/// whose own reason holds (a retry delay not run out) reads that instead; a
/// retried task whose worker is still passed over is a shape of its own; a
/// task that is no longer pending, or whose shape was forgotten, reads none,
/// and no tenant reads another's.
async fn a_shape_s_reason_reaches_its_tasks_unless_one_has_its_own(db: Db) {
    let (store, _db) = open(db).await;
    let first = submit(&store, &task("echo")).await;
    let second = submit(&store, &task("echo")).await;
    // A minute ago: a task reads its reason as of the wall clock, past
    // every delay below but the 10 minutes of the first.
    let now = flowmesh_server::clock::now_ms() - 60_000;
    let busy = |message: &str| Waiting {
        kind: WaitKind::WorkersBusy,
        message: message.to_string(),
        counts: Default::default(),
    };
    let waiting_of = |id: String| {
        let store = &store;
        async move {
            let task = store.task(None, &id).await.expect("read").expect("exists");
            task.waiting.map(|waiting| waiting.message)
        }
    };
    // A shape with labels and a GPU model: its row matches its tasks'
    // columns as they are stored.
    let gpu = submit(
        &store,
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, resources: {labels: {zone: eu, rack: b7}, hardware: {cpu: 2, memory: 3Gi, gpu: {count: 1, type: H100, memory: 40Gi}}}}\n",
    )
    .await;
    let shapes = store.pending_shapes(now).await.expect("shapes");
    assert_eq!(shapes.len(), 2);
    let (echo, labelled): (Vec<_>, Vec<_>) =
        shapes.iter().partition(|shape| shape.labels.is_empty());
    let (echo, labelled) = (echo[0].key(), labelled[0].key());
    assert_eq!(labelled.gpu_model, "H100");
    let all_busy = busy("all busy");
    let no_h100 = Waiting {
        kind: WaitKind::InsufficientHardware,
        message: "no H100".to_string(),
        counts: Default::default(),
    };
    store
        .record_waits(
            &[(echo.clone(), &all_busy), (labelled.clone(), &no_h100)],
            &[],
        )
        .await
        .expect("recorded");
    let mut recorded = store.shape_waits().await.expect("read");
    recorded.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (echo.clone(), all_busy.clone()),
        (labelled.clone(), no_h100),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(recorded, expected);
    let third = submit(&store, &task("echo")).await;
    for id in [&first, &second, &third] {
        assert_eq!(waiting_of(id.clone()).await.as_deref(), Some("all busy"));
    }
    assert_eq!(waiting_of(gpu).await.as_deref(), Some("no H100"));
    // `first` fails on its worker and reads its own reason while its
    // retry delay lasts; `second` fails with no delay, and reads the
    // reason of the shape that passes over the worker.
    let worker = register(&store, "w", &["echo"], 1, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 1, 10), now, 1_000)
        .await
        .expect("claim");
    assert_eq!(claimed[0].id, first);
    assert_eq!(waiting_of(first.clone()).await, None, "running");
    let delayed = RetryPolicy {
        backoff_ms: 600_000,
        max_backoff_ms: 600_000,
        avoid_ms: 600_000,
    };
    let (expired, _) = store
        .expire_leases(now + 1_001, &delayed)
        .await
        .expect("expire");
    assert_eq!(expired, 1);
    let own = store
        .task(None, &first)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        own.waiting.expect("own reason").kind,
        WaitKind::RetryBackoff
    );
    let (claimed, _) = store
        .claim(&claim_for(&worker, 1, 10), now + 2_000, 1_000)
        .await
        .expect("claim");
    assert_eq!(claimed[0].id, second);
    let passed_over = RetryPolicy {
        backoff_ms: 0,
        max_backoff_ms: 0,
        avoid_ms: 600_000,
    };
    let (expired, _) = store
        .expire_leases(now + 3_001, &passed_over)
        .await
        .expect("expire");
    assert_eq!(expired, 1);
    let after_delay = |at: i64| {
        let store = &store;
        async move {
            let shapes = store.pending_shapes(at).await.expect("shapes");
            shapes
                .into_iter()
                .map(|shape| shape.key())
                .collect::<Vec<_>>()
        }
    };
    let avoiding: Vec<_> = after_delay(now + 3_001)
        .await
        .into_iter()
        .filter(|key| key.avoid_worker == "w")
        .collect();
    assert_eq!(
        avoiding.len(),
        1,
        "the retried task passes over w: a shape of its own"
    );
    let passing_over = busy("passing over w");
    store
        .record_waits(&[(avoiding[0].clone(), &passing_over)], &[])
        .await
        .expect("recorded");
    assert_eq!(
        waiting_of(second.clone()).await.as_deref(),
        Some("passing over w")
    );
    assert_eq!(waiting_of(third.clone()).await.as_deref(), Some("all busy"));
    assert_eq!(
        store
            .task(None, &first)
            .await
            .expect("read")
            .expect("exists")
            .waiting
            .map(|waiting| waiting.kind),
        Some(WaitKind::RetryBackoff),
        "its own delay is not over"
    );
    // Forgotten, the shape's tasks read no reason.
    store
        .record_waits(&[], std::slice::from_ref(&echo))
        .await
        .expect("forgotten");
    assert_eq!(waiting_of(third.clone()).await, None);
    assert_eq!(store.shape_waits().await.expect("read").len(), 2);
    store
        .record_waits(&[(echo, &all_busy)], &[])
        .await
        .expect("recorded");
    assert_eq!(waiting_of(third).await.as_deref(), Some("all busy"));
    // Another tenant's task of the same request is a shape of its own: it
    // reads nothing of tenant t's.
    let document = parse_document(&task("echo")).expect("valid document");
    let other = uuid::Uuid::now_v7().to_string();
    store
        .insert_task(NewTask {
            tenant: "u",
            ..new_task(&other, &document)
        })
        .await
        .expect("stored");
    assert_eq!(waiting_of(other).await, None, "another tenant's reason");
}

/// Two admins revoke each other: the first revocation goes through, the
/// second would leave no live admin token and is refused, so the server is
/// never left without one (the API also refuses a token revoking itself).
async fn the_last_live_admin_token_is_never_revoked(db: Db) {
    let (store, _db) = open(db).await;
    let admin = |name| NewToken {
        tenant: "default",
        role: flowmesh_types::api::Role::Admin,
        name: Some(name),
        shared: false,
        expires_at: None,
    };
    let first = store
        .create_token(&admin("first"), 1_000)
        .await
        .expect("created");
    let second = store
        .create_token(&admin("second"), 1_000)
        .await
        .expect("created");
    assert!(matches!(
        store.revoke_token(&first.principal.token_id, 2_000).await,
        Ok(Revoked::Now)
    ));
    assert!(matches!(
        store.revoke_token(&second.principal.token_id, 3_000).await,
        Ok(Revoked::LastAdmin)
    ));
    // An admin that has expired does not count as live.
    let expiring = NewToken {
        expires_at: Some(5_000),
        ..admin("expiring")
    };
    store.create_token(&expiring, 4_000).await.expect("created");
    assert!(matches!(
        store.revoke_token(&second.principal.token_id, 6_000).await,
        Ok(Revoked::LastAdmin)
    ));
}

/// A worker's round trip tells the server whether it finished a workflow's
/// stage, so that the releaser is woken for stages, not for every task.
async fn a_round_trip_says_whether_a_stage_finished(db: Db) {
    let (store, _db) = open(db).await;
    insert_two_stages(&store, "wf", ["a-task", "b-task"], true).await;
    let plain = submit(&store, &task("echo")).await;
    let worker = register(&store, "w", &["echo"], 4, big()).await;
    let round_trip = |completions: Vec<Completion>, at: i64| {
        let store = store.clone();
        let worker = worker.clone();
        async move {
            store
                .exchange(
                    &Exchange {
                        claim: claim_for(&worker, 4, 10),
                        events: &[],
                        completions: &completions,
                    },
                    at,
                    30_000,
                    &RETRY,
                )
                .await
                .expect("exchanged")
                .expect("the registration is the token's")
        }
    };
    let claimed = round_trip(Vec::new(), 2_000).await;
    let mut ids: Vec<&str> = claimed
        .claimed
        .iter()
        .map(|task| task.id.as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = ["a-task", plain.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "stage b is held back");
    assert!(!claimed.stages_finished, "nothing finished");
    let done = |id: &str| {
        let task = claimed
            .claimed
            .iter()
            .find(|task| task.id == id)
            .expect("claimed");
        Completion {
            task_id: task.id.clone(),
            lease_token: task.lease_token.clone(),
            plugin: None,
            elapsed_ms: 1,
            output: Some(serde_json::json!({"message": "hi"})),
            error: None,
        }
    };
    // A new workflow is already unsettled: count its changes.
    let changes = || async {
        let unsettled = store.unsettled_workflows(0, 10).await.expect("unsettled");
        assert_eq!(unsettled.len(), 1, "{unsettled:?}");
        assert_eq!(unsettled[0].1, "wf");
        unsettled[0].2
    };
    let submitted = changes().await;
    let plain_done = round_trip(vec![done(&plain)], 2_100).await;
    assert_eq!(plain_done.verdicts, [CompletionVerdict::Accepted]);
    assert!(
        !plain_done.stages_finished,
        "a task that is no stage gives the releaser nothing to do"
    );
    let stage_done = round_trip(vec![done("a-task")], 2_200).await;
    assert_eq!(stage_done.verdicts, [CompletionVerdict::Accepted]);
    assert!(stage_done.stages_finished, "stage a finished");
    assert_eq!(
        changes().await,
        submitted + 1,
        "the stage's end, and only it, marked the workflow changed"
    );
}

/// Many workers' round trips in one transaction (as the server groups them
/// on SQLite): each is answered as if it had run alone, in order. A claim
/// never takes what an earlier claim of the group took, each exchange gets
/// its own events, a forged outcome and a registration that is not the
/// token's change nothing, and a heartbeat renews leases whose outcomes
/// were refused earlier in the same group.
async fn round_trips_in_one_transaction_answer_each_as_alone(db: Db) {
    let (store, _db) = open(db).await;
    let mut submitted = HashSet::new();
    for _ in 0..5 {
        submitted.insert(submit(&store, &task("echo")).await);
    }
    let a = register(&store, "a", &["echo"], 2, big()).await;
    let b = register(&store, "b", &["echo"], 2, big()).await;
    fn exchange<'a>(worker: &'a str, completions: &'a [Completion]) -> RoundTrip<'a> {
        RoundTrip::Exchange(Exchange {
            claim: claim_for(worker, 2, 10),
            events: &[],
            completions,
        })
    }
    fn exchanged(done: RoundTripDone) -> Exchanged {
        done.exchanged()
            .expect("an exchange's answer, its registration the token's")
    }
    let done = store
        .round_trips(
            &[exchange(&a, &[]), exchange(&b, &[])],
            2_000,
            30_000,
            &RETRY,
        )
        .await
        .expect("written");
    let [first_a, first_b] = <[RoundTripDone; 2]>::try_from(done)
        .expect("two answers")
        .map(exchanged);
    let ids = |exchanged: &Exchanged| -> HashSet<String> {
        exchanged
            .claimed
            .iter()
            .map(|task| task.id.clone())
            .collect()
    };
    assert_eq!(ids(&first_a).len(), 2, "{first_a:?}");
    assert_eq!(ids(&first_b).len(), 2, "{first_b:?}");
    assert!(ids(&first_a).is_disjoint(&ids(&first_b)), "no task twice");
    assert!(ids(&first_a).is_subset(&submitted) && ids(&first_b).is_subset(&submitted));
    for (exchanged, worker) in [(&first_a, "a"), (&first_b, "b")] {
        let with_events: HashSet<String> = exchanged
            .events
            .iter()
            .map(|event| event.task_id.clone())
            .collect();
        assert_eq!(with_events, ids(exchanged), "worker {worker}'s own events");
    }
    let outcome = |task: &flowmesh_types::api::ClaimedTask, token: &str| Completion {
        task_id: task.id.clone(),
        lease_token: token.to_string(),
        plugin: None,
        elapsed_ms: 1,
        output: Some(serde_json::json!({"message": "hi"})),
        error: None,
    };
    // a hands in both of its outcomes; b forges one of a's and hands in
    // one of its own under a token that is not its lease; a registration
    // that is not the token's delivers nothing; a heartbeat of b.
    let a_outcomes: Vec<Completion> = first_a
        .claimed
        .iter()
        .map(|task| outcome(task, &task.lease_token))
        .collect();
    let b_outcomes = vec![
        outcome(&first_a.claimed[0], &first_a.claimed[0].lease_token),
        outcome(&first_b.claimed[0], "not-the-lease"),
    ];
    let beat = Heartbeat {
        worker_id: b.clone(),
        leases: first_b
            .claimed
            .iter()
            .map(|task| Lease {
                task_id: task.id.clone(),
                lease_token: task.lease_token.clone(),
            })
            .collect(),
        capabilities: None,
        labels: None,
        hardware: None,
    };
    let stranger = Exchange {
        claim: flowmesh_server::store::Claim {
            token_id: "another-token",
            ..claim_for(&b, 2, 10)
        },
        events: &[],
        completions: &b_outcomes,
    };
    let trips = [
        exchange(&a, &a_outcomes),
        exchange(&b, &b_outcomes),
        RoundTrip::Exchange(stranger),
        RoundTrip::Heartbeat {
            beat: &beat,
            token_id: fixtures::TOKEN,
            served: None,
        },
    ];
    let done = store
        .round_trips(&trips, 3_000, 30_000, &RETRY)
        .await
        .expect("written");
    let [second_a, second_b, stranger, beat] =
        <[RoundTripDone; 4]>::try_from(done).expect("four answers");
    let (second_a, second_b) = (exchanged(second_a), exchanged(second_b));
    assert_eq!(
        second_a.verdicts,
        [CompletionVerdict::Accepted, CompletionVerdict::Accepted]
    );
    assert_eq!(ids(&second_a).len(), 1, "one task was left for a");
    assert_eq!(
        second_b.verdicts,
        [CompletionVerdict::StaleLease, CompletionVerdict::StaleLease],
        "a's task is not b's to finish, and b's own needs its lease"
    );
    assert!(second_b.claimed.is_empty(), "b's slots are full");
    assert!(
        matches!(stranger, RoundTripDone::Exchanged(None)),
        "a registration that is not the token's writes nothing: {stranger:?}"
    );
    let beat = beat.heartbeat().expect("a live registration's heartbeat");
    assert!(beat.lost.is_empty() && beat.cancel.is_empty(), "{beat:?}");
    // Each exchange's events are its own: a's two results and its new
    // claim, none of b's.
    let a_tasks: HashSet<String> = ids(&first_a).union(&ids(&second_a)).cloned().collect();
    assert!(!second_a.events.is_empty());
    assert!(
        second_a
            .events
            .iter()
            .all(|event| a_tasks.contains(&event.task_id)),
        "{:?}",
        second_a.events
    );
    assert!(second_b.events.is_empty(), "{:?}", second_b.events);
    for task in &first_a.claimed {
        let stored = store
            .task(None, &task.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.state, TaskState::Succeeded, "{}", task.id);
    }
    let forged = store
        .task(None, &first_b.claimed[0].id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(forged.state, TaskState::Running, "b's task still runs");
}

/// A write whose caller goes away (a client hung up, a request timed out)
/// is dropped wherever it stands: waiting for the writer, beginning, in the
/// middle of its statements, committing. Whatever point it reached, the
/// task it stored is there whole or not at all, a write that ended
/// succeeded and is there, and the next write goes through: the connection
/// is never left inside a transaction.
async fn a_write_dropped_at_any_point_leaves_the_store_whole_and_writable(db: Db) {
    let (store, _db) = open(db).await;
    let document = parse_document(&task("echo")).expect("valid document");
    let ids: Vec<String> = (0..64).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut finished = Vec::new();
    for (step, pair) in ids.chunks(2).enumerate() {
        let mut first = std::pin::pin!(store.insert_task(new_task(&pair[0], &document)));
        let mut second = std::pin::pin!(store.insert_task(new_task(&pair[1], &document)));
        // On SQLite the first takes the writer and the second waits for
        // it; on PostgreSQL both go ahead. Each poll lets a write send its
        // next statement, and the database's side runs it meanwhile: step
        // by step, the drops below come one statement later, through every
        // point of a write and past its end.
        for _ in 0..=step {
            poll_write(first.as_mut(), &pair[0], &mut finished).await;
            poll_write(second.as_mut(), &pair[1], &mut finished).await;
            std::thread::sleep(std::time::Duration::from_micros(50 << (step % 4)));
        }
    }
    let last = submit(&store, &task("echo")).await;
    for id in &ids {
        let Some(record) = store.task(None, id).await.expect("read") else {
            assert!(!finished.contains(id), "task {id} was written, and is gone");
            continue;
        };
        assert_eq!(record.state, TaskState::Pending, "task {id}");
        let events = store
            .events_after(EventStream::Task(id), 0, 10)
            .await
            .expect("events");
        assert!(!events.is_empty(), "task {id} is stored without its events");
    }
    let worker = register(&store, "w", &["echo"], 100, big()).await;
    let (claimed, _) = store
        .claim(&claim_for(&worker, 100, 100), 2_000, 30_000)
        .await
        .expect("claim");
    assert!(claimed.iter().any(|task| task.id == last));
}

/// Polls the write of task `id` once, unless it has ended; one that ends
/// must have succeeded, and is noted in `finished`.
async fn poll_write(
    write: std::pin::Pin<&mut impl Future<Output = Result<Vec<StoredEvent>, StoreError>>>,
    id: &str,
    finished: &mut Vec<String>,
) {
    if finished.iter().any(|done| done == id) {
        return;
    }
    if let std::task::Poll::Ready(result) = futures::poll!(write) {
        result.unwrap_or_else(|error| panic!("the write of task {id} failed: {error}"));
        finished.push(id.to_owned());
    }
}

/// Once closed, a store refuses a write because it is closed: it does not
/// wait for a connection that will never come back (that would end in a
/// time-out, another error), nor open a new one.
async fn a_closed_store_refuses_writes_at_once(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, &task("echo")).await;
    store.close().await;
    let document = parse_document(&task("echo")).expect("valid document");
    let id = uuid::Uuid::now_v7().to_string();
    let refused = store.insert_task(new_task(&id, &document)).await;
    assert!(
        matches!(refused, Err(StoreError::Database(sqlx::Error::PoolClosed))),
        "{refused:?}"
    );
    assert!(
        store.task(None, &id).await.is_err(),
        "its readers are closed too"
    );
}
