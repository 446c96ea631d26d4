//! Burn-down benchmark: echo tasks through a real server and one real
//! worker with several slots, over HTTP, on SQLite and on PostgreSQL, each
//! figure next to the store's own ceiling measured in the same run.
//!
//! ```text
//! cargo bench -p flowmesh-tests --bench burndown -- [sqlite] [postgres] [PHASE…]
//!     [--tasks N] [--slots S] [--workflows W] [--chains C] [--full-sync]
//! ```
//!
//! Phases (all when none is named):
//! - **ceiling**: the store alone, no HTTP and no worker: the same insert,
//!   claim and complete statements in batches of 100 ([`ceiling`]).
//! - **drain**: the queue is filled first (batches of 1,000), then the
//!   worker starts; tasks/s is claim → run → complete throughput.
//! - **live**: the worker runs while 4 clients submit batches of 500:
//!   burn-down tasks/s (first submit to last completion) against the
//!   ceiling, and submit → start p50/p99.
//! - **single**: the worker runs while 16 clients submit one document per
//!   request: submits/s.
//! - **idle**: one client submits one task at a time to an idle worker and
//!   waits for it: submit → start p50/p99.
//! - **fair**: tenant A's backlog fills the queue, the worker starts, and
//!   tenant B submits 200 tasks from 4 clients: B's submit → start, how much
//!   of A's backlog had started when B's last task did (goal: under a
//!   tenth), and the throughput against the one-tenant drain.
//! - **flows**: C chains of 32 echo stages (4 by default), one after
//!   another, each stage reading the previous one's output: the hand-off (a
//!   stage finished → the next one claimed) p50/p99 and its mean (the
//!   stored times are whole milliseconds: the mean of many hand-offs is
//!   finer than any one); then W three-stage workflows submitted in
//!   batches of 100 from 4 clients: workflows/s and submit → finished
//!   p50/p99.
//! - **two** (PostgreSQL only): two servers on one database, the worker
//!   connected to the second; 300 tasks submitted one at a time to the
//!   first: submit → start p50/p99, the wake-up crossing servers through
//!   `LISTEN/NOTIFY` (claims re-check only every 500 ms without it).
//! - **count**: a live burn-down with every SQL statement counted
//!   ([`statements`]): statement executions per task, a multi-row statement
//!   counting once, and the statements that took the database's time, most
//!   first, timed where they ran.
//!
//! Every server runs with `flowmesh up`'s defaults but for shorter
//! heartbeats; `validate()` runs for every document and fair shares are on.
//! `--full-sync` runs SQLite with `synchronous=FULL` (power-loss durability)
//! to show its cost.

/// The allocator of the `flowmesh` binary (host/cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "burndown/ceiling.rs"]
mod ceiling;
#[path = "burndown/statements.rs"]
mod statements;

use std::time::{Duration, Instant};

use flowmesh_server::store::{Durability, Store};
use flowmesh_tests::cluster::{Api, Db, TestServer, echo_document};
use flowmesh_types::api::TaskState;
use sqlx::Row;

const SUBMITTERS: usize = 16;
/// Clients sending batches, and the documents in each.
const BATCH_CLIENTS: usize = 4;
const BATCH: usize = 500;
/// Statements the count phase lists by the time they took.
const TOP_STATEMENTS: usize = 8;

struct Options {
    backends: Vec<Db>,
    /// The phases to run; all when none is named.
    phases: Vec<String>,
    tasks: usize,
    slots: u32,
    workflows: usize,
    /// Chains the flows phase runs, one after another.
    chains: usize,
    durability: Durability,
}

const PHASES: [&str; 9] = [
    "ceiling", "drain", "live", "single", "idle", "fair", "flows", "two", "count",
];

fn options() -> Options {
    let mut options = Options {
        backends: Vec::new(),
        phases: Vec::new(),
        tasks: 20_000,
        slots: 16,
        workflows: 2_000,
        chains: 4,
        durability: Durability::Normal,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number =
            |default: usize| args.next().and_then(|n| n.parse().ok()).unwrap_or(default);
        match arg.as_str() {
            "sqlite" => options.backends.push(Db::Sqlite),
            "postgres" => options.backends.push(Db::Postgres),
            phase if PHASES.contains(&phase) => options.phases.push(arg),
            "--tasks" => options.tasks = number(options.tasks),
            "--slots" => options.slots = number(options.slots as usize) as u32,
            "--workflows" => options.workflows = number(options.workflows),
            "--chains" => options.chains = number(options.chains).max(1),
            "--full-sync" => options.durability = Durability::Full,
            _ => {} // cargo bench passes --bench
        }
    }
    if options.backends.is_empty() {
        options.backends = vec![Db::Sqlite, Db::Postgres];
    }
    options
}

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|name| name == phase)
    }
}

async fn start(db: Db, options: &Options) -> TestServer {
    let durability = options.durability;
    TestServer::start(db, move |config| {
        config.heartbeat_interval = Duration::from_secs(1);
        config.lease_ttl = Duration::from_secs(20);
        config.placement_interval = Duration::from_secs(1);
        config.durability = durability;
    })
    .await
}

fn echo_json(n: usize) -> serde_json::Value {
    serde_json::json!({"apiVersion": "flowmesh/v1", "kind": "Task",
                       "spec": {"taskType": "echo", "message": format!("task {n}")}})
}

/// The benchmark's echo worker: `slots`, and the most claimed ahead that
/// they allow, eight per slot (`--read-ahead`; the default is a quarter of
/// the slots), which its pace uses in full for tasks of microseconds: about
/// `slots × trip / task` of them finish while one round trip is on the way.
async fn bench_worker(server: &TestServer, slots: u32) -> flowmesh_tests::cluster::TestWorker {
    server
        .worker_with(
            "bench",
            &[("echo", flowmesh_tests::components::ECHO)],
            flowmesh_runtime::HostCapabilities::none(),
            slots,
            |config| config.read_ahead = Some(flowmesh_types::api::max_read_ahead(slots)),
        )
        .await
}

/// Submits `count` documents made by `document` in batches of `batch` (a
/// JSON array each) from `clients` clients at once.
async fn submit_batches(
    api: &Api,
    count: usize,
    clients: usize,
    batch: usize,
    document: impl Fn(usize) -> serde_json::Value + Clone + Send + 'static,
) -> Duration {
    let started = Instant::now();
    let per = count.div_ceil(clients);
    // Collected, so every client starts before the first is awaited.
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let api = api.clone();
            let document = document.clone();
            tokio::spawn(async move {
                let first = client * per;
                let last = (first + per).min(count);
                let mut n = first;
                while n < last {
                    let end = (n + batch).min(last);
                    let documents: Vec<_> = (n..end).map(&document).collect();
                    let response = api
                        .request(reqwest::Method::POST, "/tasks")
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(serde_json::Value::Array(documents).to_string())
                        .send()
                        .await
                        .expect("submit");
                    let status = response.status();
                    assert!(status.is_success(), "{status}: {:?}", response.text().await);
                    n = end;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("submitter");
    }
    started.elapsed()
}

/// Submits `count` documents made by `document`, one per request, from 16
/// clients at once.
async fn submit_singly(
    api: &Api,
    count: usize,
    document: impl Fn(usize) -> String + Clone + Send + 'static,
) -> Duration {
    let started = Instant::now();
    let per = count.div_ceil(SUBMITTERS);
    // Collected, so every client starts before the first is awaited.
    let clients: Vec<_> = (0..SUBMITTERS)
        .map(|client| {
            let api = api.clone();
            let document = document.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    let n = client * per + i;
                    if n >= count {
                        break;
                    }
                    api.submit(&document(n)).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("submitter");
    }
    started.elapsed()
}

/// Waits until `tasks` tasks have finished, all of them successfully; the
/// time from `since` (ms since the epoch) to the last one's end, as the
/// store recorded it.
async fn wait_done(server: &TestServer, tasks: usize, since: i64) -> Duration {
    let store = server.server.store();
    // A queue that stops moving for this long is stuck: say so, not hang.
    const STALL: Duration = Duration::from_secs(60);
    let mut last = (0, tokio::time::Instant::now());
    loop {
        let depth = store.queue_depth().await.expect("queue depth");
        let done: i64 = depth
            .iter()
            .filter(|(_, state, _)| state.is_terminal())
            .map(|(_, _, n)| n)
            .sum();
        let failed: i64 = depth
            .iter()
            .filter(|(_, state, _)| *state != TaskState::Succeeded && state.is_terminal())
            .map(|(_, _, n)| n)
            .sum();
        assert_eq!(failed, 0, "tasks failed: {depth:?}");
        if done as usize >= tasks {
            break;
        }
        if done != last.0 {
            last = (done, tokio::time::Instant::now());
        }
        assert!(
            last.1.elapsed() < STALL,
            "no task finished for {STALL:?}: {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = sorted_column(&server.db.url, "SELECT MAX(finished_at) AS ms FROM tasks").await;
    Duration::from_millis((last.first().copied().unwrap_or(since) - since).max(1) as u64)
}

fn now_ms() -> i64 {
    flowmesh_server::state::now_ms()
}

/// The `ms` column of `query`'s rows, sorted.
async fn sorted_column(url: &str, query: &str) -> Vec<i64> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_all(&pool)
        .await
        .expect("query");
    let mut values: Vec<i64> = rows.iter().map(|row| row.get::<i64, _>("ms")).collect();
    values.sort_unstable();
    pool.close().await;
    values
}

/// Submit → start latencies in milliseconds, sorted.
async fn latencies(url: &str, tenant: Option<&str>) -> Vec<i64> {
    let filter = tenant.map_or_else(String::new, |tenant| {
        format!(" WHERE t.tenant = '{tenant}'")
    });
    sorted_column(
        url,
        &format!(
            "SELECT a.started_at - t.created_at AS ms FROM task_attempts a JOIN tasks t ON t.id = a.task_id{filter}"
        ),
    )
    .await
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What one backend's run has measured so far, for the ratios.
#[derive(Default)]
struct Measured {
    ceiling: Option<f64>,
    drain: Option<f64>,
}

async fn run(db: Db, options: &Options) {
    let name = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let mut measured = Measured::default();
    if options.runs("ceiling") {
        let ceiling = ceiling::measure(db, options.tasks).await;
        println!(
            "{name:<9} ceiling {} tasks, batches of 100, no HTTP: insert {:>6.0}/s, claim+complete {:>6.0}/s, all {:>6.0} tasks/s",
            options.tasks, ceiling.insert, ceiling.claim_complete, ceiling.all
        );
        measured.ceiling = Some(ceiling.all);
    }
    if options.runs("drain") {
        drain(db, name, options, &mut measured).await;
    }
    if options.runs("live") {
        live(db, name, options, &measured, options.tasks, "live ").await;
    }
    if options.runs("single") {
        single(db, name, options).await;
    }
    if options.runs("idle") {
        idle(db, name, options).await;
    }
    if options.runs("fair") {
        fairness(db, name, options, measured.drain).await;
    }
    if options.runs("flows") {
        workflows(db, name, options).await;
    }
    if options.runs("two") && db == Db::Postgres {
        two_servers(name, options).await;
    }
    if options.runs("count") {
        let tasks = options.tasks.min(5_000);
        statements::start();
        live(db, name, options, &measured, tasks, "count").await;
        let counted = statements::stop();
        let executed = counted.executions();
        println!(
            "{name:<9} count  {tasks} tasks: {executed} SQL statement executions, {:.2} per task (BEGIN/COMMIT not counted; the phase's server start, registration and plugin install included)",
            executed as f64 / tasks as f64
        );
        println!(
            "{name:<9} count  where the database's time went, most first (µs per task; per execution):"
        );
        for statement in counted.statements.iter().take(TOP_STATEMENTS) {
            println!(
                "{name:<9}   {:>6.1} µs/task {:>7.0} µs each x {:>5}  {}",
                statement.time.as_secs_f64() * 1e6 / tasks as f64,
                statement.time.as_secs_f64() * 1e6 / statement.executions as f64,
                statement.executions,
                statement.name
            );
        }
    }
}

fn against(rate: f64, of: Option<f64>, what: &str) -> String {
    of.map_or_else(String::new, |of| {
        format!(" ({:.0} % of the {what})", rate / of * 100.0)
    })
}

/// A full queue, then one worker.
async fn drain(db: Db, name: &str, options: &Options, measured: &mut Measured) {
    let server = start(db, options).await;
    let api = server.admin();
    let submit = submit_batches(&api, options.tasks, BATCH_CLIENTS, 1000, echo_json).await;
    let since = now_ms();
    let worker = bench_worker(&server, options.slots).await;
    let drain = wait_done(&server, options.tasks, since).await;
    drop(worker);
    let rate = options.tasks as f64 / drain.as_secs_f64();
    println!(
        "{name:<9} drain  {} tasks, {} slots: submit {:>6.0}/s, drain {:>6.0} tasks/s ({:.2}s){}",
        options.tasks,
        options.slots,
        options.tasks as f64 / submit.as_secs_f64(),
        rate,
        drain.as_secs_f64(),
        against(rate, measured.ceiling, "ceiling"),
    );
    measured.drain = Some(rate);
    server.server.shutdown().await;
}

/// The worker runs while clients submit batches.
async fn live(
    db: Db,
    name: &str,
    options: &Options,
    measured: &Measured,
    tasks: usize,
    label: &str,
) {
    let server = start(db, options).await;
    let api = server.admin();
    let _worker = bench_worker(&server, options.slots).await;
    let since = now_ms();
    let submit = submit_batches(&api, tasks, BATCH_CLIENTS, BATCH, echo_json).await;
    let total = wait_done(&server, tasks, since).await;
    let waits = latencies(&server.db.url, None).await;
    let rate = tasks as f64 / total.as_secs_f64();
    println!(
        "{name:<9} {label}  {tasks} tasks, {} slots, batches of {BATCH} from {BATCH_CLIENTS} clients: submit {:>6.0}/s, burn-down {:>6.0} tasks/s ({:.2}s){}, submit->start p50 {} ms, p99 {} ms",
        options.slots,
        tasks as f64 / submit.as_secs_f64(),
        rate,
        total.as_secs_f64(),
        against(rate, measured.ceiling, "ceiling"),
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
    );
    server.server.shutdown().await;
}

/// The worker runs while 16 clients submit one document per request.
async fn single(db: Db, name: &str, options: &Options) {
    let server = start(db, options).await;
    let api = server.admin();
    let _worker = bench_worker(&server, options.slots).await;
    let count = options.tasks.min(10_000);
    let since = now_ms();
    let submit = submit_singly(&api, count, |n| echo_document(&format!("task {n}"))).await;
    let total = wait_done(&server, count, since).await;
    let waits = latencies(&server.db.url, None).await;
    println!(
        "{name:<9} single {count} documents, one per request from {SUBMITTERS} clients, worker running: submit {:>6.0}/s, burn-down {:>6.0} tasks/s, submit->start p50 {} ms, p99 {} ms",
        count as f64 / submit.as_secs_f64(),
        count as f64 / total.as_secs_f64(),
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
    );
    server.server.shutdown().await;
}

/// One task at a time to an idle worker.
async fn idle(db: Db, name: &str, options: &Options) {
    const TASKS: usize = 300;
    let server = start(db, options).await;
    let api = server.admin();
    let _worker = bench_worker(&server, options.slots).await;
    // Let the worker settle into its long poll.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..TASKS {
        let (status, answer) = api
            .submit_raw("?wait=10s", &echo_document(&format!("idle {n}")))
            .await;
        assert!(status.is_success(), "{status}: {answer}");
        assert_eq!(answer["task"]["state"], "succeeded", "{answer}");
    }
    let waits = latencies(&server.db.url, None).await;
    println!(
        "{name:<9} idle   {TASKS} tasks one at a time: submit->start p50 {} ms, p99 {} ms",
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
    );
    server.server.shutdown().await;
}

/// Two servers on one database, the worker on the second, tasks submitted
/// one at a time to the first.
async fn two_servers(name: &str, options: &Options) {
    const TASKS: usize = 300;
    let a = start(Db::Postgres, options).await;
    let (b, _dir) = a.another_server(|_| {}).await;
    let _worker = flowmesh_tests::cluster::TestWorker::start(
        &b.url(),
        &a.worker_token,
        "bench-on-b",
        &[("echo", flowmesh_tests::components::ECHO)],
        flowmesh_runtime::HostCapabilities::none(),
        options.slots,
        |_| {},
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api = a.admin();
    for n in 0..TASKS {
        api.echo(&format!("across {n}")).await;
        // Each finds the worker idle, waiting in its claim on the other server.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let since = now_ms();
    let _ = wait_done(&a, TASKS, since).await;
    let waits = latencies(&a.db.url, None).await;
    println!(
        "{name:<9} two    {TASKS} tasks submitted to server A, worker on server B: submit->start p50 {} ms, p99 {} ms",
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
    );
    b.shutdown().await;
    a.server.shutdown().await;
}

/// Tenant B's tasks against tenant A's backlog; `alone` is the one-tenant
/// drain's tasks/s, when that phase ran.
async fn fairness(db: Db, name: &str, options: &Options, alone: Option<f64>) {
    const B_TASKS: usize = 200;
    let server = start(db, options).await;
    let a = server.user("a").await;
    let b = server.user("b").await;
    submit_batches(&a, options.tasks, BATCH_CLIENTS, 1000, echo_json).await;
    let since = now_ms();
    let worker = bench_worker(&server, options.slots).await;
    let per = B_TASKS / 4;
    let b_since = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let b = b.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    b.submit(&echo_document(&format!("b {client} {n}"))).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("submitter");
    }
    let b_submitting = b_since.elapsed();
    let total = wait_done(&server, options.tasks + B_TASKS, since).await;
    drop(worker);
    let url = &server.db.url;
    let waits = latencies(url, Some("b")).await;
    let a_before_b_done = sorted_column(
        url,
        "SELECT COUNT(*) AS ms FROM task_attempts a JOIN tasks t ON t.id = a.task_id
         WHERE t.tenant = 'a' AND a.started_at <= (SELECT MAX(a2.started_at) FROM task_attempts a2
                                                   JOIN tasks t2 ON t2.id = a2.task_id WHERE t2.tenant = 'b')",
    )
    .await;
    let drained = a_before_b_done.first().copied().unwrap_or(0) as f64 / options.tasks as f64;
    let rate = (options.tasks + B_TASKS) as f64 / total.as_secs_f64();
    println!(
        "{name:<9} fair   A {} backlog + B {B_TASKS}, {} slots: B submit->start p50 {} ms, p99 {} ms; A {:.1} % started when B's last did (B's submits took {} ms); {:>6.0} tasks/s{}",
        options.tasks,
        options.slots,
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
        drained * 100.0,
        b_submitting.as_millis(),
        rate,
        alone.map_or_else(String::new, |alone| format!(
            " ({:+.1} % against one tenant's drain)",
            (rate / alone - 1.0) * 100.0
        )),
    );
    server.server.shutdown().await;
}

/// A workflow of `stages` echo stages in a chain, each stage's message the
/// previous stage's output.
fn chain(stages: usize) -> String {
    let mut document = String::from(
        "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  defaults: {taskType: echo}\n  stages:\n    - {name: s0, spec: {message: go}}\n",
    );
    for stage in 1..stages {
        document.push_str(&format!(
            "    - {{name: s{stage}, spec: {{message: '${{s{}.output.message}}'}}}}\n",
            stage - 1
        ));
    }
    document
}

/// A three-stage workflow as JSON.
fn three_stages(n: usize) -> serde_json::Value {
    serde_json::json!({"apiVersion": "flowmesh/v1", "kind": "Workflow", "spec": {
    "defaults": {"taskType": "echo"},
    "stages": [
        {"name": "a", "spec": {"message": format!("flow {n}")}},
        {"name": "b", "spec": {"message": "${a.output.message}, b"}},
        {"name": "c", "spec": {"message": "${b.output.message}, c"}},
    ]}})
}

/// Waits until `count` workflows have finished, and checks that every stage
/// succeeded.
async fn wait_workflows(store: &Store, url: &str, count: usize) {
    const LIMIT: Duration = Duration::from_secs(600);
    let started = tokio::time::Instant::now();
    loop {
        let done = sorted_column(
            url,
            "SELECT COUNT(*) AS ms FROM workflows WHERE state <> 'running'",
        )
        .await;
        if done.first().copied().unwrap_or(0) as usize >= count {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "workflows not finished after {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let depth = store.queue_depth().await.expect("queue depth");
    assert!(
        depth
            .iter()
            .all(|(_, state, _)| *state == TaskState::Succeeded),
        "stages did not all succeed: {depth:?}"
    );
}

async fn workflows(db: Db, name: &str, options: &Options) {
    const CHAIN: usize = 32;
    let server = start(db, options).await;
    let api = server.admin();
    let _worker = bench_worker(&server, options.slots).await;
    let started = Instant::now();
    for done in 1..=options.chains {
        api.submit(&chain(CHAIN)).await;
        wait_workflows(server.server.store(), &server.db.url, done).await;
    }
    let elapsed = started.elapsed();
    let handoffs = sorted_column(
        &server.db.url,
        "SELECT b.started_at - a.finished_at AS ms FROM tasks a JOIN tasks b \
         ON b.workflow_id = a.workflow_id AND b.seq = a.seq + 1",
    )
    .await;
    let mean = handoffs.iter().sum::<i64>() as f64 / handoffs.len().max(1) as f64;
    println!(
        "{name:<9} chain  {} chains of {CHAIN} stages: {:.2}s, hand-off (stage finished -> next claimed) p50 {} ms, p99 {} ms, mean {mean:.2} ms",
        options.chains,
        elapsed.as_secs_f64(),
        percentile(&handoffs, 0.50),
        percentile(&handoffs, 0.99),
    );
    server.server.shutdown().await;

    let server = start(db, options).await;
    let api = server.admin();
    let _worker = bench_worker(&server, options.slots).await;
    let started = Instant::now();
    let submit = submit_batches(&api, options.workflows, BATCH_CLIENTS, 100, three_stages).await;
    wait_workflows(server.server.store(), &server.db.url, options.workflows).await;
    let total = started.elapsed();
    let spans = sorted_column(
        &server.db.url,
        "SELECT finished_at - created_at AS ms FROM workflows",
    )
    .await;
    println!(
        "{name:<9} flows  {} workflows of 3 stages, batches of 100 from {BATCH_CLIENTS} clients, {} slots: submit {:>5.0}/s, {:>5.0} workflows/s ({:.2}s), submit->finished p50 {} ms, p99 {} ms",
        options.workflows,
        options.slots,
        options.workflows as f64 / submit.as_secs_f64(),
        options.workflows as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
        percentile(&spans, 0.50),
        percentile(&spans, 0.99),
    );
    server.server.shutdown().await;
}

fn main() {
    let options = options();
    statements::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for db in options.backends.clone() {
            run(db, &options).await;
        }
    });
}
