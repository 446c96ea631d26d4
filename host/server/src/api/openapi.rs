//! `GET /openapi.json`: the API's OpenAPI 3.1 description, generated from
//! the handlers and the wire types.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::query::{NoParams, Params};
use super::{fleet, ops, tasks, tokens, worker, workflows};

#[derive(OpenApi)]
#[openapi(
    info(title = "FlowMesh", description = "Tasks on a fleet of WebAssembly workers."),
    paths(
        tasks::submit, tasks::list, tasks::get, tasks::cancel, tasks::events,
        workflows::list, workflows::get, workflows::cancel, workflows::events,
        worker::register, worker::deregister, worker::heartbeat, worker::claim, worker::events,
        worker::complete,
        worker::plugin_component,
        fleet::list_workers, fleet::get_worker, fleet::install_plugin, fleet::list_plugins,
        fleet::get_plugin, fleet::remove_plugin, tokens::create, tokens::list, tokens::revoke,
        ops::healthz, ops::metrics,
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub(super) async fn serve(_: Params<NoParams>) -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
