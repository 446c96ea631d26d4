//! A transaction, on whichever connection the store lends for it: every
//! write transaction, and the releaser's read transactions.
//!
//! On PostgreSQL a transaction is sqlx's, on a connection of a pool. On
//! SQLite it runs on a connection driven on the caller's thread
//! ([`DirectSqlite`]): the writing one, or the releaser's reading one. The
//! store's code runs its statements on either through sqlx's [`Executor`]
//! (`query(…).execute(&mut *tx)`), and ends it with [`WriteTx::commit`];
//! dropped before that, it rolls back.

use std::fmt;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _, future, stream};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, Either, Execute, Executor, SqlStr, Transaction};

use super::direct_sqlite::DirectSqlite;

/// An open transaction ([`super::Store::write`],
/// [`super::Store::read_consistently`]).
pub(super) enum WriteTx<'a> {
    /// sqlx's, on a pooled connection.
    Pooled(Transaction<'a, Any>),
    /// On SQLite's writing connection.
    Direct(DirectTx<'a>),
}

/// A transaction open on a SQLite connection driven directly.
pub(super) struct DirectTx<'a> {
    writer: &'a mut DirectSqlite,
}

/// How long a transaction waits for SQLite's write lock when another
/// process holds it, as long as the other connections' busy timeout.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// The longest sleep between two tries for the lock.
const LOCK_RETRY_MAX: Duration = Duration::from_millis(50);

impl<'a> DirectTx<'a> {
    /// Begins a transaction on `writer` with `begin`; one left open (it
    /// cannot be, but for a rollback that failed) is rolled back first.
    /// While another process holds the write lock, sleeps and tries again,
    /// 1 ms, then twice as long each time up to [`LOCK_RETRY_MAX`], for up
    /// to [`LOCK_WAIT`], so no thread is blocked meanwhile.
    pub(super) async fn begin(
        writer: &'a mut DirectSqlite,
        begin: &str,
    ) -> Result<Self, sqlx::Error> {
        writer.roll_back();
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(1);
        while !writer.try_begin(begin)? {
            if Instant::now() >= deadline {
                // The last try fails with SQLite's own error: the database
                // is locked.
                writer.run(begin, &[], true)?;
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LOCK_RETRY_MAX);
        }
        Ok(Self { writer })
    }
}

impl Drop for DirectTx<'_> {
    fn drop(&mut self) {
        // Not committed, or the commit failed and left it open.
        self.writer.roll_back();
    }
}

impl WriteTx<'_> {
    /// Commits the transaction.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Pooled(tx) => tx.commit().await,
            Self::Direct(tx) => tx.writer.run("COMMIT", &[], true).map(drop),
        }
    }

    /// Whether this runs on SQLite: every SQLite transaction runs on a
    /// connection driven directly, pools serve PostgreSQL only.
    pub(super) fn is_sqlite(&self) -> bool {
        matches!(self, Self::Direct(_))
    }
}

impl fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pooled(_) => f.write_str("WriteTx::Pooled"),
            Self::Direct(tx) => f.debug_tuple("WriteTx::Direct").field(&tx.writer).finish(),
        }
    }
}

/// The target of the event every statement run on SQLite's writing
/// connection emits at `DEBUG` while enabled: its text (`db.statement`) and
/// the time it took (`elapsed_secs`), as sqlx's `sqlx::query` events give
/// them for statements on its own connections. `BEGIN` and `COMMIT` emit
/// none, as in sqlx.
pub const STATEMENT_EVENTS: &str = "flowmesh::sql";

impl DirectTx<'_> {
    /// Runs `query` to its end on the writing connection.
    fn run<'q, E: Execute<'q, Any>>(
        &mut self,
        mut query: E,
    ) -> Result<Vec<super::direct_sqlite::Step>, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent() && arguments.is_some();
        let values = arguments
            .map(|arguments| arguments.values.0)
            .unwrap_or_default();
        let sql = query.sql();
        let started =
            tracing::enabled!(target: STATEMENT_EVENTS, tracing::Level::DEBUG).then(Instant::now);
        let steps = self.writer.run(sql.as_str(), &values, persistent);
        if let Some(started) = started {
            // STATEMENT_EVENTS, spelled out: a target given by a constant
            // reads as a field to the macro.
            tracing::event!(
                target: "flowmesh::sql",
                tracing::Level::DEBUG,
                db.statement = sql.as_str(),
                elapsed_secs = started.elapsed().as_secs_f64(),
                "statement"
            );
        }
        steps
    }
}

impl<'c> Executor<'c> for &'c mut WriteTx<'_> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteTx::Pooled(tx) => (&mut **tx).fetch_many(query),
            WriteTx::Direct(tx) => match tx.run(query) {
                Ok(steps) => stream::iter(steps.into_iter().map(Ok)).boxed(),
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            },
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteTx::Pooled(tx) => (&mut **tx).fetch_optional(query),
            WriteTx::Direct(tx) => {
                // The first result, as in sqlx: a row, or none if the
                // first statement returned none.
                let first = tx
                    .run(query)
                    .map(|steps| steps.into_iter().next().and_then(Either::right));
                future::ready(first).boxed()
            }
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            WriteTx::Pooled(tx) => (&mut **tx).prepare_with(sql, parameters),
            // Statements are prepared and kept as they run.
            WriteTx::Direct(_) => future::ready(Err(sqlx::Error::Protocol(
                "SQLite's writing connection prepares statements as it runs them".into(),
            )))
            .boxed(),
        }
    }
}
