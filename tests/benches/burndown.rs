//! Burn-down benchmark: 20,000 echo tasks through a real server and one real
//! worker with several slots, over HTTP, on SQLite and on PostgreSQL.
//!
//! ```text
//! cargo bench -p flowmesh-tests --bench burndown -- [sqlite] [postgres] [--tasks N] [--slots S] [--workflows W]
//! ```
//!
//! Three phases per backend:
//! - **drain**: the queue is filled first, then the worker starts; tasks/s is
//!   pure claim → run → complete throughput.
//! - **live**: the worker runs while 16 clients submit; reports submit rate,
//!   burn-down tasks/s (first submit to last completion), and submit → start
//!   latency (task created → attempt claimed) p50/p99.
//! - **fairness**: tenant A's backlog of N tasks fills the queue, the
//!   worker starts, and tenant B submits 200 tasks from 4 clients: B's
//!   submit → start p50/p99, how much of A's backlog had started when B's
//!   last task did (goal: under a tenth), and the throughput of the whole
//!   run against the one-tenant drain (goal: under 10 % lost).
//! - **workflows**: a chain of 32 echo stages, each reading the previous
//!   one's output through a placeholder, reports the hand-off (a stage
//!   finished → the next one claimed: release, placeholder resolution,
//!   validation of the resolved spec, claim) p50/p99; then W three-stage
//!   workflows submitted by 16 clients report workflows/s and submit →
//!   finished p50/p99.

use std::time::{Duration, Instant};

use flowmesh_server::store::Store;
use flowmesh_tests::cluster::{Api, Db, TestServer, echo_document};
use flowmesh_types::api::TaskState;
use sqlx::Row;

const SUBMITTERS: usize = 16;

struct Options {
    backends: Vec<Db>,
    /// The phases to run (`drain`, `live`, `fair`, `flows`); all when none
    /// is named.
    phases: Vec<String>,
    tasks: usize,
    slots: u32,
    workflows: usize,
}

fn options() -> Options {
    let mut backends = Vec::new();
    let mut phases = Vec::new();
    let mut tasks = 20_000;
    let mut slots = 16;
    let mut workflows = 500;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "sqlite" => backends.push(Db::Sqlite),
            "postgres" => backends.push(Db::Postgres),
            "drain" | "live" | "fair" | "flows" => phases.push(arg),
            "--tasks" => tasks = args.next().and_then(|n| n.parse().ok()).unwrap_or(tasks),
            "--slots" => slots = args.next().and_then(|n| n.parse().ok()).unwrap_or(slots),
            "--workflows" => {
                workflows = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(workflows)
            }
            _ => {} // cargo bench passes --bench
        }
    }
    if backends.is_empty() {
        backends = vec![Db::Sqlite, Db::Postgres];
    }
    Options {
        backends,
        phases,
        tasks,
        slots,
        workflows,
    }
}

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|name| name == phase)
    }
}

async fn start(db: Db) -> TestServer {
    TestServer::start(db, |config| {
        config.heartbeat_interval = Duration::from_secs(1);
        config.lease_ttl = Duration::from_secs(20);
        config.placement_interval = Duration::from_secs(1);
    })
    .await
}

async fn submit_all(api: &Api, tasks: usize) -> Duration {
    submit_many(api, tasks, |n| echo_document(&format!("task {n}"))).await
}

/// Submits `count` documents made by `document` from 16 clients at once.
async fn submit_many(
    api: &Api,
    count: usize,
    document: impl Fn(usize) -> String + Clone + Send + 'static,
) -> Duration {
    let started = Instant::now();
    let per = count.div_ceil(SUBMITTERS);
    let clients = (0..SUBMITTERS).map(|client| {
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
    });
    for client in clients {
        client.await.expect("submitter");
    }
    started.elapsed()
}

async fn wait_done(store: &Store, tasks: usize) {
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
            return;
        }
        if done != last.0 {
            last = (done, tokio::time::Instant::now());
        }
        assert!(
            last.1.elapsed() < STALL,
            "no task finished for {STALL:?}: {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submit → start latencies in milliseconds, sorted.
async fn latencies(url: &str) -> Vec<i64> {
    sorted_column(
        url,
        "SELECT a.started_at - t.created_at AS ms FROM task_attempts a JOIN tasks t ON t.id = a.task_id",
    )
    .await
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
    let server = start(db).await;
    let api = server.admin();
    let _worker = server.echo_worker("bench", options.slots).await;
    let started = Instant::now();
    api.submit(&chain(CHAIN)).await;
    wait_workflows(server.server.store(), &server.db.url, 1).await;
    let elapsed = started.elapsed();
    let handoffs = sorted_column(
        &server.db.url,
        "SELECT b.started_at - a.finished_at AS ms FROM tasks a JOIN tasks b \
         ON b.workflow_id = a.workflow_id AND b.seq = a.seq + 1",
    )
    .await;
    println!(
        "{name:<9} chain  {CHAIN} stages: {:.2}s, hand-off (stage finished -> next claimed) p50 {} ms, p99 {} ms",
        elapsed.as_secs_f64(),
        percentile(&handoffs, 0.50),
        percentile(&handoffs, 0.99),
    );
    server.server.shutdown().await;

    let server = start(db).await;
    let api = server.admin();
    let _worker = server.echo_worker("bench", options.slots).await;
    let started = Instant::now();
    let submit = submit_many(&api, options.workflows, |_| chain(3)).await;
    wait_workflows(server.server.store(), &server.db.url, options.workflows).await;
    let total = started.elapsed();
    let spans = sorted_column(
        &server.db.url,
        "SELECT finished_at - created_at AS ms FROM workflows",
    )
    .await;
    println!(
        "{name:<9} flows  {} workflows of 3 stages, {} slots: submit {:>5.0}/s, {:>5.0} workflows/s ({:.2}s), submit->finished p50 {} ms, p99 {} ms",
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

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(db: Db, options: &Options) {
    let name = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };

    // Drain: a full queue, then one worker.
    let mut alone = None;
    if options.runs("drain") {
        let server = start(db).await;
        let api = server.admin();
        let submit = submit_all(&api, options.tasks).await;
        let started = Instant::now();
        let worker = server.echo_worker("bench", options.slots).await;
        wait_done(server.server.store(), options.tasks).await;
        let drain = started.elapsed();
        drop(worker);
        println!(
            "{name:<9} drain  {} tasks, {} slots: submit {:>6.0}/s, drain {:>6.0} tasks/s ({:.2}s)",
            options.tasks,
            options.slots,
            options.tasks as f64 / submit.as_secs_f64(),
            options.tasks as f64 / drain.as_secs_f64(),
            drain.as_secs_f64()
        );
        server.server.shutdown().await;
        alone = Some(options.tasks as f64 / drain.as_secs_f64());
    }

    // Live: the worker runs while clients submit.
    if options.runs("live") {
        let server = start(db).await;
        let api = server.admin();
        let _worker = server.echo_worker("bench", options.slots).await;
        let started = Instant::now();
        let submit = submit_all(&api, options.tasks).await;
        wait_done(server.server.store(), options.tasks).await;
        let total = started.elapsed();
        let waits = latencies(&server.db.url).await;
        println!(
            "{name:<9} live   {} tasks, {} slots: submit {:>6.0}/s, burn-down {:>6.0} tasks/s ({:.2}s), submit->start p50 {} ms, p99 {} ms",
            options.tasks,
            options.slots,
            options.tasks as f64 / submit.as_secs_f64(),
            options.tasks as f64 / total.as_secs_f64(),
            total.as_secs_f64(),
            percentile(&waits, 0.50),
            percentile(&waits, 0.99),
        );
        server.server.shutdown().await;
    }

    if options.runs("fair") {
        fairness(db, name, options, alone).await;
    }
    if options.runs("flows") {
        workflows(db, name, options).await;
    }
}

/// Tenant B's tasks against tenant A's backlog; `alone` is the one-tenant
/// drain's tasks/s, when that phase ran.
async fn fairness(db: Db, name: &str, options: &Options, alone: Option<f64>) {
    const B_TASKS: usize = 200;
    let server = start(db).await;
    let a = server.user("a").await;
    let b = server.user("b").await;
    submit_all(&a, options.tasks).await;
    let started = Instant::now();
    let worker = server.echo_worker("bench", options.slots).await;
    let per = B_TASKS / 4;
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
    wait_done(server.server.store(), options.tasks + B_TASKS).await;
    let total = started.elapsed();
    drop(worker);
    let url = &server.db.url;
    let waits = sorted_column(
        url,
        "SELECT a.started_at - t.created_at AS ms FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.tenant = 'b'",
    )
    .await;
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
        "{name:<9} fair   A {} backlog + B {B_TASKS}, {} slots: B submit->start p50 {} ms, p99 {} ms; A {:.1} % started when B's last did; {:>6.0} tasks/s{}",
        options.tasks,
        options.slots,
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
        drained * 100.0,
        rate,
        alone.map_or_else(String::new, |alone| format!(
            " ({:+.1} % against one tenant's drain)",
            (rate / alone - 1.0) * 100.0
        )),
    );
    server.server.shutdown().await;
}

fn main() {
    let options = options();
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
