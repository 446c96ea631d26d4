//! `flowmesh task submit | get | list | cancel | logs | watch`.

use std::io::Read;
use std::time::Duration;

use flowmesh_types::api::{
    EventBody, Submitted, SubmittedWorkflow, TaskPage, TaskState, TaskView, WorkflowState,
};
use flowmesh_types::{LogStream, TaskEvent};
use futures::StreamExt;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output};
use crate::watch;

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
        } => {
            submit(
                &client,
                output,
                &files,
                wait || follow,
                follow,
                timeout,
                fail_fast,
            )
            .await
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

async fn submit(
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
                    print_outcome(&task);
                }
                views.push(serde_json::to_value(&task).unwrap_or_default());
            }
            Answer::Workflow(answer) => {
                let workflow =
                    crate::workflows::follow(client, &answer.id, follow, timeout, output).await?;
                if workflow.state != WorkflowState::Succeeded {
                    failures += 1;
                }
                if output == Output::Table {
                    crate::workflows::print_workflow(&workflow);
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

/// `DELETE /{collection}/{id}` for each of `ids`: a line per answer from
/// `line`, or (JSON) the answers.
pub(crate) async fn cancel_each<T: serde::de::DeserializeOwned + serde::Serialize>(
    client: &ApiClient,
    collection: &str,
    ids: &[String],
    output: Output,
    line: impl Fn(&T) -> String,
) -> CliResult {
    let mut views = Vec::new();
    for id in ids {
        let value = client
            .delete(&format!("/{collection}/{}", path_segment(id)?))
            .await?;
        let view: T =
            serde_json::from_value(value).map_err(|error| CliError::Other(error.into()))?;
        if output == Output::Table {
            crate::outln!("{}", line(&view));
        }
        views.push(view);
    }
    if output == Output::Json {
        print_one_or_many(&views);
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

/// One line on how a finished task ended, then its output.
fn print_outcome(task: &TaskView) {
    match (&task.result, &task.error) {
        (Some(result), _) if task.state == TaskState::Succeeded => {
            crate::outln!(
                "{} {} succeeded on {} in {} ms (attempt {}/{})",
                task.id,
                task.task_type,
                result.worker,
                result.elapsed_ms,
                task.attempt,
                task.max_attempts
            );
            print_value(&result.output);
        }
        (_, Some(error)) => crate::outln!(
            "{} {} {} after {} attempt(s): {}: {}",
            task.id,
            task.task_type,
            task.state.as_str(),
            task.attempts.len(),
            error.code.as_str(),
            error.message
        ),
        _ => crate::outln!("{} {} {}", task.id, task.task_type, task.state.as_str()),
    }
}

fn print_value(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => crate::outln!("{text}"),
        Err(_) => crate::outln!("{value}"),
    }
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

pub(crate) fn print_one_or_many<T: serde::Serialize>(items: &[T]) {
    match items {
        [one] => output::print_json(one),
        many => output::print_json(&many),
    }
}

/// The bytes of `file`, or of standard input for `-`.
pub(crate) fn read_input(file: &str) -> CliResult<Vec<u8>> {
    if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|error| CliError::usage(format!("cannot read standard input: {error}")))?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|error| CliError::usage(format!("cannot read {file}: {error}")))
}

fn content_type(file: &str) -> &'static str {
    if file.ends_with(".json") {
        "application/json"
    } else {
        "application/yaml"
    }
}

/// Names the file an API error is about.
pub(crate) fn in_file(file: &str, error: CliError) -> CliError {
    match error {
        CliError::Api {
            status,
            code,
            message,
            details,
            hint,
        } => CliError::Api {
            status,
            code,
            message: format!("{file}: {message}"),
            details,
            hint,
        },
        other => other,
    }
}

/// Checks that `id` can go into a URL path as is.
pub(crate) fn path_segment(id: &str) -> CliResult<&str> {
    if !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        Ok(id)
    } else {
        Err(CliError::usage(format!(
            "{id:?} is not an id or name: use letters, digits, '-', '_', '.' or ':'"
        )))
    }
}

/// `limit=N` and each given filter, percent-encoded: a list route's query.
pub(crate) fn list_query<const N: usize>(
    limit: u32,
    filters: [(&str, Option<String>); N],
) -> String {
    let mut query = vec![format!("limit={limit}")];
    for (key, value) in filters {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(&value)));
        }
    }
    query.join("&")
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
