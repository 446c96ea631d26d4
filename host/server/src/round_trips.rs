//! Group commit for workers' round trips.
//!
//! A worker's round trip — an exchange (the events and outcomes it hands
//! over, then its claim) or a heartbeat — is a handful of statements. On
//! SQLite every write goes through one connection, so a fleet's round trips
//! queue for it, and each one alone pays for a transaction of its own:
//! taking the writer, `BEGIN`, and a commit that writes the WAL. Here they
//! are handed to one writer instead, which runs whatever has queued up since
//! its last write in one transaction ([`Store::round_trips`]), each round
//! trip as it would run alone, in the order they arrived. With one worker it
//! adds nothing but a hand-off: the writer takes what is there without
//! waiting for more.
//!
//! Each caller's answer comes after the commit, so what a worker is told
//! (its tasks, its verdicts, its leases) is durable. If the grouped
//! transaction fails, each round trip in it runs again alone, so one that
//! cannot be written (its error is its own) does not fail the others.
//!
//! PostgreSQL takes concurrent writers, and round trips there run in the
//! caller's task, each in its own transaction, as before.

use std::sync::Arc;

use flowmesh_types::api::{Completion, Heartbeat, ServedTypes, TaskEvents};
use flowmesh_types::{TaskError, TaskErrorCode};
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::store::{
    Claim, Exchange, Exchanged, HeartbeatOutcome, RetryPolicy, RoundTrip, RoundTripDone, Store,
    StoreError, TenantRules,
};

/// Most round trips in one write.
const BATCH: usize = 128;

/// What a round trip's transaction needs besides the request: the same for
/// every round trip of a server.
pub struct Rules {
    /// Where tenants' tasks may run, their shares and limits.
    pub tenants: TenantRules,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
    /// How long a lease lasts.
    pub lease_ttl_ms: i64,
    /// How many pending rows a claim looks at per tenant and type.
    pub claim_scan: u32,
}

impl Rules {
    /// The rules `config` sets.
    pub fn of(config: &ServerConfig) -> Self {
        Self {
            tenants: config.tenants.claim_rules(),
            retry: RetryPolicy {
                backoff_ms: config.retry_backoff.as_millis() as i64,
                max_backoff_ms: config.max_retry_backoff.as_millis() as i64,
                avoid_ms: config.retry_avoid.as_millis() as i64,
            },
            lease_ttl_ms: config.lease_ttl.as_millis() as i64,
            claim_scan: config.claim_scan,
        }
    }
}

/// A worker's exchange, owned, so that the writer can run it.
pub struct ExchangeRequest {
    /// The registration.
    pub worker_id: String,
    /// The token it was made with, as the caller authenticated.
    pub token_id: String,
    /// The most tasks to claim (0: none).
    pub max_tasks: u32,
    /// Events of running tasks.
    pub events: Vec<TaskEvents>,
    /// Outcomes of attempts (shared with the caller, which counts them
    /// once they are in).
    pub completions: Arc<Vec<Completion>>,
}

/// A worker's heartbeat, owned.
pub struct HeartbeatRequest {
    /// What the worker sent.
    pub beat: Heartbeat,
    /// The token it was made with, as the caller authenticated.
    pub token_id: String,
    /// The task types it is now served, when it sent its capabilities.
    pub served: Option<ServedTypes>,
}

enum Request {
    Exchange(ExchangeRequest),
    Heartbeat(HeartbeatRequest),
}

impl Request {
    fn round_trip<'a>(&'a self, rules: &'a Rules) -> RoundTrip<'a> {
        match self {
            Request::Exchange(request) => RoundTrip::Exchange(Exchange {
                claim: Claim {
                    worker_id: &request.worker_id,
                    token_id: &request.token_id,
                    max: request.max_tasks,
                    scan: rules.claim_scan,
                    rules: &rules.tenants,
                },
                events: &request.events,
                completions: &request.completions,
            }),
            Request::Heartbeat(request) => RoundTrip::Heartbeat {
                beat: &request.beat,
                token_id: &request.token_id,
                served: request.served.as_ref(),
            },
        }
    }
}

struct Queued {
    request: Request,
    done: oneshot::Sender<Result<RoundTripDone, StoreError>>,
}

/// Where round trips go: the writer's queue on SQLite, the caller's own
/// transaction on PostgreSQL.
pub struct RoundTrips {
    store: Store,
    rules: Arc<Rules>,
    sender: Option<mpsc::Sender<Queued>>,
}

impl RoundTrips {
    /// Starts the writer when `store` groups round trips
    /// ([`Store::groups_round_trips`]); it stops when this handle is dropped.
    pub fn start(store: Store, rules: Rules) -> Self {
        let rules = Arc::new(rules);
        let sender = store.groups_round_trips().then(|| {
            let (sender, receiver) = mpsc::channel(4 * BATCH);
            tokio::spawn(write_loop(store.clone(), rules.clone(), receiver));
            sender
        });
        Self {
            store,
            rules,
            sender,
        }
    }

    /// The rules every round trip runs under.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Runs an exchange: `None` when the registration is not the token's
    /// and it delivered something (see [`Store::exchange`]).
    pub async fn exchange(
        &self,
        request: ExchangeRequest,
    ) -> Result<Option<Exchanged>, StoreError> {
        Ok(self.run(Request::Exchange(request)).await?.exchanged())
    }

    /// Records a heartbeat: `None` when the registration is not live or
    /// not the token's (see [`RoundTrip::Heartbeat`]).
    pub async fn heartbeat(
        &self,
        request: HeartbeatRequest,
    ) -> Result<Option<HeartbeatOutcome>, StoreError> {
        Ok(self.run(Request::Heartbeat(request)).await?.heartbeat())
    }

    async fn run(&self, request: Request) -> Result<RoundTripDone, StoreError> {
        let Some(sender) = &self.sender else {
            return run_alone(&self.store, &self.rules, &request).await;
        };
        let (done, answer) = oneshot::channel();
        sender
            .send(Queued { request, done })
            .await
            .map_err(|_| stopped())?;
        // The writer drops a request unanswered only when it stops.
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Write(
        "the writer of workers' round trips has stopped: the server is shutting down".into(),
    )
}

/// Runs one round trip in a transaction of its own.
async fn run_alone(
    store: &Store,
    rules: &Rules,
    request: &Request,
) -> Result<RoundTripDone, StoreError> {
    store
        .round_trip(
            request.round_trip(rules),
            now_ms(),
            rules.lease_ttl_ms,
            &rules.retry,
        )
        .await
}

async fn write_loop(store: Store, rules: Arc<Rules>, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut unheard = Vec::new();
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        // A caller that went away (its worker hung up) is not run, as if
        // its request had not arrived: the worker sends its outcomes again.
        batch.retain(|queued| !queued.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let trips: Vec<RoundTrip<'_>> = batch
            .iter()
            .map(|queued| queued.request.round_trip(&rules))
            .collect();
        let grouped = store
            .round_trips(&trips, now_ms(), rules.lease_ttl_ms, &rules.retry)
            .await;
        drop(trips);
        match grouped {
            Ok(done) => {
                for (queued, done) in batch.drain(..).zip(done) {
                    unheard.extend(answer(queued, Ok(done)));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some(queued) = batch.pop() {
                    let _ = queued.done.send(Err(error));
                }
            }
            // A full disk fails every write: running each again would only
            // fail each again while the others wait.
            Err(error) if error.disk_full() => {
                let message = error.to_string();
                for queued in batch.drain(..) {
                    let _ = queued.done.send(Err(StoreError::DiskFull(message.clone())));
                }
            }
            Err(error) => {
                // One round trip's error must not fail the others.
                tracing::warn!(%error, round_trips = batch.len(), "a grouped write of round trips failed; running each alone");
                for queued in batch.drain(..) {
                    if queued.done.is_closed() {
                        continue;
                    }
                    let result = run_alone(&store, &rules, &queued.request).await;
                    unheard.extend(answer(queued, result));
                }
            }
        }
        // Every caller still there has its answer: only now are the claims
        // of those that left handed back.
        for claim in unheard.drain(..) {
            hand_back(&store, &rules, claim).await;
        }
    }
}

/// What a claim gave a caller that was gone when its answer came: its
/// registration, and an outcome handing back each attempt.
struct Unheard {
    worker_id: String,
    released: Vec<Completion>,
}

/// Hands `result` to its caller. A caller that hung up after its group
/// began is never told what its claim took: that claim is returned, to be
/// handed back.
fn answer(
    Queued { request, done }: Queued,
    result: Result<RoundTripDone, StoreError>,
) -> Option<Unheard> {
    let Err(Ok(unheard)) = done.send(result) else {
        return None;
    };
    let Request::Exchange(request) = request else {
        return None;
    };
    let exchanged = unheard.exchanged()?;
    (!exchanged.claimed.is_empty()).then(|| Unheard {
        worker_id: request.worker_id,
        released: exchanged
            .claimed
            .into_iter()
            .map(|task| Completion {
                task_id: task.id,
                lease_token: task.lease_token,
                plugin: None,
                elapsed_ms: 0,
                output: None,
                error: Some(TaskError::new(
                    TaskErrorCode::Released,
                    "the worker hung up before its claim's answer reached it",
                )),
            })
            .collect(),
    })
}

/// Hands back the attempts of a claim whose caller was gone, as a worker
/// hands back an attempt it will not run (a fenced outcome, `released`:
/// retried at once, not counted), where their leases would otherwise hold
/// the tasks until they ran out. Their events are stored, not published:
/// watchers read them at their next look at the store, and claims waiting
/// for work find the tasks at their next re-check.
async fn hand_back(store: &Store, rules: &Rules, unheard: Unheard) {
    let worker_id = unheard.worker_id.as_str();
    let tasks = unheard.released.len();
    match store
        .complete(worker_id, &unheard.released, now_ms(), &rules.retry)
        .await
    {
        Ok(_) => tracing::warn!(
            worker_id,
            tasks,
            "a worker hung up before its claim's answer reached it; the tasks it was given are handed back"
        ),
        Err(error) => tracing::warn!(
            worker_id,
            %error,
            "a worker hung up before its claim's answer reached it; the tasks it was given wait for their leases to run out"
        ),
    }
}
