//! Tenant isolation against a hostile tenant, plugin author or worker host,
//! end to end: a real server, real workers with real plugins built from
//! source (one that declares another plugin's type, a `validate()` that
//! loops, one that returns 120,000 problems), and real HTTP. Each test is
//! one way in that once worked and must not: the test says what was done
//! and shows it no longer works. Outcomes only, never timings.

use std::time::Duration;

use flowmesh_runtime::HostCapabilities;
use flowmesh_server::config::TenantPolicy;
use flowmesh_tests::cluster::{Api, Db, TestServer, TestWorker, eventually, sleep_document};
use flowmesh_tests::components;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

flowmesh_tests::on_both_backends!(
    a_tenants_worker_never_sees_another_tenants_tasks,
    a_worker_token_cannot_act_under_another_tokens_registration,
    a_live_workers_name_cannot_be_taken_by_another_token,
    a_workers_own_plugin_never_serves_an_installed_type,
    a_local_plugin_serves_only_types_nobody_installed_and_is_marked,
    a_tenant_may_keep_its_tasks_off_shared_workers,
    a_looping_validate_does_not_stall_another_tenants_submit,
    a_huge_error_list_is_capped,
    a_stage_whose_check_never_returns_fails_after_bounded_tries,
    worker_advertisements_are_bounded,
    errors_are_json_and_duplicate_keys_are_refused,
    a_worker_that_stops_cleanly_is_gone_at_once,
    tokens_expire_and_revoked_ones_are_refused_on_every_server,
    submits_past_a_tokens_rate_get_429_with_retry_after,
    a_tokens_open_event_streams_are_capped,
);

mod files {
    #[tokio::test]
    async fn the_database_and_data_dir_are_private() {
        super::the_database_and_data_dir_are_private().await
    }
}

mod transport {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_self_signed_server_is_trusted_only_with_its_ca() {
        super::a_self_signed_server_is_trusted_only_with_its_ca().await
    }

    #[tokio::test]
    async fn a_public_address_without_tls_is_refused() {
        super::a_public_address_without_tls_is_refused().await
    }
}

/// A worker started with `token`, serving the installed echo plugin.
async fn echo_worker_with(server: &TestServer, token: &str, name: &str) -> TestWorker {
    TestWorker::start(
        &server.url,
        token,
        name,
        &[("echo", components::ECHO)],
        HostCapabilities::none(),
        2,
        |_| {},
    )
    .await
}

/// Waits until the worker `name` is routed `task_type` (or, with
/// `expected` false, is not).
async fn until_served(server: &TestServer, name: &str, task_type: &str, expected: bool) -> Value {
    let admin = server.admin();
    eventually(
        &format!("{name} being served {task_type}: {expected}"),
        LONG,
        || async {
            let (status, worker) = admin.get(&format!("/workers/{name}")).await;
            let served = worker["served"]["types"].get(task_type).is_some();
            if status == StatusCode::OK && served == expected {
                Ok(worker)
            } else {
                Err(format!("{status} {worker:#}"))
            }
        },
    )
    .await
}

fn worker_names(task: &Value) -> Vec<String> {
    task["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|attempt| attempt["worker"].as_str())
        .map(str::to_string)
        .collect()
}

/// Observation 1: a worker token of tenant gamma registered a worker that
/// advertised `inference`, claimed tenant alpha's pending task, prompt and
/// all, and completed it with a forged output.
async fn a_tenants_worker_never_sees_another_tenants_tasks(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let gamma_token = server.worker_token("gamma", false).await;
    let _gamma = echo_worker_with(&server, &gamma_token, "gamma-box").await;
    until_served(&server, "gamma-box", "echo", true).await;
    let (_, view) = server.admin().get("/workers/gamma-box").await;
    assert_eq!(view["tenant"], "gamma", "{view:#}");

    let alpha = server.user("alpha").await;
    let gamma = server.user("gamma").await;
    let secret = alpha.echo("alpha's prompt").await;
    let own = gamma.echo("gamma's own").await;
    let own = gamma.finished(&own, LONG).await;
    assert_eq!(own["state"], "succeeded", "{own:#}");
    assert_eq!(worker_names(&own), ["gamma-box"]);

    // gamma's worker is live, idle and serves echo, yet alpha's task waits,
    // and says why.
    let waiting = alpha
        .until(&secret, LONG, |task| {
            task["waiting"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("gamma-box runs only tenant gamma's tasks"))
        })
        .await;
    assert_eq!(waiting["state"], "pending", "{waiting:#}");
    assert_eq!(waiting["waiting"]["kind"], "no_worker_for_type");

    // By hand, with gamma's token: a claim under its own registration gets
    // nothing of alpha's.
    let by_hand = server
        .register_by_hand(&gamma_token, "gamma-manual", "echo")
        .await;
    let (status, claim) = Api::new(&server.url, &gamma_token)
        .post(
            "/worker/claim",
            json!({"workerId": by_hand, "maxTasks": 8, "waitMs": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    assert_eq!(claim["tasks"], json!([]), "{claim:#}");

    // A shared worker runs it.
    let _shared = server.echo_worker("shared-box", 1).await;
    let done = alpha.finished(&secret, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["result"]["output"]["message"], "alpha's prompt");
    assert_eq!(worker_names(&done), ["shared-box"]);

    // A user of alpha does not even see gamma's workers.
    let (status, _) = alpha.get("/workers/gamma-box").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = alpha.get("/workers").await;
    assert!(
        listed
            .as_array()
            .expect("a list")
            .iter()
            .all(|worker| worker["name"] != "gamma-box"),
        "{listed:#}"
    );
}

/// Observation 1: with its own token, a worker heartbeated under another
/// registration's id and replaced its task types; claims, events and
/// completions under another's registration were taken too.
async fn a_worker_token_cannot_act_under_another_tokens_registration(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let victim = server
        .register_by_hand(&server.worker_token, "victim", "echo")
        .await;
    let hostile = Api::new(
        &server.url,
        &server.worker_token(server_tenant(), true).await,
    );
    let forged_types = json!({
        "supportedTaskTypes": ["echo", "stolen"],
        "plugins": [], "capabilities": [],
    });
    let attempts = [
        (
            "/worker/heartbeat",
            json!({"workerId": victim, "leases": [], "capabilities": forged_types}),
        ),
        (
            "/worker/claim",
            json!({"workerId": victim, "maxTasks": 1, "waitMs": 0}),
        ),
        ("/worker/events", json!({"workerId": victim, "tasks": []})),
        (
            "/worker/complete",
            json!({"workerId": victim, "completions": []}),
        ),
        ("/worker/deregister", json!({"workerId": victim})),
    ];
    for (route, body) in attempts {
        let (status, answer) = hostile.post(route, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {answer}");
        assert_eq!(
            answer["error"]["code"], "unknown_worker",
            "{route}: {answer}"
        );
    }
    let (_, view) = server.admin().get(&format!("/workers/{victim}")).await;
    assert_eq!(view["state"], "live", "{view:#}");
    assert_eq!(
        view["capabilities"]["supportedTaskTypes"],
        json!(["echo", "sleep"]),
        "the types of the installed echo it reported, not the forged ones: {view:#}"
    );

    // The victim's own token still works, and its task is its own.
    let api = server.admin();
    let id = api.echo("mine").await;
    let owner = Api::new(&server.url, &server.worker_token);
    let (status, claim) = owner
        .post(
            "/worker/claim",
            json!({"workerId": victim, "maxTasks": 1, "waitMs": 5000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    assert_eq!(claim["tasks"][0]["id"], id.as_str(), "{claim:#}");
}

/// The tenant a test's hostile worker token belongs to.
fn server_tenant() -> &'static str {
    "default"
}

/// A hand-made registration under `name`: one slot, nothing advertised;
/// tests set the fields they probe.
fn hostile_registration(name: &str) -> Value {
    json!({
        "name": name,
        "capabilities": {"supportedTaskTypes": [], "plugins": [], "capabilities": []},
        "hardware": {"cpus": 1.0, "memoryBytes": 1_u64 << 30},
        "slots": 1,
        "version": "hostile",
    })
}

/// Observation 1: registering under the name of the real local worker
/// ended that worker's running task (`lease_expired`).
async fn a_live_workers_name_cannot_be_taken_by_another_token(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _real = server.echo_worker("local", 1).await;
    until_served(&server, "local", "sleep", true).await;
    let api = server.admin();
    let id = api.submit(&sleep_document("1500ms")).await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;

    let hostile_token = server.worker_token(server_tenant(), true).await;
    let (status, answer) = Api::new(&server.url, &hostile_token)
        .post("/worker/register", hostile_registration("local"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "worker_name_taken", "{answer}");

    let done = api.finished(&id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let outcomes: Vec<&str> = done["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|attempt| attempt["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["succeeded"], "{done:#}");
}

/// Observation 2: a worker started with a plugin of its own declaring
/// `echo` received echo tasks and answered them with its own output.
async fn a_workers_own_plugin_never_serves_an_installed_type(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _hijacker = server
        .worker(
            "hijacker",
            &[("hijack", components::guests::HIJACK_ECHO)],
            HostCapabilities::none(),
            4,
        )
        .await;
    let _real = server.echo_worker("real", 1).await;
    until_served(&server, "real", "echo", true).await;
    let view = until_served(&server, "hijacker", "echo", false).await;
    let refused = view["served"]["refused"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let echo = refused
        .iter()
        .find(|refusal| refusal["taskType"] == "echo" && refusal["plugin"]["name"] == "hijack")
        .unwrap_or_else(|| panic!("hijack's echo is refused, with why: {view:#}"));
    assert!(
        echo["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("belongs to the installed plugin \"echo\"")),
        "{echo:#}"
    );

    let api = server.admin();
    let (_, installed) = api.get("/plugins/echo").await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(api.echo(&format!("genuine {n}")).await);
    }
    for (n, id) in ids.iter().enumerate() {
        let task = api.finished(id, LONG).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert_eq!(
            task["result"]["output"]["message"],
            format!("genuine {n}"),
            "{task:#}"
        );
        assert_eq!(worker_names(&task), ["real"]);
        // The attempt and the result name the installed plugin.
        assert_eq!(
            task["attempts"][0]["plugin"]["digest"], installed["digest"],
            "{task:#}"
        );
        assert_eq!(task["result"]["plugin"]["digest"], installed["digest"]);
        assert!(task["result"]["plugin"].get("local").is_none(), "{task:#}");
    }
}

/// A worker's own plugin serves a type no installed plugin declares, marked
/// local in `worker inspect` and in the task's record; a server that forbids
/// local plugins routes it nothing.
async fn a_local_plugin_serves_only_types_nobody_installed_and_is_marked(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let own = server
        .worker(
            "own",
            &[("read-env", components::guests::READ_ENV)],
            HostCapabilities::none(),
            1,
        )
        .await;
    let view = until_served(&server, "own", "read-env", true).await;
    assert_eq!(
        view["served"]["types"]["read-env"]["local"], true,
        "{view:#}"
    );
    let api = server.admin();
    let id = api
        .submit("apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: read-env\n")
        .await;
    // It ran there, in the sandbox (which shows it no environment).
    let task = api.finished(&id, LONG).await;
    assert_eq!(task["state"], "failed", "{task:#}");
    assert!(
        task["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("no environment variables")),
        "{task:#}"
    );
    assert_eq!(worker_names(&task), ["own"]);
    assert_eq!(task["attempts"][0]["plugin"]["local"], true, "{task:#}");
    assert_eq!(
        task["attempts"][0]["plugin"]["name"], "read-env",
        "{task:#}"
    );
    drop(own);
    drop(server);

    let strict = TestServer::start(db, |config| config.local_plugins = false).await;
    let _own = strict
        .worker(
            "own",
            &[("read-env", components::guests::READ_ENV)],
            HostCapabilities::none(),
            1,
        )
        .await;
    let view = eventually("the worker registered", LONG, || async {
        let (status, view) = strict.admin().get("/workers/own").await;
        if status == StatusCode::OK {
            Ok(view)
        } else {
            Err(view.to_string())
        }
    })
    .await;
    // The worker may already serve the server's installed echo plugin (it
    // fetches it after registering); never its own.
    let types = view["served"]["types"].as_object().expect("served types");
    assert!(!types.contains_key("read-env"), "{view:#}");
    assert!(
        types.values().all(|served| served.get("local").is_none()),
        "{view:#}"
    );
    assert!(
        view["served"]["refused"][0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("--no-local-plugins")),
        "{view:#}"
    );
    let (status, answer) = strict
        .admin()
        .submit_raw(
            "",
            "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: read-env\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown_task_type", "{answer}");
}

/// Whether a tenant's tasks may run on shared workers is the tenant's rule,
/// and the claim keeps it.
async fn a_tenant_may_keep_its_tasks_off_shared_workers(db: Db) {
    let server = TestServer::start(db, |config| {
        config.tenants.tenants.insert(
            "private".into(),
            TenantPolicy {
                shared_workers: false,
                ..TenantPolicy::default()
            },
        );
    })
    .await;
    let _shared = server.echo_worker("shared-box", 2).await;
    until_served(&server, "shared-box", "echo", true).await;
    let private = server.user("private").await;
    let id = private.echo("private work").await;
    let waiting = private
        .until(&id, LONG, |task| {
            task["waiting"]["message"].as_str().is_some_and(|message| {
                message.contains("shared-box is a shared worker, and tenant private's tasks run only on its own workers")
            })
        })
        .await;
    assert_eq!(waiting["state"], "pending");
    let token = server.worker_token("private", false).await;
    let _own = echo_worker_with(&server, &token, "private-box").await;
    let done = private.finished(&id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(worker_names(&done), ["private-box"]);
}

/// Observation 4: twenty concurrent submits to a plugin whose `validate()`
/// loops made another tenant's plain echo submit wait 8.8 s: every tenant
/// shared one validation pool.
async fn a_looping_validate_does_not_stall_another_tenants_submit(db: Db) {
    // Each looping check runs to its 2 s deadline (its fuel would last
    // longer), two of a tenant's at a time.
    let server = TestServer::start(db, |config| {
        config.validation_timeout = Duration::from_secs(2);
        config.validation_fuel = u64::MAX / 2;
        config.validation_share = 2;
    })
    .await;
    server
        .install("slow-validate", components::guests::SLOW_VALIDATE)
        .await;
    let hostile = server.user("hostile").await;
    let looping: Vec<_> = (0..20)
        .map(|_| {
            let hostile = hostile.clone();
            tokio::spawn(async move {
                hostile
                    .submit_raw(
                        "",
                        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: slow-validate\n  input: loop\n",
                    )
                    .await
            })
        })
        .collect();
    // Let the looping checks take their places in the pool (16 instances,
    // which, shared by every tenant, twenty such checks would fill).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = server.user("other").await;
    let (status, answer) = other
        .submit_raw(
            "?dryRun=true",
            &flowmesh_tests::cluster::echo_document("hi"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let unfinished = looping
        .iter()
        .filter(|submit| !submit.is_finished())
        .count();
    assert!(
        unfinished >= 16,
        "the other tenant's submit was answered while the looping checks ran, not after most of them: {unfinished} of 20 still ran"
    );
    for submit in looping {
        let (status, answer) = submit.await.expect("the submit task");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("--validation-timeout") && !message.contains("raise spec.timeout"),
            "the message names the setting that governs validation: {message}"
        );
    }
}

/// Observation 5: a `validate()` that returns 120,000 problems turned a
/// 90-byte request into a 127 MB response.
async fn a_huge_error_list_is_capped(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    server
        .install("many-errors", components::guests::MANY_ERRORS)
        .await;
    let response = server
        .admin()
        .request(reqwest::Method::POST, "/tasks")
        .body("apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: many-errors\n")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bytes = response.bytes().await.expect("body");
    assert!(
        bytes.len() < 256 * 1024,
        "the answer is {} bytes",
        bytes.len()
    );
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    let details = answer["error"]["details"].as_array().expect("details");
    assert_eq!(
        details.len(),
        flowmesh_runtime::MAX_FIELD_ERRORS,
        "{}",
        details.len()
    );
    assert!(
        details
            .last()
            .and_then(|note| note["message"].as_str())
            .is_some_and(|note| note.contains("120000 in all")),
        "the last detail says the list was cut"
    );
}

/// Observation 3: a workflow stage whose `validate()` never returns (checked
/// at release) was put off and checked again forever, and slowed another
/// tenant's workflow from 19 ms to 40 s.
async fn a_stage_whose_check_never_returns_fails_after_bounded_tries(db: Db) {
    let server = TestServer::start(db, |config| {
        config.validation_timeout = Duration::from_secs(2);
    })
    .await;
    server
        .install("slow-validate", components::guests::SLOW_VALIDATE)
        .await;
    let _worker = server.echo_worker("w", 4).await;
    until_served(&server, "w", "echo", true).await;
    let hostile = server.user("hostile").await;
    let stuck = "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  stages:\n    - name: first\n      spec: {taskType: echo, message: loop}\n    - name: stuck\n      spec: {taskType: slow-validate, input: '${first.output.message}'}\n";
    let mut stuck_ids = Vec::new();
    for _ in 0..2 {
        let (status, submitted) = hostile.submit_raw("", stuck).await;
        assert_eq!(status, StatusCode::CREATED, "{submitted}");
        stuck_ids.push(submitted["id"].as_str().expect("id").to_string());
    }
    let other = server.user("other").await;
    let (status, submitted) = other
        .submit_raw(
            "",
            "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  defaults: {taskType: echo}\n  stages:\n    - name: a\n      spec: {message: one}\n    - name: b\n      spec: {message: '${a.output.message} two'}\n",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_string();
    let done = other.workflow_finished(&id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    for stuck in &stuck_ids {
        let workflow = hostile.workflow(stuck).await;
        assert_eq!(
            workflow["state"], "running",
            "the other tenant's workflow finished first: {workflow:#}"
        );
    }
    for stuck in &stuck_ids {
        let workflow = hostile.workflow_finished(stuck, LONG).await;
        assert_eq!(workflow["state"], "failed", "{workflow:#}");
        let stage = workflow["stages"]
            .as_array()
            .and_then(|stages| stages.iter().find(|stage| stage["name"] == "stuck"))
            .cloned()
            .expect("the stuck stage");
        assert_eq!(stage["state"], "failed", "{stage:#}");
        let message = stage["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("could not be checked (3 tries)")
                && (message.contains("validate() ran past its timeout")
                    || message.contains("used up its fuel")),
            "{message}"
        );
    }
}

/// Observation 6: a 4.5 MB registration with 20,000 task types was
/// accepted and made the unauthenticated `/metrics` 5 MB.
async fn worker_advertisements_are_bounded(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let worker = Api::new(&server.url, &server.worker_token);
    let types: Vec<String> = (0..20_000).map(|n| format!("type-{n:05}")).collect();
    let mut many = hostile_registration("greedy");
    many["capabilities"]["supportedTaskTypes"] = json!(types);
    let (status, answer) = worker.post("/worker/register", many).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["details"][0]["path"], "capabilities.supportedTaskTypes",
        "{answer}"
    );
    let padding = "x".repeat(4_500_000);
    let mut big = hostile_registration("greedy");
    big["labels"] = json!({"padding": padding});
    let (status, answer) = worker.post("/worker/register", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "body_too_large", "{answer}");
    let labels: serde_json::Map<String, Value> =
        (0..100).map(|n| (format!("l{n}"), json!("v"))).collect();
    let mut labelled = hostile_registration("labelled");
    labelled["labels"] = json!(labels);
    let (status, answer) = worker.post("/worker/register", labelled).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // Tasks held ahead are bounded by the slots: eight per slot.
    let ahead = |read_ahead: u32| {
        let mut registration = hostile_registration("hoarder");
        registration["slots"] = json!(2);
        registration["readAhead"] = json!(read_ahead);
        registration
    };
    let (status, answer) = worker.post("/worker/register", ahead(17)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["details"][0]["path"], "readAhead",
        "{answer}"
    );
    assert!(
        answer["error"]["details"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("16 for 2 slots")),
        "{answer}"
    );
    let (status, answer) = worker.post("/worker/register", ahead(16)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Slots are bounded too, so slots and tasks ahead never overflow a count.
    let mut huge = ahead(0);
    huge["slots"] = json!(u32::MAX);
    huge["readAhead"] = json!(u32::MAX);
    let (status, answer) = worker.post("/worker/register", huge).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"][0]["path"], "slots", "{answer}");
    let metrics = server.metrics().await;
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(!metrics.contains("type-00001"));
}

/// Observation 8: errors that were plain text (the 413 of the body limit),
/// duplicate JSON keys taken as their last value.
async fn errors_are_json_and_duplicate_keys_are_refused(db: Db) {
    let server = TestServer::start(db, |config| config.max_request_bytes = 1 << 20).await;
    let api = server.admin();
    let response = api
        .request(reqwest::Method::POST, "/tasks")
        .body(vec![b'#'; 2 << 20])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The body was not read to its end: the connection must not be reused
    // (the next request would find it closed).
    assert_eq!(
        response.headers().get(reqwest::header::CONNECTION),
        Some(&reqwest::header::HeaderValue::from_static("close"))
    );
    let answer: Value = response.json().await.expect("a JSON error body");
    assert_eq!(answer["error"]["code"], "body_too_large", "{answer}");
    assert!(
        answer["error"]["message"].as_str().is_some_and(
            |message| message.contains("1048576") && message.contains("--max-request-size")
        ),
        "{answer}"
    );

    let (status, answer) = api
        .submit_raw(
            "",
            r#"{"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "echo", "message": "one", "message": "two"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("spec.message is given more than once"),
        "{answer}"
    );
    let (status, answer) = api
        .post_raw(
            "/tokens",
            r#"{"tenant": "a", "role": "user", "role": "admin"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"][0]["path"], "role", "{answer}");

    let response = api
        .request(reqwest::Method::POST, "/plugins?bogus=1")
        .body(vec![0u8; 8])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.expect("a JSON error body");
    assert_eq!(answer["error"]["code"], "invalid_parameter", "{answer}");
}

/// Observation 8: a worker stopped with SIGTERM stayed "live" until its
/// registration expired.
async fn a_worker_that_stops_cleanly_is_gone_at_once(db: Db) {
    // Registrations live an hour here: only the deregistration ends this one.
    let server = TestServer::start(db, |config| {
        config.lease_ttl = Duration::from_secs(3600);
    })
    .await;
    let mut worker = server.echo_worker("leaving", 1).await;
    until_served(&server, "leaving", "sleep", true).await;
    let api = server.admin();
    let id = api.submit(&sleep_document("30s")).await;
    api.until(&id, LONG, |task| task["state"] == "running")
        .await;
    worker.shutdown().await;
    let (_, view) = api.get("/workers/leaving").await;
    assert_eq!(view["state"], "gone", "{view:#}");
    let task = api.task(&id).await;
    assert_eq!(task["state"], "pending", "handed back at once: {task:#}");
}

/// Observation 7: the SQLite database, which holds every tenant's specs,
/// outputs and logs, was created with mode 0644.
async fn the_database_and_data_dir_are_private() {
    // The server's files (database, tokens, data dir) and a worker's (compiled
    // plugins, task scratch space) hold tenant data: owner-only.
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    server.admin().echo("written").await;
    let dir = server.db.dir.path();
    for file in [
        "flowmesh.db",
        "flowmesh.db-wal",
        "admin.token",
        "worker.token",
    ] {
        let mode = std::fs::metadata(dir.join(file))
            .unwrap_or_else(|error| panic!("{file}: {error}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} has mode {:o}", mode & 0o777);
    }
    let nested = tempfile::tempdir().expect("dir");
    let data_dir = nested.path().join("fresh");
    let mut config = flowmesh_tests::cluster::fast_config(&data_dir);
    config.bind = "127.0.0.1:0".parse().expect("address");
    let fresh = flowmesh_server::Server::start(config)
        .await
        .expect("starts");
    let mode = std::fs::metadata(&data_dir)
        .expect("created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the data dir has mode {:o}", mode & 0o777);
    fresh.shutdown().await;

    // A worker's data dir: its compiled plugins and its tasks' scratch files.
    let worker_dir = nested.path().join("worker");
    let runtime = flowmesh_runtime::Runtime::new(
        flowmesh_tests::TestRuntime::config(&worker_dir),
        HostCapabilities::none(),
    )
    .expect("runtime starts");
    let mut dirs = vec![
        worker_dir.clone(),
        worker_dir.join("cache"),
        worker_dir.join("scratch"),
    ];
    for entry in std::fs::read_dir(worker_dir.join("scratch")).expect("scratch root") {
        dirs.push(entry.expect("entry").path());
    }
    assert_eq!(dirs.len(), 4, "the runtime's own scratch dir: {dirs:?}");
    for dir in dirs {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {:o}",
            dir.display(),
            mode & 0o777
        );
    }
    drop(runtime);
}

/// Observation 10: tokens could be neither revoked nor expired. Now a token
/// may be given a lifetime, and one revoked through one server is refused by
/// every server of the database once its cached lookup (at most a second
/// old) is gone.
async fn tokens_expire_and_revoked_ones_are_refused_on_every_server(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let admin = server.admin();
    let (second, _dir) = match db {
        // Two servers on one SQLite file is not a supported deployment.
        Db::Sqlite => (None, None),
        Db::Postgres => {
            let (second, dir) = server.another_server(|_| {}).await;
            (Some(second), Some(dir))
        }
    };
    let refused_everywhere = |token: String| {
        let urls: Vec<String> = std::iter::once(server.url.clone())
            .chain(second.as_ref().map(flowmesh_server::Server::url))
            .collect();
        async move {
            eventually("the token refused by every server", LONG, || {
                let token = token.clone();
                let urls = urls.clone();
                async move {
                    for url in &urls {
                        let (status, body) = Api::new(url, &token).get("/tasks").await;
                        if status != StatusCode::UNAUTHORIZED {
                            return Err(format!("{url}: {status} {body}"));
                        }
                    }
                    Ok(())
                }
            })
            .await
        }
    };

    let (status, created) = admin
        .post(
            "/tokens",
            json!({"tenant": "alpha", "role": "user", "name": "ci", "expires": "3s"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["expiresAt"].is_string(), "{created}");
    let short = created["token"].as_str().expect("secret").to_string();
    let (status, _) = Api::new(&server.url, &short).get("/tasks").await;
    assert_eq!(status, StatusCode::OK, "it works until it expires");
    refused_everywhere(short.clone()).await;

    let (_, created) = admin
        .post("/tokens", json!({"tenant": "alpha", "role": "user"}))
        .await;
    let secret = created["token"].as_str().expect("secret").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    for url in
        std::iter::once(server.url.clone()).chain(second.as_ref().map(flowmesh_server::Server::url))
    {
        let (status, _) = Api::new(&url, &secret).get("/tasks").await;
        assert_eq!(status, StatusCode::OK, "{url}: cached as live");
    }
    let (status, _) = admin.delete(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused_everywhere(secret.clone()).await;

    let (status, listed) = admin.get("/tokens").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let text = listed.to_string();
    assert!(
        !text.contains(&secret) && !text.contains(&short),
        "no secrets listed"
    );
    let revoked = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|token| token["id"] == id.as_str())
        .cloned()
        .expect("listed");
    assert!(revoked["revokedAt"].is_string(), "{revoked:#}");

    let (status, answer) = admin
        .post(
            "/tokens",
            json!({"tenant": "alpha", "role": "user", "expires": "soon"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"][0]["path"], "expires", "{answer}");

    // A token cannot revoke itself (so the only admin token stays, and a
    // client exploring the API cannot lock itself out).
    let bootstrap = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|token| token["role"] == "admin")
        .and_then(|token| token["id"].as_str())
        .expect("the bootstrap admin")
        .to_string();
    let (status, answer) = admin.delete(&format!("/tokens/{bootstrap}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "own_token");
    let (_, listed) = admin.get("/tokens").await;
    assert!(
        listed
            .as_array()
            .expect("a list")
            .iter()
            .any(|token| token["id"] == bootstrap.as_str() && token["revokedAt"].is_null()),
        "{listed:#}"
    );
    let (status, _) = admin.delete("/tokens/no-such-token").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Only admins see or revoke tokens.
    let user = server.user("alpha").await;
    let (status, _) = user.get("/tokens").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user.delete(&format!("/tokens/{bootstrap}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let worker = Api::new(&server.url, &server.worker_token);
    let (status, _) = worker.get("/tokens").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    if let Some(second) = second {
        second.shutdown().await;
    }
}

/// Observation 10: tokens travelled over plain HTTP. A server with
/// `--tls-self-signed` serves HTTPS with a certificate of its own CA; a
/// client and a worker that pin the CA use it, one that does not is refused.
async fn a_self_signed_server_is_trusted_only_with_its_ca() {
    let server = TestServer::start(Db::Sqlite, |config| {
        config.tls = flowmesh_server::Tls::SelfSigned;
    })
    .await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca = server.server.ca_cert().expect("a local CA").to_path_buf();
    assert!(ca.starts_with(server.db.dir.path()), "kept in the data dir");
    let pinned = flowmesh_tls::client_builder(Some(&ca))
        .expect("the CA reads")
        .build()
        .expect("client");
    let health = pinned
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("trusted");
    assert_eq!(health.status(), StatusCode::OK);
    let stranger = flowmesh_tls::client_builder(None)
        .expect("builder")
        .build()
        .expect("client");
    let refused = stranger
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect_err("an unknown CA is refused");
    let mut chain = refused.to_string();
    let mut source = std::error::Error::source(&refused);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("certificate"), "{chain}");
    let plain = reqwest::get(server.url.replace("https://", "http://"))
        .await
        .map(|response| response.status());
    assert!(
        !matches!(plain, Ok(StatusCode::OK)),
        "no plain HTTP beside TLS: {plain:?}"
    );

    // A worker that pins the CA runs a task submitted over HTTPS.
    let _worker = TestWorker::start(
        &server.url,
        &server.worker_token,
        "tls-worker",
        &[("echo", components::ECHO)],
        HostCapabilities::none(),
        1,
        |config| config.ca_cert = Some(ca.clone()),
    )
    .await;
    let api = server.admin();
    let id = api.echo("over tls").await;
    let done = api.finished(&id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
}

/// A server bound to an address other than loopback refuses to start
/// without TLS, unless told to serve plain HTTP anyway.
async fn a_public_address_without_tls_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = flowmesh_tests::cluster::fast_config(dir.path());
    config.bind = "0.0.0.0:0".parse().expect("address");
    let error = match flowmesh_server::Server::start(config.clone()).await {
        Ok(_) => panic!("a public address without TLS must be refused"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("refusing to serve plain HTTP") && error.contains("--insecure-http"),
        "{error}"
    );
    config.insecure_http = true;
    let server = flowmesh_server::Server::start(config)
        .await
        .expect("starts with --insecure-http");
    server.shutdown().await;
}

/// A per-token submit rate, counted in documents: past it, 429 with
/// `Retry-After`; another token is not held back.
async fn submits_past_a_tokens_rate_get_429_with_retry_after(db: Db) {
    let server = TestServer::start(db, |config| config.submit_rate = Some(5)).await;
    let flood = server.user("flood").await;
    let mut accepted = 0;
    let mut refused = None;
    for n in 0..20 {
        let response = flood
            .request(reqwest::Method::POST, "/tasks")
            .body(flowmesh_tests::cluster::echo_document(&format!("{n}")))
            .send()
            .await
            .expect("request");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::CREATED);
        accepted += 1;
    }
    let refused = refused.expect("the flood is held back");
    assert!(accepted >= 5, "the burst goes through: {accepted}");
    let retry: u64 = refused
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry >= 1);
    let answer: Value = refused.json().await.expect("JSON");
    assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("--submit-rate")),
        "{answer}"
    );
    let calm = server.user("calm").await;
    calm.echo("not held back").await;
}

/// A cap on the event streams one token holds open: past it, 429; a
/// stream that closes frees its place.
async fn a_tokens_open_event_streams_are_capped(db: Db) {
    let server = TestServer::start(db, |config| config.max_streams_per_token = 2).await;
    let watcher = server.user("watcher").await;
    // No worker serves sleep here: the task stays pending, its stream open.
    let id = watcher.submit(&sleep_document("1s")).await;
    let open = |api: Api| {
        let id = id.clone();
        async move {
            api.request(reqwest::Method::GET, &format!("/tasks/{id}/events"))
                .send()
                .await
                .expect("request")
        }
    };
    let first = open(watcher.clone()).await;
    let second = open(watcher.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open(watcher.clone()).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let answer: Value = third.json().await.expect("JSON");
    assert_eq!(answer["error"]["code"], "too_many_streams", "{answer}");
    let other = server.user("other").await;
    let (status, _) = other.get(&format!("/tasks/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the cap is per token, and tenants stay apart"
    );
    drop(first);
    eventually("a closed stream frees its place", LONG, || async {
        let response = open(watcher.clone()).await;
        if response.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(response.status().to_string())
        }
    })
    .await;
    drop(second);
}
