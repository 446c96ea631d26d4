//! Counting the SQL statements the store executes. sqlx reports every
//! statement it runs as a `sqlx::query` event when that is enabled; a layer
//! that enables it only while counting, and counts it, gives the number of
//! executions (a multi-row statement is one, whatever its rows; `BEGIN` and
//! `COMMIT` are not counted). It stays off for the timed phases: sqlx
//! formats a summary of the statement for every event it emits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl<S: Subscriber> Layer<S> for Counter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == "sqlx::query" {
            // Asked again for every event: counting goes on and off.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == "sqlx::query" && COUNTING.load(Ordering::Relaxed)
    }

    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Installs the counter (off) as the process's subscriber.
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(Counter);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Starts counting from zero.
pub fn start() {
    STATEMENTS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
}

/// Stops counting; the statements counted since [`start`].
pub fn stop() -> u64 {
    COUNTING.store(false, Ordering::Relaxed);
    STATEMENTS.load(Ordering::Relaxed)
}
