//! The store's ceiling: the same insert, claim and complete statements the
//! server runs, through the same store, in batches of 100, with no HTTP, no
//! worker, no plugin and no validation. What the burn-down reaches is
//! reported against it.

use std::time::Instant;

use flowmesh_server::store::{Exchange, NewSubmission, NewTask, RetryPolicy, Store};
use flowmesh_tests::cluster::{Db, TestDb};
use flowmesh_tests::store_fixtures::{self as fixtures, TestRegistration, claim_for};
use flowmesh_types::api::{Completion, Hardware};

/// Tasks per statement batch.
const BATCH: usize = 100;

/// What one ceiling run measured, in tasks per second.
pub struct Ceiling {
    /// Inserting, in batches.
    pub insert: f64,
    /// Claiming and completing, in batches (each round trip completes the
    /// last batch and claims the next, as a worker's does).
    pub claim_complete: f64,
    /// The whole life of a task.
    pub all: f64,
}

/// Runs `tasks` echo tasks through a fresh `db`.
pub async fn measure(db: Db, tasks: usize) -> Ceiling {
    let test_db = TestDb::new(db).await;
    let store = Store::open(&test_db.url).await.expect("store opens");
    let worker = fixtures::register(
        &store,
        TestRegistration {
            name: "ceiling",
            pool: None,
            types: &["echo"],
            labels: &[],
            slots: (2 * BATCH) as u32,
            hardware: Hardware {
                cpus: 1024.0,
                memory_bytes: 1 << 40,
                gpus: Vec::new(),
            },
        },
    )
    .await;
    let document = flowmesh_types::parse_document(&flowmesh_tests::cluster::echo_document("hi"))
        .expect("an echo document");
    let ids: Vec<String> = (0..tasks)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let started = Instant::now();
    for chunk in ids.chunks(BATCH) {
        let now = now_ms();
        let submission = NewSubmission {
            tenant: "bench",
            max_pending: None,
            tasks: chunk
                .iter()
                .map(|id| NewTask {
                    id,
                    tenant: "bench",
                    document: &document,
                    now,
                    stage: None,
                })
                .collect(),
            workflows: Vec::new(),
        };
        store
            .insert_submissions(&[submission])
            .await
            .expect("inserted");
    }
    let inserted = started.elapsed();
    let retry = RetryPolicy {
        backoff_ms: 1000,
        max_backoff_ms: 1000,
        avoid_ms: 0,
    };
    let worked = Instant::now();
    let mut done = 0;
    let mut held: Vec<Completion> = Vec::new();
    while done < tasks {
        let exchanged = store
            .exchange(
                &Exchange {
                    claim: claim_for(&worker, BATCH as u32, 512),
                    events: &[],
                    completions: &held,
                },
                now_ms(),
                60_000,
                &retry,
            )
            .await
            .expect("exchanged")
            .expect("the registration is the token's");
        done += held.len();
        held = exchanged
            .claimed
            .into_iter()
            .map(|task| Completion {
                task_id: task.id,
                lease_token: task.lease_token,
                plugin: None,
                elapsed_ms: 0,
                output: Some(serde_json::json!({"message": "hi"})),
                error: None,
            })
            .collect();
        assert!(
            !held.is_empty() || done >= tasks,
            "the ceiling's claim found nothing with {done} of {tasks} done"
        );
    }
    let worked = worked.elapsed();
    store.close().await;
    Ceiling {
        insert: tasks as f64 / inserted.as_secs_f64(),
        claim_complete: tasks as f64 / worked.as_secs_f64(),
        all: tasks as f64 / (inserted + worked).as_secs_f64(),
    }
}

fn now_ms() -> i64 {
    flowmesh_server::state::now_ms()
}
