//! The task routes: submit, read, list, cancel, and the event stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_types::api::{
    ApiError, BatchItem, BatchSubmitted, ErrorBody, EventRecord, Submitted, SubmittedWorkflow,
    TaskPage, TaskState, TaskView,
};
use flowmesh_types::document::batch::{Format, Split, split};
use futures::Stream;
use serde::Deserialize;

use super::event_cursor::EventCursor;
use super::query::{self, Follow, NoParams, Params};
use super::sse::{last_event_id, server_sent};
use super::{ApiFailure, Auth, Body};
use crate::admission::{self, Admitted, Checked, DocumentOutcome, StoredId};
use crate::state::{AppState, now_ms};
use crate::store::{CancelOutcome, TaskFilter, TaskRecord, rfc3339};

/// `POST /tasks` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SubmitParams {
    #[serde(default, deserialize_with = "query::wait")]
    wait: Option<Duration>,
    #[serde(default, deserialize_with = "query::flag")]
    fail_fast: Option<bool>,
    #[serde(default, deserialize_with = "query::flag")]
    dry_run: Option<bool>,
    #[serde(default, deserialize_with = "query::flag")]
    partial: Option<bool>,
}

/// `POST /tasks`: checks and stores a task or workflow document, or a batch
/// of them, through [`admission`](crate::admission).
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks",
    request_body(description = "A Task or Workflow document (YAML or JSON), or a batch: several YAML documents separated by `---` lines, a JSON array of documents, or NDJSON (one JSON document per line, Content-Type application/x-ndjson)",
        content((String = "application/yaml"), (String = "application/json"), (String = "application/x-ndjson"))),
    params(("wait" = Option<String>, Query, description = "One document: wait up to this long (30s) for a terminal state"),
           ("failFast" = Option<bool>, Query, description = "Refuse (422) a document whose task type no live worker serves"),
           ("dryRun" = Option<bool>, Query, description = "Check everything, store nothing: 200 {valid, taskType}, or a batch's per-document results"),
           ("partial" = Option<bool>, Query, description = "A batch: store the valid documents and answer 207 with each refused one's errors, rather than refusing the whole batch")),
    responses((status = 201, body = Submitted, description = "A task: {id, task}; a workflow: SubmittedWorkflow {id, workflow}; a batch: BatchSubmitted"),
              (status = 207, body = BatchSubmitted, description = "A batch with ?partial=true of which some documents were refused: the others were stored"),
              (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody, description = "The request is over --max-request-size, or the batch over --max-batch documents"),
              (status = 422, body = ErrorBody, description = "Refused; for a batch (invalid_batch), every problem at its document's index: [3].spec.message"),
              (status = 429, body = ErrorBody, description = "The tenant's pending limit or the token's submit rate")),
    security(("bearer" = [])))]
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    headers: HeaderMap,
    Params(params): Params<SubmitParams>,
    Body(body): Body,
) -> Result<Response, ApiFailure> {
    let principal = auth.client("submitting tasks")?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            "the body is not UTF-8 text; send YAML or JSON",
        )
    })?;
    let ndjson = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.split(';').next().unwrap_or_default().trim();
            value.eq_ignore_ascii_case("application/x-ndjson")
                || value.eq_ignore_ascii_case("application/jsonl")
        });
    let format = if ndjson { Format::Ndjson } else { Format::Any };
    let split = split(text, format).map_err(|error| {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            error.message.clone(),
        )
        .with_details(vec![error])
    })?;
    let documents = match split {
        Split::One(_) => return submit_one(&state, principal, params, &body).await,
        Split::Many(documents) => documents,
    };
    if params.wait.is_some() {
        return Err(ApiFailure::bad_param(
            "wait",
            "wait applies to one document; a batch is answered once stored (watch each id)",
        ));
    }
    let limit = state.config.max_batch_documents;
    if documents.len() > limit {
        return Err(ApiFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "the batch holds {} documents, over the limit of {limit} per request (`flowmesh server --max-batch`); send it in several requests",
                documents.len()
            ),
        ));
    }
    if documents.is_empty() {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            "the batch holds no documents",
        ));
    }
    state
        .limits
        .submit(&principal.token_id, documents.len() as u32)?;
    let options = admission::BatchOptions {
        fail_fast: params.fail_fast.unwrap_or(false),
        dry_run: params.dry_run.unwrap_or(false),
        partial: params.partial.unwrap_or(false),
    };
    let outcome = admission::admit_batch(&state, &principal.tenant, &documents, options).await?;
    let refused = outcome.refused();
    let items: Vec<BatchItem> = outcome
        .documents
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| batch_item(index, outcome))
        .collect();
    let status = if options.dry_run {
        StatusCode::OK
    } else if refused > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(BatchSubmitted {
            accepted: items.len() - refused,
            refused,
            items,
        }),
    )
        .into_response())
}

/// One document of a batch as its answer shows it.
fn batch_item(index: usize, outcome: DocumentOutcome) -> BatchItem {
    let item = |kind: Option<&str>| BatchItem {
        index,
        kind: kind.map(str::to_string),
        id: None,
        error: None,
    };
    match outcome {
        DocumentOutcome::Stored(StoredId::Task(id)) => BatchItem {
            id: Some(id),
            ..item(Some("Task"))
        },
        DocumentOutcome::Stored(StoredId::Workflow { id, .. }) => BatchItem {
            id: Some(id),
            ..item(Some("Workflow"))
        },
        DocumentOutcome::Valid(kind) => item(Some(kind)),
        DocumentOutcome::Refused(kind, rejection) => BatchItem {
            error: Some(ApiError {
                code: rejection.kind.code().to_string(),
                message: rejection.message,
                details: rejection.details,
            }),
            ..item(kind)
        },
    }
}

/// One document: stored, and answered with its task or workflow.
async fn submit_one(
    state: &Arc<AppState>,
    principal: &crate::store::Principal,
    params: SubmitParams,
    body: &[u8],
) -> Result<Response, ApiFailure> {
    state.limits.submit(&principal.token_id, 1)?;
    let options = admission::Options {
        fail_fast: params.fail_fast.unwrap_or(false),
        dry_run: params.dry_run.unwrap_or(false),
    };
    let admitted = admission::admit(state, &principal.tenant, body, options).await?;
    let wait = params.wait;
    Ok(match admitted {
        Admitted::DryRun(Checked::Task(document)) => dry_run(serde_json::json!({
            "valid": true,
            "taskType": document.spec.task_type,
            "message": "the document is valid; nothing was stored (dryRun)",
        })),
        Admitted::DryRun(Checked::Workflow(workflow)) => dry_run(serde_json::json!({
            "valid": true,
            "kind": "Workflow",
            "stages": workflow.stages.len(),
            "message": "the workflow is valid; nothing was stored (dryRun)",
        })),
        Admitted::Task { id, document, at } => {
            if let Some(wait) = wait {
                // The cursor reads the stored events and ends after the result.
                let mut cursor = EventCursor::new(state.clone(), id.clone(), 0, true);
                let _ =
                    tokio::time::timeout(wait, async { while cursor.next().await.is_some() {} })
                        .await;
            }
            let task = if wait.is_some() {
                view(state, load(state, &principal.tenant, &id).await?).await?
            } else {
                submitted_view(&id, document, at)
            };
            (StatusCode::CREATED, Json(Submitted { id, task })).into_response()
        }
        Admitted::Workflow { id, stage_ids } => {
            if let Some(wait) = wait {
                let stages = stage_ids.into_iter().collect();
                let mut cursor = EventCursor::workflow(state.clone(), id.clone(), stages, 0, true);
                let _ =
                    tokio::time::timeout(wait, async { while cursor.next().await.is_some() {} })
                        .await;
            }
            let workflow = super::workflows::load(state, &principal.tenant, &id).await?;
            let workflow = super::workflows::view(state, workflow, true).await?;
            (
                StatusCode::CREATED,
                Json(SubmittedWorkflow { id, workflow }),
            )
                .into_response()
        }
    })
}

/// A dry run's answer: `200` and what was checked.
fn dry_run(body: serde_json::Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

pub(crate) async fn load(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<TaskRecord, ApiFailure> {
    state
        .store
        .task(Some(tenant), id)
        .await?
        .ok_or_else(|| ApiFailure::not_found("task", id))
}

/// A stored task as the API shows it.
pub(crate) async fn view(state: &AppState, task: TaskRecord) -> Result<TaskView, ApiFailure> {
    let attempts = if task.attempt > 1 || task.state.is_terminal() {
        state.store.attempts(&task.id).await?
    } else {
        Vec::new()
    };
    Ok(view_with(task, attempts))
}

/// A task just stored, as the store holds it, without reading it back.
fn submitted_view(id: &str, document: flowmesh_types::TaskDocument, now: i64) -> TaskView {
    let spec = document.spec;
    TaskView {
        id: id.to_string(),
        name: document.metadata.name,
        labels: document.metadata.labels,
        task_type: spec.task_type,
        state: TaskState::Pending,
        attempt: 1,
        max_attempts: spec.max_attempts,
        spec: serde_json::Value::Object(spec.plugin_fields),
        hardware: spec.resources.hardware,
        timeout_ms: spec.timeout.map(|timeout| timeout.as_millis() as u64),
        workflow: None,
        waiting: None,
        worker: None,
        result: None,
        error: None,
        attempts: Vec::new(),
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
        finished_at: None,
    }
}

fn view_with(task: TaskRecord, attempts: Vec<flowmesh_types::api::AttemptRecord>) -> TaskView {
    TaskView {
        id: task.id,
        name: task.name,
        labels: task.labels,
        task_type: task.task_type,
        state: task.state,
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        spec: task.spec,
        hardware: task.hardware,
        timeout_ms: task.timeout_ms,
        workflow: task.workflow,
        waiting: task.waiting.filter(|_| task.state == TaskState::Pending),
        worker: task.worker_name,
        result: task.result,
        error: task
            .error
            .filter(|_| task.state.is_terminal() || task.state == TaskState::Pending),
        attempts,
        created_at: rfc3339(task.created_at),
        updated_at: rfc3339(task.updated_at),
        finished_at: task.finished_at.map(rfc3339),
    }
}

/// `GET /tasks/{id}`.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiFailure> {
    let principal = auth.client("reading tasks")?;
    let task = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, task).await?))
}

/// Cancels `tenant`'s task `id` (see `DELETE /tasks/{id}`): the task after.
pub(crate) async fn cancel_task(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<TaskView, ApiFailure> {
    let (outcome, events) = state
        .store
        .cancel_task(tenant, id, now_ms())
        .await?
        .ok_or_else(|| ApiFailure::not_found("task", id))?;
    if let CancelOutcome::Unchanged(current) = outcome {
        tracing::debug!(task = id, state = %current, "cancel of a task that cannot change: no-op");
    }
    // Read before the cancel is announced: the answer is the state the
    // cancel left (`cancelling` for a running task), not whatever a worker
    // woken by the announcement did next.
    let task = load(state, tenant, id).await;
    state.publish(events);
    view(state, task?).await
}

/// The event stream of `principal`'s task `id` (see `GET
/// /tasks/{id}/events`).
pub(crate) async fn event_stream(
    state: Arc<AppState>,
    principal: &crate::store::Principal,
    id: String,
    after: i64,
    follow: bool,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiFailure> {
    load(&state, &principal.tenant, &id).await?;
    let slot = state.limits.stream(&principal.token_id)?;
    Ok(server_sent(
        EventCursor::new(state, id, after, follow),
        slot,
    ))
}

/// `GET /tasks` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ListParams {
    #[serde(default, deserialize_with = "query::task_state")]
    state: Option<TaskState>,
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default, deserialize_with = "query::label")]
    label: Option<(String, String)>,
    #[serde(default, deserialize_with = "query::limit")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "query::cursor")]
    cursor: Option<i64>,
}

/// `GET /tasks?state=&taskType=&label=k=v&limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(("state" = Option<String>, Query), ("taskType" = Option<String>, Query),
           ("label" = Option<String>, Query, description = "key=value"), ("limit" = Option<u32>, Query),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = TaskPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Params(params): Params<ListParams>,
) -> Result<Json<TaskPage>, ApiFailure> {
    let principal = auth.client("listing tasks")?;
    let limit = query::page_limit(params.limit);
    let records = state
        .store
        .list_tasks(
            &principal.tenant,
            &TaskFilter {
                state: params.state,
                task_type: params.task_type,
                label: params.label,
                before_seq: params.cursor,
                limit: limit + 1,
            },
        )
        .await?;
    let more = records.len() > limit as usize;
    let records: Vec<TaskRecord> = records.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| records.last().map(|task| task.seq.to_string()))
        .flatten();
    let tasks = records
        .into_iter()
        .map(|task| view_with(task, Vec::new()))
        .collect();
    Ok(Json(TaskPage { tasks, next_cursor }))
}

/// `DELETE /tasks/{id}`: cancels in any state; a finished task is left as is.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn cancel(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiFailure> {
    let principal = auth.client("cancelling tasks")?;
    Ok(Json(cancel_task(&state, &principal.tenant, &id).await?))
}

/// `GET /tasks/{id}/events`: the task's stored events, then live ones, as
/// server-sent events; ends after the `result` event. `Last-Event-ID`
/// resumes after that event; `?follow=false` ends after the stored ones.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks", params(("id" = String, Path),
    ("follow" = Option<bool>, Query, description = "false: end after the stored events (default true)")),
    responses((status = 200, description = "Server-sent events: state, log, progress, result (data: EventRecord)", body = EventRecord, content_type = "text/event-stream"),
              (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    Params(params): Params<Follow>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiFailure> {
    let principal = auth.client("watching tasks")?;
    event_stream(
        state,
        principal,
        id,
        last_event_id(&headers),
        params.follow(),
    )
    .await
}
