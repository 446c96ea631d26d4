//! The server's whole HTTP surface on one router: the REST API
//! ([`crate::api`]) and the web console ([`crate::console`]), with one
//! request body limit and one answer for a path nothing serves.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Every route the server answers.
pub fn router(state: Arc<AppState>) -> Router {
    crate::api::router()
        .merge(crate::console::router())
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(state.config.max_request_bytes))
        .with_state(state)
}

/// A path nothing serves: the console's not-found page for a browser
/// outside `/api`, the API's JSON error otherwise.
async fn fallback(request: Request) -> Response {
    let browser = request
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser && !request.uri().path().starts_with("/api/") {
        crate::console::not_found()
    } else {
        crate::api::not_found().await.into_response()
    }
}
