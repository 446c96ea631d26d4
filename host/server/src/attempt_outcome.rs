//! How an attempt's end changes its task, decided without touching the store.
//!
//! When an attempt ends — its worker reports an output or an error, or its
//! lease is lost — the task either succeeds, is retried, fails, or (when a
//! cancel was requested while it ran) is cancelled. [`decide`] makes that
//! choice from the few facts that matter ([`AttemptFacts`]), the way the
//! attempt ended ([`AttemptEnd`]), the time and the [`RetryPolicy`], and
//! returns a [`Decision`]: what to record for the attempt, and the task's
//! [`Next`] step, with every text shown to people already written. The store
//! then only applies the decision, in the same transaction that locked the
//! task.
//!
//! The rules:
//!
//! - A task being cancelled ends `cancelled`, however the attempt ended.
//! - An output without an error succeeds, with a [`ResultEnvelope`] whose
//!   summary says what ran where, for how long.
//! - An attempt its worker handed back ([`TaskErrorCode::Released`]) is
//!   retried at once and does not count against `maxAttempts`.
//! - A retryable error with attempts left is retried after a delay that
//!   starts at [`RetryPolicy::backoff_ms`] and doubles each attempt, up to
//!   [`RetryPolicy::max_backoff_ms`]; the failed worker is passed over for
//!   [`RetryPolicy::avoid_ms`] after that.
//! - Anything else fails the task with the attempt's error.

use flowmesh_types::api::{
    Completion, PluginRef, RESULT_SCHEMA_VERSION, ResultEnvelope, TaskState, WaitKind, Waiting,
};
use flowmesh_types::{TaskError, TaskErrorCode};

/// How retries are spaced and steered.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the second attempt; doubles each attempt.
    pub backoff_ms: i64,
    /// The most a delay grows to.
    pub max_backoff_ms: i64,
    /// For this long after the delay, the worker of the failed attempt does
    /// not get the task while others may.
    pub avoid_ms: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptEnd<'a> {
    /// The worker reported it.
    Reported(&'a Completion),
    /// The worker stopped heartbeating, or was replaced; the message says
    /// which.
    LeaseLost(String),
}

/// What [`decide`] needs to know of the task whose attempt ended.
#[derive(Debug, Clone, Copy)]
pub struct AttemptFacts<'a> {
    /// Its type, named in the result's summary.
    pub task_type: &'a str,
    /// Its state when the attempt ended: running, or cancelling.
    pub state: TaskState,
    /// The attempt that ended (1-based).
    pub attempt: u32,
    /// How many attempts it may have.
    pub max_attempts: u32,
    /// The name of the worker that ran the attempt (empty if unknown).
    pub worker: &'a str,
    /// The plugin the claim routed the attempt to (`None` for a task
    /// claimed before plugins were recorded): the result names it, whatever
    /// the worker says ran.
    pub plugin: Option<&'a PluginRef>,
}

/// What to record for an ended attempt, and what becomes of its task.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// How the attempt ended, as recorded with it: `succeeded`, `failed`,
    /// `released`, `lease_expired` or `cancelled`.
    pub outcome: &'static str,
    /// The attempt's error, as recorded with it (none when it produced an
    /// output).
    pub error: Option<TaskError>,
    /// The task's next step.
    pub next: Next,
}

/// What becomes of a task whose attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// It succeeded with this result.
    Succeed(ResultEnvelope),
    /// A cancel was requested while it ran: it ends cancelled with this
    /// error.
    Cancel(TaskError),
    /// It goes back to pending for its next attempt.
    Retry(Retry),
    /// It fails with this error.
    Fail(TaskError),
}

/// How a task is sent back to pending for its next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Not claimed before this time.
    pub run_after: i64,
    /// Until this time, the worker of the ended attempt does not get it
    /// while others may.
    pub avoid_until: i64,
    /// The error of the ended attempt, kept as the task's last error.
    pub error: TaskError,
    /// Why it waits meanwhile ([`WaitKind::RetryBackoff`]).
    pub waiting: Waiting,
    /// Whether the ended attempt counts against `maxAttempts`; one its
    /// worker handed back does not (the task gets one more).
    pub counts_attempt: bool,
}

/// Decides how the attempt of `task` that ended as `end` at `now` changes
/// the task, under `policy`.
pub fn decide(
    task: &AttemptFacts<'_>,
    end: &AttemptEnd<'_>,
    now: i64,
    policy: &RetryPolicy,
) -> Decision {
    let (outcome, ended) = match end {
        AttemptEnd::Reported(completion) => match (&completion.output, &completion.error) {
            (Some(output), None) => ("succeeded", Ok(envelope(task, completion, output))),
            (_, Some(error)) if error.code == TaskErrorCode::Released => {
                ("released", Err(error.clone()))
            }
            (_, Some(error)) => ("failed", Err(error.clone())),
            (None, None) => (
                "failed",
                Err(TaskError::new(
                    TaskErrorCode::InvalidOutput,
                    "the worker reported neither an output nor an error",
                )),
            ),
        },
        AttemptEnd::LeaseLost(message) => (
            "lease_expired",
            Err(TaskError::new(TaskErrorCode::LeaseExpired, message.clone())),
        ),
    };
    let error = ended.as_ref().err().cloned();
    if task.state == TaskState::Cancelling {
        return Decision {
            outcome: "cancelled",
            error,
            next: Next::Cancel(TaskError::new(
                TaskErrorCode::Cancelled,
                "cancelled while running",
            )),
        };
    }
    let next = match ended {
        Ok(result) => Next::Succeed(result),
        Err(error) => retry_or_fail(task, error, now, policy),
    };
    Decision {
        outcome,
        error,
        next,
    }
}

/// The result of an attempt that produced `output`.
fn envelope(
    task: &AttemptFacts<'_>,
    completion: &Completion,
    output: &serde_json::Value,
) -> ResultEnvelope {
    let plugin = task
        .plugin
        .or(completion.plugin.as_ref())
        .cloned()
        .unwrap_or_else(|| PluginRef {
            name: "?".into(),
            version: "?".into(),
            digest: "?".into(),
            local: false,
        });
    let summary = format!(
        "{} ran on {} in {} ms (attempt {}/{}, {} {})",
        task.task_type,
        task.worker,
        completion.elapsed_ms,
        task.attempt,
        task.max_attempts,
        plugin.name,
        plugin.version
    );
    ResultEnvelope {
        schema_version: RESULT_SCHEMA_VERSION,
        task_type: task.task_type.to_string(),
        plugin,
        output: output.clone(),
        summary,
        elapsed_ms: completion.elapsed_ms,
        attempt: task.attempt,
        worker: task.worker.to_string(),
    }
}

/// A retry if the attempt was handed back, or failed retryably with
/// attempts left; otherwise the task fails with `error`.
fn retry_or_fail(
    task: &AttemptFacts<'_>,
    error: TaskError,
    now: i64,
    policy: &RetryPolicy,
) -> Next {
    let released = error.code == TaskErrorCode::Released;
    if !(released || (error.is_retryable() && task.attempt < task.max_attempts)) {
        return Next::Fail(error);
    }
    let delay = if released {
        0
    } else {
        backoff(task.attempt, policy)
    };
    let run_after = now + delay;
    let waiting = Waiting {
        kind: WaitKind::RetryBackoff,
        message: format!(
            "attempt {} of {} failed ({}: {}); attempt {} runs after a {} ms delay, on another worker if one can take it",
            task.attempt,
            task.max_attempts,
            error.code,
            error.message,
            task.attempt + 1,
            delay
        ),
        counts: Default::default(),
    };
    Next::Retry(Retry {
        run_after,
        avoid_until: run_after + policy.avoid_ms,
        error,
        waiting,
        counts_attempt: !released,
    })
}

/// The delay after failed attempt `attempt` (1-based): the policy's backoff,
/// doubled for each earlier attempt (at most 20 times), capped at its
/// maximum.
fn backoff(attempt: u32, policy: &RetryPolicy) -> i64 {
    let shift = (attempt - 1).min(20);
    policy
        .backoff_ms
        .saturating_mul(1 << shift)
        .min(policy.max_backoff_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        backoff_ms: 100,
        max_backoff_ms: 1_000,
        avoid_ms: 5_000,
    };

    fn facts(state: TaskState, attempt: u32, max_attempts: u32) -> AttemptFacts<'static> {
        AttemptFacts {
            task_type: "echo",
            state,
            attempt,
            max_attempts,
            worker: "w1",
            plugin: None,
        }
    }

    fn completion(output: Option<serde_json::Value>, error: Option<TaskError>) -> Completion {
        Completion {
            task_id: "t1".into(),
            lease_token: "lease".into(),
            plugin: Some(PluginRef {
                name: "echo-plugin".into(),
                version: "1.2.3".into(),
                digest: "sha256:00".into(),
                local: false,
            }),
            elapsed_ms: 42,
            output,
            error,
        }
    }

    fn retryable() -> TaskError {
        TaskError::new(TaskErrorCode::Retryable, "try again")
    }

    fn retry(decision: &Decision) -> &Retry {
        match &decision.next {
            Next::Retry(retry) => retry,
            next => panic!("expected a retry, got {next:?}"),
        }
    }

    #[test]
    fn an_output_succeeds_with_a_summary() {
        let done = completion(Some(serde_json::json!({"ok": true})), None);
        let decision = decide(
            &facts(TaskState::Running, 2, 3),
            &AttemptEnd::Reported(&done),
            1_000,
            &POLICY,
        );
        assert_eq!(decision.outcome, "succeeded");
        assert_eq!(decision.error, None);
        let Next::Succeed(result) = decision.next else {
            panic!("expected success, got {:?}", decision.next);
        };
        assert_eq!(
            result.summary,
            "echo ran on w1 in 42 ms (attempt 2/3, echo-plugin 1.2.3)"
        );
        assert_eq!(result.schema_version, RESULT_SCHEMA_VERSION);
        assert_eq!(result.task_type, "echo");
        assert_eq!(result.output, serde_json::json!({"ok": true}));
        assert_eq!(result.elapsed_ms, 42);
        assert_eq!(result.attempt, 2);
        assert_eq!(result.worker, "w1");
        assert_eq!(result.plugin.digest, "sha256:00");
    }

    #[test]
    fn an_output_without_a_plugin_names_an_unknown_one() {
        let mut done = completion(Some(serde_json::json!(1)), None);
        done.plugin = None;
        let decision = decide(
            &facts(TaskState::Running, 1, 1),
            &AttemptEnd::Reported(&done),
            0,
            &POLICY,
        );
        let Next::Succeed(result) = decision.next else {
            panic!("expected success");
        };
        assert_eq!(result.summary, "echo ran on w1 in 42 ms (attempt 1/1, ? ?)");
        assert_eq!(
            result.plugin,
            PluginRef {
                name: "?".into(),
                version: "?".into(),
                digest: "?".into(),
                local: false,
            }
        );
    }

    #[test]
    fn the_result_names_the_plugin_the_task_was_routed_to_not_the_workers_word() {
        let done = completion(Some(serde_json::json!(1)), None);
        let routed = PluginRef {
            name: "echo".into(),
            version: "0.1.0".into(),
            digest: "sha256:installed".into(),
            local: false,
        };
        let task = AttemptFacts {
            plugin: Some(&routed),
            ..facts(TaskState::Running, 1, 1)
        };
        let decision = decide(&task, &AttemptEnd::Reported(&done), 0, &POLICY);
        let Next::Succeed(result) = decision.next else {
            panic!("expected success");
        };
        assert_eq!(result.plugin, routed);
    }

    #[test]
    fn a_retryable_failure_with_attempts_left_is_retried_after_a_backoff() {
        let failed = completion(None, Some(retryable()));
        let decision = decide(
            &facts(TaskState::Running, 1, 3),
            &AttemptEnd::Reported(&failed),
            10_000,
            &POLICY,
        );
        assert_eq!(decision.outcome, "failed");
        assert_eq!(decision.error, Some(retryable()));
        let retry = retry(&decision);
        assert_eq!(retry.run_after, 10_100);
        assert_eq!(retry.avoid_until, 15_100);
        assert_eq!(retry.error, retryable());
        assert!(retry.counts_attempt);
        assert_eq!(retry.waiting.kind, WaitKind::RetryBackoff);
        assert_eq!(retry.waiting.counts, Default::default());
        assert_eq!(
            retry.waiting.message,
            "attempt 1 of 3 failed (retryable: try again); attempt 2 runs after a 100 ms delay, \
             on another worker if one can take it"
        );
    }

    #[test]
    fn the_backoff_doubles_each_attempt_and_caps_at_the_maximum() {
        let failed = completion(None, Some(retryable()));
        let delays: Vec<i64> = (1..=6)
            .map(|attempt| {
                let decision = decide(
                    &facts(TaskState::Running, attempt, 10),
                    &AttemptEnd::Reported(&failed),
                    0,
                    &POLICY,
                );
                retry(&decision).run_after
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn the_backoff_doubles_at_most_twenty_times() {
        let policy = RetryPolicy {
            backoff_ms: 1,
            max_backoff_ms: i64::MAX,
            avoid_ms: 0,
        };
        assert_eq!(backoff(21, &policy), 1 << 20);
        assert_eq!(backoff(40, &policy), 1 << 20);
        let huge = RetryPolicy {
            backoff_ms: i64::MAX / 2,
            ..policy
        };
        assert_eq!(backoff(5, &huge), i64::MAX);
    }

    #[test]
    fn a_retryable_failure_on_the_last_attempt_fails() {
        let failed = completion(None, Some(retryable()));
        let decision = decide(
            &facts(TaskState::Running, 3, 3),
            &AttemptEnd::Reported(&failed),
            0,
            &POLICY,
        );
        assert_eq!(decision.outcome, "failed");
        assert_eq!(decision.error, Some(retryable()));
        assert_eq!(decision.next, Next::Fail(retryable()));
    }

    #[test]
    fn a_non_retryable_failure_fails_at_once() {
        let error = TaskError::new(TaskErrorCode::InvalidInput, "bad field");
        let failed = completion(None, Some(error.clone()));
        let decision = decide(
            &facts(TaskState::Running, 1, 5),
            &AttemptEnd::Reported(&failed),
            0,
            &POLICY,
        );
        assert_eq!(decision.outcome, "failed");
        assert_eq!(decision.error, Some(error.clone()));
        assert_eq!(decision.next, Next::Fail(error));
    }

    #[test]
    fn an_error_wins_over_an_output() {
        let error = TaskError::new(TaskErrorCode::Trap, "unreachable");
        let both = completion(Some(serde_json::json!(1)), Some(error.clone()));
        let decision = decide(
            &facts(TaskState::Running, 1, 1),
            &AttemptEnd::Reported(&both),
            0,
            &POLICY,
        );
        assert_eq!(decision.outcome, "failed");
        assert_eq!(decision.next, Next::Fail(error));
    }

    #[test]
    fn neither_output_nor_error_is_an_invalid_output() {
        let empty = completion(None, None);
        let decision = decide(
            &facts(TaskState::Running, 1, 3),
            &AttemptEnd::Reported(&empty),
            0,
            &POLICY,
        );
        let error = TaskError::new(
            TaskErrorCode::InvalidOutput,
            "the worker reported neither an output nor an error",
        );
        assert_eq!(decision.outcome, "failed");
        assert_eq!(decision.error, Some(error.clone()));
        assert_eq!(decision.next, Next::Fail(error));
    }

    #[test]
    fn a_handed_back_attempt_is_retried_at_once_and_does_not_count() {
        let error = TaskError::new(TaskErrorCode::Released, "worker shutting down");
        let released = completion(None, Some(error.clone()));
        // Even on its last attempt.
        let decision = decide(
            &facts(TaskState::Running, 2, 2),
            &AttemptEnd::Reported(&released),
            7_000,
            &POLICY,
        );
        assert_eq!(decision.outcome, "released");
        assert_eq!(decision.error, Some(error.clone()));
        let retry = retry(&decision);
        assert_eq!(retry.run_after, 7_000);
        assert_eq!(retry.avoid_until, 12_000);
        assert!(!retry.counts_attempt);
        assert_eq!(retry.error, error);
        assert_eq!(
            retry.waiting.message,
            "attempt 2 of 2 failed (released: worker shutting down); attempt 3 runs after a 0 ms \
             delay, on another worker if one can take it"
        );
    }

    #[test]
    fn a_lost_lease_is_retried_while_attempts_remain() {
        let lost = AttemptEnd::LeaseLost("the lease of worker w1 expired".into());
        let decision = decide(&facts(TaskState::Running, 1, 2), &lost, 0, &POLICY);
        let error = TaskError::new(
            TaskErrorCode::LeaseExpired,
            "the lease of worker w1 expired",
        );
        assert_eq!(decision.outcome, "lease_expired");
        assert_eq!(decision.error, Some(error.clone()));
        let retry = retry(&decision);
        assert_eq!(retry.run_after, 100);
        assert!(retry.counts_attempt);
        assert_eq!(retry.error, error);

        let decision = decide(&facts(TaskState::Running, 2, 2), &lost, 0, &POLICY);
        assert_eq!(decision.outcome, "lease_expired");
        assert_eq!(decision.next, Next::Fail(error));
    }

    #[test]
    fn a_task_being_cancelled_is_cancelled_however_the_attempt_ended() {
        let cancelled = Next::Cancel(TaskError::new(
            TaskErrorCode::Cancelled,
            "cancelled while running",
        ));
        let done = completion(Some(serde_json::json!(1)), None);
        let failed = completion(None, Some(retryable()));
        let lost = AttemptEnd::LeaseLost("gone".into());
        let cancelling = facts(TaskState::Cancelling, 1, 3);

        let decision = decide(&cancelling, &AttemptEnd::Reported(&done), 0, &POLICY);
        assert_eq!(decision.outcome, "cancelled");
        assert_eq!(decision.error, None);
        assert_eq!(decision.next, cancelled);

        let decision = decide(&cancelling, &AttemptEnd::Reported(&failed), 0, &POLICY);
        assert_eq!(decision.outcome, "cancelled");
        assert_eq!(decision.error, Some(retryable()));
        assert_eq!(decision.next, cancelled);

        let decision = decide(&cancelling, &lost, 0, &POLICY);
        assert_eq!(decision.outcome, "cancelled");
        assert_eq!(
            decision.error,
            Some(TaskError::new(TaskErrorCode::LeaseExpired, "gone"))
        );
        assert_eq!(decision.next, cancelled);
    }
}
