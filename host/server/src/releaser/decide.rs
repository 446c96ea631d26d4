//! One held-back stage's fate, decided from its workflow's stages as read:
//! wait, release with its placeholders resolved and its spec checked again,
//! end it (failed or skipped), or look again later. Reads nothing but the
//! plugin check; [`super::plan`] turns the decisions into writes.

use std::collections::HashMap;

use flowmesh_types::api::TaskState;
use flowmesh_types::placeholder::{self, Reference, Substitution, excerpt};
use flowmesh_types::{FieldError, TaskError, TaskErrorCode};
use serde_json::{Map, Value, json};

use super::MAX_STAGE_CHECKS;
use crate::admission::{RejectionKind, check_resolved};
use crate::state::{AppState, now_ms};
use crate::store::{StagePlan, TaskRecord, WorkflowRecord};
use crate::validation::{is_within, normalize_path};

/// What happens to one held-back stage now.
pub(super) enum Decision {
    /// An upstream stage has not finished.
    Wait,
    /// Its check could not run on this server yet: look again later.
    Retry(String),
    /// Queue it with these resolved plugin fields.
    Release(Map<String, Value>, String),
    /// End it without running it.
    End(TaskState, TaskError),
}

pub(super) async fn decide(
    state: &AppState,
    workflow: &WorkflowRecord,
    stage: &TaskRecord,
    by_name: &HashMap<&str, &TaskRecord>,
) -> Decision {
    let plan = stage.plan.clone().unwrap_or_default();
    let upstream: Vec<(&str, Option<&TaskRecord>)> = plan
        .depends_on
        .iter()
        .map(|name| (name.as_str(), by_name.get(name.as_str()).copied()))
        .collect();
    if upstream
        .iter()
        .any(|(_, task)| task.is_some_and(|task| !task.state.is_terminal()))
    {
        return Decision::Wait;
    }
    if let Some(end) = upstream_outcome(&upstream) {
        return end;
    }
    if let Some(end) = check_condition(&plan, by_name) {
        return end;
    }
    let lookup = |reference: &Reference| lookup(reference, workflow, by_name);
    let plugin_fields = stage.spec.as_object().cloned().unwrap_or_default();
    let (resolved, substitutions) = match placeholder::resolve(
        &Value::Object(plugin_fields),
        "spec",
        flowmesh_types::document::MAX_DOCUMENT_BYTES,
        &lookup,
    ) {
        Ok(resolved) => resolved,
        Err(error) => {
            return Decision::End(
                TaskState::Failed,
                invalid(
                    format!(
                        "a placeholder of this stage could not be resolved: {}: {}",
                        error.path, error.message
                    ),
                    vec![error],
                ),
            );
        }
    };
    let resolved = match resolved {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    let checked = check_resolved(state, &workflow.tenant, &stage.task_type, &resolved).await;
    if !matches!(&checked, Err(rejection) if rejection.kind == RejectionKind::CheckFailed) {
        state.forget_stage_checks(&stage.id);
    }
    match checked {
        Ok(()) => Decision::Release(
            resolved,
            if substitutions.is_empty() {
                "the stages it depends on finished; queued".to_string()
            } else {
                format!(
                    "the stages it depends on finished; {} placeholder(s) resolved and the spec checked again; queued",
                    substitutions.len()
                )
            },
        ),
        // The plugin could not check it: a bounded number of times, then
        // the stage fails with the plugin's reason.
        Err(rejection) if rejection.kind == RejectionKind::CheckFailed => {
            let failures = state.count_stage_check(&stage.id);
            if failures < MAX_STAGE_CHECKS {
                return Decision::Retry(format!(
                    "check {failures} of {MAX_STAGE_CHECKS} could not run: {}",
                    rejection.message
                ));
            }
            state.forget_stage_checks(&stage.id);
            Decision::End(
                TaskState::Failed,
                TaskError::new(
                    TaskErrorCode::Failed,
                    format!(
                        "the resolved spec could not be checked ({MAX_STAGE_CHECKS} tries), so the stage was not queued: {}",
                        rejection.message
                    ),
                ),
            )
        }
        Err(rejection) if rejection.kind.may_pass_later() => {
            let code = match rejection.kind {
                RejectionKind::UnknownTaskType => TaskErrorCode::UnknownTaskType,
                _ => TaskErrorCode::InvalidInput,
            };
            retry_or_fail(
                state,
                stage,
                &upstream,
                code,
                format!(
                    "the resolved spec could not be checked: {}",
                    rejection.message
                ),
            )
        }
        Err(rejection) => {
            let details = explain(rejection.details, &substitutions);
            let first = details.first().map(ToString::to_string).unwrap_or_default();
            Decision::End(
                TaskState::Failed,
                invalid(
                    format!(
                        "the spec resolved from upstream outputs is invalid, so the stage was not queued: {first}"
                    ),
                    details,
                ),
            )
        }
    }
}

/// A check that could not run here may pass on a later pass (a plugin just
/// installed through another server, a validation that timed out under
/// load): retried until the stage has been ready for the no-worker grace
/// period, then the stage fails.
fn retry_or_fail(
    state: &AppState,
    stage: &TaskRecord,
    upstream: &[(&str, Option<&TaskRecord>)],
    code: TaskErrorCode,
    reason: String,
) -> Decision {
    let ready_since = upstream
        .iter()
        .filter_map(|(_, task)| task.and_then(|task| task.finished_at))
        .max()
        .unwrap_or(stage.created_at);
    let grace = state.config.no_worker_grace;
    if now_ms() - ready_since < grace.as_millis() as i64 {
        return Decision::Retry(reason);
    }
    Decision::End(
        TaskState::Failed,
        TaskError::new(
            code,
            format!(
                "{reason} for {}; the stage was not queued",
                humantime::format_duration(grace)
            ),
        ),
    )
}

/// Fails or skips the stage for what its upstream stages did.
fn upstream_outcome(upstream: &[(&str, Option<&TaskRecord>)]) -> Option<Decision> {
    for (name, task) in upstream {
        let Some(task) = task else {
            return Some(Decision::End(
                TaskState::Failed,
                TaskError::new(
                    TaskErrorCode::UpstreamFailed,
                    format!("upstream stage {name:?} is missing from the workflow"),
                ),
            ));
        };
        let verb = match task.state {
            TaskState::Failed => "failed",
            TaskState::Cancelled => "was cancelled",
            _ => continue,
        };
        let why = task
            .error
            .as_ref()
            .map(|error| format!(" ({}: {})", error.code, error.message))
            .unwrap_or_default();
        return Some(Decision::End(
            TaskState::Failed,
            TaskError::new(
                TaskErrorCode::UpstreamFailed,
                format!("upstream stage {name:?} {verb}{why}; this stage did not run"),
            ),
        ));
    }
    upstream
        .iter()
        .find(|(_, task)| task.is_some_and(|task| task.state == TaskState::Skipped))
        .map(|(name, _)| {
            Decision::End(
                TaskState::Skipped,
                TaskError::new(
                    TaskErrorCode::Skipped,
                    format!("upstream stage {name:?} was skipped, so this stage is skipped too"),
                ),
            )
        })
}

/// Skips or fails the stage when its condition does not hold.
fn check_condition(plan: &StagePlan, by_name: &HashMap<&str, &TaskRecord>) -> Option<Decision> {
    let condition = plan.condition.as_ref()?;
    let output = by_name
        .get(condition.stage.as_str())
        .and_then(|task| task.result.as_ref())
        .map(|result| result.output.clone())
        .unwrap_or(Value::Null);
    let field = format!("{}.output.{}", condition.stage, condition.field);
    match placeholder::lookup_path(&output, &condition.path()) {
        Ok(value) if value == condition.equals => None,
        Ok(value) => Some(Decision::End(
            TaskState::Skipped,
            TaskError::new(
                TaskErrorCode::Skipped,
                format!(
                    "condition not met: {field} is {}, not {}",
                    excerpt(&value),
                    excerpt(&condition.equals)
                ),
            ),
        )),
        Err(message) => Some(Decision::End(
            TaskState::Failed,
            invalid(
                format!("the condition on {field} cannot be evaluated: {message}"),
                vec![FieldError::new("condition.field", message)],
            ),
        )),
    }
}

/// The value of a placeholder's reference.
fn lookup(
    reference: &Reference,
    workflow: &WorkflowRecord,
    by_name: &HashMap<&str, &TaskRecord>,
) -> Result<Value, String> {
    let task = |stage: &str| {
        by_name
            .get(stage)
            .copied()
            .ok_or_else(|| format!("the workflow has no stage {stage:?}"))
    };
    match reference {
        Reference::WorkflowId => Ok(json!(workflow.id)),
        Reference::WorkflowName => workflow
            .name
            .as_ref()
            .map(|name| json!(name))
            .ok_or_else(|| "the workflow has no metadata.name".to_string()),
        Reference::Id { stage } => Ok(json!(task(stage)?.id)),
        Reference::Worker { stage } => task(stage)?
            .worker_name
            .as_ref()
            .map(|worker| json!(worker))
            .ok_or_else(|| format!("stage {stage:?} did not run on a worker")),
        Reference::Output { stage, path } => {
            let task = task(stage)?;
            let output = task
                .result
                .as_ref()
                .map(|result| &result.output)
                .ok_or_else(|| format!("stage {stage:?} has no output (it {})", task.state))?;
            placeholder::lookup_path(output, path)
        }
    }
}

/// Each error, with the placeholders whose values landed at or around its
/// field and what they were.
fn explain(errors: Vec<FieldError>, substitutions: &[Substitution]) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|error| {
            let path = normalize_path(&error.path);
            let related: Vec<String> = substitutions
                .iter()
                .filter(|s| is_within(&path, &s.path) || is_within(&s.path, &path))
                .map(|s| format!("{} resolved to {}", s.text, s.value))
                .collect();
            if related.is_empty() {
                error
            } else {
                FieldError::new(
                    error.path,
                    format!("{} ({})", error.message, related.join("; ")),
                )
            }
        })
        .collect()
}

fn invalid(message: String, details: Vec<FieldError>) -> TaskError {
    TaskError {
        code: TaskErrorCode::InvalidInput,
        message,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_placeholders_that_fed_their_field() {
        let substitutions = vec![
            Substitution {
                path: "spec.repeat".into(),
                text: "${a.output.n}".into(),
                value: "500".into(),
            },
            Substitution {
                path: "spec.message".into(),
                text: "${a.output.m}".into(),
                value: "\"hi\"".into(),
            },
        ];
        let explained = explain(
            vec![
                FieldError::new("spec.repeat", "must be at most 100"),
                FieldError::new("spec.other", "unknown"),
            ],
            &substitutions,
        );
        assert_eq!(
            explained[0].message,
            "must be at most 100 (${a.output.n} resolved to 500)"
        );
        assert_eq!(explained[1].message, "unknown");
    }
}
