//! Event streams as server-sent events, resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use flowmesh_types::api::EventRecord;
use futures::Stream;

use super::event_cursor::EventCursor;
use crate::limits::StreamSlot;
use crate::store::{StoredEvent, rfc3339};

/// The `Last-Event-ID` a reconnecting client sends; 0 for none.
pub(crate) fn last_event_id(headers: &HeaderMap) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .unwrap_or(0)
}

/// A cursor's events as server-sent events: `id` the event's sequence
/// number, `event` its kind, `data` the [`EventRecord`]. `slot` is the
/// stream's place in its token's limit, held as long as the stream is.
pub(super) fn server_sent(
    cursor: EventCursor,
    slot: StreamSlot,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((cursor, slot), |(mut cursor, slot)| async move {
        let event = cursor.next().await?;
        let sse = Event::default()
            .id(event.seq.to_string())
            .event(event.body.name())
            .data(serde_json::to_string(&to_record(&event)).unwrap_or_default());
        Some((Ok(sse), (cursor, slot)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn to_record(event: &StoredEvent) -> EventRecord {
    EventRecord {
        seq: event.seq,
        task_id: event.task_id.clone(),
        at: rfc3339(event.at),
        body: event.body.clone(),
    }
}
