//! Reading one task's events in order, the stored ones first and then new
//! ones as they are stored, ending after the `result` event; or a
//! workflow's, its own and all its stages', ending after the `workflow`
//! event that says it finished.
//!
//! Events are always read from the store; the in-process bus only wakes the
//! cursor (its events can arrive out of order, since transactions publish
//! after they commit). Each read starts a little below the last event sent
//! ([`LATE`] sequence numbers) and skips what was sent, so an event whose
//! transaction took its number before a later one but committed after it
//! (PostgreSQL hands out numbers before commit) is still delivered. The
//! cursor also reads the store every [`STORE_RECHECK`] without being woken,
//! so events stored through another server on the same database arrive too,
//! at most that much later, and a stream whose subject has finished ends.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flowmesh_types::api::EventBody;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;
use crate::store::{EventStream, StoredEvent};

/// How often a waiting cursor reads the store without being woken.
const STORE_RECHECK: Duration = Duration::from_secs(1);

/// Events read from the store at a time.
const REPLAY_PAGE: u32 = 1000;

/// How far below the last event sent each read starts, in sequence numbers.
const LATE: i64 = 1000;

/// Walks the events of a task or a workflow. Ends after the last one (a
/// task's `result`, a workflow's final `workflow` event), when the subject
/// has finished and nothing more is stored, or when the server shuts down.
pub(super) struct EventCursor {
    state: Arc<AppState>,
    id: String,
    /// For a workflow: its stages' task ids (its own events carry its id).
    stages: Option<HashSet<String>>,
    /// The resume point: nothing at or below it is sent.
    after: i64,
    /// The highest sequence number sent.
    last: i64,
    /// Sequence numbers sent within [`LATE`] of `last`.
    sent: BTreeSet<i64>,
    /// Where the next read continues when the last one filled a page.
    continue_from: Option<i64>,
    backlog: std::vec::IntoIter<StoredEvent>,
    receiver: tokio::sync::broadcast::Receiver<Arc<StoredEvent>>,
    recheck: tokio::time::Interval,
    /// The stored events up to the moment of the first read have been read.
    replayed: bool,
    /// Keep streaming new events after the stored ones.
    follow: bool,
    done: bool,
}

impl EventCursor {
    /// A cursor over task `id`'s events after sequence number `after`;
    /// `follow` keeps it open for new events after the stored ones.
    /// Subscribes to the bus at once, so events published after this call
    /// wake it.
    pub(super) fn new(state: Arc<AppState>, id: String, after: i64, follow: bool) -> Self {
        let receiver = state.bus.subscribe();
        let mut recheck = tokio::time::interval(STORE_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            state,
            id,
            stages: None,
            after,
            last: after,
            sent: BTreeSet::new(),
            continue_from: None,
            backlog: Vec::new().into_iter(),
            receiver,
            recheck,
            replayed: false,
            follow,
            done: false,
        }
    }

    /// A cursor over workflow `id`'s events and those of its stages, whose
    /// task ids are `stages`; otherwise as [`EventCursor::new`].
    pub(super) fn workflow(
        state: Arc<AppState>,
        id: String,
        stages: HashSet<String>,
        after: i64,
        follow: bool,
    ) -> Self {
        let mut cursor = Self::new(state, id, after, follow);
        cursor.stages = Some(stages);
        cursor
    }

    fn concerns(&self, event: &StoredEvent) -> bool {
        event.task_id == self.id
            || self
                .stages
                .as_ref()
                .is_some_and(|stages| stages.contains(&event.task_id))
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
            if self.continue_from.is_some() || !self.replayed {
                self.refill().await?;
                if self.continue_from.is_none() && !self.replayed {
                    self.replayed = true;
                    if self.backlog.len() == 0 && (!self.follow || self.finished().await?) {
                        return None;
                    }
                }
                continue;
            }
            if !self.follow {
                return None;
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(event) if self.concerns(&event) => {}
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick() => {
                    if self.finished().await? {
                        // Whatever is stored now is all there will be.
                        self.refill().await?;
                        self.follow = false;
                        continue;
                    }
                }
                _ = self.state.shutdown.cancelled() => return None,
            }
            self.refill().await?;
        }
    }

    fn emit(&mut self, event: StoredEvent) -> StoredEvent {
        self.sent.insert(event.seq);
        self.last = self.last.max(event.seq);
        // Keep only what a read can return again.
        self.sent = self.sent.split_off(&self.last.saturating_sub(LATE));
        self.done = match &event.body {
            EventBody::Result { .. } => self.stages.is_none(),
            EventBody::Workflow { state, .. } => state.is_terminal(),
            _ => false,
        };
        event
    }

    /// Whether the task (or workflow) has finished.
    async fn finished(&self) -> Option<bool> {
        let finished = if self.stages.is_some() {
            self.state
                .store
                .workflow(None, &self.id)
                .await
                .map(|workflow| workflow.is_none_or(|workflow| workflow.state.is_terminal()))
        } else {
            self.state
                .store
                .task(None, &self.id)
                .await
                .map(|task| task.is_none_or(|task| task.state.is_terminal()))
        };
        match finished {
            Ok(finished) => Some(finished),
            Err(error) => {
                tracing::warn!(%error, id = self.id, "event stream ended: store error");
                None
            }
        }
    }

    /// Reads a page of stored events not sent yet: from a little below the
    /// last one sent, or where the previous full page ended.
    async fn refill(&mut self) -> Option<()> {
        let from = self
            .continue_from
            .unwrap_or_else(|| self.after.max(self.last.saturating_sub(LATE)));
        let stream = match self.stages {
            Some(_) => EventStream::Workflow(&self.id),
            None => EventStream::Task(&self.id),
        };
        match self
            .state
            .store
            .events_after(stream, from, REPLAY_PAGE)
            .await
        {
            Ok(events) => {
                self.continue_from = (events.len() == REPLAY_PAGE as usize)
                    .then(|| events.last().map(|event| event.seq))
                    .flatten();
                let fresh: Vec<StoredEvent> = events
                    .into_iter()
                    .filter(|event| !self.sent.contains(&event.seq))
                    .collect();
                self.backlog = fresh.into_iter();
                Some(())
            }
            Err(error) => {
                tracing::warn!(%error, id = self.id, "event stream ended: store error");
                None
            }
        }
    }
}
