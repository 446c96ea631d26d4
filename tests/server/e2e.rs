//! End to end: a real server (SQLite file or PostgreSQL database) and real
//! workers running real plugins, over HTTP on loopback. Every test runs on
//! both backends.

use std::time::Duration;

use flowmesh_runtime::HostCapabilities;
use flowmesh_tests::cluster::{
    Api, Db, TestServer, echo_document, eventually, sleep_document, task_types,
};
use flowmesh_tests::components;
use flowmesh_tests::stub_containers::StubContainers;
use flowmesh_types::CapabilityKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);

flowmesh_tests::on_both_backends!(
    echo_tasks_complete_with_a_result_envelope,
    tasks_go_only_to_workers_that_advertise_their_type,
    fail_fast_rejects_a_type_no_live_worker_serves,
    an_unplaceable_task_says_why_and_fails_after_the_grace_period,
    a_killed_workers_task_is_retried_on_another_worker,
    a_completion_under_an_expired_lease_is_rejected,
    cancel_works_in_every_state,
    events_stream_in_order_and_a_late_subscriber_gets_the_end,
    another_tenants_task_is_not_found_on_any_route,
    roles_guard_their_routes,
    malformed_documents_are_rejected_with_field_paths,
    retryable_failures_are_retried_then_fail_with_their_history,
    a_python_plugin_runs_beside_rust_ones_in_a_workflow,
    a_component_download_is_streamed_from_the_servers_disk,
    a_restarted_worker_registers_again_and_is_served,
    list_filters_and_pages,
    every_example_document_is_accepted,
    health_metrics_and_openapi_answer,
    query_parameters_are_checked_on_every_route,
    a_worker_shutting_down_hands_its_tasks_back,
    workers_pick_up_installed_plugins_and_drop_removed_ones,
);

async fn echo_tasks_complete_with_a_result_envelope(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 4).await;
    let api = server.admin();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(api.echo(&format!("hello {i}")).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        let result = &task["result"];
        assert_eq!(result["schemaVersion"], 1);
        assert_eq!(result["taskType"], "echo");
        assert_eq!(result["plugin"]["name"], "echo");
        assert!(
            result["plugin"]["digest"]
                .as_str()
                .unwrap_or_default()
                .starts_with("sha256:")
        );
        assert_eq!(result["output"]["message"], format!("hello {i}"));
        assert_eq!(result["attempt"], 1);
        assert_eq!(result["worker"], "w1");
        assert!(
            result["summary"]
                .as_str()
                .unwrap_or_default()
                .contains("w1")
        );
        assert_eq!(task["attempts"][0]["outcome"], "succeeded");
    }
    // ?wait= answers with the finished task.
    let (status, body) = api.submit_raw("?wait=20s", &echo_document("waited")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["task"]["state"], "succeeded", "{body:#}");
}

async fn tasks_go_only_to_workers_that_advertise_their_type(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server
        .install("uses-containers", components::guests::USES_CONTAINERS)
        .await;
    let plugins = [
        ("echo", components::ECHO),
        ("uses-containers", components::guests::USES_CONTAINERS),
    ];
    let _plain = server
        .worker("plain", &plugins, HostCapabilities::none(), 4)
        .await;
    // The stub makes the worker one that links flowmesh:host/containers,
    // which is all routing looks at, without a Docker daemon (real Docker:
    // server_mixed_fleet).
    let docker = HostCapabilities::none().with_probe(
        CapabilityKind::Containers,
        Ok(std::sync::Arc::new(StubContainers::ExitZero)),
    );
    let _docker = server.worker("docker", &plugins, docker, 4).await;
    let api = server.admin();
    let document = "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: uses-containers\n";
    let gated: Vec<String> = futures::future::join_all((0..12).map(|_| api.submit(document))).await;
    let messages: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    let echoes: Vec<String> = futures::future::join_all(messages.iter().map(|m| api.echo(m))).await;
    for id in &gated {
        let task = api.finished(id, LONG).await;
        assert_eq!(
            task["worker"], "docker",
            "only the Docker worker advertises the type"
        );
        // The plugin ran there and got the stub's answer.
        assert_eq!(task["result"]["output"], "exit code 0", "{task:#}");
    }
    let mut echo_workers = std::collections::BTreeSet::new();
    for id in &echoes {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        echo_workers.insert(
            task["worker"]
                .as_str()
                .expect("a worker ran it")
                .to_string(),
        );
    }
    assert!(
        echo_workers
            .iter()
            .all(|worker| worker == "plain" || worker == "docker"),
        "{echo_workers:?}"
    );
    // The plain worker says why it cannot run the plugin.
    let (status, plain) = api.get("/workers/plain").await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert_eq!(task_types(&plain), ["echo", "sleep"]);
    let gated_plugin = plain["capabilities"]["plugins"]
        .as_array()
        .and_then(|plugins| {
            plugins
                .iter()
                .find(|plugin| plugin["name"] == "uses-containers")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(gated_plugin["status"], "unavailable", "{plain:#}");
    assert!(
        gated_plugin["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("flowmesh:host/containers"),
        "{gated_plugin:#}"
    );
}

async fn fail_fast_rejects_a_type_no_live_worker_serves(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let (status, body) = api.submit_raw("?failFast=true", &echo_document("x")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "no_eligible_worker");
    assert_eq!(body["error"]["details"][0]["path"], "spec.taskType");
    let (_, page) = api.get("/tasks").await;
    assert_eq!(
        page["tasks"].as_array().map(Vec::len),
        Some(0),
        "nothing stored"
    );

    let _worker = server.echo_worker("w1", 1).await;
    let (status, body) = api
        .submit_raw("?failFast=true&wait=20s", &echo_document("x"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["task"]["state"], "succeeded");
}

async fn an_unplaceable_task_says_why_and_fails_after_the_grace_period(db: Db) {
    let server = TestServer::start(db, |config| {
        config.no_worker_grace = Duration::from_secs(2);
    })
    .await;
    let api = server.admin();
    // No worker at all.
    let orphan = api.echo("nobody").await;
    let task = api
        .until(&orphan, LONG, |task| {
            task["waiting"]["kind"] == "no_worker_for_type"
        })
        .await;
    assert!(
        task["waiting"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no live worker advertises task type \"echo\""),
        "{task:#}"
    );
    assert_eq!(task["waiting"]["counts"]["liveWorkers"], 0);

    // A worker that advertises the type but lacks the memory.
    let _worker = server.echo_worker("small", 2).await;
    let huge = api
        .submit("apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: echo\n  message: big\n  resources: {hardware: {memory: 512Ti}}\n")
        .await;
    let task = api
        .until(&huge, LONG, |task| {
            task["waiting"]["kind"] == "insufficient_hardware"
        })
        .await;
    let message = task["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("needs memory 512.0 TiB"), "{message}");
    assert_eq!(task["waiting"]["counts"]["advertisingType"], 1);
    assert_eq!(task["waiting"]["counts"]["fittingHardware"], 0);

    // The first one ran once the worker came; the big one fails after the grace.
    assert_eq!(api.finished(&orphan, LONG).await["state"], "succeeded");
    let failed = api.finished(&huge, LONG).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert_eq!(failed["error"]["code"], "no_eligible_worker");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs memory 512.0 TiB"),
        "{failed:#}"
    );
}

async fn a_killed_workers_task_is_retried_on_another_worker(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let mut first = server.echo_worker("first", 1).await;
    let id = api.submit(&sleep_document("3s")).await;
    api.until(&id, LONG, |task| {
        task["state"] == "running" && task["worker"] == "first"
    })
    .await;
    let _second = server.echo_worker("second", 1).await;
    first.kill();
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["worker"], "second");
    assert_eq!(task["attempt"], 2);
    let attempts = task["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{task:#}");
    assert_eq!(attempts[0]["worker"], "first");
    assert_eq!(attempts[0]["outcome"], "lease_expired");
    assert_eq!(attempts[0]["error"]["code"], "lease_expired");
    assert_eq!(attempts[1]["worker"], "second");
    assert_eq!(attempts[1]["outcome"], "succeeded");
}

/// Claims for `worker_id` until a task comes (the worker of a failed attempt
/// is passed over for a while); returns the claimed task.
async fn claim_one(worker: &Api, worker_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let (status, claim) = worker
            .post(
                "/worker/claim",
                json!({"workerId": worker_id, "maxTasks": 1, "waitMs": 5000}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{claim}");
        if let Some(task) = claim["tasks"].as_array().and_then(|tasks| tasks.first()) {
            return task.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no task was claimed"
        );
    }
}

/// Speaks the worker protocol by hand, to hold a lease and let it expire.
async fn a_completion_under_an_expired_lease_is_rejected(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let worker = Api::new(&server.url, &server.worker_token);
    let worker_id = server
        .register_by_hand(&server.worker_token, "manual", "echo")
        .await;
    let id = api.echo("fenced").await;
    let task = claim_one(&worker, &worker_id).await;
    assert_eq!(task["id"], id, "{task:#}");
    let old_lease = task["leaseToken"].as_str().unwrap_or_default().to_string();

    // No heartbeat: the lease expires and the task goes back to pending.
    api.until(&id, LONG, |task| {
        task["state"] == "pending" && task["attempt"] == 2
    })
    .await;
    let late = json!({"workerId": worker_id, "completions": [{
        "taskId": id, "leaseToken": old_lease, "elapsedMs": 1, "output": {"message": "late"}
    }]});
    let (status, answer) = worker.post("/worker/complete", late).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["verdicts"], json!(["stale_lease"]));
    assert_eq!(api.task(&id).await["state"], "pending");

    // Another worker claims the second attempt and completes it.
    let rescuer_id = server
        .register_by_hand(&server.worker_token, "rescuer", "echo")
        .await;
    let claimed = claim_one(&worker, &rescuer_id).await;
    let lease = claimed["leaseToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(lease, old_lease);
    assert_eq!(claimed["attempt"], 2);
    let (_, answer) = worker
        .post(
            "/worker/complete",
            json!({"workerId": rescuer_id, "completions": [{
                "taskId": id, "leaseToken": lease, "elapsedMs": 1, "output": {"message": "on time"}
            }]}),
        )
        .await;
    assert_eq!(answer["verdicts"], json!(["accepted"]));
    let task = api.task(&id).await;
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["attempt"], 2);
}

async fn cancel_works_in_every_state(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    // Pending: nothing serves it yet.
    let pending = api.echo("never").await;
    let (status, task) = api.delete(&format!("/tasks/{pending}")).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["state"], "cancelled");
    assert_eq!(task["error"]["code"], "cancelled");

    // Running: the worker interrupts it and confirms.
    let _worker = server.echo_worker("w1", 1).await;
    let running = api.submit(&sleep_document("60s")).await;
    api.until(&running, LONG, |task| task["state"] == "running")
        .await;
    let (status, task) = api.delete(&format!("/tasks/{running}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(task["state"], "cancelling", "{task:#}");
    let task = api.finished(&running, LONG).await;
    assert_eq!(task["state"], "cancelled", "{task:#}");
    assert_eq!(task["attempts"][0]["outcome"], "cancelled");

    // Terminal: a no-op.
    let (status, again) = api.delete(&format!("/tasks/{running}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "cancelled");
    let done = api.echo("done").await;
    api.finished(&done, LONG).await;
    let (status, task) = api.delete(&format!("/tasks/{done}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(task["state"], "succeeded");

    // The pending one never ran.
    assert_eq!(api.task(&pending).await["state"], "cancelled");
}

async fn events_stream_in_order_and_a_late_subscriber_gets_the_end(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let _worker = server.echo_worker("w1", 1).await;
    let id = api.submit(&sleep_document("400ms")).await;
    let events = api.events(&id, LONG).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"));
    assert_eq!(events[0].1["data"]["state"], "pending");
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    let states: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "state")
        .filter_map(|(_, data)| data["data"]["state"].as_str())
        .collect();
    assert_eq!(states, ["pending", "running", "succeeded"]);
    let first_log = names
        .iter()
        .position(|name| *name == "log")
        .expect("a log event");
    let first_progress = names
        .iter()
        .position(|name| *name == "progress")
        .expect("progress events");
    let succeeded_at = events
        .iter()
        .position(|(_, data)| data["data"]["state"] == "succeeded")
        .expect("succeeded");
    assert!(first_log < succeeded_at && first_progress < succeeded_at);
    let seqs: Vec<i64> = events
        .iter()
        .filter_map(|(_, data)| data["seq"].as_i64())
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    let result = &events
        .last()
        .map(|(_, data)| data.clone())
        .unwrap_or_default();
    assert_eq!(result["data"]["state"], "succeeded");
    assert!(
        // The spec's duration, as the plugin reports it (not a measurement).
        result["data"]["result"]["output"]["sleptMs"].as_u64() == Some(400),
        "{result:#}"
    );

    // A late subscriber gets the whole story, ending with the result.
    let late = api.events(&id, LONG).await;
    assert_eq!(late.len(), events.len());
    assert_eq!(late.last().map(|(name, _)| name.as_str()), Some("result"));

    // Resuming after the last event of a finished task ends at once.
    let last_seq = seqs.last().copied().unwrap_or_default();
    let resumed = tokio::time::timeout(LONG, async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/tasks/{id}/events", server.url))
            .bearer_auth(&server.admin)
            .header("Last-Event-ID", last_seq.to_string())
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    })
    .await
    .expect("the stream ends");
    assert!(!resumed.contains("event:"), "{resumed}");
}

async fn another_tenants_task_is_not_found_on_any_route(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = alice.echo("mine").await;
    for (status, body) in [
        bob.get(&format!("/tasks/{id}")).await,
        bob.delete(&format!("/tasks/{id}")).await,
        bob.get(&format!("/tasks/{id}/events")).await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (_, page) = bob.get("/tasks").await;
    assert_eq!(page["tasks"], json!([]));
    let (_, page) = alice.get("/tasks").await;
    assert_eq!(page["tasks"][0]["id"], id);
    // Still pending and untouched for its owner.
    assert_eq!(alice.task(&id).await["state"], "pending");
}

async fn roles_guard_their_routes(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let user = server.user("carol").await;
    let worker = Api::new(&server.url, &server.worker_token);
    let (status, body) = worker.submit_raw("", &echo_document("x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = user
        .post(
            "/worker/claim",
            json!({"workerId": "x", "maxTasks": 1, "waitMs": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = user
        .post("/tokens", json!({"tenant": "carol", "role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = user.delete("/plugins/echo").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let component = std::fs::read(components::ECHO).expect("component built");
    for api in [&user, &worker] {
        let (status, body) = Api::send(
            api.request(reqwest::Method::POST, "/plugins?name=mine")
                .body(component.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (_, plugins) = server.admin().get("/plugins").await;
    assert!(!plugins.to_string().contains("\"mine\""), "{plugins}");
    let nobody = Api::new(&server.url, "fm_not_a_token");
    let (status, body) = nobody.get("/tasks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
}

async fn malformed_documents_are_rejected_with_field_paths(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let cases: [(&str, StatusCode, &str); 7] = [
        (
            "apiVersion: flowmesh/v2\nkind: Task\nspec: {taskType: echo, message: x}\n",
            StatusCode::BAD_REQUEST,
            "apiVersion",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: x, resources: {hardware: {gpuu: 1}}}\n",
            StatusCode::BAD_REQUEST,
            "spec.resources.hardware.gpuu",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: x, timeout: soon}\n",
            StatusCode::BAD_REQUEST,
            "spec.timeout",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: x}\nextra: 1\n",
            StatusCode::BAD_REQUEST,
            "extra",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo}\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec.message",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: x, repeat: 0}\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec.repeat",
        ),
        (
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: nope}\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "spec.taskType",
        ),
    ];
    for (document, expected, path) in cases {
        let (status, body) = api.submit_raw("", document).await;
        assert_eq!(status, expected, "{document}: {body}");
        let paths: Vec<&str> = body["error"]["details"]
            .as_array()
            .map(|details| details.iter().filter_map(|d| d["path"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            paths.contains(&path),
            "{document}: expected {path} in {paths:?}"
        );
    }
    let (status, body) = api.submit_raw("", "{ not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_document");
    let (status, body) = api.submit_raw("?wait=soon", &echo_document("x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["path"], "wait");
    let (status, body) = api.get("/tasks?state=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["path"], "state");
    let (status, body) = api
        .post("/tokens", json!({"tenant": "x", "role": "boss"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["path"], "role");
    let response = reqwest::Client::new()
        .put(format!("{}/api/v1/tasks", server.url))
        .bearer_auth(&server.admin)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // Nothing was stored.
    let (_, page) = api.get("/tasks").await;
    assert_eq!(page["tasks"], json!([]));
}

async fn retryable_failures_are_retried_then_fail_with_their_history(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server
        .install("retryable", components::guests::RETRYABLE)
        .await;
    server.install("panic", components::guests::PANIC).await;
    let plugins = [
        ("retryable", components::guests::RETRYABLE),
        ("panic", components::guests::PANIC),
    ];
    let _worker = server
        .worker("w1", &plugins, HostCapabilities::none(), 2)
        .await;
    let api = server.admin();
    let flaky = api
        .submit(
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: retryable, maxAttempts: 3}\n",
        )
        .await;
    let broken = api
        .submit("apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: panic, maxAttempts: 3}\n")
        .await;
    let task = api.finished(&flaky, LONG).await;
    assert_eq!(task["state"], "failed", "{task:#}");
    assert_eq!(task["attempt"], 3);
    assert_eq!(task["error"]["code"], "retryable");
    let attempts = task["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 3, "{task:#}");
    assert!(
        attempts
            .iter()
            .all(|attempt| attempt["error"]["code"] == "retryable")
    );
    let task = api.finished(&broken, LONG).await;
    assert_eq!(task["state"], "failed");
    assert_eq!(task["attempt"], 1, "a trap is not retried: {task:#}");
    assert_eq!(task["error"]["code"], "trap");
}

/// The Python `text` plugin, installed on the server (which validates with
/// it at submit) and run by a real worker over HTTP, in a workflow after the
/// Rust `echo`; a bad pattern is refused at submit with its path; a
/// Python exception fails its task and is not retried.
async fn a_python_plugin_runs_beside_rust_ones_in_a_workflow(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server.install("text", components::python::TEXT).await;
    server
        .install("py-hostile", components::python::HOSTILE)
        .await;
    let plugins = [
        ("echo", components::ECHO),
        ("text", components::python::TEXT),
        ("py-hostile", components::python::HOSTILE),
    ];
    let _worker = server
        .worker("w1", &plugins, HostCapabilities::none(), 2)
        .await;
    let api = server.admin();
    let flow = api
        .submit(include_str!(
            "../../examples/workflows/echo-then-count.yaml"
        ))
        .await;
    let workflow = api.workflow_finished(&flow, LONG).await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
    let stages = workflow["stages"].as_array().cloned().unwrap_or_default();
    let output = |name: &str| {
        stages
            .iter()
            .find(|stage| stage["name"] == name)
            .map(|stage| stage["output"].clone())
            .unwrap_or_default()
    };
    assert_eq!(output("count")["words"], 16, "{workflow:#}");
    let numbers = output("numbers");
    let numbers: Vec<&str> = numbers["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["match"].as_str())
        .collect();
    assert_eq!(numbers, ["3", "12", "2", "3", "12", "2"], "{workflow:#}");

    let (status, body) = api
        .submit_raw(
            "",
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: regex-extract, pattern: '(', text: x}\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("spec.pattern"), "{body}");

    let raised = api
        .submit("apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: py-raise, maxAttempts: 3}\n")
        .await;
    let task = api.finished(&raised, LONG).await;
    assert_eq!(task["state"], "failed", "{task:#}");
    assert_eq!(task["attempt"], 1, "a failure is not retried: {task:#}");
    assert_eq!(task["error"]["code"], "failed");
    assert_eq!(
        task["error"]["message"],
        "ZeroDivisionError: division by zero"
    );
}

/// A worker's download of a component: the bytes installed, with their
/// length announced, streamed from the copy the server keeps on its disk
/// (written on the first download); a removed plugin's copy is deleted and
/// its digest, like an unknown or malformed one, is a 404.
async fn a_component_download_is_streamed_from_the_servers_disk(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server.install("text", components::python::TEXT).await;
    let bytes = std::fs::read(components::python::TEXT).expect("component");
    let digest = flowmesh_runtime::ComponentDigest::of(&bytes);
    let worker = server.api(&server.worker_token);
    for _ in 0..2 {
        let response = worker
            .request(reqwest::Method::GET, &format!("/worker/plugins/{digest}"))
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.content_length(), Some(bytes.len() as u64));
        let body = response.bytes().await.expect("body");
        assert!(body == bytes, "the installed bytes come back");
    }
    let kept = server
        .db
        .dir
        .path()
        .join(format!("components/{}.wasm", digest.hex()));
    assert_eq!(
        std::fs::metadata(&kept).map(|m| m.len()).ok(),
        Some(bytes.len() as u64)
    );
    // Removed, it is neither served nor kept.
    let (status, _) = server.admin().delete("/plugins/text").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!kept.exists(), "the removed plugin's copy is deleted");
    for missing in [
        digest.to_string(),
        format!("sha256:{}", "0".repeat(64)),
        "sha256:nothex".into(),
        "../../etc/passwd".into(),
    ] {
        let (status, _) = worker.get(&format!("/worker/plugins/{missing}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
}

async fn a_restarted_worker_registers_again_and_is_served(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let mut worker = server.echo_worker("phoenix", 1).await;
    let running = api.submit(&sleep_document("30s")).await;
    api.until(&running, LONG, |task| task["state"] == "running")
        .await;
    worker.kill();
    // The same worker comes back under the same name: its old attempt is
    // released at once (not after the lease TTL), and it serves again.
    let _again = server.echo_worker("phoenix", 1).await;
    let task = api.until(&running, LONG, |task| task["attempt"] == 2).await;
    assert_eq!(task["attempts"][0]["outcome"], "lease_expired", "{task:#}");
    let echo = api.echo("after restart").await;
    api.delete(&format!("/tasks/{running}")).await;
    assert_eq!(api.finished(&echo, LONG).await["state"], "succeeded");
    let (_, workers) = api.get("/workers").await;
    let states: Vec<(&str, &str)> = workers
        .as_array()
        .map(|workers| {
            workers
                .iter()
                .map(|w| {
                    (
                        w["name"].as_str().unwrap_or(""),
                        w["state"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(states, [("phoenix", "live"), ("phoenix", "gone")]);
}

async fn list_filters_and_pages(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            api.submit(&format!(
                "apiVersion: flowmesh/v1\nkind: Task\nmetadata: {{labels: {{batch: b{}}}}}\nspec: {{taskType: echo, message: m{i}}}\n",
                i % 2
            ))
            .await,
        );
    }
    let (_, first) = api.get("/tasks?limit=3").await;
    let page: Vec<&str> = first["tasks"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(page, [ids[6].as_str(), ids[5].as_str(), ids[4].as_str()]);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let (_, second) = api.get(&format!("/tasks?limit=3&cursor={cursor}")).await;
    assert_eq!(second["tasks"][0]["id"], ids[3]);
    let (_, labelled) = api.get("/tasks?label=batch=b0").await;
    assert_eq!(labelled["tasks"].as_array().map(Vec::len), Some(4));
    api.delete(&format!("/tasks/{}", ids[0])).await;
    let (_, cancelled) = api.get("/tasks?state=cancelled").await;
    assert_eq!(cancelled["tasks"][0]["id"], ids[0]);
    assert_eq!(cancelled["tasks"].as_array().map(Vec::len), Some(1));
    let (_, typed) = api.get("/tasks?taskType=sleep").await;
    assert_eq!(typed["tasks"], json!([]));
}

/// Every document under examples/ is submitted through the API, as a user
/// would: envelope, workflow graph, plugin schema and `validate()`. A file
/// there that is not a document this test checks fails it.
async fn every_example_document_is_accepted(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server.install("container", components::CONTAINER).await;
    server.install("inference", components::INFERENCE).await;
    server.install("train", components::TRAIN).await;
    server.install("text", components::python::TEXT).await;
    let api = server.admin();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut kinds = std::collections::BTreeMap::new();
    for path in &files {
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        assert!(
            matches!(extension, "yaml" | "yml" | "json"),
            "{}: not a task or workflow document, and no test checks it",
            path.display()
        );
        let document = std::fs::read_to_string(path).expect("readable");
        let (status, body) = api.submit_raw("", &document).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {body}", path.display());
        let kind = if body.get("workflow").is_some() {
            "workflow"
        } else {
            "task"
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert!(
        kinds.get("task") >= Some(&6) && kinds.get("workflow") >= Some(&3),
        "the examples are there: {kinds:?}"
    );
}

/// Every route refuses a query parameter it does not take, and a malformed
/// value of one it does, with the JSON error body naming the parameter;
/// nothing is stored or changed.
async fn query_parameters_are_checked_on_every_route(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let id = api.echo("kept").await;
    let http = reqwest::Client::new();
    let cases: Vec<(reqwest::Method, String, &str)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/tasks?dryrun=true".into(),
            "dryrun",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tasks?wait=soon".into(),
            "wait",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tasks?failFast=maybe".into(),
            "failFast",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tasks?limit=0".into(),
            "limit",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tasks?state=done".into(),
            "state",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tasks?label=nokey".into(),
            "label",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tasks?limit=1&limit=2".into(),
            "limit",
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/tasks/{id}?verbose=1"),
            "verbose",
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/tasks/{id}?force=true"),
            "force",
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/tasks/{id}/events?follow=nah"),
            "follow",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/workflows?state=done".into(),
            "state",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/workflows?cursor=x".into(),
            "cursor",
        ),
        (reqwest::Method::GET, "/api/v1/workers?all=1".into(), "all"),
        (reqwest::Method::GET, "/api/v1/plugins?all=1".into(), "all"),
        (
            reqwest::Method::POST,
            "/api/v1/plugins?sha=abc".into(),
            "sha",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tokens?role=admin".into(),
            "role",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/worker/claim?wait=1s".into(),
            "wait",
        ),
        (reqwest::Method::GET, "/healthz?deep=1".into(), "deep"),
        (
            reqwest::Method::GET,
            "/metrics?format=json".into(),
            "format",
        ),
        (reqwest::Method::GET, "/openapi.json?v=3".into(), "v"),
    ];
    for (method, path, param) in cases {
        let response = http
            .request(method.clone(), format!("{}{path}", server.url))
            .bearer_auth(&server.admin)
            .body("apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: never}\n")
            .send()
            .await
            .expect("answer");
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path}"
        );
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(
            body["error"]["code"], "invalid_parameter",
            "{method} {path}: {body}"
        );
        assert_eq!(
            body["error"]["details"][0]["path"], param,
            "{method} {path}: {body}"
        );
    }
    let (_, page) = api.get("/tasks").await;
    assert_eq!(
        page["tasks"].as_array().map(Vec::len),
        Some(1),
        "nothing more was stored"
    );
    assert_eq!(api.task(&id).await["state"], "pending", "nor cancelled");
}

async fn health_metrics_and_openapi_answer(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 1).await;
    let api = server.admin();
    let id = api.echo("counted").await;
    api.finished(&id, LONG).await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = server.metrics().await;
    for expected in [
        "flowmesh_queue_depth{task_type=\"echo\",state=\"succeeded\"} 1",
        "flowmesh_workers_by_task_type{task_type=\"echo\"} 1",
        "flowmesh_tasks_finished_total{state=\"succeeded\"} 1",
        "flowmesh_claim_duration_seconds_count",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    let openapi: Value = http
        .get(format!("{}/openapi.json", server.url))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        openapi["paths"]["/api/v1/tasks"]["post"].is_object(),
        "{openapi:#}"
    );
    assert!(openapi["paths"]["/api/v1/worker/claim"]["post"].is_object());
    assert!(openapi["components"]["schemas"]["TaskView"].is_object());
}

async fn a_worker_shutting_down_hands_its_tasks_back(db: Db) {
    // A lease long enough that the handed-back completion, which no
    // heartbeat renews while it waits in the worker's outbox, arrives in
    // time on a loaded machine.
    let server = TestServer::start(db, |config| {
        config.lease_ttl = Duration::from_secs(10);
    })
    .await;
    let api = server.admin();
    let mut leaving = server.echo_worker("leaving", 1).await;
    let id = api
        .submit("apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: sleep, duration: 2s, maxAttempts: 1}\n")
        .await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;
    leaving.shutdown().await;
    let task = api.until(&id, LONG, |task| task["attempt"] == 2).await;
    assert_eq!(
        task["state"], "pending",
        "handed back, not failed: {task:#}"
    );
    assert_eq!(task["attempts"][0]["outcome"], "released");
    let _staying = server.echo_worker("staying", 1).await;
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["worker"], "staying");
}

/// The task types `worker` advertises now.
async fn advertised(api: &Api, worker: &str) -> Vec<String> {
    let (status, body) = api.get(&format!("/workers/{worker}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    task_types(&body)
}

/// Polls until `worker` advertises (or stops advertising) `task_type`.
async fn until_advertised(api: &Api, worker: &str, task_type: &str, expected: bool) {
    eventually(
        &format!("{worker} advertising {task_type}: {expected}"),
        LONG,
        || async {
            let types = advertised(api, worker).await;
            if types.iter().any(|t| t == task_type) == expected {
                Ok(())
            } else {
                Err(format!("{types:?}"))
            }
        },
    )
    .await;
}

async fn workers_pick_up_installed_plugins_and_drop_removed_ones(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    // A worker with no plugin of its own loads what the server has.
    let worker = server
        .worker("bare", &[], HostCapabilities::none(), 2)
        .await;
    until_advertised(&api, "bare", "echo", true).await;
    let id = api.echo("fetched").await;
    assert_eq!(api.finished(&id, LONG).await["result"]["worker"], "bare");

    // A second plugin claiming echo's task types is refused, and echo keeps
    // serving.
    let (status, body) = server.try_install("echo-again", components::ECHO).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already provided by plugin \"echo\""),
        "{body}"
    );
    let id = api.echo("still served").await;
    assert_eq!(api.finished(&id, LONG).await["state"], "succeeded");

    // Installed while the worker runs: advertised without a restart, and run.
    server
        .install("retryable", components::guests::RETRYABLE)
        .await;
    until_advertised(&api, "bare", "retryable", true).await;
    let (status, body) = api
        .submit_raw(
            "?failFast=true",
            "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: retryable\n  maxAttempts: 1\n",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["task"]["id"].as_str().unwrap_or_default().to_string();
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["attempts"][0]["worker"], "bare", "{task:#}");
    assert_eq!(task["error"]["code"], "retryable", "{task:#}");

    // Inspect names the worker that runs it.
    let (status, plugin) = api.get("/plugins/retryable").await;
    assert_eq!(status, StatusCode::OK, "{plugin}");
    assert_eq!(plugin["workers"][0]["name"], "bare", "{plugin:#}");
    assert_eq!(plugin["workers"][0]["status"], "available", "{plugin:#}");

    // Removed: withdrawn the same way; the worker's runtime no longer has it.
    let (status, _) = api.delete("/plugins/retryable").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    until_advertised(&api, "bare", "retryable", false).await;
    assert!(
        worker
            .runtime
            .runtime
            .capabilities()
            .plugin("retryable")
            .is_none()
    );
    assert!(advertised(&api, "bare").await.contains(&"echo".to_string()));
    let (status, body) = api
        .submit_raw(
            "?failFast=true",
            "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: retryable\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Two servers on one PostgreSQL database, as when scaling out: a plugin
/// installed through one is checked at submit by the other within a
/// heartbeat interval, and removed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_sharing_a_database_share_installed_plugins() {
    let first = TestServer::start(Db::Postgres, |_| {}).await;
    let (second, _dir) = first.another_server(|_| {}).await;
    let other = Api::new(&second.url(), &first.admin);
    let document = "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: retryable\n";

    let (status, _) = other.submit_raw("", document).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not installed yet"
    );
    first
        .install("retryable", components::guests::RETRYABLE)
        .await;
    let installed_there = |expected: StatusCode| {
        let other = &other;
        move || async move {
            let (status, body) = other.get("/plugins/retryable").await;
            if status == expected {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        }
    };
    eventually(
        "the other server has the plugin",
        LONG,
        installed_there(StatusCode::OK),
    )
    .await;
    let (status, body) = other.submit_raw("", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, _) = first.admin().delete("/plugins/retryable").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(
        "the other server dropped the plugin",
        LONG,
        installed_there(StatusCode::NOT_FOUND),
    )
    .await;
    let (status, body) = other.submit_raw("", document).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    second.shutdown().await;
}
