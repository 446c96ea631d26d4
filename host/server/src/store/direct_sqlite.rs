//! SQLite connections driven on the caller's own thread: the one that
//! writes, and the one the releaser reads with.
//!
//! A sqlx SQLite connection lives on a thread of its own: each statement is
//! a message to that thread and a wake-up back, 30–60 µs on a 2-core
//! machine, more than most of the queue's statements take to run. A write
//! transaction of ten statements paid twenty thread switches, and the
//! releaser's hand-off from one workflow stage to the next crossed some
//! seventeen times.
//!
//! Every write of a SQLite store goes through one connection, lent to one
//! transaction at a time (`writing.rs`), so that connection needs no thread
//! to serialise it. This one is a plain `sqlite3` handle called directly
//! from the task that holds it: a statement costs what SQLite takes to run
//! it. The releaser's reads, on the path from one workflow stage's end to
//! the next one's start, go through a second such connection, `query_only`.
//! Statements are prepared once and kept (`SQLITE_PREPARE_PERSISTENT`), up
//! to [`CACHED`], the least recently used dropped first. Rows come back as
//! sqlx's [`AnyRow`]s, each value mapped by its storage class as sqlx's own
//! SQLite driver maps it, so the store's code reads and binds through one
//! API whichever connection it runs on (`write_tx.rs`).
//!
//! A statement runs to completion inside one call and blocks the calling
//! thread meanwhile: a transaction's statements take microseconds, a
//! submission of thousands of tasks milliseconds. Waiting for SQLite's lock
//! would block it for as long as the lock is held, so the writing
//! connection never waits inside SQLite (`busy_timeout = 0`): nothing in the server
//! takes the lock but it (the readers are `query_only`, and the
//! checkpointer starts the log over only while it holds the write lock
//! itself), and a transaction that finds it taken from outside, by another
//! process, sleeps and tries again (`write_tx.rs`).
//!
//! This module is SQLite's C interface, called directly: every `unsafe`
//! block says what it relies on.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int};
use std::fmt;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use libsqlite3_sys as ffi;
use sqlx::any::{AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue};
use sqlx_core::any::{AnyColumn, AnyValueKind};
use sqlx_core::ext::ustr::UStr;

use super::sqlite_failure::SqliteFailure;

/// How many prepared statements are kept. The store's fixed statements
/// number some eighty; the rest are multi-row statements whose text
/// depends on their row count.
pub(super) const CACHED: usize = 128;

/// One result of a statement: a row, or what a statement changed.
pub(super) type Step = sqlx::Either<AnyQueryResult, AnyRow>;

/// A connection driven directly. It is used by one caller at a time: every use
/// takes `&mut self`.
pub(super) struct DirectSqlite {
    db: NonNull<ffi::sqlite3>,
    cache: HashMap<Box<str>, Prepared>,
    /// Incremented on every use of a cached statement, to find the least
    /// recently used.
    clock: u64,
}

// SAFETY: the handle is opened in multi-thread mode (`SQLITE_OPEN_NOMUTEX`):
// it may move between threads as long as one thread uses it at a time,
// which `&mut self` on every call ensures.
unsafe impl Send for DirectSqlite {}

impl fmt::Debug for DirectSqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectSqlite")
            .field("cached", &self.cache.len())
            .finish()
    }
}

/// The statements of one SQL text, prepared as far as it has run.
#[derive(Default)]
struct Prepared {
    statements: Vec<Statement>,
    /// Where the text not prepared yet begins.
    rest: usize,
    /// Bare `?` marks so far: they count on across the statements of a text.
    next_argument: usize,
    used: u64,
}

struct Statement {
    handle: NonNull<ffi::sqlite3_stmt>,
    /// For each parameter, in order, the index of the argument it takes.
    arguments: Vec<usize>,
    columns: Vec<AnyColumn>,
    names: Arc<sqlx_core::HashMap<UStr, usize>>,
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the handle was prepared on this connection, which is
        // still open (the connection finalises its statements before it
        // closes), and is finalised once.
        unsafe { ffi::sqlite3_finalize(self.handle.as_ptr()) };
    }
}

impl DirectSqlite {
    /// Opens the file at `path` and runs `setup`, the connection's pragmas,
    /// on it (`query_only` among them for a reading connection).
    pub(super) fn open(path: &Path, setup: &str) -> Result<Self, sqlx::Error> {
        // SQLite's allocator is set before its first connection opens.
        super::sqlite_memory::install();
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| sqlx::Error::Configuration("the SQLite path holds a NUL byte".into()))?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE
            | ffi::SQLITE_OPEN_CREATE
            | ffi::SQLITE_OPEN_NOMUTEX
            | ffi::SQLITE_OPEN_PRIVATECACHE;
        // SAFETY: `name` is NUL-terminated; `db` receives the handle, which
        // SQLite allocates even when opening fails.
        let status = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        let Some(db) = NonNull::new(db) else {
            return Err(failure_of_code(ffi::SQLITE_NOMEM));
        };
        let mut writer = Self {
            db,
            cache: HashMap::new(),
            clock: 0,
        };
        if status != ffi::SQLITE_OK {
            return Err(writer.failure());
        }
        // SAFETY: the handle is open.
        unsafe { ffi::sqlite3_extended_result_codes(writer.db.as_ptr(), 1) };
        writer.run(setup, &[], false)?;
        Ok(writer)
    }

    /// Begins a transaction with `begin`; `false` if another connection
    /// holds the write lock.
    pub(super) fn try_begin(&mut self, begin: &str) -> Result<bool, sqlx::Error> {
        match self.run(begin, &[], true) {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(error))
                if error
                    .try_downcast_ref::<SqliteFailure>()
                    .is_some_and(SqliteFailure::is_busy) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Whether a transaction is open on this connection.
    pub(super) fn in_transaction(&mut self) -> bool {
        // SAFETY: the handle is open.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) == 0 }
    }

    /// Rolls back the open transaction, if there is one.
    pub(super) fn roll_back(&mut self) {
        if self.in_transaction()
            && let Err(error) = self.run("ROLLBACK", &[], true)
        {
            tracing::warn!(%error, "rolling back a SQLite transaction failed");
        }
    }

    /// Runs each statement of `sql` in turn with `arguments` (`$n` or `?n`
    /// takes the n-th, a bare `?` the next), to its end: its rows, and what
    /// each statement changed. As in sqlx, a statement is prepared only once
    /// the one before it has run (a text may create what it then uses), and
    /// an error stops the text there. `persistent` keeps the statements
    /// prepared for the next run of the same text.
    pub(super) fn run(
        &mut self,
        sql: &str,
        arguments: &[AnyValueKind],
        persistent: bool,
    ) -> Result<Vec<Step>, sqlx::Error> {
        self.clock += 1;
        let mut prepared = self.cache.remove(sql).unwrap_or_default();
        prepared.used = self.clock;
        let mut steps = Vec::new();
        let mut index = 0;
        let outcome = loop {
            if index == prepared.statements.len() {
                match self.prepare_next(sql, &mut prepared, persistent) {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(error) => break Err(error),
                }
            }
            if let Err(error) = self.step_all(&prepared.statements[index], arguments, &mut steps) {
                break Err(error);
            }
            index += 1;
        };
        if persistent {
            if self.cache.len() >= CACHED
                && let Some(oldest) = self
                    .cache
                    .iter()
                    .min_by_key(|(_, prepared)| prepared.used)
                    .map(|(sql, _)| sql.clone())
            {
                self.cache.remove(&oldest);
            }
            self.cache.insert(sql.into(), prepared);
        }
        outcome.map(|()| steps)
    }

    /// Prepares the statement of `sql` after those `prepared` holds;
    /// `false` if there is none.
    fn prepare_next(
        &mut self,
        sql: &str,
        prepared: &mut Prepared,
        persistent: bool,
    ) -> Result<bool, sqlx::Error> {
        let flags = if persistent {
            ffi::SQLITE_PREPARE_PERSISTENT
        } else {
            0
        };
        loop {
            let rest = &sql.as_bytes()[prepared.rest..];
            if rest.iter().all(u8::is_ascii_whitespace) {
                return Ok(false);
            }
            let length = c_int::try_from(rest.len())
                .map_err(|_| sqlx::Error::Protocol("a statement of over 2 GiB".into()))?;
            let mut handle = ptr::null_mut();
            let mut tail = ptr::null();
            // SAFETY: `rest` is `length` bytes of the text; SQLite reads no
            // further and points `tail` within them.
            let status = unsafe {
                ffi::sqlite3_prepare_v3(
                    self.db.as_ptr(),
                    rest.as_ptr().cast(),
                    length,
                    flags as _,
                    &mut handle,
                    &mut tail,
                )
            };
            if status != ffi::SQLITE_OK {
                return Err(self.failure());
            }
            // SAFETY: `tail` points into `rest` (or at its end).
            let used = unsafe { tail.cast::<u8>().offset_from(rest.as_ptr()) } as usize;
            let handle = NonNull::new(handle);
            if used == 0 {
                // Nothing read: the text goes on past a NUL byte.
                if let Some(handle) = handle {
                    // SAFETY: just prepared, and not kept.
                    unsafe { ffi::sqlite3_finalize(handle.as_ptr()) };
                }
                return Err(sqlx::Error::Protocol(
                    "a SQL text with a NUL byte in it".into(),
                ));
            }
            prepared.rest += used.min(rest.len());
            // A comment or blank between statements prepares to nothing.
            if let Some(handle) = handle {
                let statement = Statement::new(handle, &mut prepared.next_argument)?;
                prepared.statements.push(statement);
                return Ok(true);
            }
        }
    }

    /// Binds `arguments` to `statement` and steps it to its end, pushing
    /// its rows and then what it changed; leaves it reset and unbound.
    fn step_all(
        &mut self,
        statement: &Statement,
        arguments: &[AnyValueKind],
        steps: &mut Vec<Step>,
    ) -> Result<(), sqlx::Error> {
        let handle = statement.handle.as_ptr();
        let outcome = self.bind(statement, arguments).and_then(|()| {
            loop {
                // SAFETY: the statement is prepared on this open connection, and
                // its text arguments outlive this loop (they are unbound below
                // before `arguments` can go).
                match unsafe { ffi::sqlite3_step(handle) } {
                    ffi::SQLITE_ROW => steps.push(sqlx::Either::Right(statement.row()?)),
                    ffi::SQLITE_DONE => break Ok(self.changed(handle)),
                    _ => break Err(self.failure()),
                }
            }
        });
        // SAFETY: as above. Resetting drops the statement's read lock, and
        // clearing lets no text pointer outlive its argument.
        unsafe {
            ffi::sqlite3_reset(handle);
            ffi::sqlite3_clear_bindings(handle);
        }
        steps.push(sqlx::Either::Left(outcome?));
        Ok(())
    }

    fn bind(
        &mut self,
        statement: &Statement,
        arguments: &[AnyValueKind],
    ) -> Result<(), sqlx::Error> {
        let handle = statement.handle.as_ptr();
        for (parameter, &index) in statement.arguments.iter().enumerate() {
            let Some(value) = arguments.get(index) else {
                // SQLite reads an unbound parameter as NULL; as sqlx does,
                // the first one past the arguments leaves the rest unbound.
                break;
            };
            let at = parameter as c_int + 1;
            // SAFETY: `at` is within the statement's parameters; text and
            // blobs are bound `SQLITE_STATIC`: they stay borrowed from
            // `arguments` until `step_all` clears the bindings.
            let status = unsafe {
                match value {
                    AnyValueKind::Null(_) => ffi::sqlite3_bind_null(handle, at),
                    AnyValueKind::Bool(value) => {
                        ffi::sqlite3_bind_int(handle, at, c_int::from(*value))
                    }
                    AnyValueKind::SmallInt(value) => {
                        ffi::sqlite3_bind_int(handle, at, c_int::from(*value))
                    }
                    AnyValueKind::Integer(value) => ffi::sqlite3_bind_int(handle, at, *value),
                    AnyValueKind::BigInt(value) => ffi::sqlite3_bind_int64(handle, at, *value),
                    AnyValueKind::Real(value) => {
                        ffi::sqlite3_bind_double(handle, at, f64::from(*value))
                    }
                    AnyValueKind::Double(value) => ffi::sqlite3_bind_double(handle, at, *value),
                    AnyValueKind::Text(text) => bind_text(handle, at, text.as_bytes()),
                    AnyValueKind::TextSlice(text) => bind_text(handle, at, text.as_bytes()),
                    AnyValueKind::Blob(blob) => ffi::sqlite3_bind_blob64(
                        handle,
                        at,
                        blob.as_ptr().cast(),
                        blob.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                    other => {
                        return Err(sqlx::Error::Encode(
                            format!("no SQLite binding for {other:?}").into(),
                        ));
                    }
                }
            };
            if status != ffi::SQLITE_OK {
                return Err(self.failure());
            }
        }
        Ok(())
    }

    /// What the statement that just finished changed.
    fn changed(&self, handle: *mut ffi::sqlite3_stmt) -> AnyQueryResult {
        // SAFETY: the handle and its connection are open.
        unsafe {
            let rows_affected = if ffi::sqlite3_stmt_readonly(handle) != 0 {
                0
            } else {
                ffi::sqlite3_changes64(self.db.as_ptr()) as u64
            };
            // No row id is 0, which sqlx gives as none.
            let row_id = ffi::sqlite3_last_insert_rowid(self.db.as_ptr());
            AnyQueryResult {
                rows_affected,
                last_insert_id: (row_id != 0).then_some(row_id),
            }
        }
    }

    /// The connection's last error.
    fn failure(&self) -> sqlx::Error {
        // SAFETY: the handle is open; SQLite owns the message it returns,
        // which is copied before the next call.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let message = CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr()));
            (code, message.to_string_lossy().into_owned())
        };
        SqliteFailure::error(code, message)
    }
}

impl Drop for DirectSqlite {
    fn drop(&mut self) {
        self.roll_back();
        // Every statement first: a handle with statements left does not close.
        self.cache.clear();
        // SAFETY: the handle is open, and closed once.
        let closed = unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
        debug_assert_eq!(
            closed,
            ffi::SQLITE_OK,
            "a statement outlived its connection"
        );
    }
}

/// # Safety
/// `handle` is a prepared statement, `at` one of its parameters, and `text`
/// stays alive and unchanged until the binding is cleared.
unsafe fn bind_text(handle: *mut ffi::sqlite3_stmt, at: c_int, text: &[u8]) -> c_int {
    unsafe {
        ffi::sqlite3_bind_text64(
            handle,
            at,
            text.as_ptr().cast(),
            text.len() as u64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    }
}

impl Statement {
    /// Reads a freshly prepared statement's parameters and columns;
    /// `next_argument` counts bare `?` marks on from earlier statements of
    /// the same text.
    fn new(
        handle: NonNull<ffi::sqlite3_stmt>,
        next_argument: &mut usize,
    ) -> Result<Self, sqlx::Error> {
        let raw = handle.as_ptr();
        // SAFETY: `raw` is a prepared statement; the names SQLite returns
        // live as long as it and are copied here.
        unsafe {
            let count = ffi::sqlite3_bind_parameter_count(raw);
            let mut arguments = Vec::with_capacity(count as usize);
            for at in 1..=count {
                let name = ffi::sqlite3_bind_parameter_name(raw, at);
                let index = if name.is_null() {
                    *next_argument += 1;
                    *next_argument - 1
                } else {
                    let name = CStr::from_ptr(name).to_string_lossy();
                    name.strip_prefix(['$', '?'])
                        .and_then(|number| number.parse::<usize>().ok())
                        .and_then(|number| number.checked_sub(1))
                        .ok_or_else(|| {
                            // Finalised here: the statement is not kept.
                            ffi::sqlite3_finalize(raw);
                            sqlx::Error::Protocol(format!("parameter {name} is neither $N nor ?N"))
                        })?
                };
                arguments.push(index);
            }
            let count = ffi::sqlite3_column_count(raw);
            let mut columns = Vec::with_capacity(count as usize);
            let mut names = sqlx_core::HashMap::with_capacity(count as usize);
            for ordinal in 0..count as usize {
                let name = ffi::sqlite3_column_name(raw, ordinal as c_int);
                let name = if name.is_null() {
                    UStr::from(ordinal.to_string())
                } else {
                    UStr::new(&CStr::from_ptr(name).to_string_lossy())
                };
                // The last of two columns of one name is the one read by
                // name, as in sqlx.
                names.insert(name.clone(), ordinal);
                columns.push(AnyColumn {
                    ordinal,
                    name,
                    type_info: AnyTypeInfo {
                        kind: AnyTypeInfoKind::Null,
                    },
                });
            }
            Ok(Self {
                handle,
                arguments,
                columns,
                names: Arc::new(names),
            })
        }
    }

    /// The row the statement stands on, each value by its storage class.
    fn row(&self) -> Result<AnyRow, sqlx::Error> {
        let raw = self.handle.as_ptr();
        let mut values = Vec::with_capacity(self.columns.len());
        for ordinal in 0..self.columns.len() {
            let at = ordinal as c_int;
            // SAFETY: the statement stands on a row, `at` is one of its
            // columns, and text and blobs are copied before the next step.
            let kind = unsafe {
                match ffi::sqlite3_column_type(raw, at) {
                    ffi::SQLITE_INTEGER => AnyValueKind::BigInt(ffi::sqlite3_column_int64(raw, at)),
                    ffi::SQLITE_FLOAT => AnyValueKind::Double(ffi::sqlite3_column_double(raw, at)),
                    ffi::SQLITE_TEXT => {
                        let bytes = column_bytes(raw, at, ffi::sqlite3_column_text(raw, at));
                        let text = String::from_utf8(bytes.to_vec()).map_err(|error| {
                            sqlx::Error::ColumnDecode {
                                index: format!("{:?}", self.columns[ordinal].name),
                                source: error.into(),
                            }
                        })?;
                        AnyValueKind::Text(Arc::new(text))
                    }
                    ffi::SQLITE_BLOB => {
                        let bytes = column_bytes(raw, at, ffi::sqlite3_column_blob(raw, at).cast());
                        AnyValueKind::Blob(Arc::new(bytes.to_vec()))
                    }
                    _ => AnyValueKind::Null(AnyTypeInfoKind::Null),
                }
            };
            values.push(AnyValue { kind });
        }
        let mut columns = self.columns.clone();
        for (column, value) in columns.iter_mut().zip(&values) {
            column.type_info = AnyTypeInfo {
                kind: kind_of(&value.kind),
            };
        }
        Ok(AnyRow {
            column_names: self.names.clone(),
            columns,
            values,
        })
    }
}

/// # Safety
/// `data` is what `sqlite3_column_text` or `sqlite3_column_blob` just
/// returned for column `at` of the row `raw` stands on.
unsafe fn column_bytes<'a>(raw: *mut ffi::sqlite3_stmt, at: c_int, data: *const u8) -> &'a [u8] {
    unsafe {
        let length = ffi::sqlite3_column_bytes(raw, at) as usize;
        if data.is_null() || length == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(data, length)
        }
    }
}

fn kind_of(value: &AnyValueKind) -> AnyTypeInfoKind {
    match value {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) | AnyValueKind::TextSlice(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

fn failure_of_code(code: c_int) -> sqlx::Error {
    // SAFETY: `sqlite3_errstr` returns a static string for any code.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errstr(code)) };
    SqliteFailure::error(code, message.to_string_lossy().into_owned())
}
