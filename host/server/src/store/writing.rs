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
//! That connection is taken out of its pool on the first write and held
//! here. Taken from the pool for each transaction, it was tested on its way
//! back (a trip to SQLite's thread, in a task of its own), and the next
//! writer waited for both. A transaction dropped half way leaves nothing
//! behind on it: sqlx queues its rollback on the connection's thread,
//! ahead of whatever the next writer sends. Should a transaction fail to
//! begin because the connection's thread is gone, that write fails, the
//! connection is dropped, and the next writer opens another (the round
//! trips' writer runs a failed group's round trips again, each alone, so
//! they go through at once).
//!
//! PostgreSQL takes many writers at once: each transaction borrows a
//! connection of the pool.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection, Transaction};

use super::{Store, StoreError};

/// Held for the length of a write transaction on SQLite.
pub(super) type WriteGate = Option<tokio::sync::OwnedMutexGuard<Option<AnyConnection>>>;

/// The right to write: a connection for one write transaction, until this
/// is dropped ([`Store::write`]).
pub(super) struct Writing {
    connection: WritingConnection,
    begin: &'static str,
    /// Whether the transaction could not begin because the connection's
    /// thread is gone: SQLite's writing connection is then dropped with
    /// this, and the next writer opens another.
    broken: bool,
}

enum WritingConnection {
    /// SQLite's one writing connection, in turn.
    Lent(tokio::sync::OwnedMutexGuard<Option<AnyConnection>>),
    /// One of PostgreSQL's pool.
    Pooled(PoolConnection<Any>),
}

impl Writing {
    /// Begins the write transaction.
    pub(super) async fn begin(&mut self) -> Result<Transaction<'_, Any>, StoreError> {
        let connection: &mut AnyConnection = match &mut self.connection {
            WritingConnection::Pooled(connection) => connection,
            WritingConnection::Lent(lent) => lent.as_mut().ok_or(sqlx::Error::PoolClosed)?,
        };
        match connection.begin_with(self.begin).await {
            Ok(tx) => Ok(tx),
            Err(error) => {
                self.broken = matches!(error, sqlx::Error::WorkerCrashed);
                Err(error.into())
            }
        }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let (true, WritingConnection::Lent(lent)) = (self.broken, &mut self.connection) {
            **lent = None;
        }
    }
}

impl Store {
    /// Holds SQLite's write gate with no transaction: no write begins until
    /// it is dropped.
    pub(super) async fn hold_writes(&self) -> WriteGate {
        match &self.writing {
            Some(writing) => Some(writing.clone().lock_owned().await),
            None => None,
        }
    }

    /// The right to write, in turn on SQLite: [`Writing::begin`] begins the
    /// transaction; keep this until that has committed.
    pub(super) async fn write(&self) -> Result<Writing, StoreError> {
        let connection = match self.hold_writes().await {
            Some(mut lent) => {
                if lent.is_none() {
                    // The first write, or the one after a connection broke.
                    *lent = Some(self.writer.acquire().await?.detach());
                }
                WritingConnection::Lent(lent)
            }
            None => WritingConnection::Pooled(self.writer.acquire().await?),
        };
        Ok(Writing {
            connection,
            begin: self.dialect.begin_write,
            broken: false,
        })
    }
}
