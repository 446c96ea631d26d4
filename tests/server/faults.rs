//! Leases under faults, with a real server and real workers over HTTP: an
//! outcome that waits in a worker's outbox keeps its lease, a server restart
//! does not count the time it was down against running leases, and a worker
//! cut off for longer than its lease is fenced out when it comes back. On
//! SQLite and on PostgreSQL. An attacker on the link who swaps the component
//! a worker downloads gets nothing run.
//!
//! The link between a worker and the server is a [`Proxy`] the test cuts,
//! whole or for the routes that deliver outcomes. Every assertion is about
//! outcomes (states, attempts, verdicts), never about how long a step took.

use std::time::Duration;

use flowmesh_runtime::HostCapabilities;
use flowmesh_tests::cluster::{
    Db, TestServer, TestWorker, attempt_outcomes, eventually, sleep_document, task_types,
};
use flowmesh_tests::components;
use flowmesh_tests::on_both_backends;
use flowmesh_tests::proxy::Proxy;

on_both_backends!(
    heartbeats_renew_the_lease_of_an_outcome_waiting_in_the_outbox,
    an_outcome_held_over_a_server_restart_is_accepted_in_the_grace,
    a_worker_cut_off_for_longer_than_its_lease_is_fenced_out,
    a_component_altered_on_the_way_is_refused_by_the_worker,
);

const LEASE: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(60);

/// Outcomes the server accepted, refused by the fence, and leases expired.
const ACCEPTED: &str = "flowmesh_completions_total{verdict=\"accepted\"}";
const STALE: &str = "flowmesh_completions_total{verdict=\"stale_lease\"}";
const LEASES_EXPIRED: &str = "flowmesh_leases_expired_total";

/// The routes that carry a worker's outcomes to the server.
const OUTCOME_ROUTES: [&str; 2] = ["/worker/claim", "/worker/complete"];

async fn server(db: Db) -> TestServer {
    TestServer::start(db, |config| config.lease_ttl = LEASE).await
}

async fn echo_worker_at(server: &TestServer, url: &str, name: &str) -> TestWorker {
    TestWorker::start(
        url,
        &server.worker_token,
        name,
        &[("echo", components::ECHO)],
        HostCapabilities::none(),
        1,
        |_| {},
    )
    .await
}

/// The task ends while the routes that deliver outcomes are held for three
/// lease TTLs; heartbeats still go through and name the outcome's lease, so
/// the lease never expires and the outcome is accepted when the link comes
/// back: one attempt, no lost one.
async fn heartbeats_renew_the_lease_of_an_outcome_waiting_in_the_outbox(db: Db) {
    let server = server(db).await;
    let proxy = Proxy::start(&server.url).await;
    let _worker = echo_worker_at(&server, proxy.url(), "held").await;
    let api = server.admin();
    // Long enough to be still running when the hold starts, short enough
    // to end inside it.
    let id = api.submit(&sleep_document("3s")).await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;
    proxy.hold(&OUTCOME_ROUTES);
    tokio::time::sleep(LEASE * 3).await;

    let task = api.task(&id).await;
    assert_eq!(
        task["state"], "running",
        "the lease of an outcome in the outbox expired: {task:#}"
    );
    assert_eq!(server.metric(LEASES_EXPIRED).await, 0.0);

    proxy.restore();
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(attempt_outcomes(&task), vec![("held", "succeeded")]);
    assert_eq!(server.metric(ACCEPTED).await, 1.0);
    assert_eq!(server.metric(LEASES_EXPIRED).await, 0.0);
}

/// The server is down for two lease TTLs while a task runs and ends; the
/// worker keeps the outcome. The restarted server gives running leases one
/// more TTL, and the outcome, delivered in that grace under a lease that
/// still holds, is accepted.
async fn an_outcome_held_over_a_server_restart_is_accepted_in_the_grace(db: Db) {
    let server = server(db).await;
    let _worker = server.echo_worker("patient", 1).await;
    let api = server.admin();
    let id = api.submit(&sleep_document("500ms")).await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;

    let server = server.restart_after(LEASE * 2).await;
    let api = server.admin();
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(attempt_outcomes(&task), vec![("patient", "succeeded")]);
    assert_eq!(server.metric(LEASES_EXPIRED).await, 0.0);
    assert_eq!(server.metric(STALE).await, 0.0);
}

/// A worker loses its link in the middle of a task for three lease TTLs.
/// Its lease expires, the task runs again on another worker, and when the
/// link returns the first worker's outcome arrives and is refused by the
/// fence: the task keeps one accepted outcome, and the lost attempt is on
/// record.
async fn a_worker_cut_off_for_longer_than_its_lease_is_fenced_out(db: Db) {
    let server = server(db).await;
    let proxy = Proxy::start(&server.url).await;
    let _cut_off = echo_worker_at(&server, proxy.url(), "cut-off").await;
    let api = server.admin();
    let id = api.submit(&sleep_document("3s")).await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;
    proxy.cut();
    let _rescuer = server.echo_worker("rescuer", 1).await;

    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["worker"], "rescuer", "{task:#}");
    assert_eq!(
        attempt_outcomes(&task),
        vec![("cut-off", "lease_expired"), ("rescuer", "succeeded")]
    );

    proxy.restore();
    eventually("the cut-off worker's late outcome", LONG, || async {
        match server.metric(STALE).await {
            refused if refused >= 1.0 => Ok(()),
            other => Err(format!("{other} refused")),
        }
    })
    .await;
    assert_eq!(server.metric(STALE).await, 1.0);
    let after = api.task(&id).await;
    assert_eq!(after["result"], task["result"], "{after:#}");
    assert_eq!(attempt_outcomes(&after), attempt_outcomes(&task));
    assert_eq!(server.metric(ACCEPTED).await, 1.0);
}

/// Every component download on the worker's link is replaced by another
/// component (`hijack-echo`, which declares `echo` and forges its answer).
/// The worker checks what it received against the digest the catalog
/// names, loads nothing, and serves nothing; once the link stops altering
/// answers it loads the installed plugin, and the task runs on it.
async fn a_component_altered_on_the_way_is_refused_by_the_worker(db: Db) {
    let server = server(db).await;
    let proxy = Proxy::start(&server.url).await;
    let forged = std::fs::read(components::guests::HIJACK_ECHO).expect("component built");
    proxy.tamper("/worker/plugins/", forged);
    let _worker = TestWorker::start(
        proxy.url(),
        &server.worker_token,
        "downloader",
        &[],
        HostCapabilities::none(),
        1,
        |_| {},
    )
    .await;
    let api = server.admin();
    let id = api.echo("the real one").await;
    eventually("three altered downloads", LONG, || async {
        match proxy.tampered() {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} so far")),
        }
    })
    .await;
    let task = api.task(&id).await;
    assert_eq!(task["state"], "pending", "{task:#}");
    let (_, workers) = api.get("/workers").await;
    assert!(
        task_types(&workers[0]).is_empty(),
        "a worker advertised what it could not verify: {workers:#}"
    );

    proxy.stop_tampering();
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["result"]["output"]["message"], "the real one");
    let (_, installed) = api.get("/plugins/echo").await;
    assert_eq!(
        task["result"]["plugin"]["digest"], installed["digest"],
        "{task:#}"
    );
}
