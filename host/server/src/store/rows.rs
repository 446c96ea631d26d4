//! Reading columns out of [`AnyRow`]s, with the column named in errors.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;

pub(super) fn get_i64(row: &AnyRow, column: &'static str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(super) fn get_opt_i64(row: &AnyRow, column: &'static str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

pub(super) fn get_str(row: &AnyRow, column: &'static str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(super) fn get_opt_str(
    row: &AnyRow,
    column: &'static str,
) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

/// A nullable JSON column, decoded.
pub(super) fn get_opt_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    get_opt_str(row, column)?
        .map(|text| super::decode_json(column, &text))
        .transpose()
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
