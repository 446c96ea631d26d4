//! Scale benchmark: a thousand workers against a deep queue.
//!
//! ```text
//! cargo bench -p flowmesh-tests --bench scale -- [sqlite|postgres]
//!     [--workers N] [--tasks N] [--types N] [--seconds S] [--task-ms MS]
//! ```
//!
//! The server runs in a process of its own (this program again, started
//! with [`SERVE`] set), so that its resident memory is its own. It runs with
//! `flowmesh up`'s defaults (5 s heartbeats, 30 s leases, fair shares on).
//!
//! The workers are lightweight protocol clients, no wasmtime: each
//! registers as a host with a plugin of its own serving 5 of the task types,
//! heartbeats, claims up to its free slots, "runs" each task for about
//! `--task-ms` and hands the outcome over on its next claim, as a real
//! worker does. One in ten is a GPU host (A100s or H100s) and is the only
//! kind serving the GPU task types; the others vary in CPUs and memory.
//!
//! The queue is filled first, through batch submission by four tenants:
//! tasks of every type with varied hardware requests (CPU, memory, GPU
//! count, model and memory), a few of them asking for more memory than any
//! worker has, so they stay pending and every claim meets them.
//!
//! It reports the claim round trip p50/p99 after a warm-up of 3 s (claims
//! that delivered outcomes included), the part of it spent in the store
//! (from the server's own histogram, to its bucket's bound), claims/s and
//! tasks/s, the server's resident memory (now and peak) and the plan of the
//! claim statement on the full queue.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_server::store::{Claim, Store, TenantRules};
use flowmesh_server::{Server, ServerConfig};
use flowmesh_tests::cluster::{Api, Db, TestDb};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Set in the server process: its data directory.
const SERVE: &str = "FLOWMESH_SCALE_SERVE";
/// Set in the server process: its database URL.
const SERVE_DATABASE: &str = "FLOWMESH_SCALE_DATABASE";
/// Task types each worker serves.
const TYPES_PER_WORKER: usize = 5;
/// Tenants submitting.
const TENANTS: usize = 4;
/// Documents per submission request.
const BATCH: usize = 5_000;
/// Claims in the first seconds, while the whole fleet makes its first
/// claim at once, are not measured.
const WARM_UP: Duration = Duration::from_secs(3);
/// Slots of each worker.
const SLOTS: usize = 4;

struct Options {
    db: Db,
    workers: usize,
    tasks: usize,
    types: usize,
    seconds: u64,
    task_ms: u64,
}

fn options() -> Options {
    let mut options = Options {
        db: Db::Sqlite,
        workers: 1_000,
        tasks: 100_000,
        types: 50,
        seconds: 30,
        task_ms: 4_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "sqlite" => options.db = Db::Sqlite,
            "postgres" => options.db = Db::Postgres,
            "--workers" => options.workers = number("--workers") as usize,
            "--tasks" => options.tasks = number("--tasks") as usize,
            "--types" => options.types = number("--types").max(10) as usize,
            "--seconds" => options.seconds = number("--seconds"),
            "--task-ms" => options.task_ms = number("--task-ms"),
            // cargo bench passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other:?}; see the doc comment of benches/scale.rs"),
        }
    }
    options
}

fn main() {
    if let Ok(dir) = std::env::var(SERVE) {
        return serve(dir);
    }
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(options));
}

/// The server process: starts the server, prints its URL and tokens as one
/// JSON line, and stops when its standard input closes.
fn serve(dir: String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut config = ServerConfig::new(std::path::Path::new(&dir));
        config.bind = "127.0.0.1:0".parse().expect("address");
        config.database_url = std::env::var(SERVE_DATABASE).ok();
        config.max_request_bytes = config.max_request_bytes.max(64 << 20);
        let server = Server::start(config).await.expect("server starts");
        let tokens = server.bootstrap_tokens().expect("a fresh database");
        let line = json!({"url": server.url(), "admin": tokens.admin, "worker": tokens.worker});
        println!("{line}");
        std::io::stdout().flush().expect("stdout");
        tokio::task::spawn_blocking(|| {
            let mut rest = String::new();
            while std::io::stdin()
                .read_line(&mut rest)
                .is_ok_and(|read| read > 0)
            {}
        })
        .await
        .expect("stdin");
        server.shutdown().await;
    });
}

/// The server process and how to reach it.
struct ServerProcess {
    child: Child,
    url: String,
    admin: String,
    worker: String,
}

impl ServerProcess {
    fn start(db: &TestDb) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this program"))
            .env(SERVE, db.dir.path())
            .env(SERVE_DATABASE, &db.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its address");
        let started: Value = serde_json::from_str(&line).expect("a JSON line");
        let text = |key: &str| started[key].as_str().expect("a string").to_string();
        Self {
            url: text("url"),
            admin: text("admin"),
            worker: text("worker"),
            child,
        }
    }

    /// Resident memory now and at its peak, in MiB.
    fn rss(&self) -> (f64, f64) {
        let (rss, peak, _, _) = self.memory();
        (rss, peak)
    }

    /// Resident memory now, at its peak, and now of it the process's own
    /// (heap, stacks) and the mapped files' (the SQLite file, mapped), in
    /// MiB.
    fn memory(&self) -> (f64, f64, f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (
            field("VmRSS:"),
            field("VmHWM:"),
            field("RssAnon:"),
            field("RssFile:"),
        )
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

async fn run(options: Options) {
    let db = TestDb::new(options.db).await;
    let server = ServerProcess::start(&db);
    let http = flowmesh_tls::client_builder(None)
        .expect("a client")
        .pool_max_idle_per_host(options.workers * 2)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let workers = register(&server, &http, &options).await;
    let (submitted, fill) = fill(&server, &http, &options).await;
    let (rss_filled, _) = server.rss();
    println!(
        "{:8} scale  {} workers, {} types; {} tasks submitted in {:.1}s ({:.0}/s) by {TENANTS} tenants; server RSS {rss_filled:.0} MiB",
        name(options.db),
        workers.len(),
        options.types,
        submitted,
        fill.as_secs_f64(),
        submitted as f64 / fill.as_secs_f64()
    );

    // The store's share, read from the server's metrics when the
    // measuring starts and once the workers stop (the metrics page counts
    // the queue, a read of every task: it is not polled).
    let measure_from = Instant::now() + WARM_UP;
    let before = tokio::spawn({
        let (url, http) = (server.url.clone(), http.clone());
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            claim_buckets(&url, &http).await
        }
    });
    let report = work(&server, &http, &workers, &options, measure_from).await;
    let after = claim_buckets(&server.url, &http).await;
    let (rss, peak, anon, file) = server.memory();
    let seconds = options.seconds as f64;
    let mut latencies = report.latencies;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |micros| *micros as f64 / 1000.0)
    };
    println!(
        "{:8} scale  {}s: {} claims ({:.0}/s), {} tasks claimed ({:.0}/s), {} outcomes delivered; claim round trip p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server RSS {rss:.0} MiB (its own {anon:.0} MiB, mapped files {file:.0} MiB), peak {peak:.0} MiB",
        name(options.db),
        options.seconds,
        latencies.len(),
        latencies.len() as f64 / seconds,
        report.claimed,
        report.claimed as f64 / seconds,
        report.delivered,
        pick(0.5),
        pick(0.99),
        pick(1.0),
    );
    let (store_p50, store_p99) = store_quantiles(&before.await.expect("the metrics"), &after);
    println!(
        "{:8} scale  of which in the store (the server's claim_duration_seconds, waiting for the writer included): p50 ≤ {store_p50} ms, p99 ≤ {store_p99} ms",
        name(options.db),
    );
    server.stop();

    let store = Store::open(&db.url).await.expect("store opens");
    let now = flowmesh_server::state::now_ms();
    let pending: i64 = store
        .pending_shapes(now)
        .await
        .expect("pending")
        .iter()
        .map(|shape| shape.count)
        .sum();
    let worker_id = &workers[1];
    let token_id = store
        .worker(worker_id)
        .await
        .expect("read")
        .and_then(|worker| worker.token_id)
        .expect("a worker's token");
    println!(
        "{:8} scale  the claim's plan with {pending} tasks pending (a worker serving 5 types, no GPU):",
        name(options.db)
    );
    let claim = Claim {
        worker_id,
        token_id: &token_id,
        max: SLOTS as u32,
        scan: 512,
        rules: &TenantRules::OPEN,
    };
    for line in store.claim_plan(&claim, now).await.expect("the plan") {
        println!("    {line}");
    }
    store_claims(&store, &workers, &token_id, options.db).await;
    store.close().await;
}

/// The claim statement alone, no HTTP: 1,000 claims of up to 4 tasks by
/// the workers in turn, on the queue as the run left it (their slots as
/// they were, so some claims find nothing that fits).
async fn store_claims(store: &Store, workers: &[String], token_id: &str, db: Db) {
    let mut latencies = Vec::with_capacity(1_000);
    let mut claimed = 0;
    for worker_id in workers.iter().cycle().take(1_000) {
        let claim = Claim {
            worker_id,
            token_id,
            max: SLOTS as u32,
            scan: 32,
            rules: &TenantRules::OPEN,
        };
        let started = Instant::now();
        let (tasks, _) = store
            .claim(&claim, flowmesh_server::state::now_ms(), 30_000)
            .await
            .expect("a claim");
        latencies.push(started.elapsed().as_micros() as u64);
        claimed += tasks.len();
    }
    latencies.sort_unstable();
    println!(
        "{:8} scale  the store alone: 1000 claims took {claimed} tasks; claim p50 {:.2} ms, p99 {:.2} ms",
        name(db),
        latencies[500] as f64 / 1000.0,
        latencies[990] as f64 / 1000.0,
    );
}

/// The server's histogram `flowmesh_claim_duration_seconds`: cumulative
/// claim counts by upper bound (ms), in the order printed.
async fn claim_buckets(url: &str, http: &reqwest::Client) -> Vec<(f64, f64)> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics reads");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("flowmesh_claim_duration_seconds_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound * 1000.0, count.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// The upper bounds (ms) of the buckets holding the p50 and the p99 of the
/// claims counted between `before` and `after` ([`claim_buckets`]).
fn store_quantiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> (f64, f64) {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|((bound, after), (_, before))| (*bound, after - before))
        .collect();
    let total = counts.last().map_or(0.0, |(_, count)| *count);
    let bound_of = |q: f64| {
        counts
            .iter()
            .find(|(_, count)| *count >= total * q)
            .map_or(f64::NAN, |(bound, _)| *bound)
    };
    (bound_of(0.5), bound_of(0.99))
}

/// Registers the workers: their registration ids and token ids.
async fn register(
    server: &ServerProcess,
    http: &reqwest::Client,
    options: &Options,
) -> Vec<String> {
    let api = Api::with_client(&server.url, &server.worker, http.clone());
    futures::stream::iter(0..options.workers)
        .map(|index| {
            let api = &api;
            async move {
                let (status, body) = api
                    .post("/worker/register", registration(index, options.types))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["workerId"].as_str().expect("an id").to_string()
            }
        })
        .buffered(32)
        .collect()
        .await
}

/// Worker `index`'s registration: 5 task types from one plugin of its own,
/// and its hardware.
fn registration(index: usize, types: usize) -> Value {
    let group = index % 10;
    let served: Vec<Value> = (0..TYPES_PER_WORKER)
        .map(|k| {
            let task_type = type_name((group + 10 * k) % types);
            json!({"name": task_type, "description": "simulated", "specSchema": {"type": "object"}})
        })
        .collect();
    let plugin = format!("sim-{group}");
    let gpus: Vec<Value> = if group == 0 {
        let (model, count) = if index.is_multiple_of(20) {
            ("NVIDIA H100 80GB HBM3", 4)
        } else {
            ("NVIDIA A100-SXM4-80GB", 8)
        };
        (0..count)
            .map(|gpu| json!({"index": gpu, "model": model, "memoryBytes": 80_u64 << 30}))
            .collect()
    } else {
        Vec::new()
    };
    let (cpus, memory_gib) =
        [(2.0, 4_u64), (4.0, 16), (8.0, 32), (16.0, 64), (32.0, 256)][index % 5];
    json!({
        "name": format!("sim-worker-{index}"),
        "capabilities": {
            "supportedTaskTypes": [],
            "plugins": [{
                "name": plugin,
                "version": "1.0.0",
                "digest": format!("sha256:{:064x}", group + 1),
                "status": "available",
                "imports": [],
                "manifest": {
                    "name": plugin,
                    "version": "1.0.0",
                    "description": "simulated",
                    "taskTypes": served,
                },
            }],
            "capabilities": [],
        },
        "hardware": {"cpus": if group == 0 { 64.0 } else { cpus }, "memoryBytes": (if group == 0 { 512 } else { memory_gib }) << 30, "gpus": gpus},
        "slots": SLOTS,
        "version": "scale-bench",
    })
}

fn name(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}

fn type_name(index: usize) -> String {
    format!("sim-{index:02}")
}

/// Task `index`'s document: its type, and a hardware request by its place
/// among the types (types `sim-00`, `sim-10`, … ask for GPUs).
fn document(index: usize, types: usize) -> Value {
    let type_index = index % types;
    let hardware = if type_index.is_multiple_of(10) {
        let gpu = match index % 3 {
            0 => json!({"count": 1, "type": "H100", "memory": "40Gi"}),
            1 => json!({"count": 2, "memory": "80Gi"}),
            _ => json!({"count": 1, "type": "A100"}),
        };
        json!({"cpu": 4, "memory": "16Gi", "gpu": gpu})
    } else if index % 50 == 7 {
        // No worker has this much memory: these stay pending.
        json!({"cpu": 1, "memory": "2Ti"})
    } else {
        let (cpu, memory) = [(0.5, "256Mi"), (1.0, "1Gi"), (2.0, "4Gi"), (8.0, "24Gi")][index % 4];
        json!({"cpu": cpu, "memory": memory})
    };
    json!({
        "apiVersion": "flowmesh/v1",
        "kind": "Task",
        "spec": {
            "taskType": type_name(type_index),
            "message": format!("task {index}"),
            "resources": {"hardware": hardware},
        },
    })
}

/// Submits the tasks as batches from the tenants: how many, and how long
/// it took.
async fn fill(
    server: &ServerProcess,
    http: &reqwest::Client,
    options: &Options,
) -> (usize, Duration) {
    let admin = Api::with_client(&server.url, &server.admin, http.clone());
    let mut tenants = Vec::new();
    for tenant in 0..TENANTS {
        let (status, body) = admin
            .post(
                "/tokens",
                json!({"tenant": format!("tenant-{tenant}"), "role": "user"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().expect("a token").to_string();
        tenants.push(Api::with_client(&server.url, &token, http.clone()));
    }
    let started = Instant::now();
    let batches: Vec<(usize, Vec<Value>)> = (0..options.tasks)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .enumerate()
        .map(|(n, chunk)| {
            (
                n % TENANTS,
                chunk
                    .iter()
                    .map(|index| document(*index, options.types))
                    .collect(),
            )
        })
        .collect();
    let submitted: usize = futures::stream::iter(batches)
        .map(|(tenant, documents)| {
            let api = &tenants[tenant];
            async move {
                let count = documents.len();
                let (status, body) = api.post("/tasks", Value::Array(documents)).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                count
            }
        })
        .buffer_unordered(TENANTS)
        .fold(0, |sum, count| async move { sum + count })
        .await;
    (submitted, started.elapsed())
}

/// What the workers measured.
#[derive(Default)]
struct Report {
    /// Each measured claim's round trip, in µs.
    latencies: Vec<u64>,
    claimed: usize,
    delivered: usize,
}

/// Runs every worker until `measure_from` and then `options.seconds`,
/// measuring the claims of those seconds.
async fn work(
    server: &ServerProcess,
    http: &reqwest::Client,
    workers: &[String],
    options: &Options,
    measure_from: Instant,
) -> Report {
    let api = Arc::new(Api::with_client(&server.url, &server.worker, http.clone()));
    let deadline = measure_from + Duration::from_secs(options.seconds);
    let handles: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(index, worker_id)| {
            let api = api.clone();
            let worker_id = worker_id.clone();
            let task_ms = options.task_ms;
            tokio::spawn(async move {
                simulate(&api, &worker_id, index, task_ms, (measure_from, deadline)).await
            })
        })
        .collect();
    let mut report = Report::default();
    for handle in handles {
        let one = handle.await.expect("a worker");
        report.latencies.extend(one.latencies);
        report.claimed += one.claimed;
        report.delivered += one.delivered;
    }
    report
}

/// One simulated worker until `deadline`.
async fn simulate(
    api: &Api,
    worker_id: &str,
    index: usize,
    task_ms: u64,
    (measure_from, deadline): (Instant, Instant),
) -> Report {
    let mut report = Report::default();
    // Workers start spread over a second, as a fleet does.
    tokio::time::sleep(Duration::from_micros((index as u64 * 997) % 1_000_000)).await;
    let mut running: Vec<(Instant, Value)> = Vec::new();
    // Heartbeats spread over the interval, as a fleet's are: its workers
    // did not all start in the same second.
    let mut next_heartbeat =
        Instant::now() + Duration::from_millis((index as u64 * 2_654_435_761) % 5_000);
    while Instant::now() < deadline {
        let now = Instant::now();
        let (done, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|(end, _)| *end <= now);
        running = still;
        let completions: Vec<Value> = done
            .iter()
            .map(|(_, task)| {
                json!({
                    "taskId": task["id"],
                    "leaseToken": task["leaseToken"],
                    "elapsedMs": task_ms,
                    "output": {"message": "done"},
                })
            })
            .collect();
        let free = SLOTS - running.len();
        if free > 0 || !completions.is_empty() {
            let delivered = completions.len();
            let sent = Instant::now();
            let (status, body) = api
                .post(
                    "/worker/claim",
                    json!({
                        "workerId": worker_id,
                        "maxTasks": free,
                        "waitMs": 0,
                        "events": [],
                        "completions": completions,
                    }),
                )
                .await;
            if sent >= measure_from {
                report.latencies.push(sent.elapsed().as_micros() as u64);
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            report.delivered += delivered;
            let tasks = body["tasks"].as_array().cloned().unwrap_or_default();
            report.claimed += tasks.len();
            let jitter = (index as u64 * 7919 + report.claimed as u64 * 104_729) % task_ms.max(1);
            for task in tasks {
                let end = Instant::now() + Duration::from_millis(task_ms / 2 + jitter);
                running.push((end, task));
            }
        }
        if Instant::now() >= next_heartbeat {
            let leases: Vec<Value> = running
                .iter()
                .map(|(_, task)| json!({"taskId": task["id"], "leaseToken": task["leaseToken"]}))
                .collect();
            let (status, body) = api
                .post(
                    "/worker/heartbeat",
                    json!({"workerId": worker_id, "leases": leases}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            next_heartbeat += Duration::from_secs(5);
        }
        // Sleep until the next task ends, or poll again in a second when
        // nothing runs (a free slot with nothing to claim).
        let wake = running
            .iter()
            .map(|(end, _)| *end)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
            .min(next_heartbeat)
            .min(deadline);
        tokio::time::sleep_until(wake.into()).await;
    }
    report
}
