//! Workflows end to end, on a real server and real workers over HTTP, on
//! SQLite and PostgreSQL: placeholders resolved from upstream outputs and
//! checked again before any worker sees the stage, cascade-fail, conditions
//! and skips, cancel, a server restart in the middle, and malformed
//! workflows refused with paths.

use std::time::Duration;

use flowmesh_tests::cluster::{Db, TestServer};
use flowmesh_tests::on_both_backends;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

on_both_backends!(
    a_stage_consumes_upstream_outputs_and_the_workflow_succeeds,
    a_placeholder_that_resolves_to_an_invalid_spec_fails_before_any_worker_sees_it,
    an_upstream_failure_fails_every_dependent_stage,
    a_condition_that_does_not_hold_skips_the_stage_and_its_dependents,
    cancelling_a_running_workflow_cancels_every_stage,
    a_workflow_completes_across_a_server_restart,
    malformed_workflows_are_refused_with_paths,
    many_workflows_submitted_at_once_all_finish,
);

/// Sixty-four three-stage workflows from eight clients at once, on a worker with
/// several slots: the releaser advances many workflows side by side, and
/// every one of them finishes (a releaser that waited on the store's writer
/// while holding it would stop them all).
async fn many_workflows_submitted_at_once_all_finish(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w", 8).await;
    let api = server.admin();
    let document = format!(
        "{HEAD}spec:\n  defaults: {{taskType: echo}}\n  stages:\n    - name: a\n      spec: {{message: one}}\n    - name: b\n      spec: {{message: '${{a.output.message}} two'}}\n    - name: c\n      spec: {{message: '${{b.output.message}} three'}}\n"
    );
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            let document = document.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..8 {
                    let (status, submitted) = api.submit_raw("", &document).await;
                    assert_eq!(status, StatusCode::CREATED, "{submitted}");
                    ids.push(submitted["id"].as_str().expect("id").to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await.expect("client"));
    }
    for id in &ids {
        let workflow = api.workflow_finished(id, LONG).await;
        assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
        assert_eq!(
            stage(&workflow, "c")["output"]["message"],
            "one two three",
            "{workflow:#}"
        );
    }
}

const HEAD: &str = "apiVersion: flowmesh/v1\nkind: Workflow\n";

/// The stage named `name` of a workflow view.
fn stage<'w>(workflow: &'w Value, name: &str) -> &'w Value {
    workflow["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|stage| stage["name"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {workflow:#}"))
}

async fn a_stage_consumes_upstream_outputs_and_the_workflow_succeeds(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let (status, submitted) = api
        .submit_raw(
            "",
            &format!(
            "{HEAD}metadata: {{name: relay, labels: {{team: docs}}}}\nspec:\n  defaults: {{taskType: echo, maxAttempts: 2}}\n  stages:\n    - name: first\n      spec: {{message: '42'}}\n    - name: second\n      spec: {{message: '${{first.output.message}} and more', repeat: 2}}\n    - name: third\n      spec:\n        message: '${{second.output.message}} | from ${{first.id}} on ${{first.worker}} in ${{workflow.name}}'\n    - name: literal\n      dependsOn: []\n      spec: {{message: 'costs $${{HOME}}'}}\n"
        ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_string();
    let third = stage(&submitted["workflow"], "third");
    assert_eq!(
        third["dependsOn"],
        json!(["second"]),
        "a stage without dependsOn follows the previous one"
    );
    assert_eq!(third["state"], "pending", "{third:#}");
    assert_eq!(third["waiting"]["kind"], "dependencies", "{third:#}");
    // The worker starts only now: the answer above is what a submit says,
    // with nothing run yet, however fast the stages could have gone.
    let _worker = server.echo_worker("w1", 2).await;

    let workflow = api.workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
    assert_eq!(workflow["stageStates"], json!({"succeeded": 4}));
    assert_eq!(
        stage(&workflow, "literal")["output"]["message"],
        "costs ${HOME}",
        "$${{ is a literal ${{, in a root stage too"
    );
    assert_eq!(
        stage(&workflow, "second")["output"]["message"],
        "42 and more 42 and more"
    );
    let first = stage(&workflow, "first");
    assert_eq!(
        stage(&workflow, "third")["output"]["message"],
        format!(
            "42 and more 42 and more | from {} on w1 in relay",
            first["taskId"].as_str().expect("task id")
        )
    );

    // The stage's task shows the resolved spec and where it belongs.
    let third = api
        .task(stage(&workflow, "third")["taskId"].as_str().expect("id"))
        .await;
    assert_eq!(third["workflow"]["workflowId"], id.as_str());
    assert_eq!(third["workflow"]["stage"], "third");
    assert_eq!(third["name"], "relay/third");
    assert_eq!(third["labels"]["team"], "docs");
    assert!(
        !third["spec"]["message"]
            .as_str()
            .expect("message")
            .contains("${"),
        "{third:#}"
    );

    // The workflow's stream: its own events and its stages', ending with it.
    let events = api
        .event_stream(&format!("/workflows/{id}/events"), LONG)
        .await;
    let (last, data) = events.last().expect("events");
    assert_eq!(last, "workflow");
    assert_eq!(data["data"]["state"], "succeeded");
    assert_eq!(
        events.iter().filter(|(kind, _)| kind == "result").count(),
        4,
        "{events:?}"
    );

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("flowmesh_workflows_finished_total{state=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowmesh_workflows_submitted_total 1"),
        "{metrics}"
    );

    // Listed with its counts; invisible to another tenant.
    let (_, page) = api.get("/workflows?state=succeeded").await;
    assert_eq!(page["workflows"][0]["id"], id.as_str());
    assert_eq!(page["workflows"][0]["stageStates"]["succeeded"], 4);
    let other = server.user("other").await;
    let (status, _) = other.get(&format!("/workflows/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = other.get("/workflows").await;
    assert_eq!(page["workflows"], json!([]));
    let (status, _) = other.delete(&format!("/workflows/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_placeholder_that_resolves_to_an_invalid_spec_fails_before_any_worker_sees_it(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 2).await;
    let api = server.admin();
    // `repeat` must be 1 to 1000; the sleep reports 1200 ms slept.
    let id = api
        .submit(&format!(
            "{HEAD}spec:\n  stages:\n    - name: nap\n      spec: {{taskType: sleep, duration: 1200ms}}\n    - name: shout\n      spec: {{taskType: echo, message: hi, repeat: '${{nap.output.sleptMs}}'}}\n"
        ))
        .await;
    let workflow = api.workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "failed", "{workflow:#}");
    assert_eq!(stage(&workflow, "nap")["state"], "succeeded");
    let shout = stage(&workflow, "shout");
    assert_eq!(shout["state"], "failed");
    assert_eq!(shout["error"]["code"], "invalid_input");
    let message = shout["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("spec.repeat")
            && message.contains("${nap.output.sleptMs} resolved to 1200"),
        "{message}"
    );

    let task = api.task(shout["taskId"].as_str().expect("id")).await;
    assert!(task["worker"].is_null(), "never claimed: {task:#}");
    assert!(task.get("attempts").is_none(), "no attempt: {task:#}");
    let events = api
        .events(shout["taskId"].as_str().expect("id"), LONG)
        .await;
    assert!(
        events
            .iter()
            .all(|(_, data)| data["data"]["state"] != "running"),
        "{events:?}"
    );
}

async fn an_upstream_failure_fails_every_dependent_stage(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 2).await;
    let api = server.admin();
    let id = api
        .submit(&format!(
            "{HEAD}spec:\n  graph:\n    nodes:\n      - {{name: slow, spec: {{taskType: sleep, duration: 20s, timeout: 300ms, maxAttempts: 1}}}}\n      - {{name: side, spec: {{taskType: echo, message: independent}}}}\n      - {{name: next, dependsOn: [slow, side], spec: {{taskType: echo, message: '${{slow.output.sleptMs}}'}}}}\n      - {{name: last, dependsOn: [next], spec: {{taskType: echo, message: done}}}}\n"
        ))
        .await;
    let workflow = api.workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "failed", "{workflow:#}");
    assert_eq!(stage(&workflow, "slow")["error"]["code"], "timeout");
    assert_eq!(stage(&workflow, "side")["state"], "succeeded");
    for (name, upstream) in [("next", "slow"), ("last", "next")] {
        let failed = stage(&workflow, name);
        assert_eq!(failed["state"], "failed", "{failed:#}");
        assert_eq!(failed["error"]["code"], "upstream_failed");
        assert!(
            failed["error"]["message"]
                .as_str()
                .expect("message")
                .contains(&format!("upstream stage \"{upstream}\" failed")),
            "{failed:#}"
        );
    }
}

async fn a_condition_that_does_not_hold_skips_the_stage_and_its_dependents(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 2).await;
    let api = server.admin();
    let id = api
        .submit(&format!(
            "{HEAD}spec:\n  defaults: {{taskType: echo}}\n  graph:\n    nodes:\n      - {{name: decide, spec: {{message: 'no'}}}}\n      - name: ship\n        dependsOn: [decide]\n        condition: {{stage: decide, field: message, equals: 'yes'}}\n        spec: {{message: shipping}}\n      - {{name: announce, dependsOn: [ship], spec: {{message: '${{ship.output.message}}'}}}}\n      - name: hold\n        dependsOn: [decide]\n        condition: {{stage: decide, field: message, equals: 'no'}}\n        spec: {{message: holding}}\n"
        ))
        .await;
    let workflow = api.workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
    let ship = stage(&workflow, "ship");
    assert_eq!(ship["state"], "skipped");
    assert_eq!(ship["error"]["code"], "skipped");
    assert_eq!(
        ship["error"]["message"],
        "condition not met: decide.output.message is \"no\", not \"yes\""
    );
    let announce = stage(&workflow, "announce");
    assert_eq!(announce["state"], "skipped", "the skip propagates");
    assert!(
        announce["error"]["message"]
            .as_str()
            .expect("message")
            .contains("\"ship\" was skipped")
    );
    assert_eq!(stage(&workflow, "hold")["output"]["message"], "holding");
    assert_eq!(
        workflow["stageStates"],
        json!({"skipped": 2, "succeeded": 2})
    );
}

async fn cancelling_a_running_workflow_cancels_every_stage(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 2).await;
    let api = server.admin();
    let id = api
        .submit(&format!(
            "{HEAD}spec:\n  stages:\n    - {{name: long, spec: {{taskType: sleep, duration: 60s}}}}\n    - {{name: after, spec: {{taskType: echo, message: never}}}}\n"
        ))
        .await;
    let long = stage(&api.workflow(&id).await, "long")["taskId"]
        .as_str()
        .expect("id")
        .to_string();
    api.until(&long, LONG, |task| task["state"] == "running")
        .await;
    let (status, cancelled) = api.delete(&format!("/workflows/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(stage(&cancelled, "after")["state"], "cancelled");
    let workflow = api.workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "cancelled", "{workflow:#}");
    assert_eq!(stage(&workflow, "long")["state"], "cancelled");
    assert_eq!(workflow["stageStates"], json!({"cancelled": 2}));
    // Cancelling again changes nothing.
    let (status, again) = api.delete(&format!("/workflows/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "cancelled");
}

async fn a_workflow_completes_across_a_server_restart(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("w1", 2).await;
    let id = server
        .admin()
        .submit(&format!(
            "{HEAD}spec:\n  stages:\n    - {{name: nap, spec: {{taskType: sleep, duration: 2s}}}}\n    - {{name: report, spec: {{taskType: echo, message: 'slept ${{nap.output.sleptMs}} ms'}}}}\n    - {{name: again, spec: {{taskType: echo, message: '${{report.output.message}}!'}}}}\n"
        ))
        .await;
    let nap = stage(&server.admin().workflow(&id).await, "nap")["taskId"]
        .as_str()
        .expect("id")
        .to_string();
    server
        .admin()
        .until(&nap, LONG, |task| task["state"] == "running")
        .await;
    let server = server.restart().await;
    let workflow = server.admin().workflow_finished(&id, LONG).await;
    assert_eq!(workflow["state"], "succeeded", "{workflow:#}");
    assert_eq!(
        stage(&workflow, "again")["output"]["message"],
        "slept 2000 ms!"
    );
}

async fn malformed_workflows_are_refused_with_paths(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let api = server.admin();
    let refused = |document: String| {
        let api = &api;
        async move {
            let (status, body) = api.submit_raw("", &document).await;
            assert!(status.is_client_error(), "{status}: {body}");
            let paths: Vec<String> = body["error"]["details"]
                .as_array()
                .expect("details")
                .iter()
                .map(|detail| detail["path"].as_str().expect("path").to_string())
                .collect();
            (status, paths, body)
        }
    };
    let stages = |body: &str| format!("{HEAD}spec:\n  defaults: {{taskType: echo}}\n{body}");

    let (status, paths, body) = refused(stages(
        "  graph:\n    nodes:\n      - {name: a, dependsOn: [b], spec: {message: x}}\n      - {name: b, dependsOn: [a], spec: {message: x}}\n",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(paths, ["spec.graph.nodes[0].dependsOn"]);
    assert!(body.to_string().contains("cycle"), "{body}");

    let (_, paths, _) = refused(stages(
        "  stages:\n    - {name: a, spec: {message: x}}\n    - {name: b, dependsOn: [ghost], spec: {message: x}}\n",
    ))
    .await;
    assert_eq!(paths, ["spec.stages[1].dependsOn[0]"]);

    let (_, paths, _) = refused(stages(
        "  stages:\n    - {name: a, spec: {message: x}}\n    - {name: a, spec: {message: y}}\n",
    ))
    .await;
    assert_eq!(paths, ["spec.stages[1].name"]);

    let (_, paths, _) = refused(stages(
        "  stages:\n    - {name: a, retries: 3, spec: {message: x}}\n",
    ))
    .await;
    assert_eq!(paths, ["spec.stages[0].retries"]);

    let (_, paths, _) = refused(stages(
        "  graph:\n    nodes:\n      - {name: a, spec: {message: x}}\n      - {name: b, spec: {message: '${a.output.message}'}}\n",
    ))
    .await;
    assert_eq!(paths, ["spec.graph.nodes[1].spec.message"]);

    let (_, paths, _) = refused(stages(
        "  stages:\n    - {name: a, spec: {message: 'in ${workflow.name}'}}\n",
    ))
    .await;
    assert_eq!(
        paths,
        ["spec.stages[0].spec.message"],
        "the workflow has no name"
    );

    // A plugin field unknown to the plugin's schema, and a bad value next to
    // a placeholder: the placeholder's own field waits, the rest is checked.
    let (status, paths, _) = refused(stages(
        "  stages:\n    - {name: a, spec: {message: x, colour: red}}\n    - {name: b, spec: {message: '${a.output.message}', repeat: 0}}\n",
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        paths,
        ["spec.stages[0].spec.colour", "spec.stages[1].spec.repeat"]
    );

    let (status, paths, body) = refused(stages(
        "  stages:\n    - {name: a, spec: {message: x}}\n    - {name: b, spec: {taskType: nonesuch}}\n",
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "unknown_task_type");
    assert_eq!(paths, ["spec.stages[1].spec.taskType"]);

    // Deferred checks pass at submit; nothing malformed was stored.
    let (status, body) = api
        .submit_raw(
            "?dryRun=true",
            &stages("  stages:\n    - {name: a, spec: {message: '7'}}\n    - {name: b, spec: {message: hi, repeat: '${a.output.message}'}}\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stages"], 2);
    let (_, page) = api.get("/workflows").await;
    assert_eq!(page["workflows"], json!([]));
    let (_, tasks) = api.get("/tasks").await;
    assert_eq!(tasks["tasks"], json!([]));
}
