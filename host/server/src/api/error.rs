//! Errors as JSON, authentication, and body parsing with field paths.

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use flowmesh_types::FieldError;
use flowmesh_types::api::{ApiError, ErrorBody, Role};
use serde::de::DeserializeOwned;

use crate::state::AppState;
use crate::store::{Principal, StoreError};

/// An error answer.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub error: ApiError,
    /// Seconds for `Retry-After`, when a later try may succeed.
    pub retry_after: Option<u64>,
    /// Answer with `Connection: close`: the request's body was not read to
    /// its end, so the connection cannot carry another request.
    pub close: bool,
}

impl ApiFailure {
    /// An error with no field details.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error: ApiError {
                code: code.to_string(),
                message: message.into(),
                details: Vec::new(),
            },
            retry_after: None,
            close: false,
        }
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds field details.
    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.error.details = details;
        self
    }

    /// 404 for a task, worker or plugin that does not exist for the caller.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {id:?}"),
        )
    }

    /// 400 naming a field of the JSON body and what it must be.
    pub fn invalid_field(field: &str, rule: impl Into<String>) -> Self {
        let rule = rule.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("{field} is invalid: {rule}"),
        )
        .with_details(vec![FieldError::new(field, rule)])
    }

    /// 400 naming a bad query parameter.
    pub fn bad_param(name: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("query parameter {name:?} is invalid"),
        )
        .with_details(vec![FieldError::new(name, message)])
    }

    /// 413: a body of `size` bytes (when known) over the `limit` for
    /// `what`.
    pub fn too_large(size: Option<usize>, limit: usize, what: &str) -> Self {
        let size = size.map_or_else(String::new, |size| format!(" ({size} bytes)"));
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body{size} is over the limit of {limit} bytes for {what}; send less in one request"
            ),
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.error })).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if self.close {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiFailure {
    fn from(error: StoreError) -> Self {
        if let StoreError::NameTaken(name) = &error {
            return Self::new(
                StatusCode::CONFLICT,
                ApiError::WORKER_NAME_TAKEN,
                format!(
                    "a live worker named {name:?} is registered with another token; start this worker under another name (--name), or stop that one and wait until its registration ends"
                ),
            );
        }
        tracing::error!(%error, "store error");
        if error.disk_full() {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::DISK_FULL,
                "the task store cannot write: its disk is full. Nothing was stored by this request and nothing stored before is lost; the operator must free space on the database's disk, then retry",
            )
            .retry_after(5);
        }
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the task store failed; retry shortly ({error})"),
        )
        .retry_after(1)
    }
}

pub(crate) async fn not_found() -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; the API lives under /api/v1 (see /openapi.json)",
    )
}

pub(crate) async fn method_not_allowed() -> ApiFailure {
    ApiFailure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
}

/// The authenticated caller.
pub(crate) struct Auth(pub Principal);

impl Auth {
    /// Refuses callers without one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiFailure> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{what} needs a token with role {}; this one is {}",
                    roles
                        .iter()
                        .map(|role| role.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    self.0.role.as_str()
                ),
            ))
        }
    }

    /// Refuses worker tokens: the client routes are for users and admins.
    pub fn client(&self, what: &str) -> Result<&Principal, ApiFailure> {
        self.require(&[Role::User, Role::Admin], what)?;
        Ok(&self.0)
    }
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| {
            ApiFailure::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                message.to_string(),
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized("missing Authorization header; send `Authorization: Bearer <token>`")
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        match state.authenticate(secret).await? {
            Some(principal) => Ok(Self(principal)),
            None => Err(unauthorized("unknown token; ask an admin for a valid one")),
        }
    }
}

/// Parses a JSON body, naming the field at fault. A key given twice is
/// refused at its path, never read as its last value.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiFailure> {
    let invalid = |path: String, message: String| {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the request body is not valid: {message}"),
        )
        .with_details(vec![FieldError::new(path, message)])
    };
    let value = flowmesh_types::strict_json::from_slice(body)
        .map_err(|error| invalid(error.path.unwrap_or_default(), error.message))?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        invalid(
            if path == "." { String::new() } else { path },
            error.inner().to_string(),
        )
    })
}

impl From<crate::admission::AdmitError> for ApiFailure {
    fn from(error: crate::admission::AdmitError) -> Self {
        use crate::admission::{AdmitError, RejectionKind};
        match error {
            AdmitError::Store(error) => error.into(),
            AdmitError::Rejected(rejection) => {
                let status = match rejection.kind {
                    RejectionKind::InvalidDocument => StatusCode::BAD_REQUEST,
                    RejectionKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                Self::new(status, rejection.kind.code(), rejection.message)
                    .with_details(rejection.details)
            }
        }
    }
}

impl From<crate::limits::Refused> for ApiFailure {
    fn from(refused: crate::limits::Refused) -> Self {
        let failure = Self::new(StatusCode::TOO_MANY_REQUESTS, refused.code, refused.message);
        match refused.retry_after {
            Some(seconds) => failure.retry_after(seconds),
            None => failure,
        }
    }
}

impl From<crate::installed_plugins::InstallError> for ApiFailure {
    fn from(error: crate::installed_plugins::InstallError) -> Self {
        use crate::installed_plugins::InstallError;
        match error {
            InstallError::Invalid(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
            }
            InstallError::InvalidName => Self::bad_param("name", flowmesh_types::NAME_RULE),
            InstallError::Store(error) => error.into(),
        }
    }
}
