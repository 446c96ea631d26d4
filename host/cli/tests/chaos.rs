//! Chaos: FlowMesh as operators run it — a `flowmesh server` process,
//! `flowmesh worker` processes, a real database — under the faults a fleet
//! meets. The server is killed with SIGKILL five times during a burn-down
//! and between the stages of a workflow; a worker is killed in the middle of
//! a task, or frozen for longer than its lease; PostgreSQL is restarted
//! under load; SQLite's disk fills up.
//!
//! Every test asserts outcomes, never timings: each task accepted with a
//! `201` finishes, with exactly one accepted outcome; none is lost, left
//! running, or stored twice. A re-run after a lost attempt is expected and
//! is on record as an attempt of its own.
//!
//! The burn-down runs 1,500 tasks by default so the suite stays short in CI;
//! `FLOWMESH_CHAOS=full` runs 5,000. Each run prints its figures and the
//! seed of its random moments; `FLOWMESH_CHAOS_SEED=N` repeats them.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use flowmesh_tests::cluster::{Api, Db, TestDb, attempt_outcomes, eventually, sleep_document};
use flowmesh_tests::components;
use flowmesh_tests::private_postgres::PrivatePostgres;
use flowmesh_tests::processes::{Process, ServerProcess, worker_process};
use reqwest::StatusCode;
use serde_json::{Value, json};

flowmesh_tests::on_both_backends!(
    server_killed_five_times_during_a_burn_down,
    a_workflow_survives_kills_between_its_stages,
    a_killed_workers_task_runs_again_and_its_late_outcome_is_fenced,
    a_frozen_worker_is_fenced_out,
);

const BIN: &str = env!("CARGO_BIN_EXE_flowmesh");
const LONG: Duration = Duration::from_secs(180);
/// The lease TTL every server here runs with.
const LEASE: Duration = Duration::from_secs(2);

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// The server's flags: fast heartbeats, short leases and retries, the echo
/// plugin installed.
fn server_args() -> Vec<&'static str> {
    vec![
        "--heartbeat-interval",
        "200ms",
        "--lease-ttl",
        "2s",
        "--retry-backoff",
        "50ms",
        "--plugin",
        components::ECHO,
    ]
}

async fn server_on(db: &TestDb) -> ServerProcess {
    ServerProcess::start(
        bin(),
        &db.dir.path().join("server"),
        &db.url,
        &server_args(),
    )
    .await
}

fn echo_worker(server: &ServerProcess, dir: &Path, name: &str, slots: u32) -> Process {
    worker_process(bin(), server, dir, name, slots, &[components::ECHO], &[])
}

/// Random moments, repeatable from a seed (xorshift64).
struct Moments(u64);

impl Moments {
    fn seeded() -> Self {
        let seed = std::env::var("FLOWMESH_CHAOS_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |since| since.as_nanos() as u64)
            });
        eprintln!("chaos seed: FLOWMESH_CHAOS_SEED={seed}");
        Self(seed.max(1))
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = (high - low).as_millis().max(1) as u64;
        low + Duration::from_millis(self.0 % span)
    }
}

/// The tasks of a run, by what their submission was answered.
#[derive(Default)]
struct Submissions {
    /// Ids from `201` answers.
    accepted: Vec<String>,
    /// Labels of batches whose answer was lost with the server: stored
    /// whole or not at all.
    unanswered: Vec<String>,
    /// Labels of batches refused with a `503`: nothing stored, unless the
    /// database committed and the server lost the acknowledgement.
    refused: Vec<String>,
}

/// Task `index` of batch `label`: sleeps of 20–140 ms, every third an echo.
fn burn_down_task(label: &str, index: usize) -> Value {
    let spec = if index.is_multiple_of(3) {
        json!({"taskType": "echo", "message": format!("{label}/{index}")})
    } else {
        json!({"taskType": "sleep", "duration": format!("{}ms", 20 + (index * 37) % 120)})
    };
    json!({"apiVersion": "flowmesh/v1", "kind": "Task",
           "metadata": {"labels": {"batch": label}}, "spec": spec})
}

/// `POST /tasks` with `documents` as a JSON array: the status and the JSON
/// answer, or why none came.
async fn post_batch(
    api: &Api,
    documents: Vec<Value>,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let answer = api
        .request(reqwest::Method::POST, "/tasks")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(Value::Array(documents).to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let status = answer.status();
    Ok((status, answer.json().await?))
}

/// The task ids of a batch's answer, in order.
fn item_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("the batch's items")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Submits `batches` batches of `size` tasks, one every `pace`, through
/// whatever happens to the server: a batch that could not be sent goes
/// again; one whose answer was lost or that was refused goes again under a
/// new label, and the lost or refused label is kept to be checked.
async fn submit_through_faults(
    api: Api,
    batches: usize,
    size: usize,
    pace: Duration,
) -> Submissions {
    let mut submissions = Submissions::default();
    for batch in 0..batches {
        let mut round = 0;
        loop {
            let label = format!("b{batch}-{round}");
            let documents: Vec<Value> = (0..size).map(|i| burn_down_task(&label, i)).collect();
            let (status, body) = match post_batch(&api, documents).await {
                Err(error) if error.is_connect() => {
                    // Never reached a server: nothing to account for.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => {
                    submissions.unanswered.push(label);
                    round += 1;
                    continue;
                }
                Ok(answer) => answer,
            };
            match status {
                StatusCode::CREATED => {
                    let ids = item_ids(&body);
                    assert_eq!(ids.len(), size, "{body}");
                    submissions.accepted.extend(ids);
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    submissions.refused.push(label);
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => panic!("a batch was answered {other}: {body}"),
            }
        }
        tokio::time::sleep(pace).await;
    }
    submissions
}

/// What the store holds of a run's submissions.
struct Stored {
    /// Every task id stored: the accepted ones, and the batches whose
    /// answer was lost or was a 503 but were stored.
    ids: Vec<String>,
    /// Of the batches answered with nothing, how many were stored.
    unanswered: usize,
    /// Of the batches answered 503, how many were stored.
    refused: usize,
}

impl Stored {
    fn summary(&self, submissions: &Submissions) -> String {
        format!(
            "{} batches unanswered ({} of them stored), {} answered 503 ({} of them stored)",
            submissions.unanswered.len(),
            self.unanswered,
            submissions.refused.len(),
            self.refused
        )
    }
}

/// The tasks `submissions` left in the store. A batch is stored whole or
/// not at all, whatever its answer was.
async fn stored_tasks(api: &Api, submissions: &Submissions, size: usize) -> Stored {
    let mut stored = Stored {
        ids: submissions.accepted.clone(),
        unanswered: 0,
        refused: 0,
    };
    for (labels, count) in [
        (&submissions.unanswered, &mut stored.unanswered),
        (&submissions.refused, &mut stored.refused),
    ] {
        for label in labels {
            let ids = labelled(api, label).await;
            assert!(
                ids.is_empty() || ids.len() == size,
                "batch {label} stored in part: {} of {size}",
                ids.len()
            );
            *count += usize::from(!ids.is_empty());
            stored.ids.extend(ids);
        }
    }
    stored
}

/// The ids of the tasks labelled `batch=label`.
async fn labelled(api: &Api, label: &str) -> Vec<String> {
    let (status, page) = api
        .get(&format!("/tasks?label=batch%3D{label}&limit=500"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    ids_of(&page)
}

fn ids_of(page: &Value) -> Vec<String> {
    page["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|task| task["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every task of the tenant, page by page.
async fn every_task(api: &Api) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api.get(&format!("/tasks?limit=500{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        ids.extend(ids_of(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

/// What the attempts of a finished task say.
#[derive(Debug, Default)]
struct Tally {
    tasks: usize,
    /// Attempts that ended with their lease lost, and ran again.
    lost_attempts: usize,
    /// Tasks with more than one accepted outcome (must stay empty).
    twice: Vec<String>,
    /// Tasks that did not succeed (must stay empty).
    unfinished: Vec<Value>,
}

impl Tally {
    async fn of(api: &Api, ids: &[String]) -> Self {
        let mut tally = Self::default();
        for id in ids {
            let task = api.finished(id, LONG).await;
            tally.tasks += 1;
            let attempts = task["attempts"].as_array().cloned().unwrap_or_default();
            let succeeded = attempts
                .iter()
                .filter(|a| a["outcome"] == "succeeded")
                .count();
            tally.lost_attempts += attempts
                .iter()
                .filter(|a| a["outcome"] == "lease_expired")
                .count();
            if succeeded > 1 {
                tally.twice.push(id.clone());
            }
            if task["state"] != "succeeded" || succeeded != 1 {
                tally.unfinished.push(task);
            }
        }
        tally
    }

    fn assert_exactly_once(&self) {
        assert!(
            self.twice.is_empty(),
            "tasks with two accepted outcomes: {:?}",
            self.twice
        );
        assert!(
            self.unfinished.is_empty(),
            "tasks that did not finish once: {:#?}",
            self.unfinished
        );
    }
}

fn assert_no_panic(server: &mut ServerProcess) {
    assert!(
        server.running(),
        "the server exited by itself:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// Two workers of 8 slots burn down a stream of batches while the server is
/// killed five times at random moments and started again each time.
async fn server_killed_five_times_during_a_burn_down(backend: Db) {
    const KILLS: usize = 5;
    let tasks = if std::env::var("FLOWMESH_CHAOS").as_deref() == Ok("full") {
        5_000
    } else {
        1_500
    };
    let size = 100;
    let mut moments = Moments::seeded();
    let db = TestDb::new(backend).await;
    let mut server = server_on(&db).await;
    let _workers = [
        echo_worker(&server, db.dir.path(), "w1", 8),
        echo_worker(&server, db.dir.path(), "w2", 8),
    ];
    let api = server.admin();
    let submitter = tokio::spawn(submit_through_faults(
        api.clone(),
        tasks / size,
        size,
        Duration::from_millis(150),
    ));

    for _ in 0..KILLS {
        tokio::time::sleep(
            moments.between(Duration::from_millis(300), Duration::from_millis(2_000)),
        )
        .await;
        server.kill();
        tokio::time::sleep(moments.between(Duration::ZERO, Duration::from_millis(500))).await;
        server.start_again().await;
    }
    let submissions = submitter.await.expect("the submitter ran");

    let (stored, tally) = assert_nothing_lost_or_doubled(&api, &submissions, size).await;
    assert_no_panic(&mut server);
    eprintln!(
        "chaos burn-down ({backend:?}): {} tasks, {KILLS} server kills, lost 0, \
         two accepted outcomes 0; {} attempts lost and run again; {}",
        tally.tasks,
        tally.lost_attempts,
        stored.summary(&submissions),
    );
}

/// A four-stage chain; the server is killed the moment each of the first
/// three stages is seen succeeded, before or after the next is released.
/// Each next stage is released exactly once, its placeholders resolved from
/// the stored output.
async fn a_workflow_survives_kills_between_its_stages(db: Db) {
    let db = TestDb::new(db).await;
    let mut server = server_on(&db).await;
    let _worker = echo_worker(&server, db.dir.path(), "stages", 2);
    let api = server.admin();
    let workflow = api
        .submit(
            "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  stages:\n    \
             - {name: s0, spec: {taskType: sleep, duration: 200ms}}\n    \
             - {name: s1, spec: {taskType: echo, message: 'slept ${s0.output.sleptMs}'}}\n    \
             - {name: s2, spec: {taskType: echo, message: '${s1.output.message}, then'}}\n    \
             - {name: s3, spec: {taskType: echo, message: '${s2.output.message} done'}}\n",
        )
        .await;
    for stage in 0..3 {
        eventually(&format!("stage s{stage} succeeded"), LONG, || async {
            let (status, view) = api.get(&format!("/workflows/{workflow}")).await;
            match view["stages"][stage]["state"].as_str() {
                Some("succeeded") => Ok(()),
                other => Err(format!("{status} {other:?}")),
            }
        })
        .await;
        server.kill();
        server.start_again().await;
    }
    let view = api.workflow_finished(&workflow, LONG).await;
    assert_eq!(view["state"], "succeeded", "{view:#}");
    assert_eq!(
        view["stages"][3]["output"]["message"], "slept 200, then done",
        "{view:#}"
    );
    let stage_tasks: Vec<String> = view["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|stage| stage["taskId"].as_str().expect("a task id").to_string())
        .collect();
    // Exactly one task per stage: no stage was released twice.
    let everything: BTreeSet<String> = every_task(&api).await.into_iter().collect();
    assert_eq!(
        everything,
        stage_tasks.iter().cloned().collect::<BTreeSet<_>>()
    );
    Tally::of(&api, &stage_tasks).await.assert_exactly_once();
    assert_no_panic(&mut server);
}

/// The worker with `name` as the server lists it.
async fn worker_named(api: &Api, name: &str) -> Value {
    let (status, page) = api.get("/workers").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page.as_array()
        .and_then(|workers| workers.iter().find(|w| w["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no worker {name}: {page:#}"))
}

/// A worker is killed with SIGKILL in the middle of a task. After its lease
/// ends the task runs on another worker; the lost attempt is on record; and
/// the outcome the dead worker held, sent late under its lease, is refused.
async fn a_killed_workers_task_runs_again_and_its_late_outcome_is_fenced(db: Db) {
    let db = TestDb::new(db).await;
    let mut server = server_on(&db).await;
    let mut doomed = echo_worker(&server, db.dir.path(), "doomed", 1);
    let api = server.admin();
    let id = api.submit(&sleep_document("6s")).await;
    api.until(&id, LONG, |task| {
        task["state"] == "running" && task["worker"] == "doomed"
    })
    .await;
    let doomed_id = worker_named(&api, "doomed").await["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let held_lease = db.lease_token(&id).await;
    doomed.kill();
    let _rescuer = echo_worker(&server, db.dir.path(), "rescuer", 1);
    api.until(&id, LONG, |task| {
        task["state"] == "running" && task["worker"] == "rescuer"
    })
    .await;
    let rescuer_id = worker_named(&api, "rescuer").await["id"]
        .as_str()
        .expect("an id")
        .to_string();
    // While the rescuer runs the task, the dead worker's outcome arrives
    // under its own registration and under the rescuer's (the two share a
    // token): the lease token alone refuses it.
    let worker_token = std::fs::read_to_string(server.worker_token_file()).expect("worker token");
    let as_worker = Api::new(&server.url, worker_token.trim());
    for worker_id in [&doomed_id, &rescuer_id] {
        let (status, answer) = as_worker
            .post(
                "/worker/complete",
                json!({"workerId": worker_id, "completions": [{
                    "taskId": id, "leaseToken": held_lease, "elapsedMs": 6000,
                    "output": {"sleptMs": 6000, "forged": true}
                }]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["verdicts"], json!(["stale_lease"]), "as {worker_id}");
    }

    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(
        attempt_outcomes(&task),
        vec![("doomed", "lease_expired"), ("rescuer", "succeeded")],
        "{task:#}"
    );

    assert!(task["result"]["output"]["forged"].is_null(), "{task:#}");
    assert_no_panic(&mut server);
}

/// A worker is frozen (SIGSTOP) in the middle of its tasks for three lease
/// TTLs, then thawed. Its tasks run again on another worker; whatever the
/// thawed worker then sends, each task keeps exactly one accepted outcome,
/// and the frozen worker's attempts are on record as lost.
async fn a_frozen_worker_is_fenced_out(db: Db) {
    let db = TestDb::new(db).await;
    let mut server = server_on(&db).await;
    let frozen = echo_worker(&server, db.dir.path(), "frozen", 4);
    let api = server.admin();
    let mut ids = Vec::new();
    for _ in 0..4 {
        // Long enough that none ends before the freeze.
        ids.push(api.submit(&sleep_document("5s")).await);
    }
    for id in &ids {
        api.until(id, LONG, |task| task["state"] == "running").await;
    }
    frozen.freeze();
    let _rescuer = echo_worker(&server, db.dir.path(), "rescuer", 4);
    let tally = Tally::of(&api, &ids).await;
    tally.assert_exactly_once();
    assert_eq!(
        tally.lost_attempts,
        ids.len(),
        "every frozen attempt is lost"
    );
    tokio::time::sleep(LEASE).await;

    frozen.thaw();
    eventually("the thawed worker back and live", LONG, || async {
        let worker = worker_named(&api, "frozen").await;
        match worker["state"].as_str() {
            Some("live") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let again = Tally::of(&api, &ids).await;
    again.assert_exactly_once();
    for id in &ids {
        let task = api.task(id).await;
        assert_eq!(
            attempt_outcomes(&task),
            vec![("frozen", "lease_expired"), ("rescuer", "succeeded")],
            "{task:#}"
        );
    }
    assert_no_panic(&mut server);
}

/// Checks what `submissions` left in the store after a fault: every batch
/// whole or absent, nothing else stored, and every stored task finished
/// with exactly one accepted outcome.
async fn assert_nothing_lost_or_doubled(
    api: &Api,
    submissions: &Submissions,
    size: usize,
) -> (Stored, Tally) {
    let stored = stored_tasks(api, submissions, size).await;
    let everything: BTreeSet<String> = every_task(api).await.into_iter().collect();
    let expected: BTreeSet<String> = stored.ids.iter().cloned().collect();
    assert_eq!(expected.len(), stored.ids.len(), "an id answered twice");
    assert_eq!(
        everything, expected,
        "the store holds other tasks than those submitted"
    );
    let tally = Tally::of(api, &stored.ids).await;
    tally.assert_exactly_once();
    (stored, tally)
}

/// PostgreSQL crashes (an immediate stop) under load and comes back three
/// seconds later. Meanwhile the server answers `503` with `Retry-After` and
/// keeps running; afterwards it reconnects by itself and loses nothing it
/// accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_loses_nothing() {
    let postgres = PrivatePostgres::start();
    let dir = tempfile::tempdir().expect("a directory");
    let mut server = ServerProcess::start(
        bin(),
        &dir.path().join("server"),
        &postgres.url,
        &server_args(),
    )
    .await;
    let _workers = [
        echo_worker(&server, dir.path(), "w1", 8),
        echo_worker(&server, dir.path(), "w2", 8),
    ];
    let api = server.admin();
    let size = 100;
    let submitter = tokio::spawn(submit_through_faults(
        api.clone(),
        12,
        size,
        Duration::from_millis(200),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    postgres.crash();
    let refusal = eventually("a 503 while the database is down", LONG, || async {
        let answer = api
            .request(reqwest::Method::POST, "/tasks")
            .body("apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: down}\n")
            .send()
            .await
            .map_err(|error| format!("no answer: {error}"))?;
        let status = answer.status();
        let retry_after = answer.headers().get(reqwest::header::RETRY_AFTER).cloned();
        let body: Value = answer.json().await.map_err(|error| error.to_string())?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            Ok((retry_after, body))
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await;
    assert!(
        refusal.0.is_some(),
        "a 503 without Retry-After: {}",
        refusal.1
    );
    assert_eq!(
        refusal.1["error"]["code"], "store_unavailable",
        "{}",
        refusal.1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        server.running(),
        "the server exited while the database was down"
    );
    postgres.start_again();

    let submissions = submitter.await.expect("the submitter ran");
    let (stored, tally) = assert_nothing_lost_or_doubled(&api, &submissions, size).await;
    // The probe documents were refused: the store holds none of them.
    let (_, down) = api.get("/tasks?taskType=echo&limit=500").await;
    assert!(
        down["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.iter().all(|task| task["labels"]["batch"].is_string())),
        "{down:#}"
    );
    assert_no_panic(&mut server);
    eprintln!(
        "chaos postgres restart: {} tasks, lost 0, two accepted outcomes 0; {} attempts lost and run again; {}",
        tally.tasks,
        tally.lost_attempts,
        stored.summary(&submissions)
    );
}

/// A small filesystem of its own (a tmpfs), mounted for one test and
/// unmounted after it.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes`; `None` where this process may not
    /// mount (not root, or no CAP_SYS_ADMIN), except under CI (`CI` set),
    /// where not testing this is a failure.
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a mount point");
        let mounted = flowmesh_tests::private_postgres::is_root()
            && std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={megabytes}m"),
                    "flowmesh-chaos",
                ])
                .arg(dir.path())
                .status()
                .is_ok_and(|status| status.success());
        assert!(
            mounted || std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root with CAP_SYS_ADMIN)"
        );
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).expect("a filler file");
        let chunk = vec![0x5a_u8; 1 << 20];
        while filler
            .write_all(&chunk)
            .and_then(|()| filler.flush())
            .is_ok()
        {}
        let _ = filler.write_all(&chunk[..4096]);
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("the filler goes");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The SQLite database's disk fills up while tasks run. Submits are
/// refused with `503` and a message that says the disk is full, nothing
/// accepted before is lost, and service resumes once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_full_disk_refuses_submits_and_recovers() {
    let Some(disk) = SmallDisk::mount(48) else {
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    };
    let dir = tempfile::tempdir().expect("a directory");
    let database = flowmesh_server::store::Store::sqlite_url(disk.path());
    let mut server =
        ServerProcess::start(bin(), &dir.path().join("server"), &database, &server_args()).await;
    let _worker = echo_worker(&server, dir.path(), "w", 4);
    let api = server.admin();
    let size = 100;
    let before = submit_through_faults(api.clone(), 4, size, Duration::ZERO).await;
    assert_eq!(before.accepted.len(), 4 * size);

    disk.fill();
    // Batches until one needs a page the disk cannot give (the log's free
    // space is used first).
    let mut submissions = before;
    let mut refusal = None;
    for batch in 0..200 {
        let label = format!("full-{batch}");
        let documents: Vec<Value> = (0..500)
            .map(|i| {
                json!({"apiVersion": "flowmesh/v1", "kind": "Task",
                       "metadata": {"labels": {"batch": label}},
                       "spec": {"taskType": "echo", "message": format!("{label}/{i}")}})
            })
            .collect();
        let (status, body) = post_batch(&api, documents)
            .await
            .expect("the server answers");
        match status {
            StatusCode::CREATED => submissions.accepted.extend(item_ids(&body)),
            StatusCode::SERVICE_UNAVAILABLE => {
                refusal = Some(body);
                break;
            }
            other => panic!("a submit on a full disk was answered {other}: {body}"),
        }
    }
    let refusal = refusal.expect("a submit refused once the disk was full");
    assert_eq!(refusal["error"]["code"], "disk_full", "{refusal:#}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("disk is full")),
        "{refusal:#}"
    );
    // Reads still answer.
    let (status, _) = api
        .get(&format!("/tasks/{}", submissions.accepted[0]))
        .await;
    assert_eq!(status, StatusCode::OK);

    disk.free();
    let after = submit_through_faults(api.clone(), 2, size, Duration::ZERO).await;
    submissions.accepted.extend(after.accepted);
    let tally = Tally::of(&api, &submissions.accepted).await;
    tally.assert_exactly_once();
    assert_no_panic(&mut server);
    eprintln!(
        "chaos full disk: {} tasks accepted around the refusal, lost 0, two accepted outcomes 0",
        tally.tasks
    );
}
