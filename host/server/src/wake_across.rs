//! Waking the claims of every server of a PostgreSQL database.
//!
//! Several servers share one PostgreSQL database; a worker waits in a
//! long-poll claim on one of them. A task submitted through another server
//! must wake that claim at once, not at its next periodic re-check. So each
//! server announces the changes made through it that may bring claimable
//! work (a submit, a release, freed capacity) with `NOTIFY flowmesh_work`,
//! and listens on that channel (`LISTEN`, with sqlx's `PgListener`) to wake
//! its own waiting claims when another server announces one.
//!
//! A notification is a hint, never data: its payload is only the announcing
//! server's random instance id, so a server ignores its own. Announcements
//! made while one is being sent fold into the next, so a burst of changes
//! costs one `NOTIFY`. If the listening connection drops, it reconnects
//! (sqlx does, on the next receive) and wakes the claims once, since it may
//! have missed something; the claims' periodic re-check stays the fallback
//! for anything lost. SQLite has one server per file: nothing to do.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::state::AppState;
use crate::store::Backend;

/// The channel.
pub const CHANNEL: &str = "flowmesh_work";

/// Starts announcing and listening when the store is PostgreSQL at `url`;
/// both run until the server stops.
pub fn start(state: &Arc<AppState>, url: &str) -> Vec<tokio::task::JoinHandle<()>> {
    if state.store.backend() != Backend::Postgres {
        return Vec::new();
    }
    let instance = uuid::Uuid::new_v4().simple().to_string();
    vec![
        tokio::spawn(announce(state.clone(), instance.clone())),
        tokio::spawn(listen(state.clone(), url.to_string(), instance)),
    ]
}

async fn announce(state: Arc<AppState>, instance: String) {
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = state.work.to_announce() => {}
        }
        if let Err(error) = state.store.notify(CHANNEL, &instance).await {
            tracing::warn!(%error, "announcing new work to the other servers failed; their claims find it on their next re-check");
        }
    }
}

async fn listen(state: Arc<AppState>, url: String, instance: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            listener = listener => match listener {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "listening for other servers' work failed; retrying");
                    tokio::select! {
                        _ = state.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        // Listening now: anything announced before may have been missed.
        state.work.notify_here();
        loop {
            let received = tokio::select! {
                _ = state.shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    if notification.payload() != instance {
                        state.work.notify_here();
                    }
                }
                // The connection dropped; sqlx reconnects on the next call.
                Ok(None) => state.work.notify_here(),
                Err(error) => {
                    tracing::warn!(%error, "the connection listening for other servers' work failed; reconnecting");
                    break;
                }
            }
        }
    }
}
