//! Batch submission: many documents in one `POST /tasks`, as a JSON array,
//! NDJSON or multi-document YAML, each checked on its own with its problems
//! under its index; refused whole by default, stored in part on request;
//! within the batch limit, the request size, the tenant's pending limit and
//! the token's rate, counted in documents.

use std::time::Duration;

use flowmesh_server::config::TenantPolicy;
use flowmesh_tests::cluster::{Api, Db, TestServer, echo_document};
use reqwest::StatusCode;
use serde_json::{Value, json};

flowmesh_tests::on_both_backends!(
    a_json_array_ndjson_and_yaml_documents_are_batches,
    one_bad_document_refuses_the_batch_with_its_index,
    partial_stores_the_valid_documents_and_answers_207,
    a_dry_run_batch_stores_nothing,
    a_batch_over_the_limit_is_413_naming_the_setting,
    concurrent_submissions_never_pass_the_pending_limit_together,
    a_batch_counts_its_documents_against_the_submit_rate,
);

const LONG: Duration = Duration::from_secs(60);

/// `POST /tasks{query}` with `body` as `content_type`.
async fn post(api: &Api, query: &str, body: String, content_type: &str) -> (StatusCode, Value) {
    let response = api
        .request(reqwest::Method::POST, &format!("/tasks{query}"))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

fn echo_json(message: &str) -> Value {
    json!({"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "echo", "message": message}})
}

/// How many tasks `api`'s tenant has.
async fn task_count(api: &Api) -> usize {
    let (status, page) = api.get("/tasks?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["tasks"].as_array().map_or(0, Vec::len)
}

async fn a_json_array_ndjson_and_yaml_documents_are_batches(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w", 4).await;
    let api = server.admin();

    let array = json!([echo_json("a0"), echo_json("a1"), echo_json("a2")]).to_string();
    let (status, answer) = post(&api, "", array, "application/json").await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["refused"], 0, "{answer}");

    let ndjson = format!("{}\n\n{}\n", echo_json("n0"), echo_json("n1"));
    let (status, ndjson_answer) = post(&api, "", ndjson, "application/x-ndjson").await;
    assert_eq!(status, StatusCode::CREATED, "{ndjson_answer}");

    let yaml = format!(
        "{}---\n{}",
        echo_document("y0"),
        "apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  defaults: {taskType: echo}\n  stages:\n    - {name: one, spec: {message: w}}\n    - {name: two, spec: {message: '${one.output.message}!'}}\n"
    );
    let (status, yaml_answer) = post(&api, "", yaml, "application/yaml").await;
    assert_eq!(status, StatusCode::CREATED, "{yaml_answer}");
    assert_eq!(yaml_answer["items"][0]["kind"], "Task");
    assert_eq!(yaml_answer["items"][1]["kind"], "Workflow");

    for answer in [&answer, &ndjson_answer] {
        for item in answer["items"].as_array().expect("items") {
            let task = api
                .finished(item["id"].as_str().expect("an id"), LONG)
                .await;
            assert_eq!(task["state"], "succeeded", "{task:#}");
        }
    }
    let task = api
        .finished(yaml_answer["items"][0]["id"].as_str().expect("id"), LONG)
        .await;
    assert_eq!(task["result"]["output"]["message"], "y0");
    let workflow = api
        .workflow_finished(yaml_answer["items"][1]["id"].as_str().expect("id"), LONG)
        .await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
}

async fn one_bad_document_refuses_the_batch_with_its_index(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let body = format!(
        "{}\n{}\n{}\n",
        echo_json("fine"),
        r#"{"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "echo", "message": "one", "message": "two"}}"#,
        json!({"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "echo", "message": 7}}),
    );
    let (status, answer) = post(&api, "", body, "application/x-ndjson").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_batch", "{answer}");
    let paths: Vec<&str> = answer["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|detail| detail["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"[1].spec.message") && paths.contains(&"[2].spec.message"),
        "{answer}"
    );
    assert!(
        !paths.iter().any(|path| path.starts_with("[0]")),
        "{answer}"
    );
    assert_eq!(task_count(&api).await, 0, "nothing was stored");
}

async fn partial_stores_the_valid_documents_and_answers_207(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let body = json!([
        echo_json("kept"),
        {"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "no-such-type"}},
        {"apiVersion": "flowmesh/v1", "kind": "Tusk"},
        echo_json("kept too"),
    ])
    .to_string();
    let (status, answer) = post(&api, "?partial=true", body, "application/json").await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["refused"], 2, "{answer}");
    let items = answer["items"].as_array().expect("items");
    assert!(
        items[0]["id"].is_string() && items[3]["id"].is_string(),
        "{answer}"
    );
    assert_eq!(items[1]["error"]["code"], "unknown_task_type", "{answer}");
    assert_eq!(
        items[1]["error"]["details"][0]["path"], "[1].spec.taskType",
        "{answer}"
    );
    assert_eq!(items[2]["error"]["code"], "invalid_document", "{answer}");
    assert!(items[2].get("id").is_none(), "{answer}");
    assert_eq!(task_count(&api).await, 2);
}

async fn a_dry_run_batch_stores_nothing(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let body = json!([echo_json("a"), echo_json("b")]).to_string();
    let (status, answer) = post(&api, "?dryRun=true", body, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert!(answer["items"][0].get("id").is_none(), "{answer}");
    assert_eq!(task_count(&api).await, 0);
    let (status, answer) = post(
        &api,
        "?wait=5s",
        json!([echo_json("a"), echo_json("b")]).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"][0]["path"], "wait", "{answer}");
}

async fn a_batch_over_the_limit_is_413_naming_the_setting(db: Db) {
    let server = TestServer::start(db, |config| config.max_batch_documents = 5).await;
    let api = server.admin();
    let body: Vec<Value> = (0..6).map(|n| echo_json(&n.to_string())).collect();
    let (status, answer) = post(&api, "", json!(body).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "batch_too_large", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("--max-batch") && message.contains("of 5"),
        "{message}"
    );
    assert_eq!(task_count(&api).await, 0);
    // Clients size their batches by what the server says it takes.
    let health: Value = reqwest::get(format!("{}/healthz", server.url))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["limits"]["maxBatchDocuments"], 5, "{health}");
    assert!(
        health["limits"]["maxRequestBytes"].as_u64().is_some(),
        "{health}"
    );
}

/// Twenty submissions race a pending limit of 5: the limit is counted where
/// they are written, one after the other, so exactly five get in.
async fn concurrent_submissions_never_pass_the_pending_limit_together(db: Db) {
    let server = TestServer::start(db, |config| {
        config.tenants.tenants.insert(
            "small".into(),
            TenantPolicy {
                max_pending: Some(5),
                ..TenantPolicy::default()
            },
        );
    })
    .await;
    let small = server.user("small").await;
    let submits = (0..20).map(|n| {
        let small = small.clone();
        tokio::spawn(async move { small.submit_raw("", &echo_document(&n.to_string())).await })
    });
    let mut accepted = 0;
    for submit in submits {
        let (status, answer) = submit.await.expect("submit");
        match status {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer["error"]["code"], "quota_exceeded", "{answer}")
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(accepted, 5);
    assert_eq!(task_count(&small).await, 5);
    let body: Vec<Value> = (0..2).map(|n| echo_json(&n.to_string())).collect();
    let (status, answer) = post(
        &small,
        "?partial=true",
        json!(body).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a batch past the limit is refused whole, partial or not: {answer}"
    );
    assert_eq!(task_count(&small).await, 5);
}

async fn a_batch_counts_its_documents_against_the_submit_rate(db: Db) {
    let server = TestServer::start(db, |config| config.submit_rate = Some(10)).await;
    let api = server.admin();
    let eight: Vec<Value> = (0..8).map(|n| echo_json(&n.to_string())).collect();
    let (status, answer) = post(&api, "", json!(eight).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(&api, "", json!(eight).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
    let eleven: Vec<Value> = (0..11).map(|n| echo_json(&n.to_string())).collect();
    let (status, answer) = post(&api, "", json!(eleven).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("11 documents")),
        "{answer}"
    );
}
