//! The worker protocol: register, heartbeat, claim, events, complete.
//! Worker tokens only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flowmesh_types::api::{
    ClaimRequest, ClaimResponse, Completion, CompletionBatch, CompletionResponse,
    CompletionVerdict, Deregistration, EventBatch, Heartbeat, HeartbeatResponse, Registered, Role,
    WorkerRegistration,
};
use flowmesh_types::{WorkerCapabilities, is_valid_name};

use super::query::{NoParams, Params};
use super::{ApiFailure, Auth, Body, parse_json};
use crate::metrics::PluginOutcome;
use crate::round_trips::{ExchangeRequest, HeartbeatRequest};
use crate::state::{AppState, now_ms};
use crate::store::NewWorker;
use flowmesh_types::api::{ApiError, ErrorBody};

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

/// The most bytes a registration or heartbeat may carry: a few dozen
/// plugins' manifests with their JSON Schemas fit many times over.
pub(crate) const MAX_ADVERTISEMENT_BYTES: usize = 1 << 20;
/// The most plugins a worker may report.
const MAX_PLUGINS: usize = 64;
/// The most task types a worker may report, over all its plugins.
const MAX_TASK_TYPES: usize = 256;
/// The most labels a worker may carry, and their longest key and value.
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY: usize = 128;
const MAX_LABEL_VALUE: usize = 256;
/// The most capability reports a worker may send.
const MAX_CAPABILITIES: usize = 32;

/// Refuses a registration or heartbeat body over
/// [`MAX_ADVERTISEMENT_BYTES`] before it is parsed.
fn bounded(body: &[u8]) -> Result<(), ApiFailure> {
    if body.len() > MAX_ADVERTISEMENT_BYTES {
        return Err(ApiFailure::too_large(
            Some(body.len()),
            MAX_ADVERTISEMENT_BYTES,
            "a worker registration or heartbeat",
        ));
    }
    Ok(())
}

/// Refuses what no real worker reports: more plugins, task types, labels or
/// capabilities than the limits, or labels longer than theirs.
fn check_advertised(
    capabilities: Option<&WorkerCapabilities>,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), ApiFailure> {
    if let Some(capabilities) = capabilities {
        if capabilities.plugins.len() > MAX_PLUGINS {
            return Err(ApiFailure::invalid_field(
                "capabilities.plugins",
                format!("at most {MAX_PLUGINS} plugins per worker"),
            ));
        }
        let declared: usize = capabilities
            .plugins
            .iter()
            .filter_map(|plugin| plugin.manifest.as_ref())
            .map(|manifest| manifest.task_types.len())
            .sum();
        if declared > MAX_TASK_TYPES || capabilities.supported_task_types.len() > MAX_TASK_TYPES {
            return Err(ApiFailure::invalid_field(
                "capabilities.supportedTaskTypes",
                format!("at most {MAX_TASK_TYPES} task types per worker, over all its plugins"),
            ));
        }
        if capabilities.capabilities.len() > MAX_CAPABILITIES {
            return Err(ApiFailure::invalid_field(
                "capabilities.capabilities",
                format!("at most {MAX_CAPABILITIES} capability reports"),
            ));
        }
    }
    if let Some(labels) = labels {
        if labels.len() > MAX_LABELS {
            return Err(ApiFailure::invalid_field(
                "labels",
                format!("at most {MAX_LABELS} labels per worker"),
            ));
        }
        if let Some((key, _)) = labels
            .iter()
            .find(|(key, value)| key.len() > MAX_LABEL_KEY || value.len() > MAX_LABEL_VALUE)
        {
            return Err(ApiFailure::invalid_field(
                &format!("labels.{key}"),
                format!(
                    "a label's key may have at most {MAX_LABEL_KEY} bytes and its value {MAX_LABEL_VALUE}"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses calls under a registration this token did not make, exactly as
/// an unknown one: a worker token cannot act for another's workers, nor
/// learn which registrations exist.
async fn owned(state: &AppState, auth: &Auth, worker_id: &str) -> Result<(), ApiFailure> {
    if state
        .store
        .worker_of_token(worker_id, &auth.0.token_id)
        .await?
    {
        Ok(())
    } else {
        Err(unknown_worker(worker_id))
    }
}

/// `POST /worker/register`.
#[utoipa::path(post, path = "/api/v1/worker/register", tag = "worker protocol", request_body = WorkerRegistration,
    responses((status = 200, body = Registered), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn register(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Registered>, ApiFailure> {
    worker_only(&auth)?;
    bounded(&body)?;
    let mut registration: WorkerRegistration = parse_json(&body)?;
    if !is_valid_name(&registration.name.to_lowercase().replace(['.', '_'], "-")) {
        return Err(ApiFailure::invalid_field(
            "name",
            "letters, digits, '-', '_' and '.', starting with a letter, at most 64",
        ));
    }
    if registration.slots == 0 {
        return Err(ApiFailure::invalid_field("slots", "must be at least 1"));
    }
    if registration.slots > flowmesh_types::api::MAX_SLOTS {
        return Err(ApiFailure::invalid_field(
            "slots",
            format!("at most {}", flowmesh_types::api::MAX_SLOTS),
        ));
    }
    let most = flowmesh_types::api::max_read_ahead(registration.slots);
    if registration.read_ahead > most {
        return Err(ApiFailure::invalid_field(
            "readAhead",
            format!(
                "at most {} times slots ({most} for {} slots)",
                flowmesh_types::api::READ_AHEAD_PER_SLOT,
                registration.slots
            ),
        ));
    }
    check_advertised(Some(&registration.capabilities), Some(&registration.labels))?;
    let served = state.served(&registration.capabilities);
    registration.capabilities.supported_task_types = served.types.keys().cloned().collect();
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let retired = state
        .store
        .register_worker(&NewWorker {
            id: &id,
            registration: &registration,
            token_id: &auth.0.token_id,
            pool_tenant: auth.0.pool_tenant(),
            served: &served,
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
        pool = auth.0.pool_tenant().unwrap_or("shared"),
        task_types = ?registration.capabilities.supported_task_types,
        refused = served.refused.len(),
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

/// `POST /worker/deregister`: a worker stopping cleanly ends its
/// registration; the tasks it still holds go back to pending at once.
#[utoipa::path(post, path = "/api/v1/worker/deregister", tag = "worker protocol", request_body = Deregistration,
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn deregister(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<StatusCode, ApiFailure> {
    worker_only(&auth)?;
    let request: Deregistration = parse_json(&body)?;
    if !state
        .store
        .deregister_worker(&request.worker_id, &auth.0.token_id)
        .await?
    {
        return Err(unknown_worker(&request.worker_id));
    }
    let events = state
        .store
        .release_worker_tasks(&request.worker_id, now_ms(), &state.retry_policy())
        .await?;
    tracing::info!(
        id = request.worker_id,
        released = events.len(),
        "worker deregistered"
    );
    state.publish(events);
    state.work.notify();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /worker/heartbeat`.
#[utoipa::path(post, path = "/api/v1/worker/heartbeat", tag = "worker protocol", request_body = Heartbeat,
    responses((status = 200, body = HeartbeatResponse), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn heartbeat(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<HeartbeatResponse>, ApiFailure> {
    worker_only(&auth)?;
    bounded(&body)?;
    let mut beat: Heartbeat = parse_json(&body)?;
    check_advertised(beat.capabilities.as_ref(), beat.labels.as_ref())?;
    let served = beat.capabilities.as_mut().map(|capabilities| {
        let served = state.served(capabilities);
        capabilities.supported_task_types = served.types.keys().cloned().collect();
        served
    });
    let changed = beat.capabilities.is_some() || beat.labels.is_some() || beat.hardware.is_some();
    let worker_id = beat.worker_id.clone();
    let outcome = state
        .round_trips
        .heartbeat(HeartbeatRequest {
            beat,
            token_id: auth.0.token_id.clone(),
            served,
        })
        .await?
        .ok_or_else(|| unknown_worker(&worker_id))?;
    if changed {
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
    let not_found = || ApiFailure::not_found("plugin component", &digest);
    let parsed = flowmesh_runtime::ComponentDigest::parse(&digest).ok_or_else(not_found)?;
    let (body, length) = crate::component_files::stream(
        &state.store,
        &state.config.data_dir,
        &state.installed_digests(),
        &parsed,
    )
    .await
    .map_err(|error| match error {
        crate::component_files::ComponentError::NotFound => not_found(),
        crate::component_files::ComponentError::Store(error) => error.into(),
        error @ crate::component_files::ComponentError::Io { .. } => {
            tracing::error!(%error, "serving a plugin component");
            ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the component could not be read from the server's disk; try again",
            )
            .retry_after(5)
        }
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/wasm".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    ))
}

/// `POST /worker/claim`: the worker's round trip. Records the events and
/// completions it delivers, then claims; one that delivers something, or
/// claims some task, answers at once. Otherwise it is a long poll: it
/// answers as soon as tasks this worker can run are claimed for it, with
/// none when the wait runs out, or with the new plugin catalog when the
/// installed plugins change.
#[utoipa::path(post, path = "/api/v1/worker/claim", tag = "worker protocol", request_body = ClaimRequest,
    responses((status = 200, body = ClaimResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn claim(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<ClaimResponse>, ApiFailure> {
    worker_only(&auth)?;
    let request: ClaimRequest = parse_json(&body)?;
    let delivers = !request.events.is_empty() || !request.completions.is_empty();
    let wait = if delivers {
        Duration::ZERO
    } else {
        Duration::from_millis(request.wait_ms).min(state.config.max_claim_wait)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut signal = state.work.subscribe();
    let mut catalog = state.catalog.subscribe();
    let mut known_live = false;
    let mut verdicts = Vec::new();
    // What the first pass hands over; its outcomes are counted once in.
    let delivered = Arc::new(request.completions);
    let mut delivery = Some((request.events, delivered.clone()));
    loop {
        signal.borrow_and_update();
        let started = Instant::now();
        let first = delivery.is_some();
        let (events, completions) = delivery.take().unwrap_or_default();
        let exchanged = state
            .round_trips
            .exchange(ExchangeRequest {
                worker_id: request.worker_id.clone(),
                token_id: auth.0.token_id.clone(),
                max_tasks: request.max_tasks,
                events,
                completions,
            })
            .await?
            .ok_or_else(|| unknown_worker(&request.worker_id))?;
        if request.max_tasks > 0 {
            state
                .metrics
                .claim_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if first {
            record_outcomes(&state, &delivered, &exchanged.verdicts);
            verdicts = exchanged.verdicts;
        }
        state.publish_exchanged(exchanged.events, exchanged.stages_finished);
        let tasks = exchanged.claimed;
        if !tasks.is_empty() || delivers {
            state.metrics.claimed.inc_by(tasks.len() as u64);
            let plugins = catalog
                .has_changed()
                .unwrap_or(false)
                .then(|| catalog.borrow().to_vec());
            return Ok(Json(ClaimResponse {
                tasks,
                plugins,
                verdicts,
            }));
        }
        // A claim that took nothing may come from a registration that is
        // gone: say so, rather than looking the worker up on every claim.
        if !known_live {
            let live = state
                .store
                .worker(&request.worker_id)
                .await?
                .is_some_and(|worker| {
                    worker.state == flowmesh_types::api::WorkerState::Live
                        && worker.token_id.as_deref() == Some(auth.0.token_id.as_str())
                });
            if !live {
                return Err(unknown_worker(&request.worker_id));
            }
            known_live = true;
        }
        if request.max_tasks == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(Json(ClaimResponse::default()));
        }
        let recheck = (tokio::time::Instant::now() + state.config.claim_recheck).min(deadline);
        tokio::select! {
            _ = signal.changed() => {}
            _ = catalog.changed() => {
                return Ok(Json(ClaimResponse {
                    plugins: Some(catalog.borrow().to_vec()),
                    ..ClaimResponse::default()
                }));
            }
            _ = tokio::time::sleep_until(recheck) => {}
            _ = state.shutdown.cancelled() => return Ok(Json(ClaimResponse::default())),
        }
    }
}

/// Counts the accepted outcomes among `completions` (by plugin and
/// outcome), logs the stale ones, and wakes the claims when capacity was
/// freed.
fn record_outcomes(state: &AppState, completions: &[Completion], verdicts: &[CompletionVerdict]) {
    for (completion, verdict) in completions.iter().zip(verdicts) {
        if *verdict == CompletionVerdict::Accepted {
            state.metrics.completions_accepted.inc();
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
            state.metrics.completions_stale.inc();
            tracing::info!(
                task = completion.task_id,
                "stale completion rejected: the lease is no longer this worker's"
            );
        }
    }
    // Accepted outcomes freed capacity; stale ones changed nothing.
    if verdicts.contains(&CompletionVerdict::Accepted) {
        state.work.notify();
    }
}

/// `POST /worker/events`: logs and progress of running tasks.
#[utoipa::path(post, path = "/api/v1/worker/events", tag = "worker protocol", request_body = EventBatch,
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn events(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<StatusCode, ApiFailure> {
    worker_only(&auth)?;
    let batch: EventBatch = parse_json(&body)?;
    owned(&state, &auth, &batch.worker_id).await?;
    let stored = state
        .store
        .append_task_events(&batch.worker_id, &batch.tasks, now_ms())
        .await?;
    state.publish(stored);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /worker/complete`: outcomes, each fenced by its lease token.
#[utoipa::path(post, path = "/api/v1/worker/complete", tag = "worker protocol", request_body = CompletionBatch,
    responses((status = 200, body = CompletionResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn complete(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<CompletionResponse>, ApiFailure> {
    worker_only(&auth)?;
    let batch: CompletionBatch = parse_json(&body)?;
    owned(&state, &auth, &batch.worker_id).await?;
    let (verdicts, events) = state
        .store
        .complete(
            &batch.worker_id,
            &batch.completions,
            now_ms(),
            &state.retry_policy(),
        )
        .await?;
    state.publish(events);
    record_outcomes(&state, &batch.completions, &verdicts);
    Ok(Json(CompletionResponse { verdicts }))
}
