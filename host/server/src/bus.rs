//! In-process signals: task events for live watchers, and wake-ups for
//! workers waiting in a claim long-poll.
//!
//! The store is the truth; these only shorten waits. A watcher that falls
//! behind the broadcast re-reads the store, and a claim re-checks the store
//! on a slow timer even when no wake-up comes.

use std::sync::Arc;

use tokio::sync::{Notify, broadcast, watch};

use crate::store::StoredEvent;

/// Task events as they are stored, for SSE streams and `?wait=`.
pub struct EventBus {
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow receivers.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// Sends stored events to current subscribers.
    pub fn publish(&self, events: Vec<StoredEvent>) {
        for event in events {
            // No subscriber is not an error.
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// Receives every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }
}

/// A counter that moves whenever claimable work may have appeared: a task
/// was submitted or released, or a worker's capacity changed. A change made
/// here is also announced to the other servers of the database
/// ([`crate::wake_across`]), whose waiting claims it may concern.
pub struct WorkSignal {
    sender: watch::Sender<u64>,
    announce: Notify,
}

impl Default for WorkSignal {
    fn default() -> Self {
        Self {
            sender: watch::Sender::new(0),
            announce: Notify::new(),
        }
    }
}

impl WorkSignal {
    /// Wakes every waiting claim, here and (announced) on the other
    /// servers.
    pub fn notify(&self) {
        self.notify_here();
        self.announce.notify_one();
    }

    /// Wakes every waiting claim of this server only: for a change another
    /// server announced.
    pub fn notify_here(&self) {
        self.sender.send_modify(|generation| *generation += 1);
    }

    /// Waits until a change made here is to be announced; the changes made
    /// while one announcement goes out fold into the next.
    pub async fn to_announce(&self) {
        self.announce.notified().await;
    }

    /// A receiver that sees the next [`WorkSignal::notify`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}
