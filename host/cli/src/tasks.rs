//! `flowmesh task submit | get | list | cancel | logs | watch`: the
//! subcommands, and all but `submit` (which has its module,
//! [`crate::submit`], since it submits workflows too).

use std::time::Duration;

use flowmesh_types::api::{EventBody, TaskPage, TaskState, TaskView};
use flowmesh_types::{LogStream, TaskEvent};
use futures::StreamExt;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output, print_value};
use crate::requests::{cancel_each, list_query, path_segment};
use crate::submit::{SubmitOptions, submit};
use crate::watch::{self, print_outcome};

/// Task commands.
#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Submit task and workflow documents (YAML or JSON; `-` reads standard
    /// input).
    Submit {
        /// Task or workflow documents; `-` for standard input.
        #[arg(required = true, value_name = "FILE|-")]
        files: Vec<String>,
        /// Wait for each task or workflow to finish, showing its progress;
        /// exit 1 if one did not succeed.
        #[arg(long)]
        wait: bool,
        /// Like --wait, and print the task's log lines as they come.
        #[arg(long)]
        follow: bool,
        /// Give up waiting after this long (exit 7); the task keeps running.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Refuse the task or workflow (exit 3) when no live worker runs its
        /// type (each stage's), instead of queueing it.
        #[arg(long)]
        fail_fast: bool,
        /// The input is NDJSON, one document per line, sent in batches as it
        /// comes (a stream of generated tasks); one FILE, or - for standard
        /// input.
        #[arg(long)]
        ndjson: bool,
        /// Of several documents, store the valid ones and report the others
        /// (exit 1), rather than refusing each batch that holds a bad one.
        #[arg(long)]
        partial: bool,
    },
    /// Show one task: state, waiting reason, attempts, result.
    Get {
        /// Task id.
        id: String,
    },
    /// List tasks, newest first.
    List {
        /// Only tasks in this state (pending, running, cancelling, succeeded,
        /// failed, cancelled, skipped).
        #[arg(long)]
        state: Option<String>,
        /// Only tasks of this type.
        #[arg(long = "type", value_name = "TASK_TYPE")]
        task_type: Option<String>,
        /// Only tasks with this label, key=value.
        #[arg(long)]
        label: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page (its nextCursor).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Cancel tasks, in whatever state they are.
    Cancel {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print a task's log lines.
    Logs {
        /// Task id.
        id: String,
        /// Keep printing new lines until the task finishes.
        #[arg(long, short)]
        follow: bool,
    },
    /// Follow a task to its end with a progress display; exit 1 if it
    /// failed or was cancelled.
    Watch {
        /// Task id.
        id: String,
        /// Print its log lines too.
        #[arg(long)]
        logs: bool,
        /// Give up after this long (exit 7).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
}

pub(crate) async fn run(command: TaskCommand, client: ApiClient, output: Output) -> CliResult {
    match command {
        TaskCommand::Submit {
            files,
            wait,
            follow,
            timeout,
            fail_fast,
            ndjson,
            partial,
        } => {
            let options = SubmitOptions {
                wait: wait || follow,
                follow,
                timeout,
                fail_fast,
                partial,
                ndjson,
            };
            submit(&client, output, &files, options).await
        }
        TaskCommand::Get { id } => {
            let task: TaskView = client
                .get(&format!("/tasks/{}", path_segment(&id)?))
                .await?;
            match output {
                Output::Json => output::print_json(&task),
                Output::Table => print_task(&task),
            }
            Ok(())
        }
        TaskCommand::List {
            state,
            task_type,
            label,
            limit,
            cursor,
        } => {
            let query = list_query(
                limit,
                [
                    ("state", state),
                    ("taskType", task_type),
                    ("label", label),
                    ("cursor", cursor),
                ],
            );
            let page: TaskPage = client.get(&format!("/tasks?{query}")).await?;
            match output {
                Output::Json => output::print_json(&page),
                Output::Table => print_page(&page),
            }
            Ok(())
        }
        TaskCommand::Cancel { ids } => {
            cancel_each(&client, "tasks", &ids, output, |view: &TaskView| {
                let note = if view.state.is_terminal() {
                    ""
                } else {
                    " (its worker interrupts it within one heartbeat)"
                };
                format!("{}: {}{note}", view.id, view.state.as_str())
            })
            .await
        }
        TaskCommand::Logs { id, follow } => logs(&client, &id, follow).await,
        TaskCommand::Watch { id, logs, timeout } => {
            let task = watch::follow(&client, path_segment(&id)?, logs, timeout, output).await?;
            finished(&task, output)
        }
    }
}

/// Prints a finished task and says whether it succeeded.
fn finished(task: &TaskView, output: Output) -> CliResult {
    match output {
        Output::Json => output::print_json(task),
        Output::Table => print_outcome(task),
    }
    if task.state == TaskState::Succeeded {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "task {} {}",
            task.id,
            task.state.as_str()
        )))
    }
}

async fn logs(client: &ApiClient, id: &str, follow: bool) -> CliResult {
    let of = format!("/tasks/{}", path_segment(id)?);
    let mut events = Box::pin(client.events(&of, follow).await?);
    while let Some(event) = events.next().await {
        match event?.body {
            EventBody::Task(TaskEvent::Log {
                stream, message, ..
            }) => match stream {
                LogStream::Stderr => eprintln!("{message}"),
                _ => crate::outln!("{message}"),
            },
            EventBody::State {
                state,
                attempt,
                message,
            } => eprintln!(
                "» {} (attempt {attempt}){}",
                state.as_str(),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
            EventBody::Result { state, error, .. } => eprintln!(
                "» finished: {}{}",
                state.as_str(),
                error
                    .map(|e| format!(": {}: {}", e.code.as_str(), e.message))
                    .unwrap_or_default()
            ),
            EventBody::Task(TaskEvent::Progress { .. }) | EventBody::Workflow { .. } => {}
        }
    }
    Ok(())
}

fn print_task(task: &TaskView) {
    let mut fields = vec![
        ("id", task.id.clone()),
        ("type", task.task_type.clone()),
        ("state", task.state.as_str().to_string()),
        ("attempt", format!("{}/{}", task.attempt, task.max_attempts)),
    ];
    if let Some(name) = &task.name {
        fields.push(("name", name.clone()));
    }
    if !task.labels.is_empty() {
        fields.push((
            "labels",
            output::list(task.labels.iter().map(|(k, v)| format!("{k}={v}"))),
        ));
    }
    if let Some(worker) = &task.worker {
        fields.push(("worker", worker.clone()));
    }
    if let Some(waiting) = &task.waiting {
        fields.push((
            "waiting",
            format!("{}: {}", waiting.kind.as_str(), waiting.message),
        ));
    }
    fields.push(("created", task.created_at.clone()));
    if let Some(finished) = &task.finished_at {
        fields.push(("finished", finished.clone()));
    }
    if let Some(error) = &task.error {
        fields.push((
            "error",
            format!("{}: {}", error.code.as_str(), error.message),
        ));
        for detail in &error.details {
            fields.push(("", format!("{}: {}", detail.path, detail.message)));
        }
    }
    if let Some(result) = &task.result {
        fields.push(("result", result.summary.clone()));
        fields.push((
            "plugin",
            format!(
                "{} {} ({})",
                result.plugin.name,
                result.plugin.version,
                output::short_digest(&result.plugin.digest)
            ),
        ));
    }
    output::print_fields(&fields);
    if let Some(result) = &task.result {
        crate::outln!("output:");
        print_value(&result.output);
    }
    if !task.attempts.is_empty() {
        crate::outln!();
        let mut table = output::table(&[
            "attempt", "worker", "outcome", "started", "finished", "error",
        ]);
        for attempt in &task.attempts {
            table.add_row(vec![
                attempt.attempt.to_string(),
                attempt.worker.clone(),
                attempt.outcome.clone(),
                attempt.started_at.clone(),
                attempt.finished_at.clone(),
                attempt
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code.as_str(), e.message))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        output::print_table(&table);
    }
}

fn print_page(page: &TaskPage) {
    let mut table = output::table(&["id", "type", "state", "attempt", "worker", "created"]);
    for task in &page.tasks {
        table.add_row(vec![
            task.id.clone(),
            task.task_type.clone(),
            task.state.as_str().to_string(),
            format!("{}/{}", task.attempt, task.max_attempts),
            task.worker.clone().unwrap_or_else(|| "-".into()),
            task.created_at.clone(),
        ]);
    }
    output::print_table(&table);
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more tasks: add --cursor {cursor}");
    }
}
