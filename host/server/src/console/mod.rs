//! The web console: the cluster in a browser, served by the server itself.
//!
//! Pages are HTML rendered on the server ([maud]) from the same views the
//! REST API answers with, so a page and `GET /api/v1/...` never disagree. A
//! small embedded script ([`assets`]) keeps open pages live, one
//! `EventSource` per page: the task and workflow pages follow the same
//! event streams the API serves, the task list follows its tasks' states,
//! and the overview is re-rendered on the server when tasks change (at most
//! once a second) and every few seconds for heartbeats.
//!
//! | route | what |
//! |---|---|
//! | `GET /sign-in`, `POST /sign-in`, `POST /sign-out` | a token for a session cookie ([`session`]) |
//! | `GET /` | overview: queue depth, throughput, live workers, why tasks wait |
//! | `GET /tasks`, `GET /tasks/{id}`, `POST /tasks/{id}/cancel` | tasks of the viewer's tenant |
//! | `GET /workflows`, `GET /workflows/{id}`, `POST /workflows/{id}/cancel` | workflows, with the stage graph |
//! | `GET /workers`, `GET /plugins`, `GET /plugins/{name}`, `POST /plugins/{name}/remove` | the fleet; removal by admins |
//! | `GET /tokens` | tokens, without secrets (admins) |
//! | `GET /submit`, `POST /submit` | check (dry run) or submit a document |
//! | `GET /live/overview`, `GET /live/tasks`, `GET /tasks/{id}/events`, `GET /workflows/{id}/events` | the pages' live streams |
//!
//! A viewer sees what their token sees through the API: a user their own
//! tenant's tasks and workflows (another tenant's answers the same
//! not-found page as a missing one), admins also the tokens and the plugin
//! removal. Every page answers with `Server-Timing: app;dur=<ms>`, the
//! server's time on it.

mod assets;
mod fleet;
mod graph;
mod live;
mod overview;
mod page;
mod schema;
mod session;
mod sign_in;
mod submit;
mod tasks;
mod workflows;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

/// The console's routes, outside `/api`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::detail))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/events", get(live::task_events))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{id}", get(workflows::detail))
        .route("/workflows/{id}/cancel", post(workflows::cancel))
        .route("/workflows/{id}/events", get(live::workflow_events))
        .route("/workers", get(fleet::workers))
        .route("/plugins", get(fleet::plugins))
        .route("/plugins/{name}", get(fleet::plugin))
        .route("/plugins/{name}/remove", post(fleet::remove_plugin))
        .route("/tokens", get(fleet::tokens))
        .route("/submit", get(submit::form).post(submit::submit))
        .route("/live/overview", get(live::overview))
        .route("/live/tasks", get(live::task_states))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(server_timing))
}

/// The page a browser gets for a path nothing serves.
pub fn not_found() -> Response {
    page::Failure::new(
        axum::http::StatusCode::NOT_FOUND,
        "There is no such page. The console starts at /, the API at /api/v1.",
    )
    .into_response()
}

/// Adds `Server-Timing: app;dur=<ms>`, and headers every page carries: no
/// framing by other sites, no MIME sniffing, no referrer sent elsewhere.
async fn server_timing(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={millis:.2}")) {
        headers.insert("server-timing", value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    response
}
