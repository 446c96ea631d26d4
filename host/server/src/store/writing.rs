//! The right to write.
//!
//! SQLite admits one writer at a time. Every write transaction of a SQLite
//! store goes through one connection, lent to one transaction at a time in
//! the order they asked ([`Store::write`]); queueing writers here beats
//! having them poll SQLite's lock with its busy handler, and the
//! connection's page cache stays valid between transactions (no other
//! connection writes to the file, but for the checkpointer's one-page
//! write each time it starts the log over).
//!
//! That connection is SQLite's own handle, driven directly on the thread
//! of the task that holds it (`direct_sqlite.rs`), not a sqlx connection
//! with a thread of its own: a statement is a call, not two thread
//! switches. It is opened on the first write and kept. A transaction
//! dropped half way is rolled back as it drops (`write_tx.rs`), before the
//! next writer gets the connection. Should the connection fail to open,
//! that write fails and the next one tries again.
//!
//! PostgreSQL takes many writers at once: each transaction borrows a
//! connection of the pool.
//!
//! The releaser's reads are lent the same way ([`Store::read_consistently`]):
//! on SQLite a second connection driven directly, `query_only`, which WAL
//! lets read beside the writer.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection};

use super::direct_sqlite::DirectSqlite;
use super::write_tx::{DirectTx, WriteTx};
use super::{Store, StoreError};

/// A SQLite connection driven directly, and how to open it: the one that
/// writes, or the releaser's reading one.
#[derive(Clone)]
pub(super) struct DirectLane {
    /// The database file.
    pub(super) path: Arc<Path>,
    /// The connection's pragmas.
    pub(super) setup: Arc<str>,
    /// The connection, lent to one transaction at a time; empty before the
    /// first and once the store is closed.
    pub(super) connection: Arc<tokio::sync::Mutex<Option<DirectSqlite>>>,
    /// Set when the store closes: no transaction begins after.
    pub(super) closed: Arc<AtomicBool>,
}

/// Held for the length of a write transaction on SQLite.
pub(super) type WriteGate = Option<tokio::sync::OwnedMutexGuard<Option<DirectSqlite>>>;

/// A connection lent for one transaction, until this is dropped
/// ([`Store::write`], [`Store::read_consistently`]).
pub(super) struct Lent {
    connection: LentConnection,
    begin: &'static str,
}

enum LentConnection {
    /// A SQLite connection driven directly, in turn.
    Direct(tokio::sync::OwnedMutexGuard<Option<DirectSqlite>>),
    /// One of a pool's.
    Pooled(PoolConnection<Any>),
}

impl Lent {
    /// Begins the transaction.
    pub(super) async fn begin(&mut self) -> Result<WriteTx<'_>, StoreError> {
        match &mut self.connection {
            LentConnection::Pooled(connection) => {
                Ok(WriteTx::Pooled(connection.begin_with(self.begin).await?))
            }
            LentConnection::Direct(lent) => {
                let connection = lent.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                Ok(WriteTx::Direct(
                    DirectTx::begin(connection, self.begin).await?,
                ))
            }
        }
    }
}

impl DirectLane {
    /// The connection, in turn: opened if it is not yet.
    async fn lend(&self) -> Result<tokio::sync::OwnedMutexGuard<Option<DirectSqlite>>, StoreError> {
        let mut lent = self.connection.clone().lock_owned().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed.into());
        }
        if lent.is_none() {
            *lent = Some(DirectSqlite::open(&self.path, &self.setup)?);
        }
        Ok(lent)
    }

    /// Closes the connection, once the transaction that holds it is done;
    /// none begins after.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.connection.lock().await.take();
    }
}

impl Store {
    /// Holds SQLite's write gate with no transaction: no write begins until
    /// it is dropped.
    pub(super) async fn hold_writes(&self) -> WriteGate {
        match &self.writing {
            Some(lane) => Some(lane.connection.clone().lock_owned().await),
            None => None,
        }
    }

    /// The right to write, in turn on SQLite: [`Lent::begin`] begins the
    /// transaction; keep this until that has committed.
    pub(super) async fn write(&self) -> Result<Lent, StoreError> {
        let connection = match &self.writing {
            Some(lane) => LentConnection::Direct(lane.lend().await?),
            None => LentConnection::Pooled(self.writer.acquire().await?),
        };
        Ok(Lent {
            connection,
            begin: self.dialect.begin_write,
        })
    }

    /// A read transaction, for reads that must agree with each other and
    /// are on the path of a workflow's hand-off from stage to stage: on
    /// SQLite, the releaser's reading connection, driven directly; on
    /// PostgreSQL, a read-only transaction on a reader of the pool, at
    /// `REPEATABLE READ` so that its statements see one snapshot.
    pub(super) async fn read_consistently(&self) -> Result<Lent, StoreError> {
        Ok(match &self.releaser_reads {
            Some(lane) => Lent {
                connection: LentConnection::Direct(lane.lend().await?),
                begin: "BEGIN",
            },
            None => Lent {
                connection: LentConnection::Pooled(self.reader.acquire().await?),
                begin: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            },
        })
    }
}
