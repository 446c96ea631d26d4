//! Console benchmark: every page's server time with a deep store, and how
//! soon a state change reaches an open page.
//!
//! ```text
//! cargo bench -p flowmesh-tests --bench console -- [sqlite|postgres] [--tasks N] [--runs N]
//! ```
//!
//! It starts a server with the echo plugin, submits `--tasks` (100,000 by
//! default) echo tasks through batch submission, plus 300 three-stage
//! workflows and 1,000 tasks that ask for a GPU nobody has, then lets a real
//! echo worker run for a while and stops it, so the store holds finished,
//! pending and waiting tasks at once. Then it signs in and requests every
//! console page `--runs` times (20 by default), reading the server's own
//! time from each answer's `Server-Timing` header, and prints p50, p99 and
//! max per page against the goal of 50 ms.
//!
//! The live part cancels pending tasks one at a time through the API while
//! a task list's stream (`/live/tasks`), a task page's stream
//! (`/tasks/{id}/events`) and the overview's stream (`/live/overview`) are
//! open, and prints how long each took to show the change (goal: 1 s).

use std::time::{Duration, Instant};

use flowmesh_tests::cluster::{Api, Db, TestServer, eventually};
use futures::StreamExt;
use reqwest::StatusCode;

/// The goal for a page's server time.
const PAGE_GOAL_MS: f64 = 50.0;
/// Documents per submission request.
const BATCH: usize = 10_000;

struct Options {
    db: Db,
    tasks: usize,
    runs: usize,
}

fn options() -> Options {
    let mut options = Options {
        db: Db::Sqlite,
        tasks: 100_000,
        runs: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "sqlite" => options.db = Db::Sqlite,
            "postgres" => options.db = Db::Postgres,
            "--tasks" => options.tasks = number("--tasks"),
            "--runs" => options.runs = number("--runs").max(1),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; see the file's header"),
        }
    }
    options
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// A signed-in browser session, as plain HTTP.
struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Session {
    async fn sign_in(base: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let response = http
            .post(format!("{base}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("sign-in answers");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .expect("text")
            .split(';')
            .next()
            .expect("a cookie")
            .to_string();
        Self {
            http,
            base: base.to_string(),
            cookie,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
    }

    /// The server's time on `path` (ms) and the client's round trip (ms).
    async fn time(&self, path: &str) -> (f64, f64) {
        let started = Instant::now();
        let response = self.get(path).send().await.expect("the page answers");
        let status = response.status();
        let server = response
            .headers()
            .get("server-timing")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("app;dur="))
            .and_then(|value| value.parse::<f64>().ok())
            .expect("Server-Timing");
        let body = response.bytes().await.expect("the page's body");
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        (server, started.elapsed().as_secs_f64() * 1000.0)
    }
}

async fn submit_ndjson(api: &Api, lines: &[String]) {
    for chunk in lines.chunks(BATCH) {
        let response = api
            .request(reqwest::Method::POST, "/tasks")
            .header("content-type", "application/x-ndjson")
            .body(chunk.join("\n"))
            .send()
            .await
            .expect("submit answers");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let options = options();
    let server = TestServer::start(options.db, |config| {
        config.tenants.default.max_pending = None;
    })
    .await;
    let admin = server.admin();

    let started = Instant::now();
    let echo: Vec<String> = (0..options.tasks)
        .map(|n| {
            let rare = if n % 1000 == 7 { ", \"rare\": \"yes\"" } else { "" };
            format!(
                r#"{{"apiVersion":"flowmesh/v1","kind":"Task","metadata":{{"name":"bench-{n}","labels":{{"batch":"b{}"{rare}}}}},"spec":{{"taskType":"echo","message":"task {n}"}}}}"#,
                n / BATCH
            )
        })
        .collect();
    submit_ndjson(&admin, &echo).await;
    let gpu: Vec<String> = (0..1_000)
        .map(|n| format!(r#"{{"apiVersion":"flowmesh/v1","kind":"Task","metadata":{{"name":"gpu-{n}"}},"spec":{{"taskType":"echo","message":"gpu","resources":{{"hardware":{{"gpu":{{"count":1}}}}}}}}}}"#))
        .collect();
    submit_ndjson(&admin, &gpu).await;
    let workflow = include_str!("../../examples/workflows/hello-pipeline.yaml");
    let (status, body) = admin
        .submit_raw("", &vec![workflow; 300].join("\n---\n"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    println!(
        "store filled: {} echo tasks, 1,000 waiting for a GPU, 300 three-stage workflows in {:.1} s",
        options.tasks,
        started.elapsed().as_secs_f64()
    );

    // A real worker runs for a while, then stops: finished, pending and
    // waiting tasks side by side.
    let mut worker = server.echo_worker("bench-worker", 8).await;
    let run_until = Instant::now() + Duration::from_secs(45);
    let mut finished = 0u64;
    while Instant::now() < run_until {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, page) = admin.get("/tasks?state=succeeded&limit=1").await;
        if page["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.is_empty())
        {
            continue;
        }
        finished = metrics_finished(&server.url).await;
        if finished as usize >= options.tasks / 2 {
            break;
        }
    }
    worker.shutdown().await;
    let finished = finished.max(metrics_finished(&server.url).await);
    println!("the worker finished {finished} tasks and stopped");

    let session = Session::sign_in(&server.url, &server.admin).await;
    let (_, done) = admin.get("/tasks?state=succeeded&limit=1").await;
    let done_id = done["tasks"][0]["id"]
        .as_str()
        .expect("a finished task")
        .to_string();
    let (_, waiting) = admin.get("/tasks?state=pending&limit=1").await;
    let pending_id = waiting["tasks"][0]["id"]
        .as_str()
        .expect("a pending task")
        .to_string();
    let (_, flows) = admin.get("/workflows?limit=1").await;
    let flow_id = flows["workflows"][0]["id"]
        .as_str()
        .expect("a workflow")
        .to_string();
    let middle = options.tasks / 2;

    let pages: Vec<(String, String)> = [
        ("overview", "/".to_string()),
        ("tasks", "/tasks".into()),
        ("tasks: succeeded", "/tasks?state=succeeded".into()),
        (
            "tasks: pending echo",
            "/tasks?state=pending&type=echo".into(),
        ),
        ("tasks: rare label", "/tasks?label=rare%3Dyes".into()),
        ("tasks: name, no match", "/tasks?name=no-such-name".into()),
        ("tasks: an older page", format!("/tasks?before={middle}")),
        ("task: finished", format!("/tasks/{done_id}")),
        ("task: pending", format!("/tasks/{pending_id}")),
        ("workflows", "/workflows".into()),
        ("workflow", format!("/workflows/{flow_id}")),
        ("workers", "/workers".into()),
        ("plugins", "/plugins".into()),
        ("plugin", "/plugins/echo".into()),
        ("tokens", "/tokens".into()),
        ("submit", "/submit".into()),
    ]
    .into_iter()
    .map(|(name, path)| (name.to_string(), path))
    .collect();

    println!(
        "\npage render, {} runs each, {:?} with {} tasks in the store (server time from Server-Timing; goal ≤ {PAGE_GOAL_MS} ms)",
        options.runs,
        options.db,
        options.tasks + 1_000 + 900
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>12}",
        "page", "p50 ms", "p99 ms", "max ms", "round trip"
    );
    let mut worst = 0.0f64;
    for (name, path) in &pages {
        let _ = session.time(path).await;
        let mut server_ms = Vec::new();
        let mut client_ms = Vec::new();
        for _ in 0..options.runs {
            let (server_time, round_trip) = session.time(path).await;
            server_ms.push(server_time);
            client_ms.push(round_trip);
        }
        server_ms.sort_by(f64::total_cmp);
        client_ms.sort_by(f64::total_cmp);
        let max = server_ms.last().copied().unwrap_or(0.0);
        worst = worst.max(percentile(&server_ms, 0.5));
        println!(
            "{name:<24} {:>9.2} {:>9.2} {max:>9.2} {:>9.2} ms",
            percentile(&server_ms, 0.5),
            percentile(&server_ms, 0.99),
            percentile(&client_ms, 0.5),
        );
    }
    // The overview's store reads alone, for where its time goes.
    let store = server.server.store();
    let now = flowmesh_server::state::now_ms();
    let mut counts_ms = Vec::new();
    let mut waiting_ms = Vec::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        store
            .queue_counts(None, now - 600_000, 10_000, 60)
            .await
            .expect("counts");
        counts_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        store.oldest_ready(None, 200).await.expect("waiting");
        waiting_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    counts_ms.sort_by(f64::total_cmp);
    waiting_ms.sort_by(f64::total_cmp);
    println!(
        "overview's reads: counts p50 {:.2} ms, oldest waiting p50 {:.2} ms",
        percentile(&counts_ms, 0.5),
        percentile(&waiting_ms, 0.5)
    );
    println!(
        "slowest page p50: {worst:.2} ms ({})",
        if worst <= PAGE_GOAL_MS {
            "within the goal"
        } else {
            "OVER the goal"
        }
    );

    live_latency(&server, &session, &admin).await;
}

/// Tasks finished, from the server's metrics.
async fn metrics_finished(base: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|line| {
            line.starts_with("flowmesh_tasks_finished_total")
                || line.starts_with("tasks_finished_total")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Reads events from an open stream until one whose text contains `needle`.
async fn until_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
    needle: &str,
) {
    loop {
        if let Some(at) = buffer.find(needle) {
            buffer.drain(..at + needle.len());
            return;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream stays open")
            .expect("the stream reads");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn live_latency(server: &TestServer, session: &Session, admin: &Api) {
    const SAMPLES: usize = 10;
    let (_, page) = admin
        .get(&format!(
            "/tasks?state=pending&taskType=echo&limit={}",
            SAMPLES * 2
        ))
        .await;
    let ids: Vec<String> = page["tasks"]
        .as_array()
        .expect("pending tasks")
        .iter()
        .filter_map(|task| task["id"].as_str().map(str::to_string))
        .collect();
    assert!(ids.len() >= SAMPLES * 2, "enough pending tasks");
    let mut list_ms = Vec::new();
    let mut task_ms = Vec::new();
    let mut overview_ms = Vec::new();
    let list_ids = ids[..SAMPLES].join(",");
    let mut list = session
        .get(&format!("/live/tasks?ids={list_ids}"))
        .send()
        .await
        .expect("the list's stream")
        .bytes_stream();
    let mut list_buffer = String::new();
    let mut overview = session
        .get("/live/overview")
        .send()
        .await
        .expect("the overview's stream")
        .bytes_stream();
    let mut overview_buffer = String::new();
    for (n, id) in ids[..SAMPLES].iter().enumerate() {
        let mut events = session
            .get(&format!("/tasks/{id}/events"))
            .send()
            .await
            .expect("the task's stream")
            .bytes_stream();
        let mut task_buffer = String::new();
        until_event(&mut events, &mut task_buffer, "event: state").await;
        // Let the overview's stream settle, so each sample starts fresh.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        overview_buffer.clear();
        let started = Instant::now();
        let (status, _) = admin.delete(&format!("/tasks/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        until_event(&mut events, &mut task_buffer, "\"cancelled\"").await;
        task_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        until_event(
            &mut list,
            &mut list_buffer,
            &format!("{{\"id\":\"{id}\",\"state\":\"cancelled\"}}"),
        )
        .await;
        list_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        until_event(&mut overview, &mut overview_buffer, "event: html").await;
        overview_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = n;
    }
    eventually("the cancels to settle", Duration::from_secs(10), || async {
        let (_, task) = admin.get(&format!("/tasks/{}", ids[0])).await;
        (task["state"] == "cancelled")
            .then_some(())
            .ok_or("not yet")
    })
    .await;
    let _ = server;
    for samples in [&mut task_ms, &mut list_ms, &mut overview_ms] {
        samples.sort_by(f64::total_cmp);
    }
    println!("\nstate change → open page ({SAMPLES} cancels; goal ≤ 1,000 ms)");
    for (name, samples) in [
        ("task page stream", &task_ms),
        ("task list stream", &list_ms),
        ("overview stream", &overview_ms),
    ] {
        println!(
            "{name:<20} p50 {:>7.1} ms   max {:>7.1} ms",
            percentile(samples, 0.5),
            samples.last().copied().unwrap_or(0.0)
        );
    }
}
