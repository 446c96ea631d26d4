//! Health and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flowmesh_types::CapabilityStatus;
use serde_json::json;

use super::query::{NoParams, Params};
use crate::metrics::{CapabilityLabel, TypeLabel, TypeState};
use crate::state::AppState;

/// `GET /healthz`: 200 when the store answers, with what one request may
/// hold (clients size their batches by it).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "{status: ok, limits: {maxBatchDocuments, maxRequestBytes}}"), (status = 503)))]
pub(super) async fn healthz(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "limits": {
                    "maxBatchDocuments": state.config.max_batch_documents,
                    "maxRequestBytes": state.config.max_request_bytes,
                },
            })),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": error.to_string()})),
        ),
    }
}

/// `GET /metrics`: OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub(super) async fn metrics(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
) -> impl IntoResponse {
    let metrics = &state.metrics;
    if let Ok(depth) = state.store.queue_depth().await {
        metrics.queue_depth.clear();
        for (task_type, task_state, count) in depth {
            metrics
                .queue_depth
                .get_or_create(&TypeState {
                    task_type,
                    state: task_state.as_str().to_string(),
                })
                .set(count);
        }
    }
    if let Ok(workers) = state.store.live_workers().await {
        metrics.workers.clear();
        metrics.workers_by_task_type.clear();
        metrics
            .workers
            .get_or_create(&CapabilityLabel {
                capability: "any".into(),
            })
            .set(workers.len() as i64);
        for worker in &workers {
            for capability in &worker.capabilities.capabilities {
                if capability.status == CapabilityStatus::Available {
                    metrics
                        .workers
                        .get_or_create(&CapabilityLabel {
                            capability: capability.kind.name().to_string(),
                        })
                        .inc();
                }
            }
            for task_type in worker.served.types.keys() {
                metrics
                    .workers_by_task_type
                    .get_or_create(&TypeLabel {
                        task_type: task_type.clone(),
                    })
                    .inc();
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
