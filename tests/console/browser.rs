//! The web console in a real headless Chromium, driven over WebDriver,
//! against a real server and worker with the echo plugin built from source.
//! Each test is one thing an operator or tenant does in the browser; they
//! wait for outcomes on the page, never for a time. Screenshots of each
//! page go to `target/console-screenshots/`.

use std::time::Duration;

use flowmesh_tests::browser::Browser;
use flowmesh_tests::cluster::{Db, TestServer, TestWorker, sleep_document};
use serde_json::Value;

const WIDE: (u32, u32) = (1280, 1000);

/// A server with the echo plugin and one echo worker named `console-worker`.
async fn cluster() -> (TestServer, TestWorker) {
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    let worker = server.echo_worker("console-worker", 2).await;
    (server, worker)
}

async fn signed_in(server: &TestServer, token: &str) -> Browser {
    let browser = Browser::start(&server.url, WIDE.0, WIDE.1).await;
    browser.sign_in(token).await;
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_in_takes_a_token_and_signing_out_ends_the_session() {
    let (server, _worker) = cluster().await;
    let browser = Browser::start(&server.url, WIDE.0, WIDE.1).await;
    browser.open("/tasks").await;
    assert!(
        browser.path().await.starts_with("/sign-in"),
        "a page without a session asks to sign in"
    );
    browser.screenshot("sign-in").await;

    browser.fill("#token", "not-a-token").await;
    browser
        .click("form[action='/sign-in'] button[type=submit]")
        .await;
    let refusal = browser
        .text_eventually("#sign-in-error", |text| !text.is_empty())
        .await;
    assert!(refusal.contains("not valid"), "{refusal}");

    browser.fill("#token", &server.worker_token).await;
    browser
        .click("form[action='/sign-in'] button[type=submit]")
        .await;
    browser
        .text_eventually("#sign-in-error", |text| text.contains("worker token"))
        .await;

    browser.fill("#token", &server.admin).await;
    browser
        .click("form[action='/sign-in'] button[type=submit]")
        .await;
    browser.text_eventually("h1", |text| text == "Tasks").await;
    assert_eq!(
        browser.path().await,
        "/tasks",
        "back where the browser was going"
    );
    let source = browser.client.source().await.expect("the page");
    assert!(
        !source.contains(&server.admin),
        "the token never appears in a page"
    );

    browser.click("form.who button").await;
    browser
        .text_eventually("h1", |text| text == "Sign in")
        .await;
    browser.open("/").await;
    assert!(
        browser.path().await.starts_with("/sign-in"),
        "the session ended"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_overview_shows_the_local_worker_and_why_tasks_wait() {
    let (server, _worker) = cluster().await;
    let admin = server.admin();
    for n in 0..20 {
        let id = admin.echo(&format!("warm-up {n}")).await;
        admin.finished(&id, Duration::from_secs(30)).await;
    }
    // Four long sleeps on two slots: two run, two wait for a free slot. One
    // task asks for a GPU this machine lacks, one for a label no worker has.
    let mut sleeps = Vec::new();
    for _ in 0..4 {
        sleeps.push(admin.submit(&sleep_document("60s")).await);
    }
    let gpu = admin
        .submit(include_str!("../../examples/tasks/needs-gpu.json"))
        .await;
    let (status, body) = admin
        .submit_raw(
            "",
            "apiVersion: flowmesh/v1\nkind: Task\nmetadata: {name: unserved}\nspec:\n  taskType: sleep\n  duration: 1s\n  resources: {labels: {zone: mars}}\n",
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    admin
        .until(&gpu, Duration::from_secs(30), |task| {
            !task["waiting"].is_null()
        })
        .await;
    let busy = sleeps.last().expect("a sleep");
    admin
        .until(busy, Duration::from_secs(30), |task| {
            task["waiting"]["kind"] == "workers_busy"
        })
        .await;

    let browser = Browser::start(&server.url, 1280, 1500).await;
    browser.sign_in(&server.admin).await;
    browser
        .text_eventually("#live-worker-list", |text| text.contains("console-worker"))
        .await;
    browser
        .text_eventually("#waiting", |text| text.contains("needs-a-gpu"))
        .await;
    browser
        .text_eventually("table[data-group='busy']", |text| text.contains("sleep"))
        .await;
    browser
        .text_eventually("#running-count", |text| {
            text.parse::<u32>().is_ok_and(|running| running >= 2)
        })
        .await;
    let figure = browser
        .text_eventually("#live-workers", |text| text == "1")
        .await;
    assert_eq!(figure, "1");
    browser.screenshot("overview").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_submitted_from_the_submit_page_reaches_succeeded_without_a_reload() {
    let (server, _worker) = cluster().await;
    let browser = signed_in(&server, &server.admin).await;
    browser.open("/submit").await;
    browser
        .set_value(
            "#document",
            "apiVersion: flowmesh/v1\nkind: Task\nmetadata:\n  name: from-the-browser\nspec:\n  taskType: sleep\n  duration: 1500ms\n",
        )
        .await;
    browser.click("#check").await;
    browser
        .text_eventually("#valid-message", |text| text.contains("sleep"))
        .await;
    browser.click("#submit").await;
    browser
        .text_eventually("h1", |text| text == "from-the-browser")
        .await;
    assert!(browser.path().await.starts_with("/tasks/"));
    browser
        .eval("window.__sameDocument = true; return true;")
        .await;

    browser
        .state_eventually("#task-state .state", "succeeded")
        .await;
    let same_document = browser.eval("return window.__sameDocument === true;").await;
    assert_eq!(
        same_document,
        Value::Bool(true),
        "the page was not reloaded"
    );
    browser
        .text_eventually("#task-result", |text| text.contains("sleptMs"))
        .await;
    browser.screenshot("task").await;

    browser.open("/tasks").await;
    browser
        .text_eventually("#task-list", |text| text.contains("from-the-browser"))
        .await;
    browser.screenshot("tasks").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_stage_workflows_graph_ends_with_every_stage_succeeded() {
    let (server, _worker) = cluster().await;
    let admin = server.admin();
    let browser = Browser::start(&server.url, 1280, 720).await;
    browser.sign_in(&server.admin).await;
    let (status, body) = admin
        .submit_raw(
            "",
            include_str!("../../examples/workflows/hello-pipeline.yaml"),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("an id").to_string();
    browser.open(&format!("/workflows/{id}")).await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#stage-graph g.node').length;")
            .await,
        Value::from(3)
    );
    browser
        .eventually(
            "every stage's node",
            "Array.from(document.querySelectorAll('#stage-graph g.node')).map(n => n.dataset.state)",
            |states| {
                let states = states.as_array()?;
                (states.len() == 3 && states.iter().all(|state| state == "succeeded")).then_some(())
            },
        )
        .await;
    browser
        .state_eventually("#workflow-state .state", "succeeded")
        .await;
    browser
        .text_eventually("section.stage[data-task-id] .stage-outcome", |text| {
            text.contains("hello from FlowMesh")
        })
        .await;
    browser.screenshot("workflow").await;
    browser.open("/workflows").await;
    browser
        .text_eventually("#workflow-list", |text| text.contains("hello-pipeline"))
        .await;
    browser.screenshot("workflows").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_task_is_cancelled_from_its_page() {
    let (server, _worker) = cluster().await;
    let admin = server.admin();
    let id = admin
        .submit(include_str!("../../examples/tasks/needs-gpu.json"))
        .await;
    admin
        .until(&id, Duration::from_secs(30), |task| {
            !task["waiting"].is_null()
        })
        .await;
    let browser = signed_in(&server, &server.admin).await;
    browser.open(&format!("/tasks/{id}")).await;
    let reason = browser
        .text_eventually("#waiting-reason .waiting", |text| !text.is_empty())
        .await;
    assert!(reason.to_lowercase().contains("gpu"), "{reason}");
    browser.screenshot("waiting-task").await;
    browser.click("#cancel button").await;
    browser
        .state_eventually("#task-state .state", "cancelled")
        .await;
    assert_eq!(admin.task(&id).await["state"], "cancelled");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_document_shows_its_field_errors_beside_the_text() {
    let (server, _worker) = cluster().await;
    let browser = signed_in(&server, &server.admin).await;
    browser.open("/submit").await;
    browser
        .set_value(
            "#document",
            "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: echo\n  message: 42\n  timeout: soon\n  colour: blue\n",
        )
        .await;
    browser.click("#check").await;
    let errors = browser
        .text_eventually("#field-errors", |text| !text.is_empty())
        .await;
    assert!(errors.contains("spec.timeout"), "{errors}");
    assert!(
        browser
            .eval("return document.querySelector('#document').value;")
            .await
            .as_str()
            .is_some_and(|text| text.contains("colour: blue")),
        "the text stays for fixing"
    );
    browser.screenshot("submit-errors").await;
    let (_, tasks) = server.admin().get("/tasks").await;
    assert_eq!(
        tasks["tasks"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_tenants_task_shows_the_not_found_page() {
    let (server, _worker) = cluster().await;
    let tenant_a = server.user("tenant-a").await;
    let id = tenant_a.submit(&sleep_document("1ms")).await;
    let tenant_b = server.user("tenant-b").await;
    let browser = signed_in(&server, tenant_b.token()).await;
    browser.open(&format!("/tasks/{id}")).await;
    browser
        .text_eventually("h1", |text| text == "Not found")
        .await;
    let message = browser
        .text_eventually("#failure-message", |text| !text.is_empty())
        .await;
    assert!(message.contains(&id), "{message}");
    browser.open("/tasks").await;
    browser
        .text_eventually("#no-tasks", |text| text.contains("No task"))
        .await;
    browser.open("/tokens").await;
    browser
        .text_eventually("h1", |text| text == "Forbidden")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_pages_show_workers_plugins_and_schemas_at_phone_width() {
    let (server, _worker) = cluster().await;
    let browser = Browser::start(&server.url, 390, 844).await;
    browser.sign_in(&server.admin).await;
    browser.screenshot("overview-phone").await;
    browser.open("/workers").await;
    browser
        .text_eventually("section.worker[data-worker='console-worker']", |text| {
            text.contains("echo")
        })
        .await;
    browser.screenshot("workers-phone").await;
    browser.open("/plugins/echo").await;
    browser
        .text_eventually("#type-echo table.schema", |text| text.contains("message"))
        .await;
    browser
        .text_eventually("#plugin-workers", |text| text.contains("console-worker"))
        .await;
    let overflow = browser
        .eval("return document.documentElement.scrollWidth > window.innerWidth + 1;")
        .await;
    assert_eq!(
        overflow,
        Value::Bool(false),
        "nothing is wider than the phone"
    );
    browser.screenshot("plugin-phone").await;
    browser.open("/plugins").await;
    browser
        .text_eventually("#plugin-list", |text| text.contains("echo"))
        .await;
    browser.screenshot("plugins-phone").await;
    browser.open("/tokens").await;
    browser
        .text_eventually("#token-list", |text| text.contains("admin"))
        .await;
    browser.screenshot("tokens-phone").await;
    browser.close().await;
}
