//! The workflow list and a workflow's page: the stage graph, each stage's
//! resolved spec, output, error and waiting reason, live.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use flowmesh_types::api::WorkflowState;
use maud::html;
use serde::Deserialize;

use super::graph::{self, Node};
use super::page::{
    Failure, PageForm, PageResult, Section, csrf_field, json_block, maybe_time, page, state_badge,
    time, trusted,
};
use super::session::Viewer;
use super::tasks::CsrfForm;
use crate::api::workflows as api;
use crate::state::AppState;
use crate::store::{WorkflowFilter, rfc3339};

/// Rows per page of the workflow list.
const PAGE: u32 = 50;

/// The workflow list's filters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    before: Option<i64>,
}

/// `GET /workflows`.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let workflow_state = match query.state.as_str() {
        "" => None,
        name => Some(WorkflowState::parse(name).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("state {name:?} is not a workflow state; pick one from the list"),
            )
        })?),
    };
    let mut rows = state
        .store
        .list_workflows(
            &viewer.principal.tenant,
            &WorkflowFilter {
                state: workflow_state,
                before_seq: query.before,
                limit: PAGE + 1,
            },
        )
        .await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let next = more
        .then(|| rows.last().map(|(workflow, _)| workflow.seq))
        .flatten();
    let state_query = if query.state.is_empty() {
        String::new()
    } else {
        format!("state={}&", query.state)
    };
    let body = html! {
        h1 { "Workflows" }
        form.filters method="get" action="/workflows" role="search" {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for candidate in WorkflowState::ALL {
                        option value=(candidate.as_str()) selected[Some(candidate) == workflow_state] { (candidate.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p.muted { "No workflow matches." }
        } @else {
            table #workflow-list {
                thead { tr { th { "workflow" } th { "state" } th { "stages" } th { "submitted" } th { "finished" } } }
                tbody {
                    @for (workflow, counts) in &rows {
                        tr {
                            td { a href={ "/workflows/" (workflow.id) } { (workflow.name.as_deref().unwrap_or(&workflow.id)) } }
                            td { (state_badge(workflow.state.as_str())) }
                            td { @for (stage_state, n) in counts { (state_badge(stage_state)) " " (n) " " } }
                            td { (time(&rfc3339(workflow.created_at))) }
                            td { (maybe_time(workflow.finished_at.map(rfc3339).as_deref())) }
                        }
                    }
                }
            }
        }
        nav.paging aria-label="Pages" {
            @if query.before.is_some() { a href={ "/workflows?" (state_query) } { "« Newest" } }
            @if let Some(next) = next { a rel="next" href={ "/workflows?" (state_query) "before=" (next) } { "Older ›" } }
        }
    };
    Ok(page(Some(viewer.who()), Section::Workflows, "Workflows", body).into_response())
}

/// `GET /workflows/{id}`.
pub(super) async fn detail(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let workflow = api::load(&state, &viewer.principal.tenant, &id)
        .await
        .map_err(|failure| Failure::lookup(failure, "workflow", &id))?;
    let stages = state.store.workflow_stages(&workflow.id).await?;
    let plans: Vec<Vec<String>> = stages
        .iter()
        .map(|task| {
            task.plan
                .as_ref()
                .map(|plan| plan.depends_on.clone())
                .unwrap_or_default()
        })
        .collect();
    let names: Vec<String> = stages
        .iter()
        .map(|task| {
            task.workflow
                .as_ref()
                .map(|at| at.stage.clone())
                .unwrap_or_default()
        })
        .collect();
    let nodes: Vec<Node<'_>> = stages
        .iter()
        .zip(&plans)
        .zip(&names)
        .map(|((task, depends_on), name)| Node {
            name,
            task_id: &task.id,
            state: task.state.as_str(),
            depends_on,
        })
        .collect();
    let title = workflow.name.clone().unwrap_or_else(|| workflow.id.clone());
    let body = html! {
        article #workflow data-events={ "/workflows/" (workflow.id) "/events" } {
            header.title {
                h1 { (title) }
                span #workflow-state { (state_badge(workflow.state.as_str())) }
                @if !workflow.state.is_terminal() {
                    form #cancel method="post" action={ "/workflows/" (workflow.id) "/cancel" } {
                        (csrf_field(&viewer.csrf))
                        button.danger type="submit" { "Cancel workflow" }
                    }
                }
            }
            dl.facts {
                dt { "id" } dd { code { (workflow.id) } }
                dt { "submitted" } dd { (time(&rfc3339(workflow.created_at))) }
                dt { "finished" } dd #workflow-finished { (maybe_time(workflow.finished_at.map(rfc3339).as_deref())) }
            }
            section {
                h2 { "Stages" }
                div.graph-frame { (trusted(graph::draw(&nodes))) }
            }
            @for (task, name) in stages.iter().zip(&names) {
                section.stage data-task-id=(task.id) {
                    h3 { (name) " " span.stage-badge { (state_badge(task.state.as_str())) } }
                    dl.facts {
                        dt { "task" } dd { a href={ "/tasks/" (task.id) } { code { (task.id) } } }
                        dt { "task type" } dd { (task.task_type) }
                        dt { "attempt" } dd { (task.attempt) " of " (task.max_attempts) }
                        @if let Some(worker) = &task.worker_name { dt { "worker" } dd { (worker) } }
                    }
                    @if let Some(waiting) = task.waiting.as_ref().filter(|_| task.state == flowmesh_types::api::TaskState::Pending) {
                        p.waiting data-kind=(waiting.kind.as_str()) { (waiting.message) }
                    }
                    details {
                        summary { "Spec" @if task.blocked { " (placeholders resolved when released)" } }
                        (json_block(&task.spec))
                    }
                    div.stage-outcome {
                        @if let Some(result) = &task.result {
                            h4 { "Output" } (json_block(&result.output))
                        } @else if let Some(error) = task.error.as_ref().filter(|_| task.state.is_terminal()) {
                            h4 { "Error" } (json_block(&serde_json::to_value(error).unwrap_or_default()))
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(viewer.who()), Section::Workflows, &title, body).into_response())
}

/// `POST /workflows/{id}/cancel`.
pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> PageResult {
    viewer.check_form(&headers, &form.csrf)?;
    api::cancel_workflow(&state, &viewer.principal.tenant, &id)
        .await
        .map_err(|failure| Failure::lookup(failure, "workflow", &id))?;
    Ok(Redirect::to(&format!("/workflows/{id}")).into_response())
}
