//! The worker protocol: register, heartbeat, claim, events, complete.
//! Worker tokens only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flowmesh_types::api::{
    ClaimRequest, ClaimResponse, CompletionBatch, CompletionResponse, EventBatch, Heartbeat,
    HeartbeatResponse, Registered, Role, WorkerRegistration,
};
use flowmesh_types::is_valid_name;

use super::query::{NoParams, Params};
use super::{ApiFailure, Auth, parse_json};
use crate::metrics::PluginOutcome;
use crate::state::{AppState, now_ms};
use crate::store::NewWorker;
use flowmesh_types::api::{ApiError, ErrorBody};

/// How often a waiting claim looks at the store even without a wake-up
/// (retry delays running out, capacity freed by another server).
const CLAIM_RECHECK: Duration = Duration::from_millis(500);

fn worker_only(auth: &Auth) -> Result<(), ApiFailure> {
    auth.require(&[Role::Worker], "the worker protocol")
}

fn unknown_worker(id: &str) -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        ApiError::UNKNOWN_WORKER,
        format!(
            "worker registration {id:?} is not live (it expired or was replaced); register again"
        ),
    )
}

/// `POST /worker/register`.
#[utoipa::path(post, path = "/api/v1/worker/register", tag = "worker protocol", request_body = WorkerRegistration,
    responses((status = 200, body = Registered)), security(("bearer" = [])))]
pub(super) async fn register(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<Registered>, ApiFailure> {
    worker_only(&auth)?;
    let registration: WorkerRegistration = parse_json(&body)?;
    if !is_valid_name(&registration.name.to_lowercase().replace(['.', '_'], "-")) {
        return Err(ApiFailure::invalid_field(
            "name",
            "letters, digits, '-', '_' and '.', starting with a letter, at most 64",
        ));
    }
    if registration.slots == 0 {
        return Err(ApiFailure::invalid_field("slots", "must be at least 1"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let retired = state
        .store
        .register_worker(&NewWorker {
            id: &id,
            registration: &registration,
            now,
        })
        .await?;
    for old in retired {
        let events = state
            .store
            .release_worker_tasks(&old, now, &state.retry_policy())
            .await?;
        state.publish(events);
    }
    tracing::info!(
        worker = registration.name,
        id,
        slots = registration.slots,
        task_types = ?registration.capabilities.supported_task_types,
        "worker registered"
    );
    state.work.notify();
    Ok(Json(Registered {
        worker_id: id,
        heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        lease_ttl_ms: state.config.lease_ttl.as_millis() as u64,
        plugins: state.catalog.borrow().to_vec(),
    }))
}

/// `POST /worker/heartbeat`.
#[utoipa::path(post, path = "/api/v1/worker/heartbeat", tag = "worker protocol", request_body = Heartbeat,
    responses((status = 200, body = HeartbeatResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn heartbeat(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<HeartbeatResponse>, ApiFailure> {
    worker_only(&auth)?;
    let beat: Heartbeat = parse_json(&body)?;
    let outcome = state
        .store
        .heartbeat(&beat, now_ms(), state.lease_ttl_ms())
        .await?
        .ok_or_else(|| unknown_worker(&beat.worker_id))?;
    if beat.capabilities.is_some() || beat.labels.is_some() || beat.hardware.is_some() {
        state.work.notify();
    }
    Ok(Json(HeartbeatResponse {
        cancel: outcome.cancel,
        lost: outcome.lost,
        plugins: state.catalog.borrow().to_vec(),
    }))
}

/// `GET /worker/plugins/{digest}`: an installed component's bytes, by its
/// content digest (`sha256:<hex>`), for workers to load.
#[utoipa::path(get, path = "/api/v1/worker/plugins/{digest}", tag = "worker protocol", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, content_type = "application/wasm", body = Vec<u8>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn plugin_component(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(digest): Path<String>,
) -> Result<impl IntoResponse, ApiFailure> {
    auth.require(
        &[Role::Worker, Role::Admin],
        "downloading plugin components",
    )?;
    let bytes = state
        .store
        .plugin_component(&digest)
        .await?
        .ok_or_else(|| ApiFailure::not_found("plugin component", &digest))?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes))
}

/// `POST /worker/claim`: a long poll. Answers as soon as tasks this worker
/// can run are claimed for it, with none when the wait runs out, or with the
/// new plugin catalog when the installed plugins change.
#[utoipa::path(post, path = "/api/v1/worker/claim", tag = "worker protocol", request_body = ClaimRequest,
    responses((status = 200, body = ClaimResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn claim(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<ClaimResponse>, ApiFailure> {
    worker_only(&auth)?;
    let request: ClaimRequest = parse_json(&body)?;
    let wait = Duration::from_millis(request.wait_ms).min(state.config.max_claim_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut signal = state.work.subscribe();
    let mut catalog = state.catalog.subscribe();
    let mut known_live = false;
    loop {
        signal.borrow_and_update();
        let started = Instant::now();
        let (rows, events) = state
            .store
            .claim(
                &request.worker_id,
                now_ms(),
                state.lease_ttl_ms(),
                request.max_tasks,
                state.config.claim_scan,
            )
            .await?;
        state
            .metrics
            .claim_seconds
            .observe(started.elapsed().as_secs_f64());
        if !rows.is_empty() {
            state.metrics.claimed.inc_by(rows.len() as u64);
            state.publish(events);
            let tasks = rows;
            let plugins = catalog
                .has_changed()
                .unwrap_or(false)
                .then(|| catalog.borrow().to_vec());
            return Ok(Json(ClaimResponse { tasks, plugins }));
        }
        // A claim that took nothing may come from a registration that is
        // gone: say so, rather than looking the worker up on every claim.
        if !known_live {
            let live = state
                .store
                .worker(&request.worker_id)
                .await?
                .is_some_and(|worker| worker.state == flowmesh_types::api::WorkerState::Live);
            if !live {
                return Err(unknown_worker(&request.worker_id));
            }
            known_live = true;
        }
        if request.max_tasks == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(Json(ClaimResponse::default()));
        }
        let recheck = (tokio::time::Instant::now() + CLAIM_RECHECK).min(deadline);
        tokio::select! {
            _ = signal.changed() => {}
            _ = catalog.changed() => {
                return Ok(Json(ClaimResponse {
                    tasks: Vec::new(),
                    plugins: Some(catalog.borrow().to_vec()),
                }));
            }
            _ = tokio::time::sleep_until(recheck) => {}
            _ = state.shutdown.cancelled() => return Ok(Json(ClaimResponse::default())),
        }
    }
}

/// `POST /worker/events`: logs and progress of running tasks.
#[utoipa::path(post, path = "/api/v1/worker/events", tag = "worker protocol", request_body = EventBatch,
    responses((status = 204)), security(("bearer" = [])))]
pub(super) async fn events(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: Bytes,
) -> Result<StatusCode, ApiFailure> {
    worker_only(&auth)?;
    let batch: EventBatch = parse_json(&body)?;
    let stored = state
        .store
        .append_task_events(&batch.worker_id, &batch.tasks, now_ms())
        .await?;
    state.publish(stored);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /worker/complete`: outcomes, each fenced by its lease token.
#[utoipa::path(post, path = "/api/v1/worker/complete", tag = "worker protocol", request_body = CompletionBatch,
    responses((status = 200, body = CompletionResponse)), security(("bearer" = [])))]
pub(super) async fn complete(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<CompletionResponse>, ApiFailure> {
    worker_only(&auth)?;
    let batch: CompletionBatch = parse_json(&body)?;
    let (verdicts, events) = state
        .store
        .complete(
            &batch.worker_id,
            &batch.completions,
            now_ms(),
            &state.retry_policy(),
        )
        .await?;
    for (completion, verdict) in batch.completions.iter().zip(&verdicts) {
        if *verdict == flowmesh_types::api::CompletionVerdict::Accepted {
            let outcome = if completion.error.is_some() {
                "failed"
            } else {
                "succeeded"
            };
            state
                .metrics
                .task_seconds
                .get_or_create(&PluginOutcome {
                    plugin: completion
                        .plugin
                        .as_ref()
                        .map(|plugin| plugin.name.clone())
                        .unwrap_or_default(),
                    outcome: outcome.to_string(),
                })
                .observe(completion.elapsed_ms as f64 / 1000.0);
        } else {
            tracing::info!(
                task = completion.task_id,
                "stale completion rejected: the lease is no longer this worker's"
            );
        }
    }
    state.publish(events);
    // Accepted outcomes freed capacity; stale ones changed nothing.
    if verdicts.contains(&flowmesh_types::api::CompletionVerdict::Accepted) {
        state.work.notify();
    }
    Ok(Json(CompletionResponse { verdicts }))
}
