//! `flowmesh task submit`: posts task and workflow documents and, with
//! `--wait` or `--follow`, follows each (a task through [`crate::watch`], a
//! workflow through [`crate::workflows`]) to its end.
//!
//! One document goes as it is and is answered with its task or workflow.
//! Several — many files, files of many documents, a stream (`--ndjson`) —
//! go in batches as large as the server takes ([`crate::submit_batch`]).

use std::time::Duration;

use flowmesh_types::api::{Submitted, SubmittedWorkflow, TaskState, WorkflowState};

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::input::in_file;
use crate::output::{Output, print_one_or_many};
use crate::submit_batch::{self, Stored};
use crate::{watch, workflows};

/// How to submit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SubmitOptions {
    /// Follow each submission to its end; fail unless all succeeded.
    pub(crate) wait: bool,
    /// Print log lines too while following.
    pub(crate) follow: bool,
    /// Give up following after this long.
    pub(crate) timeout: Option<Duration>,
    /// Refuse documents no live worker can run.
    pub(crate) fail_fast: bool,
    /// Store a batch's valid documents even when others are refused.
    pub(crate) partial: bool,
    /// The input is a stream of NDJSON documents, sent as it comes.
    pub(crate) ndjson: bool,
}

/// Submits the documents of `files` as `options` say.
pub(crate) async fn submit(
    client: &ApiClient,
    output: Output,
    files: &[String],
    options: SubmitOptions,
) -> CliResult {
    if options.ndjson {
        let [file] = files else {
            return Err(CliError::usage(
                "--ndjson reads one stream: give one file, or - for standard input",
            ));
        };
        let limits = submit_batch::limits(client).await;
        let stored =
            submit_batch::submit_stream(client, file, limits, options.fail_fast, options.partial)
                .await?;
        return finish(client, output, stored, options).await;
    }
    let mut documents = submit_batch::read_documents(files)?;
    if let ([file], [_]) = (files, documents.as_slice()) {
        let document = documents.remove(0);
        return submit_one(client, output, file, document.text.into_bytes(), options).await;
    }
    let limits = submit_batch::limits(client).await;
    let stored = submit_batch::submit_all(
        client,
        documents,
        limits,
        options.fail_fast,
        options.partial,
    )
    .await?;
    finish(client, output, stored, options).await
}

/// What a batch stored: printed, and followed with `--wait`.
async fn finish(
    client: &ApiClient,
    output: Output,
    stored: Vec<Stored>,
    options: SubmitOptions,
) -> CliResult {
    if !options.wait {
        match output {
            Output::Json => {
                let answers: Vec<serde_json::Value> = stored
                    .iter()
                    .map(|stored| {
                        serde_json::json!({"id": stored.id, "kind": stored.kind, "from": stored.origin})
                    })
                    .collect();
                crate::output::print_json(&answers);
            }
            Output::Table => {
                if stored.len() <= 20 {
                    for stored in &stored {
                        crate::outln!(
                            "submitted {} ({}, {})",
                            stored.id,
                            stored.kind.to_lowercase(),
                            stored.origin
                        );
                    }
                } else {
                    crate::outln!("submitted {} documents", stored.len());
                }
            }
        }
        return Ok(());
    }
    let answers = stored
        .into_iter()
        .map(|stored| {
            if stored.kind == "Workflow" {
                Followed::Workflow(stored.id)
            } else {
                Followed::Task(stored.id)
            }
        })
        .collect();
    follow_all(client, output, answers, options).await
}

/// One document, answered with its task or workflow.
async fn submit_one(
    client: &ApiClient,
    output: Output,
    file: &str,
    document: Vec<u8>,
    options: SubmitOptions,
) -> CliResult {
    let path = if options.fail_fast {
        "/tasks?failFast=true"
    } else {
        "/tasks"
    };
    let answer: serde_json::Value = client
        .post(path, document, content_type(file), Duration::from_secs(60))
        .await
        .map_err(|error| in_file(file, error))?;
    let answer = Answer::from(answer)?;
    if !options.wait {
        match (&answer, output) {
            (_, Output::Json) => print_one_or_many(&[answer.to_json()]),
            (Answer::Task(answer), Output::Table) => crate::outln!(
                "submitted {} ({}): {}",
                answer.id,
                answer.task.task_type,
                answer.task.state.as_str()
            ),
            (Answer::Workflow(answer), Output::Table) => crate::outln!(
                "submitted workflow {} ({} stages): {}",
                answer.id,
                answer.workflow.stages.len(),
                answer.workflow.state
            ),
        }
        return Ok(());
    }
    let followed = match answer {
        Answer::Task(answer) => Followed::Task(answer.id),
        Answer::Workflow(answer) => Followed::Workflow(answer.id),
    };
    follow_all(client, output, vec![followed], options).await
}

/// A submission to follow to its end.
enum Followed {
    Task(String),
    Workflow(String),
}

/// Follows each of `submitted` to its end (printing its log lines too with
/// `follow`); fails unless all succeeded.
async fn follow_all(
    client: &ApiClient,
    output: Output,
    submitted: Vec<Followed>,
    options: SubmitOptions,
) -> CliResult {
    let (follow, timeout) = (options.follow, options.timeout);
    let mut views = Vec::new();
    let mut failures = 0;
    for followed in &submitted {
        match followed {
            Followed::Task(id) => {
                let task = watch::follow(client, id, follow, timeout, output).await?;
                if task.state != TaskState::Succeeded {
                    failures += 1;
                }
                if output == Output::Table {
                    watch::print_outcome(&task);
                }
                views.push(serde_json::to_value(&task).unwrap_or_default());
            }
            Followed::Workflow(id) => {
                let workflow = workflows::follow(client, id, follow, timeout, output).await?;
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
