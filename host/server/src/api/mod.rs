//! The REST API under `/api/v1`.
//!
//! | route | who |
//! |---|---|
//! | `POST /tasks`, `GET /tasks`, `GET /tasks/{id}`, `DELETE /tasks/{id}`, `GET /tasks/{id}/events` | users and admins, their own tenant's tasks |
//! | `GET /workflows`, `GET /workflows/{id}`, `DELETE /workflows/{id}`, `GET /workflows/{id}/events` | users and admins, their own tenant's workflows (submitted through `POST /tasks`) |
//! | `GET /workers`, `GET /workers/{id}` | users and admins |
//! | `GET /plugins`, `GET /plugins/{name}` | users and admins |
//! | `POST /plugins`, `DELETE /plugins/{name}`, `POST /tokens`, `GET /tokens`, `DELETE /tokens/{id}` | admins |
//! | `POST /worker/{register,deregister,heartbeat,claim,events,complete}`, `GET /worker/plugins/{digest}` | worker tokens, each only under the registrations it made |
//! | `GET /healthz`, `GET /metrics`, `GET /openapi.json` | anyone |
//!
//! Every error is `{"error": {"code", "message", "details": [{"path",
//! "message"}]}}` with a 4xx status for bad requests; a task of another
//! tenant answers 404, exactly as a missing one.

mod body;
mod error;
mod event_cursor;
pub(crate) mod fleet;
pub mod openapi;
mod openapi_contract;
mod ops;
mod query;
mod sse;
pub(crate) mod tasks;
mod tokens;
mod worker;
pub(crate) mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use body::Body;
pub use error::ApiFailure;
pub(crate) use error::not_found;
pub(crate) use error::{Auth, parse_json};
pub(crate) use sse::last_event_id;

use crate::state::AppState;

/// The API's routes: `/api/v1` (with its own JSON not-found answer),
/// health, metrics and the OpenAPI document.
pub fn router() -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/tasks", post(tasks::submit).get(tasks::list))
        .route("/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/tasks/{id}/events", get(tasks::events))
        .route("/workflows", get(workflows::list))
        .route(
            "/workflows/{id}",
            get(workflows::get).delete(workflows::cancel),
        )
        .route("/workflows/{id}/events", get(workflows::events))
        .route("/workers", get(fleet::list_workers))
        .route("/workers/{id}", get(fleet::get_worker))
        .route(
            "/plugins",
            post(fleet::install_plugin).get(fleet::list_plugins),
        )
        .route(
            "/plugins/{name}",
            get(fleet::get_plugin).delete(fleet::remove_plugin),
        )
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/worker/register", post(worker::register))
        .route("/worker/deregister", post(worker::deregister))
        .route("/worker/heartbeat", post(worker::heartbeat))
        .route("/worker/claim", post(worker::claim))
        .route("/worker/events", post(worker::events))
        .route("/worker/complete", post(worker::complete))
        .route("/worker/plugins/{digest}", get(worker::plugin_component))
        .fallback(not_found)
        .method_not_allowed_fallback(error::method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve))
}
