//! Per-token limits on what one client can take: submits counted in
//! documents (a token bucket per token), and event streams held open at
//! once. A request over either is [`Refused`], which the API answers with
//! `429`, the JSON error body and `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A request over one of the limits: what the client sees as a `429`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The error code (`rate_limited`, `too_many_streams`).
    pub code: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// Seconds until a retry may pass.
    pub retry_after: Option<u64>,
}

/// The per-token limits of one server.
pub struct Limits {
    /// Documents per second one token may submit (and burst), if limited.
    submit_rate: Option<u32>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Event streams one token may hold open.
    max_streams: usize,
    streams: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// A token's allowance: `level` documents now, refilled at the rate.
struct Bucket {
    level: f64,
    at: Instant,
}

/// One open event stream of a token; the place is freed when this drops
/// (the stream ended, or its client went away).
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    /// Limits of `submit_rate` documents per second per token (none when
    /// `None`) and `max_streams` open event streams per token.
    pub fn new(submit_rate: Option<u32>, max_streams: usize) -> Self {
        Self {
            submit_rate: submit_rate.filter(|rate| *rate > 0),
            buckets: Mutex::new(HashMap::new()),
            max_streams: max_streams.max(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `documents` from `token`'s allowance, or refuses with 429 and
    /// how long until they fit.
    pub fn submit(&self, token: &str, documents: u32) -> Result<(), Refused> {
        let Some(rate) = self.submit_rate else {
            return Ok(());
        };
        let rate = f64::from(rate);
        let wanted = f64::from(documents);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 100_000 {
            buckets.retain(|_, bucket| now.duration_since(bucket.at) < Duration::from_secs(60));
        }
        let bucket = buckets.entry(token.to_string()).or_insert(Bucket {
            level: rate,
            at: now,
        });
        bucket.level =
            (bucket.level + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if wanted > rate {
            return Err(Refused {
                code: "rate_limited",
                message: format!(
                    "{documents} documents in one request is over this token's limit of {rate} per second (`flowmesh server --submit-rate`); send fewer at a time"
                ),
                retry_after: None,
            });
        }
        if bucket.level >= wanted {
            bucket.level -= wanted;
            return Ok(());
        }
        let wait = ((wanted - bucket.level) / rate).ceil().max(1.0) as u64;
        Err(Refused {
            code: "rate_limited",
            message: format!(
                "this token submits more than its limit of {rate} documents per second (`flowmesh server --submit-rate`); retry in {wait} s"
            ),
            retry_after: Some(wait),
        })
    }

    /// A place for one more open event stream of `token`, or 429.
    pub fn stream(&self, token: &str) -> Result<StreamSlot, Refused> {
        let open = {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            if streams.len() > 100_000 {
                streams.retain(|_, open| open.load(Ordering::Acquire) > 0);
            }
            streams.entry(token.to_string()).or_default().clone()
        };
        let before = open.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot { open };
        if before >= self.max_streams {
            drop(slot);
            return Err(Refused {
                code: "too_many_streams",
                message: format!(
                    "this token has {} event streams open, its limit (`flowmesh server --max-streams`); close one first",
                    self.max_streams
                ),
                retry_after: Some(1),
            });
        }
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_rate_through_then_says_when_to_come_back() {
        let limits = Limits::new(Some(5), 8);
        for _ in 0..5 {
            assert!(limits.submit("t", 1).is_ok());
        }
        let refused = limits.submit("t", 1).expect_err("over the rate");
        assert_eq!(refused.code, "rate_limited");
        assert_eq!(refused.retry_after, Some(1));
        assert!(limits.submit("other", 5).is_ok(), "each token has its own");
        assert!(
            limits.submit("other", 6).is_err(),
            "never more than the rate at once"
        );
        assert!(Limits::new(None, 8).submit("t", 1_000_000).is_ok());
    }

    #[test]
    fn streams_are_counted_while_open() {
        let limits = Limits::new(None, 2);
        let first = limits.stream("t").expect("one");
        let _second = limits.stream("t").expect("two");
        assert!(limits.stream("t").is_err(), "a third is refused");
        drop(first);
        assert!(
            limits.stream("t").is_ok(),
            "a closed stream frees its place"
        );
    }
}
