//! Reading one task's events in order: the stored ones first (paged), then
//! live ones from the in-process bus, ending after the `result` event.
//!
//! The bus only carries what this server stored. While it waits for live
//! events, the cursor also reads the store every [`STORE_RECHECK`], so
//! events stored through another server on the same database (a worker
//! completing there) arrive too, at most that much later.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::EventBody;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;
use crate::store::StoredEvent;

/// How often a waiting cursor reads the store for events the bus did not
/// carry.
const STORE_RECHECK: Duration = Duration::from_secs(1);

/// Events read from the store at a time.
const REPLAY_PAGE: u32 = 1000;

/// Walks a task's events: the stored ones first, then live ones from the
/// bus, re-reading the store whenever the bus dropped some. Ends after the
/// `result` event, when a finished task has nothing more after the resume
/// point, or when the server shuts down.
pub(super) struct EventCursor {
    state: Arc<AppState>,
    id: String,
    last: i64,
    backlog: std::vec::IntoIter<StoredEvent>,
    receiver: tokio::sync::broadcast::Receiver<Arc<StoredEvent>>,
    replayed: bool,
    /// The last read from the store filled a page: read again.
    more_stored: bool,
    /// Keep streaming live events after the replay.
    follow: bool,
    done: bool,
}

impl EventCursor {
    /// A cursor over task `id`'s events after sequence number `after`;
    /// `follow` keeps it open for live events after the stored ones.
    /// Subscribes to the bus at once, so events published after this call
    /// are not missed.
    pub(super) fn new(state: Arc<AppState>, id: String, after: i64, follow: bool) -> Self {
        let receiver = state.bus.subscribe();
        Self {
            state,
            id,
            last: after,
            backlog: Vec::new().into_iter(),
            receiver,
            replayed: false,
            more_stored: false,
            follow,
            done: false,
        }
    }

    /// The next event; `None` once the stream is over.
    pub(super) async fn next(&mut self) -> Option<StoredEvent> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.backlog.next() {
                return Some(self.emit(event));
            }
            if self.replayed && !self.follow && !self.more_stored {
                return None;
            }
            if !self.replayed || self.more_stored {
                self.refill().await?;
                if !self.more_stored && !self.replayed {
                    self.replayed = true;
                    if !self.follow {
                        self.done = self.backlog.len() == 0;
                        continue;
                    }
                    if self.backlog.len() == 0 && self.finished().await? {
                        // Resumed past the end of a finished task: read once
                        // more, in case its last events landed just now.
                        self.refill().await?;
                        if self.backlog.len() == 0 {
                            return None;
                        }
                    }
                }
                continue;
            }
            let received = tokio::select! {
                received = self.receiver.recv() => received,
                _ = tokio::time::sleep(STORE_RECHECK) => {
                    self.refill().await?;
                    continue;
                }
                _ = self.state.shutdown.cancelled() => return None,
            };
            match received {
                Ok(event) if event.task_id == self.id && event.seq > self.last => {
                    return Some(self.emit((*event).clone()));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.refill().await?,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn emit(&mut self, event: StoredEvent) -> StoredEvent {
        self.last = event.seq;
        if matches!(event.body, EventBody::Result { .. }) {
            self.done = true;
        }
        event
    }

    /// Whether the task has finished.
    async fn finished(&self) -> Option<bool> {
        match self.state.store.task(None, &self.id).await {
            Ok(task) => Some(task.is_none_or(|task| task.state.is_terminal())),
            Err(error) => {
                tracing::warn!(%error, task = self.id, "event stream ended: store error");
                None
            }
        }
    }

    /// Loads a page of stored events after the last one sent.
    async fn refill(&mut self) -> Option<()> {
        match self
            .state
            .store
            .events_after(&self.id, self.last, REPLAY_PAGE)
            .await
        {
            Ok(events) => {
                self.more_stored = events.len() == REPLAY_PAGE as usize;
                self.backlog = events.into_iter();
                Some(())
            }
            Err(error) => {
                tracing::warn!(%error, task = self.id, "event stream ended: store error");
                None
            }
        }
    }
}
