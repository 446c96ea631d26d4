//! The durable store: tasks, workers, leases, events, tokens and plugins.
//!
//! One implementation of every operation, written once in Rust over sqlx's
//! runtime-generic [`Any`](sqlx::Any) driver, runs on two backends:
//!
//! - **SQLite** (the default): one file in the data directory, WAL journal,
//!   `synchronous=NORMAL` (a committed transaction survives the process being
//!   killed; [`Durability::Full`] also survives power loss). SQLite admits one
//!   writer at a time, so every write goes through one connection, in turn
//!   (`writing`, which says why): SQLite's own handle, driven on the
//!   writing task's thread (`direct_sqlite`), not one of sqlx's, and the
//!   store's statements reach it through sqlx's `Executor` trait as they
//!   reach PostgreSQL's (`write_tx`). Reads go to a pool of their own, which
//!   WAL lets run beside the writer; those connections are `query_only`.
//! - **PostgreSQL** (`postgres://…`), to scale out: one pool for both.
//!
//! SQLite is built with `SQLITE_ENABLE_QPSG` (`.cargo/config.toml`): the
//! query planner's stability guarantee. Without it SQLite re-prepares a
//! cached statement whenever a bound value it looked at while planning (a
//! `LIMIT`, a term matched against a partial index) changes, which made
//! preparing statements most of the store's work. It is also built without
//! memory statistics and allocates through mimalloc (`sqlite_memory.rs`).
//!
//! SQL lives in three places: portable statements in [`sql`], and what differs
//! — the claim above all — in one [`Dialect`] per backend ([`sqlite`],
//! [`postgres`]). The claim is a single statement on both: `UPDATE … RETURNING`
//! on SQLite (whose writers are serialised), `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL (so concurrent claimers never wait on each other's rows).
//!
//! Times are milliseconds since the Unix epoch, passed in by the caller; JSON
//! documents are stored as text.
//!
//! The operations on tasks, by concern:
//!
//! - `task_record`: decoding task rows ([`TaskRecord`] and the locked
//!   columns that decide an attempt's end); `stage_plan`: [`StagePlan`].
//! - `admissions`: storing what admission accepted, many submissions of
//!   tasks and workflows in one transaction, each tenant's pending limit
//!   counted in it ([`NewSubmission`]).
//! - `tasks`: reading, listing and cancelling tasks, and their rows.
//! - `attempts`: the claim, and ending attempts — completions, expired
//!   leases, restarted workers — by applying the decision of
//!   [`crate::attempt_outcome`]; `fair_shares`: the tenants' passes the
//!   claim orders by, and their rules ([`TenantRules`]).
//! - `pending`: placement's bookkeeping of pending tasks ([`PendingShape`]).
//! - `terminal`: ending a task and writing its terminal events.
//! - `gc`: deleting what finished long ago.
//! - `workflows`: workflows, and their stages as tasks.
//!
//! The children import only downwards (`admissions` → `workflows` → `tasks` → `terminal` →
//! `task_record` → `stage_plan`, all of them → `events` → `rows`), never each
//! other in a circle.

mod admissions;
mod attempts;
mod auth;
mod checkpoint;
mod console;
mod direct_sqlite;
#[cfg(test)]
mod direct_sqlite_tests;
mod events;
mod fair_shares;
mod gc;
mod pending;
mod plans;
mod plugins;
mod postgres;
mod round_trips;
mod rows;
mod sql;
mod sqlite;
mod sqlite_failure;
mod sqlite_memory;
mod sqlite_open;
mod stage_plan;
mod stage_writes;
mod task_record;
mod tasks;
mod terminal;
mod workers;
mod workflows;
mod write_tx;
mod writing;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Executor, SqlSafeStr};

pub use crate::attempt_outcome::{AttemptEnd, RetryPolicy};
pub use admissions::{NewSubmission, SubmissionWrite};
pub use attempts::{Claim, Exchange, Exchanged};
pub use auth::{NewToken, Principal, Revoked, TokenRecord, token_hash};
pub use checkpoint::{CHECKPOINT_INTERVAL, Checkpointed, RESTART_PAGES};
pub use console::{BROWSE_WINDOW, QueueCounts, TaskBrowse, WaitingTask};
pub use events::{EventStream, StoredEvent};
pub use fair_shares::{STRIDE, TenantRules};
pub use pending::{PendingShape, ShapeKey};
pub use plugins::PluginRecord;
pub use round_trips::{RoundTrip, RoundTripDone};
pub use rows::rfc3339;
pub use stage_plan::StagePlan;
pub use stage_writes::StageWrite;
pub use task_record::TaskRecord;
pub use tasks::{CancelOutcome, NewStage, NewTask, TaskFilter};
pub use workers::{HeartbeatOutcome, NewWorker, Usage, WorkerRecord};
pub use workflows::{NewWorkflow, WorkflowFilter, WorkflowRecord};
pub use write_tx::STATEMENT_EVENTS;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error("migrating the database schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON document did not decode.
    #[error("corrupt stored {what}: {error}")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// The decoding error.
        error: String,
    },
    /// A grouped write failed (its cause is in the message).
    #[error("storing the task failed: {0}")]
    Write(String),
    /// A grouped write failed because the database's disk is full (its
    /// cause is in the message).
    #[error("storing the task failed: {0}")]
    DiskFull(String),
    /// A file of the store could not be created or secured.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A worker's name is taken by a live worker of another token.
    #[error("a live worker named {0:?} is registered with another token")]
    NameTaken(String),
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (a file, not in memory) or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not write because its disk is full
    /// (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`, or `ENOSPC` on a
    /// file of the store): nothing was written, and a retry succeeds once
    /// the operator frees space.
    pub fn disk_full(&self) -> bool {
        match self {
            // SQLITE_FULL is 13; a PostgreSQL SQLSTATE has five characters.
            Self::Database(sqlx::Error::Database(error)) => {
                matches!(error.code().as_deref(), Some("13" | "53100"))
            }
            Self::Database(sqlx::Error::Io(error)) | Self::Io { error, .. } => {
                error.kind() == std::io::ErrorKind::StorageFull
            }
            Self::DiskFull(_) => true,
            _ => false,
        }
    }
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// SQL that differs between backends. See [`sqlite::DIALECT`] and
/// [`postgres::DIALECT`].
pub(crate) struct Dialect {
    /// Begins a write transaction.
    begin_write: &'static str,
    /// The claim: `$1` worker id, `$2` now, `$3` lease expiry, `$4` most
    /// tasks, `$5` how many pending rows to consider, `$6` the token the
    /// registration must belong to; for a shared worker, whether a tenant's
    /// tasks may run on it is `$8` (1 or 0) unless the tenant is in the JSON
    /// list `$7`; a tenant's stride is in the JSON map `$9`, else `$10`; its
    /// running limit in the JSON map `$11`, else `$12` (0: none). See
    /// [`fair_shares`]. `$13` bounds the pending rows looked at per tenant
    /// and task type (the oldest), so a claim's cost never grows with the
    /// queue; `$5` is how many of them that fit it keeps per tenant and type
    /// (as many as it may take).
    claim: &'static str,
    /// Registration `$1` if it belongs to token `$2` (live or not), its row
    /// locked: a worker's round trip locks it before any of its tasks, as
    /// its heartbeat does, so that the two never wait on each other.
    worker_of_token_for_update: &'static str,
    /// The running tasks, locked in id order, whose id is in the JSON list
    /// `$1`, held by worker `$2` under a lease that has not expired before
    /// `$3`, with their `lease_token` (the caller matches it).
    fenced_tasks: &'static str,
    /// Leases of worker `$1` whose token is in the JSON list `$2`: renews them
    /// to `$3` and returns their `id, state, lease_token`.
    renew_leases: &'static str,
    /// Of the leases of worker `$1` whose token is in the JSON list `$2`, the
    /// ones it still holds: `id, lease_token`.
    held_leases: &'static str,
    /// Running tasks whose lease expired before `$1`, locked.
    expired_leases: &'static str,
    /// One task by id, locked: `$1` id.
    task_for_update: &'static str,
    /// The running tasks of registration `$1`, locked.
    tasks_of_worker: &'static str,
    /// The pending and running stages of workflow `$1`, locked.
    workflow_tasks_for_update: &'static str,
    /// The stages of the workflows whose ids are in the JSON list `$1`, by
    /// workflow and in document order, with why each waits at `$2`
    /// ([`sql::task_columns`]).
    stages_of_workflows: &'static str,
    /// The workflows whose ids are in the JSON list `$1`.
    workflows_by_ids: &'static str,
    /// Tenant `$1`'s tasks before sequence number `$6`, newest first, at
    /// most `$7`: of state `$2`, type `$3`, label `$4` = `$5` where those
    /// are not NULL; with why each waits at `$8` ([`sql::task_columns`]).
    list_tasks: &'static str,
    /// The console's task list: [`Dialect::list_tasks`] within a window of
    /// submission order (`$7` to `$6`), at most `$9`, with the name filter
    /// `$8`; why each waits at `$10`.
    browse_tasks: &'static str,
}

/// How hard a commit is on SQLite (PostgreSQL's is its own setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` with WAL: a committed transaction survives the
    /// server being killed; the last ones may be lost if the machine loses
    /// power.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit waits for the disk, and survives
    /// power loss.
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Readers of a SQLite store.
const SQLITE_READERS: u32 = 4;

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Write transactions on PostgreSQL. On SQLite, the migrations'
    /// connection only, closed once they have run: every later write goes
    /// through `writing`.
    writer: AnyPool,
    /// Reads outside a transaction (the same pool as `writer` on
    /// PostgreSQL).
    reader: AnyPool,
    /// SQLite: the connection that copies the write-ahead log into the
    /// database file ([`Store::checkpoint`]), so that the writer's commits
    /// never do it.
    checkpointer: Option<AnyPool>,
    backend: Backend,
    dialect: &'static Dialect,
    /// SQLite: the one connection that writes, lent to one write
    /// transaction at a time (`writing.rs`). `None` on PostgreSQL.
    writing: Option<writing::DirectLane>,
    /// SQLite: the releaser's reading connection, driven directly like the
    /// writing one ([`Store::read_consistently`]). `None` on PostgreSQL.
    releaser_reads: Option<writing::DirectLane>,
}

impl Store {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file
    /// if needed, and migrates the schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Durability::default()).await
    }

    /// [`Store::open`] with SQLite commits as hard as `durability`.
    pub async fn open_with(url: &str, durability: Durability) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let mut sqlite_file = PathBuf::new();
        let (backend, dialect, url): (_, &'static Dialect, Cow<'_, str>) = if let Some(path) =
            url.strip_prefix("sqlite://")
        {
            sqlite_memory::install();
            let url = if path.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            // The file as sqlx reads the URL (percent-decoded): the
            // connections driven directly open it by name. A database
            // in memory, or a temporary one (no name), would be one per
            // connection there.
            let parsed = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)?;
            sqlite_file = parsed.get_filename().to_path_buf();
            if matches!(path.split('?').next(), None | Some("" | ":memory:"))
                || url.contains("mode=memory")
            {
                return Err(StoreError::UnsupportedUrl(url));
            }
            private_sqlite_file(&sqlite_file)?;
            (Backend::Sqlite, &sqlite::DIALECT, url.into())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, &postgres::DIALECT, url.into())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options: AnyConnectOptions = url.parse()?;
        let mut checkpointer = None;
        let mut writing = None;
        let mut releaser_reads = None;
        let (writer, reader) = match backend {
            Backend::Sqlite => {
                use sqlite_open::{SqliteRole, pool};
                let writer = pool(&options, 1, durability, SqliteRole::Migrator).await?;
                let reader = pool(&options, SQLITE_READERS, durability, SqliteRole::Reader).await?;
                checkpointer = Some(pool(&options, 1, durability, SqliteRole::Checkpointer).await?);
                let lane = |role| writing::DirectLane {
                    path: sqlite_file.as_path().into(),
                    setup: sqlite_open::setup(durability, role).into(),
                    connection: Arc::default(),
                    closed: Arc::default(),
                };
                writing = Some(lane(SqliteRole::Writer));
                releaser_reads = Some(lane(SqliteRole::DirectReader));
                (writer, reader)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    // The claim's estimated cost (a row per tenant times a
                    // row per type, guessed high) passes the JIT's
                    // thresholds, and compiling it with LLVM takes far
                    // longer than running it: a queue's statements are
                    // short, so no JIT.
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            connection.execute("SET jit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let store = Self {
            writer,
            reader,
            checkpointer,
            backend,
            dialect,
            writing,
            releaser_reads,
        };
        store.migrate().await?;
        if store.writing.is_some() {
            // Every later write goes through the writing connection.
            store.writer.close().await;
        }
        Ok(store)
    }

    /// The URL of the default SQLite store in `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("flowmesh.db").display())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        // The writers first: a write that begins from now on is refused.
        // SQLite's writing connection closes once the write that holds it
        // is done.
        self.writer.close().await;
        for lane in [&self.writing, &self.releaser_reads].into_iter().flatten() {
            lane.close().await;
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        self.reader.close().await;
    }

    /// PostgreSQL: `NOTIFY channel, payload` (see [`crate::wake_across`]);
    /// nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        /// Each migration once, both backends' scripts from their folders.
        macro_rules! scripts {
            ($($version:literal $name:literal $file:literal),* $(,)?) => {
                match self.backend {
                    Backend::Sqlite => &[$(($version, $name, include_str!(
                        concat!("../../../../migrations/sqlite/", $file, ".sql")))),*],
                    Backend::Postgres => &[$(($version, $name, include_str!(
                        concat!("../../../../migrations/postgres/", $file, ".sql")))),*],
                }
            };
        }
        let scripts: &[(i64, &str, &str)] = scripts!(
            1 "initial" "0001_initial",
            2 "worker labels" "0002_worker_labels",
            3 "drop unread worker columns" "0003_drop_unread_worker_columns",
            4 "workflows" "0004_workflows",
            5 "isolation" "0005_isolation",
            6 "fair shares" "0006_fair_shares",
            7 "token lifecycle" "0007_token_lifecycle",
            8 "read ahead" "0008_read_ahead",
            9 "claim window" "0009_claim_window",
            10 "console" "0010_console",
            11 "claim window fit" "0011_claim_window_fit",
            12 "shape waits" "0012_shape_waits",
        );
        let migrator = Migrator::with_migrations(
            scripts
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        (*name).into(),
                        MigrationType::Simple,
                        AssertSqlSafe(*sql).into_sql_str(),
                        false,
                    )
                })
                .collect(),
        );
        migrator.run(&self.writer).await?;
        Ok(())
    }
}

/// Creates the SQLite file readable by its owner only, or narrows an
/// existing one (and its WAL and shared-memory files) to that: it holds
/// every tenant's specs, outputs and logs. SQLite gives the files it creates
/// beside the database the database file's mode.
fn private_sqlite_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |error: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::metadata(&file) {
                Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Decodes a stored JSON column.
fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        what,
        error: error.to_string(),
    })
}

/// Encodes a value for a JSON column.
fn encode_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}
