//! The worker's round trip (`POST /worker/claim`): events and completions
//! delivered with the claim, in one transaction; tasks claimed ahead of the
//! slots; and what a worker token may not do with it.

use std::time::{Duration, Instant};

use flowmesh_runtime::HostCapabilities;
use flowmesh_tests::cluster::{Db, TestServer, TestWorker, sleep_document};
use flowmesh_tests::components;
use reqwest::StatusCode;
use serde_json::{Value, json};

flowmesh_tests::on_both_backends!(
    a_claim_delivers_outcomes_and_takes_the_freed_slot_at_once,
    a_delivery_under_another_tokens_registration_is_refused_whole,
    tasks_claimed_ahead_start_as_slots_free_and_go_back_on_shutdown,
);

const LONG: Duration = Duration::from_secs(60);

mod across_servers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_task_submitted_to_one_server_wakes_a_claim_waiting_on_another() {
        super::a_task_submitted_to_one_server_wakes_a_claim_waiting_on_another().await
    }
}

/// Claims for registration `worker` with `token`: `body` merged over an
/// empty claim; the status and answer.
async fn claim(server: &TestServer, token: &str, worker: &str, body: Value) -> (StatusCode, Value) {
    let mut request = json!({"workerId": worker, "maxTasks": 0, "waitMs": 0});
    for (key, value) in body.as_object().expect("an object") {
        request[key] = value.clone();
    }
    server.api(token).post("/worker/claim", request).await
}

/// One round trip records the events and the outcome of the task a worker
/// held, then claims the next task into the slot that outcome freed; it
/// answers at once although it asked to wait.
async fn a_claim_delivers_outcomes_and_takes_the_freed_slot_at_once(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let token = server.worker_token("t", true).await;
    let worker = server.register_by_hand(&token, "by-hand", "echo").await;
    let api = server.admin();
    let first = api.echo("first").await;
    let (status, answer) = claim(&server, &token, &worker, json!({"maxTasks": 1})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["tasks"][0]["id"], first.as_str(), "{answer}");
    let lease = answer["tasks"][0]["leaseToken"].clone();
    let second = api.echo("second").await;
    // The placement pass records once why `second` waits (the one slot is
    // busy). On PostgreSQL that write holds the row for a moment, and a
    // claim at that moment skips it (`SKIP LOCKED`): let it happen first.
    api.until(&second, LONG, |task| {
        task["waiting"]["kind"] == "workers_busy"
    })
    .await;

    let started = Instant::now();
    let (status, answer) = claim(
        &server,
        &token,
        &worker,
        json!({
            "maxTasks": 1,
            "waitMs": 30_000,
            "events": [{"taskId": first, "leaseToken": lease, "events": [
                {"type": "log", "stream": "stdout", "level": "info", "message": "hello from the round trip"}
            ]}],
            "completions": [{"taskId": first, "leaseToken": lease, "elapsedMs": 1,
                             "output": {"message": "done by hand"}}],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a claim that delivers answers without the long poll"
    );
    assert_eq!(answer["verdicts"], json!(["accepted"]), "{answer}");
    assert_eq!(
        answer["tasks"][0]["id"],
        second.as_str(),
        "the slot the outcome freed is taken in the same round trip: {answer}"
    );
    let task = api.task(&first).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["result"]["output"]["message"], "done by hand");
    let events = api.events(&first, LONG).await;
    let log = events
        .iter()
        .position(|(kind, body)| {
            kind == "log" && body.to_string().contains("hello from the round trip")
        })
        .expect("the log event is recorded");
    let result = events
        .iter()
        .position(|(kind, _)| kind == "result")
        .expect("the result");
    assert!(log < result, "the events go before the outcome: {events:?}");

    // The same outcome again (a retry after a lost answer) is stale, and
    // changes nothing.
    let (status, answer) = claim(
        &server,
        &token,
        &worker,
        json!({"completions": [{"taskId": first, "leaseToken": lease, "elapsedMs": 1,
                                 "output": {"message": "twice"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["verdicts"], json!(["stale_lease"]), "{answer}");
    assert_eq!(
        api.task(&first).await["result"]["output"]["message"],
        "done by hand"
    );
}

/// A worker token delivering under a registration it did not make is
/// refused as if the registration did not exist, and nothing it sent is
/// recorded: not the events, not the outcome.
async fn a_delivery_under_another_tokens_registration_is_refused_whole(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let token = server.worker_token("t", true).await;
    let worker = server.register_by_hand(&token, "owner", "echo").await;
    let api = server.admin();
    let id = api.echo("mine").await;
    let (_, answer) = claim(&server, &token, &worker, json!({"maxTasks": 1})).await;
    let lease = answer["tasks"][0]["leaseToken"].clone();
    assert!(lease.is_string(), "{answer}");

    let intruder = server.worker_token("t", true).await;
    let (status, answer) = claim(
        &server,
        &intruder,
        &worker,
        json!({
            "events": [{"taskId": id, "leaseToken": lease, "events": [
                {"type": "log", "stream": "stdout", "level": "info", "message": "forged"}
            ]}],
            "completions": [{"taskId": id, "leaseToken": lease, "elapsedMs": 1,
                             "output": {"message": "forged"}}],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown_worker", "{answer}");
    let task = api.task(&id).await;
    assert_eq!(task["state"], "running", "{task:#}");
    // Its stream holds the claim's events and nothing forged.
    let (status, _) = api.delete(&format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let events = api.events(&id, LONG).await;
    assert!(!format!("{events:?}").contains("forged"), "{events:?}");
}

/// A worker with one slot and one task of read-ahead holds two leases: the
/// task it runs and the next one, which starts as soon as the slot frees.
/// Stopping hands back both, and neither attempt counts.
async fn tasks_claimed_ahead_start_as_slots_free_and_go_back_on_shutdown(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let mut worker = TestWorker::start(
        &server.url,
        &server.worker_token,
        "ahead",
        &[("echo", components::ECHO)],
        HostCapabilities::none(),
        1,
        |config| config.read_ahead = Some(1),
    )
    .await;
    let api = server.admin();
    let short = api.submit(&sleep_document("300ms")).await;
    let next = api.submit(&sleep_document("300ms")).await;
    for id in [&short, &next] {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
    }

    let running = api.submit(&sleep_document("60s")).await;
    let ahead = api.submit(&sleep_document("60s")).await;
    for id in [&running, &ahead] {
        api.until(id, LONG, |task| task["state"] == "running").await;
    }
    let (_, view) = api.get("/workers/ahead").await;
    assert_eq!(view["slots"], 1, "{view:#}");
    assert_eq!(view["readAhead"], 1, "{view:#}");
    assert_eq!(
        view["running"], 2,
        "one running, one claimed ahead: {view:#}"
    );

    worker.shutdown().await;
    for id in [&running, &ahead] {
        let task = api.task(id).await;
        assert_eq!(task["state"], "pending", "handed back: {task:#}");
        assert_eq!(task["attempts"][0]["outcome"], "released", "{task:#}");
        assert_eq!(
            task["maxAttempts"], 4,
            "a handed-back attempt does not count: {task:#}"
        );
    }
}

/// Two servers on one PostgreSQL database; the worker waits in a claim on
/// server B. A task submitted to server A starts on it at once: A announces
/// the new work (NOTIFY) and B wakes its waiting claim. Both servers re-check
/// only every minute and the worker's claim waits a minute, so without the
/// announcement the task could not start within the half minute allowed.
async fn a_task_submitted_to_one_server_wakes_a_claim_waiting_on_another() {
    let slow_recheck = |config: &mut flowmesh_server::ServerConfig| {
        config.claim_recheck = Duration::from_secs(60);
        config.max_claim_wait = Duration::from_secs(60);
    };
    let a = TestServer::start(Db::Postgres, slow_recheck).await;
    let (b, _dir) = a.another_server(slow_recheck).await;
    let _worker = TestWorker::start(
        &b.url(),
        &a.worker_token,
        "on-b",
        &[("echo", components::ECHO)],
        HostCapabilities::none(),
        2,
        |config| config.claim_wait = Duration::from_secs(60),
    )
    .await;
    let api = a.admin();
    flowmesh_tests::cluster::eventually("the worker serves echo", LONG, || async {
        let (_, worker) = api.get("/workers/on-b").await;
        if worker["served"]["types"].get("echo").is_some() {
            Ok(())
        } else {
            Err(worker.to_string())
        }
    })
    .await;
    // Let its claim settle into the long poll on B.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..3 {
        let id = api.echo(&format!("across {n}")).await;
        let task = api.finished(&id, Duration::from_secs(30)).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert_eq!(task["attempts"][0]["worker"], "on-b", "{task:#}");
    }
    b.shutdown().await;
}
