//! `GET /openapi.json`: the API's OpenAPI 3.1 description, generated from
//! the handlers and the wire types, then completed into the server's
//! contract by [`super::openapi_contract`].

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
    components(schemas(flowmesh_types::api::SubmittedWorkflow)),
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

/// The OpenAPI document, as JSON.
pub fn document() -> serde_json::Value {
    let mut document =
        serde_json::to_value(ApiDoc::openapi()).expect("the generated document is JSON");
    super::openapi_contract::complete(&mut document);
    document
}

/// `GET /openapi.json`.
pub(super) async fn serve(_: Params<NoParams>) -> Json<serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(document).clone())
}
