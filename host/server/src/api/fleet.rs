//! Workers and plugins.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use flowmesh_runtime::ComponentDigest;
use flowmesh_types::api::{
    PluginView, Role, WorkerPlugin, WorkerPluginStatus, WorkerState, WorkerView,
};
use flowmesh_types::{FieldError, PluginReport};
use serde::Deserialize;

use super::query::{NoParams, Params};
use super::{ApiFailure, Auth, Body};
use crate::state::AppState;
use crate::store::{PluginRecord, Principal, WorkerRecord, rfc3339};
use flowmesh_types::api::ErrorBody;

fn worker_view(worker: WorkerRecord, running: u32) -> WorkerView {
    WorkerView {
        id: worker.id,
        name: worker.name,
        state: worker.state,
        capabilities: worker.capabilities,
        hardware: worker.hardware,
        labels: worker.labels,
        slots: worker.slots,
        read_ahead: worker.read_ahead,
        running,
        version: worker.version,
        registered_at: rfc3339(worker.registered_at),
        last_heartbeat_at: rfc3339(worker.heartbeat_at),
        tenant: worker.pool_tenant,
        served: worker.served,
    }
}

/// Whether `principal` may see `worker`: an admin sees every worker; a user
/// sees shared workers and its own tenant's, never another tenant's.
fn visible(principal: &Principal, worker: &WorkerRecord) -> bool {
    principal.role == Role::Admin
        || worker
            .pool_tenant
            .as_deref()
            .is_none_or(|tenant| tenant == principal.tenant)
}

/// `GET /workers`: live registrations first, then gone ones.
#[utoipa::path(get, path = "/api/v1/workers", tag = "fleet", responses((status = 200, body = Vec<WorkerView>)), security(("bearer" = [])))]
pub(super) async fn list_workers(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<Vec<WorkerView>>, ApiFailure> {
    let principal = auth.client("listing workers")?;
    Ok(Json(workers(&state, principal).await?))
}

/// The workers `principal` may see: live registrations first, then gone
/// ones.
pub(crate) async fn workers(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<WorkerView>, ApiFailure> {
    let usage = state.store.usage().await?;
    let mut workers: Vec<WorkerView> = state
        .store
        .workers()
        .await?
        .into_iter()
        .filter(|worker| visible(principal, worker))
        .map(|worker| {
            let running = usage.get(&worker.id).map_or(0, |usage| usage.tasks);
            worker_view(worker, running)
        })
        .collect();
    workers.sort_by_key(|worker| worker.state != WorkerState::Live);
    Ok(workers)
}

/// `GET /workers/{id}`: by registration id, or by name (its newest
/// registration).
#[utoipa::path(get, path = "/api/v1/workers/{id}", tag = "fleet", params(("id" = String, Path, description = "Registration id or name")),
    responses((status = 200, body = WorkerView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get_worker(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WorkerView>, ApiFailure> {
    let principal = auth.client("reading workers")?;
    let worker = match state.store.worker(&id).await? {
        Some(worker) => Some(worker),
        None => state.store.worker_named(&id).await?,
    }
    .filter(|worker| visible(principal, worker))
    .ok_or_else(|| ApiFailure::not_found("worker", &id))?;
    let running = state
        .store
        .usage()
        .await?
        .get(&worker.id)
        .map_or(0, |usage| usage.tasks);
    Ok(Json(worker_view(worker, running)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstallParams {
    name: Option<String>,
    /// The expected sha256 of the body, hex: the install is refused when
    /// the bytes differ.
    sha256: Option<String>,
}

fn plugin_view(report: PluginReport, record: Option<&PluginRecord>) -> PluginView {
    PluginView {
        report,
        installed_at: record.map(|record| rfc3339(record.installed_at)),
        workers: Vec::new(),
    }
}

/// `POST /plugins?name=`: installs a component (the body). Admin only.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "fleet", params(("name" = Option<String>, Query), ("sha256" = Option<String>, Query, description = "Expected sha256 of the body")),
    request_body(content = Vec<u8>, description = "The component's bytes", content_type = "application/wasm"),
    responses((status = 201, body = PluginView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn install_plugin(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Params(params): Params<InstallParams>,
    Body(body): Body,
) -> Result<(StatusCode, Json<PluginView>), ApiFailure> {
    auth.require(&[Role::Admin], "installing plugins")?;
    if body.is_empty() {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_plugin",
            "the body is empty; send the component's bytes",
        ));
    }
    if let Some(expected) = &params.sha256 {
        let expected = ComponentDigest::parse(expected).ok_or_else(|| {
            ApiFailure::bad_param(
                "sha256",
                "64 hexadecimal digits (optionally prefixed sha256:)",
            )
        })?;
        let actual = ComponentDigest::of(&body);
        if actual != expected {
            return Err(ApiFailure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "digest_mismatch",
                format!(
                    "the component's sha256 is {}, not the expected {}; nothing was installed",
                    actual.hex(),
                    expected.hex()
                ),
            )
            .with_details(vec![FieldError::new("sha256", "does not match the bytes")]));
        }
    }
    let (report, record) = state
        .install_plugin(params.name.as_deref(), body.to_vec())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(plugin_view(report, Some(&record))),
    ))
}

/// `GET /plugins`.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "fleet", responses((status = 200, body = Vec<PluginView>)), security(("bearer" = [])))]
pub(super) async fn list_plugins(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<Vec<PluginView>>, ApiFailure> {
    auth.client("listing plugins")?;
    Ok(Json(plugins(&state).await?))
}

/// The installed plugins.
pub(crate) async fn plugins(state: &AppState) -> Result<Vec<PluginView>, ApiFailure> {
    let records = state.store.plugins().await?;
    Ok(state
        .validator
        .reports()
        .into_iter()
        .map(|report| {
            let record = records.iter().find(|record| record.name == report.name);
            plugin_view(report, record)
        })
        .collect())
}

/// `GET /plugins/{name}`.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "fleet", params(("name" = String, Path)),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get_plugin(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiFailure> {
    let principal = auth.client("reading plugins")?;
    Ok(Json(plugin(&state, principal, &name).await?))
}

/// Installed plugin `name`, with how each live worker `principal` may see
/// stands with it.
pub(crate) async fn plugin(
    state: &AppState,
    principal: &Principal,
    name: &str,
) -> Result<PluginView, ApiFailure> {
    let report = state
        .validator
        .reports()
        .into_iter()
        .find(|report| report.name == name)
        .ok_or_else(|| ApiFailure::not_found("plugin", name))?;
    let record = state
        .store
        .plugins()
        .await?
        .into_iter()
        .find(|record| record.name == name);
    let workers = state
        .store
        .live_workers()
        .await?
        .iter()
        .filter(|worker| visible(principal, worker))
        .map(|worker| worker_plugin(worker, &report))
        .collect();
    let mut view = plugin_view(report, record.as_ref());
    view.workers = workers;
    Ok(view)
}

/// How one live worker stands with a plugin: `available`, `unavailable`
/// (with the worker's reason: the missing interface and the probe's error),
/// or `loading` (it has not loaded this version yet).
fn worker_plugin(worker: &WorkerRecord, installed: &PluginReport) -> WorkerPlugin {
    let (status, reason, digest) = match worker.capabilities.plugin(&installed.name) {
        Some(report) if report.digest != installed.digest => (
            WorkerPluginStatus::Loading,
            Some(format!(
                "runs {} {}; fetching {}",
                report.digest,
                report.version.as_deref().unwrap_or("?"),
                installed.digest
            )),
            Some(report.digest.clone()),
        ),
        Some(report) => (
            WorkerPluginStatus::of(report.status),
            report.reason.clone(),
            Some(report.digest.clone()),
        ),
        None => (
            WorkerPluginStatus::Loading,
            Some(
                "the worker has not loaded it yet (it fetches new plugins on its next heartbeat)"
                    .to_string(),
            ),
            None,
        ),
    };
    WorkerPlugin {
        id: worker.id.clone(),
        name: worker.name.clone(),
        status,
        reason,
        digest,
    }
}

/// `DELETE /plugins/{name}`. Admin only.
#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "fleet", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn remove_plugin(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    auth.require(&[Role::Admin], "removing plugins")?;
    if state.remove_plugin(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiFailure::not_found("plugin", &name))
    }
}
