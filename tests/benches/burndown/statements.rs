//! Counting the SQL statements the store executes, and timing them. sqlx
//! reports every statement it runs as a `sqlx::query` event when that is
//! enabled, with the time it took where it ran (on SQLite's readers, the
//! connection's own thread: preparing, stepping, handing rows over); SQLite's
//! writing connection, which is not sqlx's, reports its statements the same
//! way under [`STATEMENT_EVENTS`]. A layer that enables them only while
//! counting, and counts them, gives the number of executions (a multi-row
//! statement is one, whatever its rows; `BEGIN` and `COMMIT` are not counted)
//! and where the database's time went, statement by statement. It stays off
//! for the timed phases: sqlx formats a summary of the statement for every
//! event it emits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowmesh_server::store::STATEMENT_EVENTS;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Each statement's executions and time, by [`Statement::name`].
static COUNTED: Mutex<Option<HashMap<String, Statement>>> = Mutex::new(None);

/// Characters of a statement's text that name it in the report.
const NAME_CHARS: usize = 72;

/// One statement's executions while counting.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    /// Its text, whitespace folded, cut to [`NAME_CHARS`].
    pub name: String,
    /// How many times it ran.
    pub executions: u64,
    /// The time they took together, where they ran.
    pub time: Duration,
}

/// What [`stop`] counted.
pub struct Counted {
    /// Every statement, the most time first.
    pub statements: Vec<Statement>,
}

impl Counted {
    /// Executions of all statements.
    pub fn executions(&self) -> u64 {
        self.statements.iter().map(|s| s.executions).sum()
    }
}

/// The fields of one `sqlx::query` event that matter here.
#[derive(Default)]
struct Fields {
    /// The statement's whole text; sqlx leaves it empty when the summary
    /// (its first four words) is the whole of it.
    statement: String,
    summary: String,
    seconds: f64,
}

impl Fields {
    /// Where `field`'s text goes, if it is one kept.
    fn text_of(&mut self, field: &Field) -> Option<&mut String> {
        match field.name() {
            "db.statement" => Some(&mut self.statement),
            "summary" => Some(&mut self.summary),
            _ => None,
        }
    }

    /// The statement's text, whole.
    fn text(&self) -> &str {
        if self.statement.trim().is_empty() {
            &self.summary
        } else {
            &self.statement
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if let Some(text) = self.text_of(field) {
            *text = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(text) = self.text_of(field) {
            *text = value.to_string();
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.seconds = value;
        }
    }
}

struct Counter;

/// Whether `metadata` is a statement's event.
fn counts(metadata: &Metadata<'_>) -> bool {
    matches!(metadata.target(), "sqlx::query" | STATEMENT_EVENTS)
}

impl<S: Subscriber> Layer<S> for Counter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if counts(metadata) {
            // Asked again for every event: counting goes on and off.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        counts(metadata) && COUNTING.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name: String = fields
            .text()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(NAME_CHARS)
            .collect();
        let mut counted = COUNTED.lock().expect("the counter's lock");
        let statement = counted
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_default();
        statement.executions += 1;
        statement.time += Duration::from_secs_f64(fields.seconds.max(0.0));
    }
}

/// Installs the counter (off) as the process's subscriber.
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(Counter);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Starts counting from zero.
pub fn start() {
    *COUNTED.lock().expect("the counter's lock") = Some(HashMap::new());
    COUNTING.store(true, Ordering::Relaxed);
}

/// Stops counting; what was counted since [`start`].
pub fn stop() -> Counted {
    COUNTING.store(false, Ordering::Relaxed);
    let counted = COUNTED
        .lock()
        .expect("the counter's lock")
        .take()
        .unwrap_or_default();
    let mut statements: Vec<Statement> = counted
        .into_iter()
        .map(|(name, statement)| Statement { name, ..statement })
        .collect();
    statements.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.name.cmp(&b.name)));
    Counted { statements }
}
