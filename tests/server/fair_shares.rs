//! Fair shares between tenants: a tenant's backlog never starves another
//! tenant, weights divide the fleet, running limits hold, and a submit past
//! a tenant's pending limit is refused whole. On the store directly (the
//! claim's order, claim by claim) and end to end with a real worker.

use std::time::Duration;

use flowmesh_server::config::TenantPolicy;
use flowmesh_server::store::{Claim, NewTask, STRIDE, Store, TenantRules};
use flowmesh_tests::cluster::{Db, TestDb, TestServer, sleep_document};
use flowmesh_tests::store_fixtures::{self as fixtures, TestRegistration, claim_for};
use flowmesh_types::api::Hardware;
use flowmesh_types::parse_document;
use reqwest::StatusCode;

flowmesh_tests::on_both_backends!(
    a_backlog_does_not_starve_another_tenant,
    weights_divide_the_claims,
    a_running_limit_holds_across_claims,
    a_returning_tenant_earns_no_credit_for_its_pause,
    another_tenants_tasks_start_while_a_backlog_drains,
    a_submit_past_the_pending_limit_is_refused_whole,
    tasks_no_worker_fits_hold_back_only_their_own_tenant_and_type,
    claims_on_two_servers_at_once_charge_every_task,
);

const LONG: Duration = Duration::from_secs(60);

async fn open(db: Db) -> (Store, TestDb) {
    let test_db = TestDb::new(db).await;
    let store = Store::open(&test_db.url).await.expect("store opens");
    (store, test_db)
}

/// `count` echo tasks of `tenant`.
async fn submit(store: &Store, tenant: &str, count: usize) {
    submit_document(store, tenant, ECHO, count).await;
}

const ECHO: &str = "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo}\n";

/// `count` tasks of `tenant` from the task document `yaml`.
async fn submit_document(store: &Store, tenant: &str, yaml: &str, count: usize) {
    let document = parse_document(yaml).expect("valid");
    for _ in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        store
            .insert_task(NewTask {
                id: &id,
                tenant,
                document: &document,
                now: 1_000,
                stage: None,
            })
            .await
            .expect("stored");
    }
}

/// A shared echo worker with plenty of slots.
async fn worker(store: &Store) -> String {
    worker_named(store, "w").await
}

/// A shared echo worker named `name` with plenty of slots.
async fn worker_named(store: &Store, name: &str) -> String {
    fixtures::register(
        store,
        TestRegistration {
            name,
            pool: None,
            types: &["echo"],
            labels: &[],
            slots: 1000,
            hardware: Hardware {
                cpus: 64.0,
                memory_bytes: 1 << 40,
                gpus: Vec::new(),
            },
        },
    )
    .await
}

/// The tenants of the tasks `claims` claims of `max` each hand out, in
/// order.
async fn claim_tenants(
    store: &Store,
    worker: &str,
    rules: &TenantRules,
    claims: usize,
    max: u32,
) -> Vec<Vec<String>> {
    let mut rounds = Vec::new();
    for _ in 0..claims {
        let claim = Claim {
            rules,
            ..claim_for(worker, max, 64)
        };
        let (claimed, _) = store.claim(&claim, 2_000, 600_000).await.expect("claim");
        let mut tenants = Vec::new();
        for task in claimed {
            let record = store
                .task(None, &task.id)
                .await
                .expect("read")
                .expect("stored");
            tenants.push(record.tenant);
        }
        tenants.sort();
        rounds.push(tenants);
    }
    rounds
}

fn count(rounds: &[Vec<String>], tenant: &str) -> usize {
    rounds.iter().flatten().filter(|t| *t == tenant).count()
}

async fn a_backlog_does_not_starve_another_tenant(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, "a", 40).await;
    submit(&store, "b", 5).await;
    let worker = worker(&store).await;
    let rounds = claim_tenants(&store, &worker, &TenantRules::OPEN, 10, 1).await;
    assert_eq!(
        count(&rounds, "b"),
        5,
        "b's five tasks, submitted after a's forty, are among the first ten claimed: {rounds:?}"
    );
    // One claim of several takes from both.
    let (store, _db) = open(db).await;
    submit(&store, "a", 40).await;
    submit(&store, "b", 5).await;
    let worker = self::worker(&store).await;
    let rounds = claim_tenants(&store, &worker, &TenantRules::OPEN, 1, 8).await;
    assert_eq!(count(&rounds, "b"), 4, "{rounds:?}");
    assert_eq!(count(&rounds, "a"), 4, "{rounds:?}");
}

async fn weights_divide_the_claims(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, "heavy", 40).await;
    submit(&store, "light", 40).await;
    let worker = worker(&store).await;
    let mut policy = flowmesh_server::config::TenantPolicies::default();
    policy.tenants.insert(
        "heavy".into(),
        TenantPolicy {
            weight: 2.0,
            ..TenantPolicy::default()
        },
    );
    let rules = policy.claim_rules();
    assert_eq!(rules.stride("heavy"), STRIDE / 2);
    let rounds = claim_tenants(&store, &worker, &rules, 30, 1).await;
    let heavy = count(&rounds, "heavy");
    assert!(
        (19..=21).contains(&heavy),
        "weight 2 against 1 takes two claims of three: {heavy} of 30 ({rounds:?})"
    );
}

async fn a_running_limit_holds_across_claims(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, "capped", 20).await;
    submit(&store, "free", 20).await;
    let worker = worker(&store).await;
    let mut policy = flowmesh_server::config::TenantPolicies::default();
    policy.tenants.insert(
        "capped".into(),
        TenantPolicy {
            max_running: Some(3),
            ..TenantPolicy::default()
        },
    );
    let rules = policy.claim_rules();
    let rounds = claim_tenants(&store, &worker, &rules, 4, 8).await;
    assert_eq!(
        count(&rounds, "capped"),
        3,
        "capped runs at most three at once, over all claims: {rounds:?}"
    );
    assert_eq!(count(&rounds, "free"), 20, "{rounds:?}");
    let running = store.running_by_tenant().await.expect("running");
    assert_eq!(running.get("capped"), Some(&3));
}

async fn a_returning_tenant_earns_no_credit_for_its_pause(db: Db) {
    let (store, _db) = open(db).await;
    submit(&store, "steady", 60).await;
    let worker = worker(&store).await;
    // steady alone for twenty claims; then idle comes back.
    let alone = claim_tenants(&store, &worker, &TenantRules::OPEN, 20, 1).await;
    assert_eq!(count(&alone, "steady"), 20);
    submit(&store, "idle", 30).await;
    let rounds = claim_tenants(&store, &worker, &TenantRules::OPEN, 20, 1).await;
    let idle = count(&rounds, "idle");
    assert!(
        (9..=12).contains(&idle),
        "idle gets its turn, not the twenty claims steady had alone: {idle} of 20 ({rounds:?})"
    );
}

/// End to end: B's tasks all start while A's backlog still waits.
async fn another_tenants_tasks_start_while_a_backlog_drains(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w", 2).await;
    let a = server.user("a").await;
    let b = server.user("b").await;
    let mut backlog = Vec::new();
    for _ in 0..40 {
        backlog.push(a.submit(&sleep_document("150ms")).await);
    }
    let mut quick = Vec::new();
    for n in 0..4 {
        quick.push(b.echo(&format!("b {n}")).await);
    }
    for id in &quick {
        let task = b.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
    }
    let (status, page) = a.get("/tasks?state=pending&limit=500").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let waiting = page["tasks"].as_array().map_or(0, Vec::len);
    assert!(
        waiting >= 20,
        "B's tasks all ran while most of A's backlog still waited: {waiting} of 40 pending"
    );
    for id in &backlog {
        a.finished(id, LONG).await;
    }
}

/// A tenant's limit of waiting tasks: a document that would pass it is
/// refused whole, with 429 and the limit named; others still submit.
async fn a_submit_past_the_pending_limit_is_refused_whole(db: Db) {
    let server = TestServer::start(db, |config| {
        config.tenants.tenants.insert(
            "small".into(),
            TenantPolicy {
                max_pending: Some(3),
                ..TenantPolicy::default()
            },
        );
    })
    .await;
    let small = server.user("small").await;
    for n in 0..2 {
        small.echo(&format!("{n}")).await;
    }
    let workflow = "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  defaults: {taskType: echo}\n  stages:\n    - name: one\n      spec: {message: a}\n    - name: two\n      spec: {message: b}\n";
    let (status, answer) = small.submit_raw("", workflow).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["code"], "quota_exceeded", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("limit of 3") && message.contains("max-pending"),
        "{message}"
    );
    let (_, page) = small.get("/tasks").await;
    assert_eq!(
        page["tasks"].as_array().map_or(0, Vec::len),
        2,
        "nothing of the refused workflow was stored"
    );
    small.echo("third").await;
    let (status, _) = small
        .submit_raw("", &flowmesh_tests::cluster::echo_document("fourth"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let other = server.user("other").await;
    other.echo("unlimited").await;
}

/// A claim looks at a bounded window of each tenant's oldest pending tasks
/// of each type. A tenant whose oldest tasks fit no worker (here: more
/// memory than any has), more of them than the window holds, must not hold
/// back another tenant's tasks, nor its own tasks of another type.
async fn tasks_no_worker_fits_hold_back_only_their_own_tenant_and_type(db: Db) {
    const WINDOW: u32 = 4;
    let (store, _db) = open(db).await;
    let huge = "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: echo\n  resources: {hardware: {memory: 4Ti}}\n";
    submit_document(&store, "a", huge, 3 * WINDOW as usize).await;
    submit_document(
        &store,
        "a",
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: sleep, duration: 1ms}\n",
        1,
    )
    .await;
    submit(&store, "b", 1).await;
    let worker = fixtures::register(
        &store,
        TestRegistration {
            name: "w",
            pool: None,
            types: &["echo", "sleep"],
            labels: &[],
            slots: 10,
            hardware: Hardware {
                cpus: 64.0,
                memory_bytes: 1 << 40,
                gpus: Vec::new(),
            },
        },
    )
    .await;
    let claim = claim_for(&worker, 10, WINDOW);
    let (claimed, _) = store.claim(&claim, 2_000, 600_000).await.expect("claim");
    let mut taken: Vec<(String, String)> = Vec::new();
    for task in &claimed {
        let record = store
            .task(None, &task.id)
            .await
            .expect("read")
            .expect("stored");
        taken.push((record.tenant, task.task_type.clone()));
    }
    taken.sort();
    assert_eq!(
        taken,
        [("a".into(), "sleep".into()), ("b".into(), "echo".into())],
        "b's echo task and a's sleep task are claimed past a's tasks that fit no worker"
    );
}

/// Two servers on one database claim for the same tenant at once: its pass
/// counts every task either started (a charge reads the pass where it
/// writes it, so neither overwrites the other's).
async fn claims_on_two_servers_at_once_charge_every_task(db: Db) {
    let (store, test_db) = open(db).await;
    let other = Store::open(&test_db.url)
        .await
        .expect("a second server's store opens");
    submit(&store, "a", 40).await;
    let first = worker_named(&store, "w").await;
    let second = worker_named(&store, "w2").await;
    async fn claims(store: &Store, worker: &str) -> usize {
        let mut started = 0;
        for _ in 0..20 {
            let (claimed, _) = store
                .claim(&claim_for(worker, 1, 64), 2_000, 600_000)
                .await
                .expect("claim");
            started += claimed.len();
        }
        started
    }
    let (one, two) = tokio::join!(claims(&store, &first), claims(&other, &second));
    assert!(one > 0 && two > 0, "both servers claimed: {one} and {two}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&test_db.url)
        .await
        .expect("the database opens");
    let pass: i64 = sqlx::query_scalar("SELECT pass FROM tenant_shares WHERE tenant = 'a'")
        .fetch_one(&pool)
        .await
        .expect("a's pass");
    pool.close().await;
    assert_eq!(
        pass,
        (one + two) as i64 * STRIDE,
        "{one} and {two} tasks started, each one stride"
    );
}
