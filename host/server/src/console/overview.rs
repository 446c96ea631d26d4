//! The overview: how deep the queue is, how fast it drains, which workers
//! are live, and why the tasks that wait are waiting.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use flowmesh_types::api::{TaskState, WaitKind, WorkerState};
use maud::{Markup, html};

use super::page::{Failure, PageResult, Section, count, state_badge, time, trusted};
use super::session::Viewer;
use crate::state::{AppState, now_ms};
use crate::store::WaitingTask;

/// The throughput chart's buckets: ten minutes in ten-second bars.
const BUCKET_MS: i64 = 10_000;
const BUCKETS: usize = 60;
/// How many of the oldest ready tasks the waiting section looks at.
const WAITING_SAMPLE: u32 = 200;

/// `GET /`.
pub(super) async fn page(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let body = body(&state, &viewer).await?;
    Ok(super::page::page(
        Some(viewer.who()),
        Section::Overview,
        "Overview",
        html! {
            h1 { "Overview" }
            div #overview data-live="/live/overview" { (body) }
        },
    )
    .into_response())
}

/// The overview's content, also sent whole by its live stream.
pub(super) async fn body(state: &AppState, viewer: &Viewer) -> Result<Markup, Failure> {
    let scope = (!viewer.is_admin()).then_some(viewer.principal.tenant.as_str());
    let now = now_ms();
    let since = (now / BUCKET_MS) * BUCKET_MS - (BUCKETS as i64 - 1) * BUCKET_MS;
    let counts = state
        .store
        .queue_counts(scope, since, BUCKET_MS, BUCKETS)
        .await?;
    let workers: Vec<_> = crate::api::fleet::workers(state, &viewer.principal)
        .await?
        .into_iter()
        .filter(|worker| worker.state == WorkerState::Live)
        .collect();
    let waiting = state.store.oldest_ready(scope, WAITING_SAMPLE).await?;

    let mut by_type: BTreeMap<&str, [i64; 3]> = BTreeMap::new();
    for (task_type, n) in &counts.ready {
        by_type.entry(task_type).or_default()[0] += n;
    }
    for (task_type, task_state, n) in &counts.active {
        let column = if *task_state == TaskState::Running {
            1
        } else {
            2
        };
        by_type.entry(task_type).or_default()[column] += n;
    }
    let pending: i64 = counts.ready.iter().map(|(_, n)| n).sum();
    let running: i64 = counts.active.iter().map(|(_, _, n)| n).sum();
    let finished: i64 = counts.finished.iter().map(|(_, n)| n).sum();
    let slots: u32 = workers.iter().map(|worker| worker.slots).sum();
    let busy: u32 = workers.iter().map(|worker| worker.running).sum();
    let whose = if scope.is_some() {
        "your tenant's tasks"
    } else {
        "every tenant's tasks"
    };

    Ok(html! {
        section.cards aria-label="Totals" {
            div.card { span.figure #pending-count { (pending) } span.label { "pending, ready to run" } }
            div.card { span.figure #running-count { (running) } span.label { "running or cancelling" } }
            div.card { span.figure { (finished) } span.label { "finished in the last 10 minutes" } }
            div.card { span.figure #live-workers { (workers.len()) } span.label { "live; holding " (count(i64::from(busy), "task", "tasks")) " on " (count(i64::from(slots), "slot", "slots")) } }
        }
        section {
            h2 { "Tasks finished per second" }
            p.muted { "The last ten minutes, in ten-second bars; " (whose) "." }
            (chart(&counts.finished_per_bucket))
            @if !counts.finished.is_empty() {
                p { @for (finished_state, n) in &counts.finished { (state_badge(finished_state.as_str())) " " (n) " " } }
            }
        }
        section {
            h2 { "Queue by task type" }
            @if by_type.is_empty() {
                p.muted #queue-empty { "Nothing is pending or running." }
            } @else {
                table #queue-by-type {
                    thead { tr { th { "task type" } th.num { "pending" } th.num { "running" } th.num { "cancelling" } } }
                    tbody {
                        @for (task_type, [ready, run, cancelling]) in &by_type {
                            tr {
                                td { a href={ "/tasks?type=" (task_type) } { (task_type) } }
                                td.num { (ready) } td.num { (run) } td.num { (cancelling) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Live workers" }
            @if workers.is_empty() {
                p.muted #no-workers { "No worker is live. Start one with " code { "flowmesh worker" } "." }
            } @else {
                table #live-worker-list {
                    thead { tr { th { "worker" } th.num { "tasks held / slots" } th { "task types" } th { "last heartbeat" } } }
                    tbody {
                        @for worker in &workers {
                            tr {
                                td { a href={ "/workers#worker-" (worker.id) } { (worker.name) } }
                                td.num { (worker.running) " / " (worker.slots) }
                                td { (worker.served.types.keys().cloned().collect::<Vec<_>>().join(", ")) }
                                td { (time(&worker.last_heartbeat_at)) }
                            }
                        }
                    }
                }
            }
        }
        section #waiting {
            h2 { "Why tasks wait" }
            (waiting_groups(&waiting))
        }
    })
}

/// The oldest ready tasks grouped by why they wait: no worker serves the
/// type, every capable worker is busy, or another constraint.
fn waiting_groups(waiting: &[WaitingTask]) -> Markup {
    if waiting.is_empty() {
        return html! { p.muted { "No task is waiting for a worker." } };
    }
    let groups = [
        (
            "no-worker",
            "No worker advertises the task type",
            &[WaitKind::NoWorkerForType][..],
        ),
        (
            "busy",
            "Every capable worker is busy",
            &[WaitKind::WorkersBusy][..],
        ),
        (
            "constraints",
            "Workers serve the type but do not fit",
            &[
                WaitKind::MissingLabels,
                WaitKind::InsufficientHardware,
                WaitKind::TenantLimit,
                WaitKind::RetryBackoff,
            ][..],
        ),
    ];
    let sampled = waiting.len();
    html! {
        p.muted { "Among the " (sampled) " oldest tasks ready to run." }
        @for (id, title, kinds) in groups {
            @let rows = by_type(waiting.iter().filter(|task| task.kind().is_some_and(|kind| kinds.contains(&kind))));
            @if !rows.is_empty() {
                h3 id={ "waiting-" (id) } { (title) }
                table.waiting-list data-group=(id) {
                    thead { tr { th { "task type" } th.num { "tasks" } th { "reason" } th { "oldest" } } }
                    tbody {
                        @for (task_type, (n, first)) in &rows {
                            tr {
                                td { (task_type) }
                                td.num { (n) }
                                td { (first.waiting.as_ref().map(|waiting| waiting.message.as_str()).unwrap_or_default()) }
                                td { a href={ "/tasks/" (first.id) } { (first.name.as_deref().unwrap_or(&first.id)) } }
                            }
                        }
                    }
                }
            }
        }
        @let unplaced = waiting.iter().filter(|task| task.kind().is_none()).count();
        @if unplaced > 0 {
            p.muted { (count(unplaced as i64, "task has", "tasks have")) " not been looked at by placement yet." }
        }
    }
}

fn by_type<'a>(
    tasks: impl Iterator<Item = &'a WaitingTask>,
) -> BTreeMap<&'a str, (usize, &'a WaitingTask)> {
    let mut rows: BTreeMap<&str, (usize, &WaitingTask)> = BTreeMap::new();
    for task in tasks {
        rows.entry(task.task_type.as_str()).or_insert((0, task)).0 += 1;
    }
    rows
}

/// Tasks finished per second in each bucket, as an SVG bar chart.
fn chart(per_bucket: &[i64]) -> Markup {
    const WIDTH: f64 = 600.0;
    const HEIGHT: f64 = 120.0;
    let seconds = BUCKET_MS as f64 / 1000.0;
    let rates: Vec<f64> = per_bucket.iter().map(|n| *n as f64 / seconds).collect();
    let peak = rates.iter().copied().fold(0.0_f64, f64::max);
    let scale = if peak > 0.0 {
        (HEIGHT - 4.0) / peak
    } else {
        0.0
    };
    let bar = WIDTH / rates.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" id="throughput" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" aria-label="tasks finished per second, last ten minutes; peak {peak:.1} per second">"#
    );
    for (index, rate) in rates.iter().enumerate() {
        let height = (rate * scale).max(if *rate > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}"><title>{rate:.1}/s</title></rect>"#,
            index as f64 * bar + 1.0,
            HEIGHT - height,
            (bar - 2.0).max(1.0),
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/></svg>"#
    );
    let last = rates.iter().rev().nth(1).copied().unwrap_or(0.0);
    html! {
        (trusted(svg))
        p.muted { "Last full ten seconds: " strong #rate-now { (format!("{last:.1}")) } " tasks/s; peak " (format!("{peak:.1}")) "/s." }
    }
}
