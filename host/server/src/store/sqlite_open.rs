//! Opening SQLite connections: what each is for, and the pragmas it runs
//! first.

use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, Executor};

use super::{Durability, StoreError, checkpoint};

/// What a SQLite connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SqliteRole {
    /// The one connection that writes (`direct_sqlite.rs`), checkpointing
    /// only as a fallback. It never waits inside SQLite for the write lock
    /// (that would block its caller's thread): a transaction that finds
    /// the lock taken waits asleep and tries again (`write_tx.rs`).
    /// Its page cache is small, 2 MiB: SQLite walks the whole cache at the
    /// end of every write transaction (`pcache1TruncateUnsafe`, from
    /// `pager_end_transaction`), and with 64 MiB that walk was 18 % of the
    /// writer thread's time in a 60,000-task drain (under 1 % with 2 MiB).
    /// A page it no longer caches is read again from the operating
    /// system's file cache, the database file's or the WAL's.
    Writer,
    /// Migrates the schema when the store opens, as the writer would write
    /// but waiting for the lock inside SQLite, on sqlx's thread.
    Migrator,
    /// Reads through the file's memory mapping: a page cache of 8 MiB;
    /// refuses writes.
    Reader,
    /// The releaser's reader (`writing.rs`), driven directly like the
    /// writer: as a reader, but it never waits inside SQLite for a lock
    /// (a read finds one held only while another process recovers the
    /// log, and its release pass is tried again later).
    DirectReader,
    /// Runs [`Store::checkpoint`]; waits for readers only briefly, holding
    /// the writer up meanwhile (`checkpoint.rs`).
    Checkpointer,
}

/// The pragmas a SQLite connection for `role` runs first: WAL, commits as
/// hard as `durability`, the file memory-mapped (reads without a system
/// call per page).
pub(super) fn setup(durability: Durability, role: SqliteRole) -> String {
    let (cache_kib, autocheckpoint, busy_ms) = match role {
        SqliteRole::Writer => (2 << 10, checkpoint::WRITER_FALLBACK_PAGES, 0),
        SqliteRole::Migrator => (2 << 10, checkpoint::WRITER_FALLBACK_PAGES, 10_000),
        SqliteRole::Reader => (8 << 10, 0, 10_000),
        SqliteRole::DirectReader => (8 << 10, 0, 0),
        SqliteRole::Checkpointer => (8 << 10, 0, checkpoint::RESTART_WAIT_MS),
    };
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA busy_timeout = {busy_ms}; \
         PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib}; \
         PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {autocheckpoint}; PRAGMA journal_size_limit = {}; \
         PRAGMA query_only = {};",
        durability.pragma(),
        checkpoint::LOG_FILE_LIMIT_BYTES,
        if matches!(role, SqliteRole::Reader | SqliteRole::DirectReader) {
            "ON"
        } else {
            "OFF"
        }
    )
}

/// A pool of `connections` to a SQLite file for `role` ([`setup`]).
pub(super) async fn pool(
    options: &AnyConnectOptions,
    connections: u32,
    durability: Durability,
    role: SqliteRole,
) -> Result<AnyPool, StoreError> {
    let setup: Arc<str> = setup(durability, role).into();
    Ok(AnyPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            let setup = setup.clone();
            Box::pin(async move {
                connection.execute(AssertSqlSafe(setup.to_string())).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?)
}
