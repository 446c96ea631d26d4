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
//! of the task that holds it (`sqlite_writer.rs`), not a sqlx connection
//! with a thread of its own: a statement is a call, not two thread
//! switches. It is opened on the first write and kept. A transaction
//! dropped half way is rolled back as it drops (`write_tx.rs`), before the
//! next writer gets the connection. Should the connection fail to open,
//! that write fails and the next one tries again.
//!
//! PostgreSQL takes many writers at once: each transaction borrows a
//! connection of the pool.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection};

use super::sqlite_writer::SqliteWriter;
use super::write_tx::{DirectTx, WriteTx};
use super::{Store, StoreError};

/// SQLite's one writing connection, and how to open it.
#[derive(Clone)]
pub(super) struct WriteLane {
    /// The database file.
    pub(super) path: Arc<Path>,
    /// The connection's pragmas.
    pub(super) setup: Arc<str>,
    /// The connection, lent to one transaction at a time; empty before the
    /// first write and once the store is closed.
    pub(super) connection: Arc<tokio::sync::Mutex<Option<SqliteWriter>>>,
    /// Set when the store closes: no write begins after.
    pub(super) closed: Arc<AtomicBool>,
}

/// Held for the length of a write transaction on SQLite.
pub(super) type WriteGate = Option<tokio::sync::OwnedMutexGuard<Option<SqliteWriter>>>;

/// The right to write: a connection for one write transaction, until this
/// is dropped ([`Store::write`]).
pub(super) struct Writing {
    connection: WritingConnection,
    begin: &'static str,
}

enum WritingConnection {
    /// SQLite's one writing connection, in turn.
    Lent(tokio::sync::OwnedMutexGuard<Option<SqliteWriter>>),
    /// One of PostgreSQL's pool.
    Pooled(PoolConnection<Any>),
}

impl Writing {
    /// Begins the write transaction.
    pub(super) async fn begin(&mut self) -> Result<WriteTx<'_>, StoreError> {
        match &mut self.connection {
            WritingConnection::Pooled(connection) => {
                Ok(WriteTx::Pooled(connection.begin_with(self.begin).await?))
            }
            WritingConnection::Lent(lent) => {
                let writer = lent.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                Ok(WriteTx::Direct(DirectTx::begin(writer, self.begin).await?))
            }
        }
    }
}

impl WriteLane {
    /// Closes the writing connection, once the write that holds it is done;
    /// no write begins after.
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

    /// The right to write, in turn on SQLite: [`Writing::begin`] begins the
    /// transaction; keep this until that has committed.
    pub(super) async fn write(&self) -> Result<Writing, StoreError> {
        let connection = match &self.writing {
            Some(lane) => {
                let mut lent = lane.connection.clone().lock_owned().await;
                if lane.closed.load(Ordering::Acquire) {
                    return Err(sqlx::Error::PoolClosed.into());
                }
                if lent.is_none() {
                    *lent = Some(SqliteWriter::open(&lane.path, &lane.setup)?);
                }
                WritingConnection::Lent(lent)
            }
            None => WritingConnection::Pooled(self.writer.acquire().await?),
        };
        Ok(Writing {
            connection,
            begin: self.dialect.begin_write,
        })
    }
}
