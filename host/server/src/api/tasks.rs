//! The task routes: submit, read, list, cancel, and the event stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use flowmesh_types::api::{Submitted, TaskPage, TaskState, TaskView};
use flowmesh_types::{Document, FieldError, parse};
use futures::Stream;

use super::event_cursor::EventCursor;
use super::{ApiFailure, Auth};
use crate::state::{AppState, now_ms};
use crate::store::{CancelOutcome, StoredEvent, TaskFilter, TaskRecord, rfc3339};
use crate::validation::SpecRejection;
use flowmesh_types::api::{ErrorBody, EventRecord};

/// The longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Tasks per page by default, and at most.
const PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// Rejects query parameters the route does not know, naming them.
pub(super) fn known_params(
    params: &HashMap<String, String>,
    known: &[&str],
) -> Result<(), ApiFailure> {
    match params.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(ApiFailure::bad_param(
            key,
            format!("unknown parameter; expected one of: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

pub(super) fn parse_wait(params: &HashMap<String, String>) -> Result<Option<Duration>, ApiFailure> {
    params
        .get("wait")
        .map(|text| {
            humantime::parse_duration(text)
                .map_err(|error| {
                    ApiFailure::bad_param("wait", format!("{error}; write a duration such as 30s"))
                })
                .map(|wait| wait.min(MAX_WAIT))
        })
        .transpose()
}

pub(super) fn parse_bool(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiFailure> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiFailure::bad_param(
            name,
            format!("{other:?} is not a boolean; write true or false"),
        )),
    }
}

/// `POST /tasks`: checks and stores a task document.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks",
    request_body(content = String, description = "A Task or Workflow document, YAML or JSON", content_type = "application/yaml"),
    params(("wait" = Option<String>, Query, description = "Wait up to this long (30s) for a terminal state"),
           ("failFast" = Option<bool>, Query, description = "Answer 422 when no live worker serves the type"),
           ("dryRun" = Option<bool>, Query, description = "Check everything, store nothing: 200 {valid, taskType}")),
    responses((status = 201, body = Submitted, description = "A task: {id, task}; a workflow: SubmittedWorkflow {id, workflow}"), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiFailure> {
    let principal = auth.client("submitting tasks")?;
    known_params(&params, &["wait", "failFast", "dryRun"])?;
    let wait = parse_wait(&params)?;
    let fail_fast = parse_bool(&params, "failFast")?;
    let dry_run = parse_bool(&params, "dryRun")?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            "the document is not UTF-8 text; send YAML or JSON",
        )
    })?;
    let document = match parse(text).map_err(|errors| {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            format!("the document has {} problem(s); see details", errors.len()),
        )
        .with_details(errors)
    })? {
        Document::Task(document) => document,
        Document::Workflow(workflow) => {
            let options = super::workflows::SubmitOptions {
                wait,
                fail_fast,
                dry_run,
            };
            return super::workflows::submit(state, principal, workflow, options).await;
        }
    };
    let task_type = &document.spec.task_type;
    state
        .validator
        .check(task_type, &document.spec.plugin_fields)
        .await
        .map_err(|rejection| match rejection {
            SpecRejection::UnknownTaskType(task_type) => {
                let known = state.validator.task_types();
                ApiFailure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_task_type",
                    format!(
                        "no installed plugin provides task type {task_type:?}; installed types: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
                .with_details(vec![FieldError::new(
                    "spec.taskType",
                    "no installed plugin provides this task type",
                )])
            }
            SpecRejection::Invalid(errors) => ApiFailure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_spec",
                format!("the spec does not satisfy task type {task_type:?}; see details"),
            )
            .with_details(errors),
            SpecRejection::CheckFailed(error) => ApiFailure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("the plugin could not check the spec: {}", error.message),
            ),
        })?;
    if fail_fast {
        let workers = state.store.live_workers().await?;
        if !workers
            .iter()
            .any(|worker| worker.capabilities.supports(task_type))
        {
            let provider = state.validator.provider(task_type);
            return Err(ApiFailure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_eligible_worker",
                format!(
                    "{}; the task was not stored",
                    crate::placement::no_worker_for_type(task_type, provider.as_deref(), &workers)
                ),
            )
            .with_details(vec![FieldError::new(
                "spec.taskType",
                "no live worker serves this type",
            )]));
        }
    }
    if dry_run {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({
                "valid": true,
                "taskType": task_type,
                "message": "the document is valid; nothing was stored (dryRun)",
            })),
        )
            .into_response());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let event = state
        .submissions
        .submit(id.clone(), principal.tenant.clone(), document.clone(), now)
        .await?;
    // Subscribed before the first event is published: nothing is missed.
    let cursor = wait.map(|_| EventCursor::new(state.clone(), id.clone(), 0, true));
    state.publish(vec![event]);
    state
        .metrics
        .submitted
        .get_or_create(&crate::metrics::TypeLabel {
            task_type: task_type.clone(),
        })
        .inc();
    state.work.notify();
    if let (Some(wait), Some(mut cursor)) = (wait, cursor) {
        // The cursor ends after the result event.
        let _ = tokio::time::timeout(wait, async { while cursor.next().await.is_some() {} }).await;
    }
    let task = if wait.is_some() {
        view(&state, load(&state, &principal.tenant, &id).await?).await?
    } else {
        submitted_view(&id, document, now)
    };
    Ok((StatusCode::CREATED, Json(Submitted { id, task })).into_response())
}

pub(super) async fn load(
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
async fn view(state: &AppState, task: TaskRecord) -> Result<TaskView, ApiFailure> {
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
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiFailure> {
    let principal = auth.client("reading tasks")?;
    let task = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, task).await?))
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
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<TaskPage>, ApiFailure> {
    let principal = auth.client("listing tasks")?;
    known_params(&params, &["state", "taskType", "label", "limit", "cursor"])?;
    let state_filter = params
        .get("state")
        .map(|name| {
            TaskState::parse(name).ok_or_else(|| {
                ApiFailure::bad_param(
                    "state",
                    format!(
                        "unknown state {name:?}; expected one of: {}",
                        TaskState::ALL.map(TaskState::as_str).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let label = params
        .get("label")
        .map(|label| {
            label
                .split_once('=')
                .filter(|(key, _)| flowmesh_types::document::is_label_key(key))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .ok_or_else(|| {
                    ApiFailure::bad_param(
                        "label",
                        "write the label filter as key=value; a key is letters, digits, '-', '_', '.' and '/'",
                    )
                })
        })
        .transpose()?;
    let (limit, before_seq) = page_params(&params)?;
    let records = state
        .store
        .list_tasks(
            &principal.tenant,
            &TaskFilter {
                state: state_filter,
                task_type: params.get("taskType").cloned(),
                label,
                before_seq,
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

/// `?limit=` (default [`PAGE`], at most [`MAX_PAGE`]) and `?cursor=` (the
/// sequence number to list before) of a list route.
pub(super) fn page_params(
    params: &HashMap<String, String>,
) -> Result<(u32, Option<i64>), ApiFailure> {
    let limit = params
        .get("limit")
        .map(|text| {
            text.parse::<u32>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE).contains(limit))
                .ok_or_else(|| {
                    ApiFailure::bad_param(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE}"),
                    )
                })
        })
        .transpose()?
        .unwrap_or(PAGE);
    let before_seq = params
        .get("cursor")
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| {
                ApiFailure::bad_param(
                    "cursor",
                    "not a cursor this server returned; pass nextCursor as is",
                )
            })
        })
        .transpose()?;
    Ok((limit, before_seq))
}

/// `DELETE /tasks/{id}`: cancels in any state; a finished task is left as is.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiFailure> {
    let principal = auth.client("cancelling tasks")?;
    let (outcome, events) = state
        .store
        .cancel_task(&principal.tenant, &id, now_ms())
        .await?
        .ok_or_else(|| ApiFailure::not_found("task", &id))?;
    if let CancelOutcome::Unchanged(current) = outcome {
        tracing::debug!(task = id, state = %current, "cancel of a task that cannot change: no-op");
    }
    state.publish(events);
    let task = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, task).await?))
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
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiFailure> {
    let principal = auth.client("watching tasks")?;
    known_params(&params, &["follow"])?;
    let follow = !params.contains_key("follow") || parse_bool(&params, "follow")?;
    load(&state, &principal.tenant, &id).await?;
    let after = last_event_id(&headers);
    Ok(server_sent(EventCursor::new(state, id, after, follow)))
}

/// The `Last-Event-ID` a reconnecting client sends; 0 for none.
pub(super) fn last_event_id(headers: &HeaderMap) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .unwrap_or(0)
}

/// A cursor's events as server-sent events: `id` the event's sequence
/// number, `event` its kind, `data` the [`EventRecord`].
pub(super) fn server_sent(
    cursor: EventCursor,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        let sse = Event::default()
            .id(event.seq.to_string())
            .event(event.body.name())
            .data(serde_json::to_string(&to_record(&event)).unwrap_or_default());
        Some((Ok(sse), cursor))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn to_record(event: &StoredEvent) -> EventRecord {
    EventRecord {
        seq: event.seq,
        task_id: event.task_id.clone(),
        at: rfc3339(event.at),
        body: event.body.clone(),
    }
}
