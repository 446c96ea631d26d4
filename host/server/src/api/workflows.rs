//! The workflow routes: submit (through `POST /tasks`), read, list, cancel,
//! and the event stream of a workflow and all its stages.
//!
//! A workflow is checked whole before anything is stored: the document
//! (graph, names, references, placeholders pointing upstream), then each
//! stage's spec against its plugin's schema and `validate()`, with the
//! fields that still hold placeholders left for the check at release time.
//! Then all its tasks are stored in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_types::api::{
    ErrorBody, StageView, SubmittedWorkflow, TaskState, WaitKind, Waiting, WorkflowPage,
    WorkflowState, WorkflowView,
};
use flowmesh_types::document::{Metadata, TaskDocument};
use flowmesh_types::workflow::{Stage, WorkflowDocument, relocate_errors};
use flowmesh_types::{FieldError, TaskError};
use futures::Stream;

use super::event_cursor::EventCursor;
use super::tasks::{known_params, last_event_id, page_params, parse_bool, server_sent};
use super::{ApiFailure, Auth};
use crate::state::{AppState, now_ms};
use crate::store::{
    NewStage, NewTask, NewWorkflow, Principal, StagePlan, TaskRecord, WorkflowFilter,
    WorkflowRecord, rfc3339,
};
use crate::validation::SpecRejection;

/// The query options of a submission.
pub(super) struct SubmitOptions {
    /// `?wait=`: how long to wait for the workflow to finish.
    pub wait: Option<Duration>,
    /// `?failFast=true`.
    pub fail_fast: bool,
    /// `?dryRun=true`.
    pub dry_run: bool,
}

/// Checks and stores a workflow document (`POST /tasks` with `kind:
/// Workflow`).
pub(super) async fn submit(
    state: Arc<AppState>,
    principal: &Principal,
    workflow: WorkflowDocument,
    options: SubmitOptions,
) -> Result<Response, ApiFailure> {
    check_stages(&state, &workflow).await?;
    if options.fail_fast {
        fail_fast(&state, &workflow).await?;
    }
    if options.dry_run {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({
                "valid": true,
                "kind": "Workflow",
                "stages": workflow.stages.len(),
                "message": "the workflow is valid; nothing was stored (dryRun)",
            })),
        )
            .into_response());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let documents: Vec<TaskDocument> = workflow
        .stages
        .iter()
        .map(|stage| TaskDocument {
            metadata: Metadata {
                name: Some(match &workflow.metadata.name {
                    Some(name) => format!("{name}/{}", stage.name),
                    None => stage.name.clone(),
                }),
                labels: workflow.metadata.labels.clone(),
            },
            spec: if stage.is_ready() {
                unescaped(stage)
            } else {
                // The releaser resolves it, escapes included.
                stage.spec.clone()
            },
        })
        .collect();
    let plans: Vec<StagePlan> = workflow
        .stages
        .iter()
        .map(|stage| StagePlan {
            depends_on: stage.depends_on.clone(),
            condition: stage.condition.clone(),
        })
        .collect();
    let task_ids: Vec<String> = workflow
        .stages
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let stages = workflow
        .stages
        .iter()
        .zip(&documents)
        .zip(&plans)
        .zip(&task_ids)
        .map(|(((stage, document), plan), task_id)| NewTask {
            id: task_id,
            tenant: &principal.tenant,
            document,
            now,
            stage: Some(NewStage {
                workflow_id: &id,
                name: &stage.name,
                plan,
                blocked: held_back(stage),
            }),
        })
        .collect();
    let events = state
        .store
        .insert_workflow(&NewWorkflow {
            id: &id,
            tenant: &principal.tenant,
            metadata: &workflow.metadata,
            stages,
            now,
        })
        .await?;
    let cursor = options.wait.map(|_| {
        EventCursor::workflow(
            state.clone(),
            id.clone(),
            task_ids.iter().cloned().collect(),
            0,
            true,
        )
    });
    state.publish(events);
    state.metrics.workflows_submitted.inc();
    for stage in &workflow.stages {
        state
            .metrics
            .submitted
            .get_or_create(&crate::metrics::TypeLabel {
                task_type: stage.spec.task_type.clone(),
            })
            .inc();
    }
    state.releaser.notify_one();
    state.work.notify();
    if let (Some(wait), Some(mut cursor)) = (options.wait, cursor) {
        let _ = tokio::time::timeout(wait, async { while cursor.next().await.is_some() {} }).await;
    }
    let workflow = view(&state, load(&state, &principal.tenant, &id).await?, true).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubmittedWorkflow { id, workflow }),
    )
        .into_response())
}

/// A ready stage's spec with `$${` written as the `${` it stands for (it has
/// no placeholder, so nothing else changes).
fn unescaped(stage: &Stage) -> flowmesh_types::TaskSpec {
    let mut spec = stage.spec.clone();
    let fields = serde_json::Value::Object(std::mem::take(&mut spec.plugin_fields));
    spec.plugin_fields =
        match flowmesh_types::placeholder::resolve(&fields, "spec", usize::MAX, &|_| {
            Err("a stage without upstream stages has nothing to resolve".to_string())
        }) {
            Ok((serde_json::Value::Object(resolved), _)) => resolved,
            // Unreachable for a stage without placeholders: keep it as written.
            _ => fields.as_object().cloned().unwrap_or_default(),
        };
    spec
}

/// Why a stage is held back when stored, or `None` if it can be queued at
/// once.
fn held_back(stage: &Stage) -> Option<Waiting> {
    if stage.is_ready() {
        return None;
    }
    let message = if stage.depends_on.is_empty() {
        "waits for its placeholders to be resolved".to_string()
    } else {
        format!(
            "waits for stage(s) {} to finish",
            stage.depends_on.join(", ")
        )
    };
    Some(Waiting {
        kind: WaitKind::Dependencies,
        message,
        counts: Default::default(),
    })
}

/// Each stage's spec against its plugin, placeholders deferred; all
/// problems of all stages at once.
async fn check_stages(state: &AppState, workflow: &WorkflowDocument) -> Result<(), ApiFailure> {
    let mut details = Vec::new();
    let mut unknown = Vec::new();
    for stage in &workflow.stages {
        let deferred: Vec<String> = stage
            .placeholders
            .iter()
            .map(|found| found.path.clone())
            .collect();
        let task_type = &stage.spec.task_type;
        match state
            .validator
            .check_deferring(task_type, &stage.spec.plugin_fields, &deferred)
            .await
        {
            Ok(()) => {}
            Err(SpecRejection::UnknownTaskType(task_type)) => {
                details.push(FieldError::new(
                    format!("{}.spec.taskType", stage.path),
                    format!("no installed plugin provides task type {task_type:?}"),
                ));
                unknown.push(task_type);
            }
            Err(SpecRejection::Invalid(errors)) => details.extend(relocate_errors(errors, stage)),
            Err(SpecRejection::CheckFailed(error)) => details.push(FieldError::new(
                format!("{}.spec", stage.path),
                format!("the plugin could not check the spec: {}", error.message),
            )),
        }
    }
    if details.is_empty() {
        return Ok(());
    }
    let (code, message) = if unknown.len() == details.len() {
        let known = state.validator.task_types();
        (
            "unknown_task_type",
            format!(
                "no installed plugin provides task type(s) {}; installed types: {}",
                unknown.join(", "),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
    } else {
        (
            "invalid_spec",
            format!(
                "the workflow's stages have {} problem(s); see details",
                details.len()
            ),
        )
    };
    Err(ApiFailure::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_details(details))
}

/// Refuses the workflow when some stage's type has no live worker.
async fn fail_fast(state: &AppState, workflow: &WorkflowDocument) -> Result<(), ApiFailure> {
    let workers = state.store.live_workers().await?;
    let mut details = Vec::new();
    let mut reasons = Vec::new();
    for stage in &workflow.stages {
        let task_type = &stage.spec.task_type;
        if workers
            .iter()
            .any(|worker| worker.capabilities.supports(task_type))
        {
            continue;
        }
        let provider = state.validator.provider(task_type);
        let reason = crate::placement::no_worker_for_type(task_type, provider.as_deref(), &workers);
        details.push(FieldError::new(
            format!("{}.spec.taskType", stage.path),
            "no live worker serves this type",
        ));
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if details.is_empty() {
        return Ok(());
    }
    Err(ApiFailure::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_eligible_worker",
        format!("{}; the workflow was not stored", reasons.join("; ")),
    )
    .with_details(details))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> Result<WorkflowRecord, ApiFailure> {
    state
        .store
        .workflow(Some(tenant), id)
        .await?
        .ok_or_else(|| ApiFailure::not_found("workflow", id))
}

/// A stored workflow as the API shows it, with its stages if `stages`.
async fn view(
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
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiFailure> {
    let principal = auth.client("reading workflows")?;
    let workflow = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, workflow, true).await?))
}

/// `GET /workflows?state=&limit=&cursor=`: newest first, with stage counts.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(("state" = Option<String>, Query), ("limit" = Option<u32>, Query),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = WorkflowPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<WorkflowPage>, ApiFailure> {
    let principal = auth.client("listing workflows")?;
    known_params(&params, &["state", "limit", "cursor"])?;
    let state_filter = params
        .get("state")
        .map(|name| {
            WorkflowState::parse(name).ok_or_else(|| {
                ApiFailure::bad_param(
                    "state",
                    format!(
                        "unknown state {name:?}; expected one of: {}",
                        WorkflowState::ALL.map(WorkflowState::as_str).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let (limit, before_seq) = page_params(&params)?;
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
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiFailure> {
    let principal = auth.client("cancelling workflows")?;
    let events = state
        .store
        .cancel_workflow(&principal.tenant, &id, now_ms())
        .await?
        .ok_or_else(|| ApiFailure::not_found("workflow", &id))?;
    state.publish(events);
    // Ends the workflow now if every stage has ended, so the answer says so.
    if let Err(error) = crate::workflows::advance(&state, &id).await {
        tracing::warn!(workflow = id, %error, "advancing a cancelled workflow failed");
    }
    state.releaser.notify_one();
    let workflow = load(&state, &principal.tenant, &id).await?;
    Ok(Json(view(&state, workflow, true).await?))
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
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiFailure> {
    let principal = auth.client("watching workflows")?;
    known_params(&params, &["follow"])?;
    let follow = !params.contains_key("follow") || parse_bool(&params, "follow")?;
    let workflow = load(&state, &principal.tenant, &id).await?;
    let stages: HashSet<String> = state
        .store
        .workflow_stages(&workflow.id)
        .await?
        .into_iter()
        .map(|task| task.id)
        .collect();
    let after = last_event_id(&headers);
    Ok(server_sent(EventCursor::workflow(
        state, id, stages, after, follow,
    )))
}
