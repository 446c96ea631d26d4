//! A statement's failure on a SQLite connection driven directly
//! (`direct_sqlite.rs`), as sqlx's SQLite driver gives one: SQLite's
//! extended result code and message, classified into sqlx's kinds.

use std::borrow::Cow;
use std::ffi::c_int;
use std::fmt;

use libsqlite3_sys as ffi;
use sqlx::error::{DatabaseError, ErrorKind};

/// A statement's failure on a connection driven directly: SQLite's extended
/// result code and message, classified as sqlx's SQLite driver classifies
/// them.
#[derive(Debug)]
pub(super) struct SqliteFailure {
    code: c_int,
    message: String,
}

impl SqliteFailure {
    /// The failure with extended result `code` and `message`, as a sqlx
    /// error.
    pub(super) fn error(code: c_int, message: String) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Self { code, message }))
    }

    /// Whether SQLite answered `SQLITE_BUSY`: another connection holds the
    /// lock asked for.
    pub(super) fn is_busy(&self) -> bool {
        self.code & 0xff == ffi::SQLITE_BUSY
    }
}

impl fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
