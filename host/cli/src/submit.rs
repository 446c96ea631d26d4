//! `flowmesh task submit`: posts task and workflow documents and, with
//! `--wait` or `--follow`, follows each (a task through [`crate::watch`], a
//! workflow through [`crate::workflows`]) to its end.

use std::time::Duration;

use flowmesh_types::api::{Submitted, SubmittedWorkflow, TaskState, WorkflowState};

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::input::{in_file, read_input};
use crate::output::{Output, print_one_or_many};
use crate::{watch, workflows};

/// Submits each of `files`; with `wait`, follows each submission to its end
/// (printing its log lines too if `follow`) and fails unless all succeeded.
pub(crate) async fn submit(
    client: &ApiClient,
    output: Output,
    files: &[String],
    wait: bool,
    follow: bool,
    timeout: Option<Duration>,
    fail_fast: bool,
) -> CliResult {
    let mut submitted = Vec::new();
    for file in files {
        let document = read_input(file)?;
        let path = if fail_fast {
            "/tasks?failFast=true"
        } else {
            "/tasks"
        };
        let answer: serde_json::Value = client
            .post(path, document, content_type(file), Duration::from_secs(60))
            .await
            .map_err(|error| in_file(file, error))?;
        let answer = Answer::from(answer)?;
        if output == Output::Table && !wait {
            match &answer {
                Answer::Task(answer) => crate::outln!(
                    "submitted {} ({}): {}",
                    answer.id,
                    answer.task.task_type,
                    answer.task.state.as_str()
                ),
                Answer::Workflow(answer) => crate::outln!(
                    "submitted workflow {} ({} stages): {}",
                    answer.id,
                    answer.workflow.stages.len(),
                    answer.workflow.state
                ),
            }
        }
        submitted.push(answer);
    }
    if !wait {
        if output == Output::Json {
            let answers: Vec<serde_json::Value> = submitted.iter().map(Answer::to_json).collect();
            print_one_or_many(&answers);
        }
        return Ok(());
    }
    let mut views = Vec::new();
    let mut failures = 0;
    for answer in &submitted {
        match answer {
            Answer::Task(answer) => {
                let task = watch::follow(client, &answer.id, follow, timeout, output).await?;
                if task.state != TaskState::Succeeded {
                    failures += 1;
                }
                if output == Output::Table {
                    watch::print_outcome(&task);
                }
                views.push(serde_json::to_value(&task).unwrap_or_default());
            }
            Answer::Workflow(answer) => {
                let workflow =
                    workflows::follow(client, &answer.id, follow, timeout, output).await?;
                if workflow.state != WorkflowState::Succeeded {
                    failures += 1;
                }
                if output == Output::Table {
                    workflows::print_workflow(&workflow);
                }
                views.push(serde_json::to_value(&workflow).unwrap_or_default());
            }
        }
    }
    if output == Output::Json {
        print_one_or_many(&views);
    }
    if failures > 0 {
        return Err(CliError::Failed(format!(
            "{failures} of {} submission(s) did not succeed",
            views.len()
        )));
    }
    Ok(())
}

/// What `POST /tasks` answered: a task, or a workflow.
enum Answer {
    Task(Box<Submitted>),
    Workflow(Box<SubmittedWorkflow>),
}

impl Answer {
    fn from(value: serde_json::Value) -> CliResult<Self> {
        let answer = if value.get("workflow").is_some() {
            serde_json::from_value(value).map(|answer| Self::Workflow(Box::new(answer)))
        } else {
            serde_json::from_value(value).map(|answer| Self::Task(Box::new(answer)))
        };
        answer.map_err(|error| {
            CliError::Other(anyhow::anyhow!(
                "the server's answer is not one this client understands: {error}"
            ))
        })
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Task(answer) => serde_json::to_value(answer),
            Self::Workflow(answer) => serde_json::to_value(answer),
        }
        .unwrap_or_default()
    }
}

fn content_type(file: &str) -> &'static str {
    if file.ends_with(".json") {
        "application/json"
    } else {
        "application/yaml"
    }
}
