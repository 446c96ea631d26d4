//! Request bodies, read whole up to the server's limit.
//!
//! A body over the limit is refused with the JSON error body (413), naming
//! the limit and the setting that governs it. Refusing it well takes care:
//! a server that answers and closes while the client is still sending makes
//! the client's kernel see a reset, which can swallow the answer, and a
//! client that keeps the connection for its next request finds it broken.
//! So the server goes on reading, and dropping, what the client sends, up to
//! a bound in bytes and time, and then answers with `Connection: close`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use futures::StreamExt;

use super::ApiFailure;
use crate::state::AppState;

/// How much more of an over-limit body is read and dropped before the 413
/// is sent, so the client reads the answer rather than a reset.
const DRAIN_BYTES: usize = 32 << 20;

/// How long that reading may take at most.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A request body, read whole up to the server's limit.
pub(crate) struct Body(pub Bytes);

impl FromRequest<Arc<AppState>> for Body {
    type Rejection = ApiFailure;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiFailure> {
        let limit = state.config.max_request_bytes;
        let declared = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let mut stream = request.into_body().into_data_stream();
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
        let too_large = |size: Option<usize>| {
            let mut failure = ApiFailure::too_large(
                size,
                limit,
                "one request (`flowmesh server --max-request-size`)",
            );
            failure.close = true;
            failure
        };
        if declared.is_some_and(|size| size > limit) {
            drain(stream).await;
            return Err(too_large(declared));
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                ApiFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the request body could not be read: {error}"),
                )
            })?;
            if body.len() + chunk.len() > limit {
                drain(stream).await;
                return Err(too_large(declared));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Self(Bytes::from(body)))
    }
}

/// Reads and drops the rest of a refused body, within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`].
async fn drain<S, E>(mut stream: S)
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut dropped = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            dropped += chunk.len();
            if dropped > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
