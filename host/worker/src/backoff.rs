//! Exponential backoff for retrying calls to the server: registering, the
//! claim loop, and the outbox.

use std::time::Duration;

/// Exponential backoff from 50 ms to 5 s.
#[derive(Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) async fn wait(&mut self) {
        let delay = Duration::from_millis(50u64 << self.attempt.min(7)).min(Duration::from_secs(5));
        self.attempt += 1;
        tokio::time::sleep(delay).await;
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}
