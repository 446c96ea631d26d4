//! `flowmesh workflow get | list | cancel | watch`. Workflows are submitted
//! with `flowmesh task submit`, like tasks.

use std::time::Duration;

use flowmesh_types::api::{EventBody, WorkflowPage, WorkflowState, WorkflowView};
use flowmesh_types::{LogStream, TaskEvent};
use futures::StreamExt;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output};
use crate::requests::{cancel_each, list_query, path_segment};

/// Workflow commands.
#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// Show one workflow: its state and each stage's state, waiting reason,
    /// error and output.
    Get {
        /// Workflow id.
        id: String,
    },
    /// List workflows, newest first, with how many stages are in each state.
    List {
        /// Only workflows in this state (running, succeeded, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page (its nextCursor).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Cancel workflows: every stage that has not finished is cancelled.
    Cancel {
        /// Workflow ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Follow a workflow to its end, a line per stage change; exit 1 unless
    /// it succeeded.
    Watch {
        /// Workflow id.
        id: String,
        /// Print the stages' log lines too.
        #[arg(long)]
        logs: bool,
        /// Give up after this long (exit 7).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
}

pub(crate) async fn run(command: WorkflowCommand, client: ApiClient, output: Output) -> CliResult {
    match command {
        WorkflowCommand::Get { id } => {
            let workflow: WorkflowView = client
                .get(&format!("/workflows/{}", path_segment(&id)?))
                .await?;
            match output {
                Output::Json => output::print_json(&workflow),
                Output::Table => print_workflow(&workflow),
            }
            Ok(())
        }
        WorkflowCommand::List {
            state,
            limit,
            cursor,
        } => {
            let query = list_query(limit, [("state", state), ("cursor", cursor)]);
            let page: WorkflowPage = client.get(&format!("/workflows?{query}")).await?;
            match output {
                Output::Json => output::print_json(&page),
                Output::Table => print_page(&page),
            }
            Ok(())
        }
        WorkflowCommand::Cancel { ids } => {
            cancel_each(&client, "workflows", &ids, output, |view: &WorkflowView| {
                format!("{}: {} (stages: {})", view.id, view.state, counts(view))
            })
            .await
        }
        WorkflowCommand::Watch { id, logs, timeout } => {
            let workflow = follow(&client, path_segment(&id)?, logs, timeout, output).await?;
            finished(&workflow, output)
        }
    }
}

/// Follows workflow `id` until it ends, printing a line (to standard error)
/// whenever a stage changes state, and the stages' log lines if `logs`;
/// returns its final view.
pub(crate) async fn follow(
    client: &ApiClient,
    id: &str,
    logs: bool,
    timeout: Option<Duration>,
    output: Output,
) -> CliResult<WorkflowView> {
    let of = format!("/workflows/{id}");
    let initial: WorkflowView = client.get(&of).await?;
    let names: std::collections::HashMap<String, String> = initial
        .stages
        .iter()
        .map(|stage| (stage.task_id.clone(), stage.name.clone()))
        .collect();
    let run = async {
        let mut events = Box::pin(client.events(&of, true).await?);
        while let Some(event) = events.next().await {
            let event = event?;
            let stage = names.get(&event.task_id).map_or("workflow", String::as_str);
            match event.body {
                EventBody::State {
                    state,
                    attempt,
                    message,
                } => eprintln!(
                    "» {stage}: {state} (attempt {attempt}){}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                EventBody::Task(TaskEvent::Log {
                    stream, message, ..
                }) if logs => match (stream, output) {
                    (LogStream::Stderr, _) | (_, Output::Json) => eprintln!("{stage}| {message}"),
                    _ => crate::outln!("{stage}| {message}"),
                },
                EventBody::Workflow { state, message } => {
                    eprintln!(
                        "» workflow {id}: {state}{}",
                        message.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                    if state.is_terminal() {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(CliError::Unreachable {
            server: client.server().to_string(),
            error: format!(
                "the event stream ended before workflow {id} finished; `flowmesh workflow watch {id}` picks it up again"
            ),
        })
    };
    match timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                let view: WorkflowView = client.get(&of).await?;
                return Err(CliError::Timeout(format!(
                    "workflow {id} is still {} after {}; `flowmesh workflow watch {id}` follows it again",
                    view.state,
                    humantime::format_duration(limit)
                )));
            }
        },
        None => run.await?,
    }
    client.get(&of).await
}

/// Prints a finished workflow and says whether it succeeded.
pub(crate) fn finished(workflow: &WorkflowView, output: Output) -> CliResult {
    match output {
        Output::Json => output::print_json(workflow),
        Output::Table => print_workflow(workflow),
    }
    if workflow.state == WorkflowState::Succeeded {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "workflow {} {}",
            workflow.id, workflow.state
        )))
    }
}

fn counts(workflow: &WorkflowView) -> String {
    output::list(
        workflow
            .stage_states
            .iter()
            .map(|(state, n)| format!("{n} {state}")),
    )
}

pub(crate) fn print_workflow(workflow: &WorkflowView) {
    let mut fields = vec![
        ("id", workflow.id.clone()),
        ("state", workflow.state.to_string()),
        ("stages", counts(workflow)),
    ];
    if let Some(name) = &workflow.name {
        fields.push(("name", name.clone()));
    }
    if !workflow.labels.is_empty() {
        fields.push((
            "labels",
            output::list(workflow.labels.iter().map(|(k, v)| format!("{k}={v}"))),
        ));
    }
    fields.push(("created", workflow.created_at.clone()));
    if let Some(finished) = &workflow.finished_at {
        fields.push(("finished", finished.clone()));
    }
    output::print_fields(&fields);
    crate::outln!();
    let mut table = output::table(&["stage", "type", "state", "after", "task", "why / output"]);
    for stage in &workflow.stages {
        let why = match (&stage.error, &stage.waiting, &stage.output) {
            (Some(error), _, _) => format!("{}: {}", error.code, error.message),
            (_, Some(waiting), _) => waiting.message.clone(),
            (_, _, Some(output)) => {
                let text = output.to_string();
                if text.chars().count() > 60 {
                    format!("{}…", text.chars().take(60).collect::<String>())
                } else {
                    text
                }
            }
            _ => "-".into(),
        };
        table.add_row(vec![
            stage.name.clone(),
            stage.task_type.clone(),
            stage.state.to_string(),
            if stage.depends_on.is_empty() {
                "-".into()
            } else {
                stage.depends_on.join(", ")
            },
            stage.task_id.clone(),
            why,
        ]);
    }
    output::print_table(&table);
    // The outputs of the stages nothing depends on: the workflow's results.
    for stage in &workflow.stages {
        let last = !workflow
            .stages
            .iter()
            .any(|other| other.depends_on.contains(&stage.name));
        if let (true, Some(output)) = (last, &stage.output) {
            crate::outln!("\n{} output:", stage.name);
            match serde_json::to_string_pretty(output) {
                Ok(text) => crate::outln!("{text}"),
                Err(_) => crate::outln!("{output}"),
            }
        }
    }
}

fn print_page(page: &WorkflowPage) {
    let mut table = output::table(&["id", "name", "state", "stages", "created"]);
    for workflow in &page.workflows {
        table.add_row(vec![
            workflow.id.clone(),
            workflow.name.clone().unwrap_or_else(|| "-".into()),
            workflow.state.to_string(),
            counts(workflow),
            workflow.created_at.clone(),
        ]);
    }
    output::print_table(&table);
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more workflows: add --cursor {cursor}");
    }
}
