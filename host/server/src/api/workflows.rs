//! The workflow routes: read, list, cancel, and the event stream of a
//! workflow and all its stages. A workflow is submitted through `POST
//! /tasks` and admitted by [`admission`](crate::admission), checked whole
//! before anything is stored.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use flowmesh_types::TaskError;
use flowmesh_types::api::{
    ErrorBody, StageView, TaskState, WorkflowPage, WorkflowState, WorkflowView,
};
use futures::Stream;
use serde::Deserialize;

use super::event_cursor::EventCursor;
use super::query::{self, Follow, NoParams, Params};
use super::sse::{last_event_id, server_sent};
use super::{ApiFailure, Auth};
use crate::state::{AppState, now_ms};
use crate::store::{TaskRecord, WorkflowFilter, WorkflowRecord, rfc3339};

pub(crate) async fn load(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<WorkflowRecord, ApiFailure> {
    state
        .store
        .workflow(Some(tenant), id)
        .await?
        .ok_or_else(|| ApiFailure::not_found("workflow", id))
}

/// A stored workflow as the API shows it, with its stages if `stages`.
pub(super) async fn view(
    state: &AppState,
    workflow: WorkflowRecord,
    stages: bool,
) -> Result<WorkflowView, ApiFailure> {
    let tasks = state.store.workflow_stages(&workflow.id).await?;
    let mut counts = BTreeMap::new();
    for task in &tasks {
        *counts.entry(task.state.as_str().to_string()).or_insert(0) += 1;
    }
    let stages = if stages {
        tasks.into_iter().map(stage_view).collect()
    } else {
        Vec::new()
    };
    Ok(view_with(workflow, counts, stages))
}

fn view_with(
    workflow: WorkflowRecord,
    stage_states: BTreeMap<String, u32>,
    stages: Vec<StageView>,
) -> WorkflowView {
    WorkflowView {
        id: workflow.id,
        name: workflow.name,
        labels: workflow.labels,
        state: workflow.state,
        stage_states,
        stages,
        created_at: rfc3339(workflow.created_at),
        updated_at: rfc3339(workflow.updated_at),
        finished_at: workflow.finished_at.map(rfc3339),
    }
}

fn stage_view(task: TaskRecord) -> StageView {
    let plan = task.plan.unwrap_or_default();
    let error: Option<TaskError> = task.error.filter(|_| task.state.is_terminal());
    StageView {
        name: task.workflow.map(|at| at.stage).unwrap_or_default(),
        task_id: task.id,
        task_type: task.task_type,
        state: task.state,
        depends_on: plan.depends_on,
        condition: plan.condition,
        attempt: task.attempt,
        worker: task.worker_name,
        waiting: task.waiting.filter(|_| task.state == TaskState::Pending),
        error,
        output: task.result.map(|result| result.output),
        finished_at: task.finished_at.map(rfc3339),
    }
}

/// `GET /workflows/{id}`: the workflow and each stage's state.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = WorkflowView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiFailure> {
    let principal = auth.client("reading workflows")?;
    let workflow = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, workflow, true).await?))
}

/// `GET /workflows` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default, deserialize_with = "query::workflow_state")]
    state: Option<WorkflowState>,
    #[serde(default, deserialize_with = "query::limit")]
    limit: Option<u32>,
    #[serde(default, deserialize_with = "query::cursor")]
    cursor: Option<i64>,
}

/// `GET /workflows?state=&limit=&cursor=`: newest first, with stage counts.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(("state" = Option<String>, Query), ("limit" = Option<u32>, Query),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = WorkflowPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Params(params): Params<ListParams>,
) -> Result<Json<WorkflowPage>, ApiFailure> {
    let principal = auth.client("listing workflows")?;
    let limit = query::page_limit(params.limit);
    let (state_filter, before_seq) = (params.state, params.cursor);
    let mut records = state
        .store
        .list_workflows(
            &principal.tenant,
            &WorkflowFilter {
                state: state_filter,
                before_seq,
                limit: limit + 1,
            },
        )
        .await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = more
        .then(|| records.last().map(|(workflow, _)| workflow.seq.to_string()))
        .flatten();
    let workflows = records
        .into_iter()
        .map(|(workflow, counts)| view_with(workflow, counts, Vec::new()))
        .collect();
    Ok(Json(WorkflowPage {
        workflows,
        next_cursor,
    }))
}

/// `DELETE /workflows/{id}`: cancels every stage that has not finished; a
/// finished workflow is left as is.
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = WorkflowView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn cancel(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiFailure> {
    let principal = auth.client("cancelling workflows")?;
    Ok(Json(cancel_workflow(&state, &principal.tenant, &id).await?))
}

/// Cancels `tenant`'s workflow `id` (see `DELETE /workflows/{id}`): the
/// workflow after.
pub(crate) async fn cancel_workflow(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<WorkflowView, ApiFailure> {
    let events = state
        .store
        .cancel_workflow(tenant, id, now_ms())
        .await?
        .ok_or_else(|| ApiFailure::not_found("workflow", id))?;
    state.publish(events);
    // Ends the workflow now if every stage has ended, so the answer says so.
    if let Err(error) = crate::releaser::advance(state, id).await {
        tracing::warn!(workflow = id, %error, "advancing a cancelled workflow failed");
    }
    state.releaser.notify_one();
    let workflow = load(state, tenant, id).await?;
    view(state, workflow, true).await
}

/// `GET /workflows/{id}/events`: the workflow's events and all its stages',
/// stored then live, as server-sent events; ends after the `workflow` event
/// that says it finished. `Last-Event-ID` resumes; `?follow=false` ends after
/// the stored ones.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/events", tag = "workflows", params(("id" = String, Path),
    ("follow" = Option<bool>, Query, description = "false: end after the stored events (default true)")),
    responses((status = 200, description = "Server-sent events: workflow, and each stage's state, log, progress, result (data: EventRecord)", body = flowmesh_types::api::EventRecord, content_type = "text/event-stream"),
              (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    Params(params): Params<Follow>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiFailure> {
    let principal = auth.client("watching workflows")?;
    event_stream(
        state,
        principal,
        id,
        last_event_id(&headers),
        params.follow(),
    )
    .await
}

/// The event stream of `principal`'s workflow `id` and its stages (see `GET
/// /workflows/{id}/events`).
pub(crate) async fn event_stream(
    state: Arc<AppState>,
    principal: &crate::store::Principal,
    id: String,
    after: i64,
    follow: bool,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiFailure> {
    let workflow = load(&state, &principal.tenant, &id).await?;
    let stages: HashSet<String> = state
        .store
        .workflow_stages(&workflow.id)
        .await?
        .into_iter()
        .map(|task| task.id)
        .collect();
    let slot = state.limits.stream(&principal.token_id)?;
    Ok(server_sent(
        EventCursor::workflow(state, id, stages, after, follow),
        slot,
    ))
}
