//! Workers' round trips, many in one write transaction.
//!
//! A round trip is what a worker asks of the store in one request: an
//! exchange (the events and outcomes it hands over, then its claim,
//! [`Store::exchange`]) or a heartbeat ([`RoundTrip::Heartbeat`]). Each is
//! a handful of statements; alone, each also pays for a transaction.
//! [`Store::round_trips`] runs many in one transaction, each exactly as it
//! would run alone and in the order given, so each sees what the ones before
//! it wrote (a claim never takes a task an earlier claim of the group took,
//! and is charged after it). Their events are written together, last.
//! The server's writer of round trips (`crate::round_trips`) groups them on
//! SQLite, where every write goes through one connection anyway.

use flowmesh_types::api::{Heartbeat, ServedTypes};

use super::events::NewEvents;
use super::{Exchange, Exchanged, HeartbeatOutcome, RetryPolicy, Store, StoreError};

/// One worker's round trip, as [`Store::round_trips`] runs it.
#[derive(Debug, Clone, Copy)]
pub enum RoundTrip<'a> {
    /// Events, outcomes and a claim: see [`Store::exchange`].
    Exchange(Exchange<'a>),
    /// A heartbeat of registration `beat.worker_id` made with token
    /// `token_id`: renews the leases the worker lists and says which of
    /// them to cancel or drop; `None` if the registration is not live or
    /// not this token's (the worker must register again). What changed on
    /// the worker (capabilities with the types it is now `served`, labels,
    /// hardware) is stored with it.
    Heartbeat {
        /// What the worker sent.
        beat: &'a Heartbeat,
        /// The token the request was made with.
        token_id: &'a str,
        /// The types the worker is now served, when it sent capabilities.
        served: Option<&'a ServedTypes>,
    },
}

/// What a [`RoundTrip`] did, as its own method would answer.
#[derive(Debug)]
pub enum RoundTripDone {
    /// [`Store::exchange`]'s answer.
    Exchanged(Option<Exchanged>),
    /// A heartbeat's answer.
    Heartbeat(Option<HeartbeatOutcome>),
}

impl RoundTripDone {
    /// An exchange's answer ([`Store::exchange`]); `None` also for a
    /// heartbeat's, which an exchange never gets.
    pub fn exchanged(self) -> Option<Exchanged> {
        match self {
            Self::Exchanged(exchanged) => exchanged,
            Self::Heartbeat(_) => None,
        }
    }

    /// A heartbeat's answer (see [`RoundTrip::Heartbeat`]); `None` also for
    /// an exchange's, which a heartbeat never gets.
    pub fn heartbeat(self) -> Option<HeartbeatOutcome> {
        match self {
            Self::Heartbeat(outcome) => outcome,
            Self::Exchanged(_) => None,
        }
    }
}

impl Store {
    /// A worker's round trip in one transaction: the events it reports (of
    /// the leases it holds), then its completions (each fenced), then the
    /// claim, so the slots the completions free count. `None` when the
    /// registration does not belong to `exchange.claim.token_id` and there
    /// was something to deliver (nothing is written then).
    pub async fn exchange(
        &self,
        exchange: &Exchange<'_>,
        now: i64,
        lease_ttl_ms: i64,
        retry: &RetryPolicy,
    ) -> Result<Option<Exchanged>, StoreError> {
        let trip = RoundTrip::Exchange(*exchange);
        Ok(self
            .round_trip(trip, now, lease_ttl_ms, retry)
            .await?
            .exchanged())
    }

    /// One round trip in a transaction of its own.
    pub async fn round_trip(
        &self,
        trip: RoundTrip<'_>,
        now: i64,
        lease_ttl_ms: i64,
        retry: &RetryPolicy,
    ) -> Result<RoundTripDone, StoreError> {
        self.round_trips(&[trip], now, lease_ttl_ms, retry)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Write("a round trip went unanswered".into()))
    }

    /// Whether running many round trips in one transaction pays: on SQLite,
    /// whose writes all go through one connection, one after another. On
    /// PostgreSQL they run side by side, each in its own transaction.
    pub fn groups_round_trips(&self) -> bool {
        self.writing.is_some()
    }

    /// Runs `trips` in one write transaction, in order, each as its own
    /// method would alone; their answers, in the same order, once committed.
    /// Any error fails them all and writes nothing (the caller may run each
    /// again alone).
    ///
    /// Several trips at once suit SQLite's one writer
    /// ([`Store::groups_round_trips`]). On PostgreSQL a group would lock a
    /// second worker's row after the first one's task rows, against the
    /// order single exchanges and heartbeats keep, and could deadlock with
    /// them: the server gives it one trip at a time there.
    pub async fn round_trips(
        &self,
        trips: &[RoundTrip<'_>],
        now: i64,
        lease_ttl_ms: i64,
        retry: &RetryPolicy,
    ) -> Result<Vec<RoundTripDone>, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut events = NewEvents::default();
        let mut done = Vec::with_capacity(trips.len());
        // How many of the events each round trip added, in order.
        let mut added = Vec::with_capacity(trips.len());
        for trip in trips {
            let before = events.len();
            done.push(match trip {
                RoundTrip::Exchange(exchange) => RoundTripDone::Exchanged(
                    self.exchange_in(&mut tx, exchange, now, lease_ttl_ms, retry, &mut events)
                        .await?,
                ),
                RoundTrip::Heartbeat {
                    beat,
                    token_id,
                    served,
                } => RoundTripDone::Heartbeat(
                    self.heartbeat_in(&mut tx, beat, token_id, *served, now, lease_ttl_ms)
                        .await?,
                ),
            });
            added.push(events.len() - before);
        }
        let mut written = events.write(&mut tx, now).await?.into_iter();
        tx.commit().await?;
        for (done, added) in done.iter_mut().zip(added) {
            let own: Vec<_> = written.by_ref().take(added).collect();
            if let RoundTripDone::Exchanged(Some(exchanged)) = done {
                exchanged.events = own;
            }
        }
        Ok(done)
    }
}
