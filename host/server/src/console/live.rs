//! The console's live streams, one per open page, as server-sent events.
//!
//! - A task's page and a workflow's page follow the same event streams as
//!   `GET /api/v1/tasks/{id}/events` and `/workflows/{id}/events`.
//! - The task list follows the states of the tasks it shows: `state`
//!   events of `{"id", "state"}`, taken from the event bus (the page's
//!   tasks re-read from the store when the bus ran ahead of the stream).
//! - The overview is rendered again on the server and sent whole as an
//!   `html` event: at most once a second while tasks change, and every few
//!   seconds regardless (heartbeats and the chart move without events).
//!
//! Each stream takes a place in its token's limit of open streams.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flowmesh_types::api::EventBody;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::page::{Failure, PageResult};
use super::session::Viewer;
use crate::state::AppState;

/// The overview is rendered at most this often.
const OVERVIEW_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// And at least this often.
const OVERVIEW_MAX_INTERVAL: Duration = Duration::from_secs(5);
/// A task list follows at most this many tasks.
const MAX_FOLLOWED: usize = 200;

/// `GET /tasks/{id}/events`: the task's events, as the API streams them.
pub(super) async fn task_events(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let stream = crate::api::tasks::event_stream(
        state,
        &viewer.principal,
        id.clone(),
        crate::api::last_event_id(&headers),
        true,
    )
    .await
    .map_err(|failure| Failure::lookup(failure, "task", &id))?;
    Ok(stream.into_response())
}

/// `GET /workflows/{id}/events`: the workflow's and its stages' events.
pub(super) async fn workflow_events(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let stream = crate::api::workflows::event_stream(
        state,
        &viewer.principal,
        id.clone(),
        crate::api::last_event_id(&headers),
        true,
    )
    .await
    .map_err(|failure| Failure::lookup(failure, "workflow", &id))?;
    Ok(stream.into_response())
}

fn sse(receiver: mpsc::Receiver<Event>) -> Response {
    let stream = futures::StreamExt::map(ReceiverStream::new(receiver), Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `GET /live/overview`.
pub(super) async fn overview(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let slot = state
        .limits
        .stream(&viewer.principal.token_id)
        .map_err(|refused| Failure::from(crate::api::ApiFailure::from(refused)))?;
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(async move {
        let _slot = slot;
        let mut bus = state.bus.subscribe();
        let mut rendered = tokio::time::Instant::now();
        loop {
            let changed = tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = sender.closed() => return,
                received = bus.recv() => !matches!(received, Err(RecvError::Closed)),
                () = tokio::time::sleep(OVERVIEW_MAX_INTERVAL) => true,
            };
            if !changed {
                return;
            }
            // At most one render a second: changes that arrive while
            // waiting fold into this one.
            tokio::time::sleep_until(rendered + OVERVIEW_MIN_INTERVAL).await;
            bus = bus.resubscribe();
            rendered = tokio::time::Instant::now();
            let html = match super::overview::body(&state, &viewer).await {
                Ok(markup) => markup.into_string(),
                Err(_) => continue,
            };
            if sender
                .send(Event::default().event("html").data(html))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(sse(receiver))
}

/// `?ids=` of the task list's stream.
#[derive(Deserialize)]
pub(super) struct Ids {
    #[serde(default)]
    ids: String,
}

/// `GET /live/tasks?ids=a,b`: state changes of those of the viewer's tasks.
pub(super) async fn task_states(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(ids): Query<Ids>,
) -> PageResult {
    let mut followed = HashSet::new();
    for id in ids
        .ids
        .split(',')
        .filter(|id| !id.is_empty())
        .take(MAX_FOLLOWED)
    {
        // Another tenant's task is silently not followed.
        if state
            .store
            .task(Some(&viewer.principal.tenant), id)
            .await?
            .is_some()
        {
            followed.insert(id.to_string());
        }
    }
    let slot = state
        .limits
        .stream(&viewer.principal.token_id)
        .map_err(|refused| Failure::from(crate::api::ApiFailure::from(refused)))?;
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let _slot = slot;
        let mut bus = state.bus.subscribe();
        let send = |id: &str, task_state: &str| {
            Event::default()
                .event("state")
                .data(serde_json::json!({ "id": id, "state": task_state }).to_string())
        };
        loop {
            let received = tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = sender.closed() => return,
                received = bus.recv() => received,
            };
            let events = match received {
                Ok(event) => {
                    let task_state = match &event.body {
                        EventBody::State { state, .. } | EventBody::Result { state, .. } => *state,
                        _ => continue,
                    };
                    if !followed.contains(&event.task_id) {
                        continue;
                    }
                    vec![send(&event.task_id, task_state.as_str())]
                }
                Err(RecvError::Lagged(_)) => {
                    let mut events = Vec::new();
                    for id in &followed {
                        if let Ok(Some(task)) = state.store.task(None, id).await {
                            events.push(send(id, task.state.as_str()));
                        }
                    }
                    events
                }
                Err(RecvError::Closed) => return,
            };
            for event in events {
                if sender.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(sse(receiver))
}
