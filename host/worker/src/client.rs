//! The worker's HTTP client for the server's worker routes.

use std::time::Duration;

use flowmesh_types::api::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest plugin component a worker downloads: a Python plugin is
/// some 20 MB; the server's default request limit is 64 MiB.
pub(crate) const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// What a call to the server can end in.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered with an error.
    #[error("the server answered {status}: {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The error code (`unknown_worker`, …).
        code: String,
        /// The server's message.
        message: String,
    },
}

impl CallError {
    /// Whether the server no longer knows this registration.
    pub fn is_unknown_worker(&self) -> bool {
        matches!(self, Self::Status { code, .. } if code == ApiError::UNKNOWN_WORKER)
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

/// A client for one server, authenticated with a worker token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the server at `base` (`http://host:port`, or
    /// `https://` trusting the system's roots and `ca_cert`).
    pub fn new(
        base: &str,
        token: &str,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self, CallError> {
        let http = flowmesh_tls::client_builder(ca_cert)
            .map_err(|error| CallError::Transport(error.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|error| CallError::Transport(error.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// POSTs `body` as JSON to `/api/v1/worker/{route}`; `timeout` bounds
    /// the whole call.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        route: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let response = self.send(route, body, timeout).await?;
        response.json::<R>().await.map_err(|error| {
            CallError::Transport(format!("reading the answer to {route}: {error}"))
        })
    }

    /// Like [`Client::call`], for routes that answer with no body.
    pub async fn send_only<B: Serialize>(
        &self,
        route: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<(), CallError> {
        self.send(route, body, timeout).await.map(drop)
    }

    /// GETs the bytes of the installed component with `digest` (at most
    /// [`MAX_COMPONENT_BYTES`]).
    pub async fn fetch_plugin(
        &self,
        digest: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let route = format!("plugins/{digest}");
        let response = self
            .http
            .get(format!("{}/api/v1/worker/{route}", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| CallError::Transport(format!("{route}: {error}")))?;
        let mut response = Self::check(response).await?;
        // One buffer, sized by the announced length, filled chunk by chunk;
        // never more than MAX_COMPONENT_BYTES, whatever the server says.
        let announced = response
            .content_length()
            .unwrap_or(0)
            .min(MAX_COMPONENT_BYTES);
        let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| CallError::Transport(format!("reading {route}: {error}")))?
        {
            if (bytes.len() + chunk.len()) as u64 > MAX_COMPONENT_BYTES {
                return Err(CallError::Transport(format!(
                    "{route}: the component is over {MAX_COMPONENT_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn send<B: Serialize>(
        &self,
        route: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<reqwest::Response, CallError> {
        let response = self
            .http
            .post(format!("{}/api/v1/worker/{route}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| CallError::Transport(format!("{route}: {error}")))?;
        Self::check(response).await
    }

    /// The response when it succeeded; its error body otherwise.
    async fn check(response: reqwest::Response) -> Result<reqwest::Response, CallError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let error = ApiError::from_body(&body);
        Err(CallError::Status {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        })
    }
}
