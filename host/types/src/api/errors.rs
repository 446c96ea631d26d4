//! Error answers: every failed request gets an [`ErrorBody`] with a stable
//! code, a message saying what to do, and per-field details.

use serde::{Deserialize, Serialize};

use crate::manifest::FieldError;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// An error: a stable code, a message saying what to do, and field details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// Stable, machine-readable (`invalid_document`, `not_found`, …).
    pub code: String,
    /// For people: what is wrong and what to do.
    pub message: String,
    /// Per-field problems, with paths such as `spec.message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ApiError {
    /// The code of an answer whose body is not an error document (a proxy,
    /// another service): [`ApiError::from_body`] uses it.
    pub const NOT_FLOWMESH: &'static str = "http_error";
    /// A worker call about a registration the server no longer has: the
    /// worker registers again.
    pub const UNKNOWN_WORKER: &'static str = "unknown_worker";
    /// A registration under the name of a live worker of another token: the
    /// worker must take another name.
    pub const WORKER_NAME_TAKEN: &'static str = "worker_name_taken";
    /// The store's disk is full: nothing was written; retry once the
    /// operator has freed space (`503` with `Retry-After`).
    pub const DISK_FULL: &'static str = "disk_full";

    /// The error in an error answer's body: its error document, or one
    /// with code [`ApiError::NOT_FLOWMESH`] carrying the start of the text.
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice::<ErrorBody>(body)
            .map(|body| body.error)
            .unwrap_or_else(|_| Self {
                code: Self::NOT_FLOWMESH.to_string(),
                message: String::from_utf8_lossy(body).chars().take(300).collect(),
                details: Vec::new(),
            })
    }
}
