//! The task list (filters, cursor paging, live states) and a task's page
//! (document, attempts, waiting reason, result, live progress and log).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use flowmesh_types::api::{TaskState, TaskView};
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{
    Failure, PageForm, PageResult, Section, csrf_field, json_block, maybe_time, page, state_badge,
    time,
};
use super::session::Viewer;
use crate::api::tasks as api;
use crate::state::AppState;
use crate::store::{BROWSE_WINDOW, TaskFilter};

/// Rows per page of the task list.
const PAGE: u32 = 50;

/// The task list's filters, as the form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default, rename = "type")]
    task_type: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    name: String,
    before: Option<i64>,
}

impl ListQuery {
    /// The query string of these filters, with `before` if given.
    fn href(&self, before: Option<i64>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("state", &self.state),
            ("type", &self.task_type),
            ("label", &self.label),
            ("name", &self.name),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        format!("/tasks?{}", query.finish())
    }
}

/// `GET /tasks`.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let bad = |message: String| Failure::new(axum::http::StatusCode::BAD_REQUEST, message);
    let task_state = match query.state.as_str() {
        "" => None,
        name => Some(TaskState::parse(name).ok_or_else(|| {
            bad(format!(
                "state {name:?} is not a task state; pick one from the list"
            ))
        })?),
    };
    let label = match query.label.trim() {
        "" => None,
        label => Some(
            label
                .split_once('=')
                .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| bad(format!("label {label:?} must be key=value, e.g. team=ml")))?,
        ),
    };
    let filter = TaskFilter {
        state: task_state,
        task_type: Some(query.task_type.trim().to_string()).filter(|value| !value.is_empty()),
        label,
        before_seq: query.before,
        limit: PAGE,
    };
    let name = Some(query.name.trim()).filter(|name| !name.is_empty());
    let found = state
        .store
        .browse_tasks(&viewer.principal.tenant, &filter, name)
        .await?;
    let ids: Vec<&str> = found.tasks.iter().map(|task| task.id.as_str()).collect();
    let live: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("ids", &ids.join(","))
        .finish();
    let body = html! {
        h1 { "Tasks" }
        form.filters method="get" action="/tasks" role="search" {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for candidate in TaskState::ALL {
                        option value=(candidate.as_str()) selected[Some(candidate) == task_state] { (candidate.as_str()) }
                    }
                }
            }
            label { "Type " input type="text" name="type" value=(query.task_type) placeholder="echo"; }
            label { "Label " input type="text" name="label" value=(query.label) placeholder="team=ml"; }
            label { "Name " input type="text" name="name" value=(query.name) placeholder="part of a name"; }
            button type="submit" { "Filter" }
        }
        @if found.tasks.is_empty() {
            p.muted #no-tasks { "No task matches." }
        } @else {
            table #task-list data-live-states={ "/live/tasks?" (live) } {
                thead { tr { th { "task" } th { "type" } th { "state" } th.num { "attempt" } th { "worker" } th { "submitted" } th { "finished" } } }
                tbody {
                    @for task in &found.tasks {
                        tr data-task-id=(task.id) {
                            td { a href={ "/tasks/" (task.id) } { (task.name.as_deref().unwrap_or(&task.id)) } }
                            td { (task.task_type) }
                            td { (state_badge(task.state.as_str())) }
                            td.num { (task.attempt) }
                            td { (task.worker_name.as_deref().unwrap_or("")) }
                            td { (time(&crate::store::rfc3339(task.created_at))) }
                            td { (maybe_time(task.finished_at.map(crate::store::rfc3339).as_deref())) }
                        }
                    }
                }
            }
        }
        nav.paging aria-label="Pages" {
            @if query.before.is_some() { a href=(query.href(None)) { "« Newest" } }
            @if let Some(next) = found.next_before {
                a #older rel="next" href=(query.href(Some(next))) { "Older ›" }
            }
            @if found.window_ended {
                span.muted { "This page searched " (BROWSE_WINDOW) " submissions back; older ones may match." }
            }
        }
    };
    Ok(page(Some(viewer.who()), Section::Tasks, "Tasks", body).into_response())
}

/// `GET /tasks/{id}`.
pub(super) async fn detail(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let record = api::load(&state, &viewer.principal.tenant, &id)
        .await
        .map_err(|failure| Failure::lookup(failure, "task", &id))?;
    let task = api::view(&state, record).await?;
    let title = task.name.clone().unwrap_or_else(|| task.id.clone());
    Ok(page(
        Some(viewer.who()),
        Section::Tasks,
        &title,
        task_page(&viewer, &task),
    )
    .into_response())
}

fn task_page(viewer: &Viewer, task: &TaskView) -> Markup {
    let finished = task.state.is_terminal();
    html! {
        article #task data-events={ "/tasks/" (task.id) "/events" } data-task-id=(task.id) {
            header.title {
                h1 { (task.name.as_deref().unwrap_or(&task.id)) }
                span #task-state { (state_badge(task.state.as_str())) }
                @if !finished && task.state != TaskState::Cancelling {
                    form #cancel method="post" action={ "/tasks/" (task.id) "/cancel" } {
                        (csrf_field(&viewer.csrf))
                        button.danger type="submit" { "Cancel task" }
                    }
                }
            }
            dl.facts {
                dt { "id" } dd { code { (task.id) } }
                dt { "task type" } dd { (task.task_type) }
                dt { "attempt" } dd #task-attempt { (task.attempt) " of " (task.max_attempts) }
                dt { "worker" } dd #task-worker { (task.worker.as_deref().unwrap_or("—")) }
                @if let Some(stage) = &task.workflow {
                    dt { "workflow" } dd { a href={ "/workflows/" (stage.workflow_id) } { (stage.workflow_id) } " · stage " (stage.stage) }
                }
                dt { "submitted" } dd { (time(&task.created_at)) }
                dt { "updated" } dd { (time(&task.updated_at)) }
                dt { "finished" } dd #task-finished { (maybe_time(task.finished_at.as_deref())) }
                @if !task.labels.is_empty() {
                    dt { "labels" } dd { @for (key, value) in &task.labels { code.label { (key) "=" (value) } " " } }
                }
            }
            section #waiting-reason hidden[task.waiting.is_none()] {
                h2 { "Why it waits" }
                @if let Some(waiting) = &task.waiting {
                    p.waiting data-kind=(waiting.kind.as_str()) { (waiting.message) }
                    p.muted {
                        (waiting.counts.live_workers) " live workers, " (waiting.counts.advertising_type) " serving the type, "
                        (waiting.counts.fitting_hardware) " with the hardware, " (waiting.counts.with_free_capacity) " with a free slot."
                    }
                }
            }
            section {
                h2 { "Progress" }
                progress #task-progress max="100" value=[finished.then_some(100)] {}
                span #task-progress-text.muted { @if finished { "done" } @else { "no progress reported yet" } }
                h2 { "Log" }
                pre #task-log.log aria-live="polite" {}
            }
            section #task-outcome {
                h2 { "Result" }
                div #task-result {
                    @if let Some(result) = &task.result {
                        (json_block(&serde_json::to_value(result).unwrap_or_default()))
                    } @else if let Some(error) = &task.error {
                        (json_block(&serde_json::to_value(error).unwrap_or_default()))
                    } @else {
                        p.muted { "Not finished yet." }
                    }
                }
            }
            @if !task.attempts.is_empty() {
                section {
                    h2 { "Attempts" }
                    table #attempts {
                        thead { tr { th.num { "#" } th { "worker" } th { "started" } th { "ended" } th { "outcome" } th { "error" } } }
                        tbody {
                            @for attempt in &task.attempts {
                                tr {
                                    td.num { (attempt.attempt) }
                                    td { (attempt.worker) }
                                    td { (time(&attempt.started_at)) }
                                    td { (time(&attempt.finished_at)) }
                                    td { (state_badge(&attempt.outcome)) }
                                    td { (attempt.error.as_ref().map(|error| error.message.clone()).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Document" }
                (json_block(&serde_json::json!({
                    "apiVersion": "flowmesh/v1",
                    "kind": "Task",
                    "metadata": { "name": task.name, "labels": task.labels },
                    "spec": spec_of(task),
                })))
            }
        }
    }
}

/// The task's spec as submitted: the plugin's fields and the envelope's.
fn spec_of(task: &TaskView) -> serde_json::Value {
    let mut spec = serde_json::json!({ "taskType": task.task_type });
    if let (Some(spec), serde_json::Value::Object(fields)) = (spec.as_object_mut(), &task.spec) {
        spec.extend(fields.clone());
        spec.insert(
            "resources".into(),
            serde_json::json!({ "hardware": task.hardware }),
        );
        if let Some(timeout) = task.timeout_ms {
            spec.insert("timeout".into(), format!("{timeout}ms").into());
        }
        spec.insert("maxAttempts".into(), task.max_attempts.into());
    }
    spec
}

/// The cancel form's field.
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}

/// `POST /tasks/{id}/cancel`: cancels, then shows the task.
pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> PageResult {
    viewer.check_form(&headers, &form.csrf)?;
    api::cancel_task(&state, &viewer.principal.tenant, &id)
        .await
        .map_err(|failure| Failure::lookup(failure, "task", &id))?;
    Ok(Redirect::to(&format!("/tasks/{id}")).into_response())
}
