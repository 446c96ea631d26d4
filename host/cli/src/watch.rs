//! Following a task to its end: a spinner (or a progress bar once the task
//! reports progress) fed by the task's event stream, its log lines when
//! asked, and the waiting reason while no worker has taken it; then a line
//! on how it ended ([`print_outcome`]).

use std::time::Duration;

use flowmesh_types::api::{EventBody, TaskState, TaskView};
use flowmesh_types::{LogStream, TaskEvent};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{Output, print_value};

/// How often a pending task's waiting reason is refreshed.
const WAITING_POLL: Duration = Duration::from_secs(2);

/// Follows task `id` until it finishes and returns its final view.
/// `logs` prints its log lines as they come (standard output lines to
/// standard output, unless `output` is JSON, which keeps standard output for
/// the final document); `timeout` bounds the wait.
pub async fn follow(
    client: &ApiClient,
    id: &str,
    logs: bool,
    timeout: Option<Duration>,
    output: Output,
) -> CliResult<TaskView> {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("{id}: pending"));
    let run = async {
        let mut events = Box::pin(client.events(&format!("/tasks/{id}"), true).await?);
        let mut poll = tokio::time::interval(WAITING_POLL);
        let mut state = TaskState::Pending;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => {
                        let event = event?;
                        match event.body {
                            EventBody::State { state: new, attempt, message } => {
                                state = new;
                                let line = format!("{id}: {} (attempt {attempt})", new.as_str());
                                if logs && let Some(message) = &message {
                                    bar.suspend(|| eprintln!("» {}: {message}", new.as_str()));
                                }
                                bar.set_message(line);
                            }
                            EventBody::Task(TaskEvent::Log { stream, message, .. }) => {
                                if logs {
                                    bar.suspend(|| match (stream, output) {
                                        (LogStream::Stderr, _) | (_, Output::Json) => eprintln!("{message}"),
                                        _ => crate::outln!("{message}"),
                                    });
                                }
                            }
                            EventBody::Task(TaskEvent::Progress { fraction, message }) => {
                                if bar.length().is_none() {
                                    bar.set_length(1000);
                                    bar.set_style(progress_style());
                                }
                                bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                                if let Some(message) = message {
                                    bar.set_message(format!("{id}: {message}"));
                                }
                            }
                            EventBody::Result { .. } => return Ok(()),
                            EventBody::Workflow { .. } => {}
                        }
                    }
                    None => return Err(CliError::Unreachable {
                        server: client.server().to_string(),
                        error: format!("the event stream ended before task {id} finished; `flowmesh task watch {id}` picks it up again"),
                    }),
                },
                _ = poll.tick(), if state == TaskState::Pending => {
                    let view: TaskView = client.get(&format!("/tasks/{id}")).await?;
                    if let Some(waiting) = view.waiting {
                        bar.set_message(format!("{id}: pending: {}", waiting.message));
                    }
                }
            }
        }
    };
    let outcome = match timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                bar.finish_and_clear();
                let view: TaskView = client.get(&format!("/tasks/{id}")).await?;
                return Err(CliError::Timeout(format!(
                    "task {id} is still {} after {}; `flowmesh task watch {id}` follows it again",
                    view.state.as_str(),
                    humantime::format_duration(limit)
                )));
            }
        },
        None => run.await,
    };
    bar.finish_and_clear();
    outcome?;
    client.get(&format!("/tasks/{id}")).await
}

fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One line on how a finished task ended, then its output.
pub(crate) fn print_outcome(task: &TaskView) {
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
