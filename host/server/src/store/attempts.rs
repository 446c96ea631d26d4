//! Attempts: claiming pending tasks, and ending the attempts workers hold —
//! reported completions, expired leases, and the tasks of a worker that
//! registered again.
//!
//! How an ended attempt changes its task is decided by
//! [`crate::attempt_outcome::decide`], a pure function; this module locks the
//! task, records the attempt, and applies the decision with SQL and events,
//! all in one transaction. (Lease renewals are part of the heartbeat, in
//! `workers.rs`.)

use flowmesh_types::api::{
    ClaimedTask, Completion, CompletionVerdict, EventBody, TaskEvents, TaskState,
};
use sqlx::{Any, AssertSqlSafe};

use super::write_tx::WriteTx;

use std::collections::BTreeMap;

use super::events::{NewEvents, StoredEvent};
use super::fair_shares::{TenantRules, charge};
use super::rows::{get_i64, get_opt_i64, get_str};
use super::task_record::{LockedTask, hardware_from_row};
use super::terminal::{Ending, finish_all};
use super::{Store, StoreError, decode_json, encode_json, sql};
use crate::attempt_outcome::{self, AttemptEnd, Next, RetryPolicy};

/// The most tasks one claim hands out.
const MAX_CLAIM: u32 = 256;

/// What one claim asks: see [`Store::claim`].
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The registration claiming.
    pub worker_id: &'a str,
    /// The token it must belong to.
    pub token_id: &'a str,
    /// At most this many tasks.
    pub max: u32,
    /// At most this many pending rows looked at per tenant and task type,
    /// the oldest of each.
    pub scan: u32,
    /// Where each tenant's tasks may run, its share and its limits.
    pub rules: &'a TenantRules,
}

/// `query`, the claim statement (or its plan), with `claim`'s parameters.
pub(super) fn bind_claim<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    claim: &Claim<'q>,
    now: i64,
    lease_ttl_ms: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let max = claim.max.min(MAX_CLAIM);
    let query = query
        .bind(claim.worker_id)
        .bind(now)
        .bind(now + lease_ttl_ms)
        .bind(i64::from(max))
        // Of each tenant and type, the oldest `max` that fit are enough: the
        // claim takes a tenant's oldest first, and no more than `max`.
        .bind(i64::from(max))
        .bind(claim.token_id);
    claim.rules.bind(query).bind(i64::from(claim.scan.max(max)))
}

/// What a worker hands over and asks for in one round trip: see
/// [`Store::exchange`].
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The claim (`max` 0 claims nothing).
    pub claim: Claim<'a>,
    /// Events of running tasks.
    pub events: &'a [TaskEvents],
    /// Outcomes of attempts.
    pub completions: &'a [Completion],
}

/// What [`Store::exchange`] did.
#[derive(Debug, Default)]
pub struct Exchanged {
    /// One per completion, in order.
    pub verdicts: Vec<CompletionVerdict>,
    /// The tasks now leased to the worker, by id.
    pub claimed: Vec<ClaimedTask>,
    /// The events written.
    pub events: Vec<StoredEvent>,
    /// Whether a stage of some workflow finished: the releaser has work.
    /// (A finished task that is no stage gives it none, and a worker's
    /// round trips must not wake it for nothing.)
    pub stages_finished: bool,
}

impl Store {
    /// Claims up to `max` pending tasks for registration `claim.worker_id`
    /// in one statement: only if the registration is live and belongs to
    /// `claim.token_id`; only tasks of its pool (its tenant's, or for a
    /// shared worker those of the tenants that allow shared workers); only
    /// types it is served, only requests that fit its free slots and
    /// hardware; each tenant's oldest first, the tenants in turn by their
    /// fair shares ([`super::fair_shares`]), none past its running limit.
    /// Looks at no more than the `claim.scan` oldest pending tasks of each
    /// tenant and task type, and keeps the oldest `max` of those that fit.
    pub async fn claim(
        &self,
        claim: &Claim<'_>,
        now: i64,
        lease_ttl_ms: i64,
    ) -> Result<(Vec<ClaimedTask>, Vec<StoredEvent>), StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut events = NewEvents::default();
        let claimed = self
            .claim_in(&mut tx, claim, now, lease_ttl_ms, &mut events)
            .await?;
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok((claimed, events))
    }

    /// The exchange of [`Store::exchange`] inside `tx`, its events added to
    /// `events` (the answer's own are left empty).
    pub(super) async fn exchange_in(
        &self,
        tx: &mut WriteTx<'_>,
        exchange: &Exchange<'_>,
        now: i64,
        lease_ttl_ms: i64,
        retry: &RetryPolicy,
        events: &mut NewEvents,
    ) -> Result<Option<Exchanged>, StoreError> {
        let claim = &exchange.claim;
        // The registration's row is locked first, before any task row,
        // as the heartbeat's is: the two never wait on each other.
        let owned = sqlx::query(self.dialect.worker_of_token_for_update)
            .bind(claim.worker_id)
            .bind(claim.token_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let delivers = !exchange.events.is_empty() || !exchange.completions.is_empty();
        if !owned {
            // Nothing to claim either: the claim checks the same.
            return Ok((!delivers).then(Exchanged::default));
        }
        let workflows_before = events.workflows_noted();
        self.append_events_in(tx, claim.worker_id, exchange.events, events)
            .await?;
        let verdicts = self
            .complete_in(
                tx,
                claim.worker_id,
                exchange.completions,
                now,
                retry,
                events,
            )
            .await?;
        let claimed = if claim.max > 0 {
            self.claim_in(tx, claim, now, lease_ttl_ms, events).await?
        } else {
            Vec::new()
        };
        Ok(Some(Exchanged {
            verdicts,
            claimed,
            events: Vec::new(),
            stages_finished: events.workflows_noted() > workflows_before,
        }))
    }

    /// The claim of [`Store::claim`] inside `tx`, its events added to
    /// `events`.
    async fn claim_in(
        &self,
        tx: &mut WriteTx<'_>,
        claim: &Claim<'_>,
        now: i64,
        lease_ttl_ms: i64,
        events: &mut NewEvents,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let query = bind_claim(sqlx::query(self.dialect.claim), claim, now, lease_ttl_ms);
        let rows = query.fetch_all(&mut *tx).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut started: BTreeMap<String, i64> = BTreeMap::new();
        for row in &rows {
            *started.entry(get_str(row, "tenant")?).or_default() += 1;
            let task = ClaimedTask {
                id: get_str(row, "id")?,
                task_type: get_str(row, "task_type")?,
                spec: decode_json("spec", &get_str(row, "spec")?)?,
                attempt: get_i64(row, "attempt")? as u32,
                lease_token: get_str(row, "lease_token")?,
                timeout_ms: get_opt_i64(row, "timeout_ms")?.map(|ms| ms as u64),
                hardware: hardware_from_row(row)?,
            };
            events.push(
                &task.id,
                EventBody::State {
                    state: TaskState::Running,
                    attempt: task.attempt,
                    message: None,
                },
            );
            claimed.push(task);
        }
        charge(tx, &started, claim.rules).await?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    /// Records the outcomes a worker reports. Each is fenced: it is accepted
    /// only if its lease token is the task's current one, held by this
    /// worker, and not expired.
    pub async fn complete(
        &self,
        worker_id: &str,
        completions: &[Completion],
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<(Vec<CompletionVerdict>, Vec<StoredEvent>), StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut events = NewEvents::default();
        let verdicts = self
            .complete_in(&mut tx, worker_id, completions, now, retry, &mut events)
            .await?;
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok((verdicts, events))
    }

    /// The completions of [`Store::complete`] inside `tx`.
    async fn complete_in(
        &self,
        tx: &mut WriteTx<'_>,
        worker_id: &str,
        completions: &[Completion],
        now: i64,
        retry: &RetryPolicy,
        events: &mut NewEvents,
    ) -> Result<Vec<CompletionVerdict>, StoreError> {
        let mut verdicts = vec![CompletionVerdict::StaleLease; completions.len()];
        if completions.is_empty() {
            return Ok(verdicts);
        }
        let ids: Vec<&str> = completions
            .iter()
            .map(|completion| completion.task_id.as_str())
            .collect();
        // One statement finds (and locks, in id order) every task whose
        // lease this worker holds; a completion counts only with its task's
        // current lease token.
        let rows = sqlx::query(self.dialect.fenced_tasks)
            .bind(encode_json(&ids))
            .bind(worker_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut index_of: std::collections::HashMap<&str, usize> = completions
            .iter()
            .enumerate()
            .map(|(index, completion)| (completion.task_id.as_str(), index))
            .collect();
        let mut ended = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = LockedTask::from_row(row)?;
            let token = get_str(row, "lease_token")?;
            let Some(index) = index_of.remove(task.id.as_str()) else {
                continue;
            };
            if completions[index].lease_token != token {
                continue;
            }
            verdicts[index] = CompletionVerdict::Accepted;
            ended.push((task, AttemptEnd::Reported(&completions[index])));
        }
        end_attempts(tx, &ended, now, retry, events).await?;
        Ok(verdicts)
    }

    /// Ends the attempts whose lease expired before `now`: they are retried
    /// (another worker preferred) or fail when out of attempts; a cancelling
    /// task becomes cancelled. Returns how many and the events.
    pub async fn expire_leases(
        &self,
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<(usize, Vec<StoredEvent>), StoreError> {
        let query = sqlx::query(self.dialect.expired_leases).bind(now);
        self.lose_leases(query, now, retry, |worker| {
            format!("the lease of worker {worker} expired: it stopped heartbeating")
        })
        .await
    }

    /// Ends the attempts held by registration `worker_id`, which was replaced
    /// by a newer registration of the same worker (it restarted).
    pub async fn release_worker_tasks(
        &self,
        worker_id: &str,
        now: i64,
        retry: &RetryPolicy,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = sqlx::query(self.dialect.tasks_of_worker).bind(worker_id);
        let (_, events) = self
            .lose_leases(query, now, retry, |worker| {
                format!(
                    "worker {worker} restarted and registered again; its earlier attempt is lost"
                )
            })
            .await?;
        Ok(events)
    }

    /// Ends, as lost leases, the attempts of the locked rows `query` selects;
    /// `message` says why, given the worker's name.
    async fn lose_leases(
        &self,
        query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
        now: i64,
        retry: &RetryPolicy,
        message: impl Fn(&str) -> String,
    ) -> Result<(usize, Vec<StoredEvent>), StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let rows = query.fetch_all(&mut tx).await?;
        let mut events = NewEvents::default();
        let mut ended = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = LockedTask::from_row(row)?;
            let lost = AttemptEnd::LeaseLost(message(task.worker_name.as_deref().unwrap_or("?")));
            ended.push((task, lost));
        }
        end_attempts(&mut tx, &ended, now, retry, &mut events).await?;
        let events = events.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok((rows.len(), events))
    }
}

/// Records how the current attempts of locked tasks ended and applies each
/// [`attempt_outcome::decide`] decision: the attempts in one multi-row
/// insert, the terminal states in one update ([`finish_all`]), retries one
/// by one (they are rare).
async fn end_attempts(
    tx: &mut WriteTx<'_>,
    ended: &[(LockedTask, AttemptEnd<'_>)],
    now: i64,
    retry: &RetryPolicy,
    events: &mut NewEvents,
) -> Result<(), StoreError> {
    if ended.is_empty() {
        return Ok(());
    }
    let decisions: Vec<_> = ended
        .iter()
        .map(|(task, end)| {
            let worker = task.worker_name.clone().unwrap_or_default();
            let decision = attempt_outcome::decide(&task.facts(&worker), end, now, retry);
            (task, worker, decision)
        })
        .collect();
    let marks = sql::Marks::of(tx);
    for chunk in sql::padded_chunks(&decisions, 8) {
        let statement = format!(
            "{}{}{}",
            sql::INSERT_ATTEMPTS,
            chunk.values(marks),
            sql::INSERT_ATTEMPTS_END
        );
        let mut query = sqlx::query(AssertSqlSafe(statement));
        for row in chunk.rows() {
            query = query
                .bind(row.map(|(task, _, _)| task.id.as_str()))
                .bind(row.map(|(task, _, _)| i64::from(task.attempt)))
                .bind(row.map(|(_, worker, _)| worker.as_str()))
                .bind(row.map(|(task, _, _)| task.started_at.unwrap_or(now)))
                .bind(row.map(|_| now))
                .bind(row.map(|(_, _, decision)| decision.outcome))
                .bind(row.and_then(|(_, _, decision)| decision.error.as_ref().map(encode_json)))
                .bind(row.and_then(|(task, _, _)| task.plugin.as_ref().map(encode_json)));
        }
        query.execute(&mut *tx).await?;
    }
    let mut endings = Vec::with_capacity(decisions.len());
    for (task, worker, decision) in decisions {
        let (state, result, error) = match decision.next {
            Next::Succeed(result) => (TaskState::Succeeded, Some(result), None),
            Next::Cancel(error) => (TaskState::Cancelled, None, Some(error)),
            Next::Fail(error) => (TaskState::Failed, None, Some(error)),
            Next::Retry(next) => {
                sqlx::query(sql::RETRY_TASK)
                    .bind(task.seq)
                    .bind(next.run_after)
                    .bind(&worker)
                    .bind(next.avoid_until)
                    .bind(encode_json(&next.error))
                    .bind(now)
                    .bind(encode_json(&next.waiting))
                    .bind(i64::from(!next.counts_attempt))
                    .execute(&mut *tx)
                    .await?;
                events.push(
                    &task.id,
                    EventBody::State {
                        state: TaskState::Pending,
                        attempt: task.attempt + 1,
                        message: Some(next.waiting.message),
                    },
                );
                continue;
            }
        };
        endings.push(Ending {
            task,
            state,
            result,
            error,
        });
    }
    finish_all(tx, endings, now, events).await
}
