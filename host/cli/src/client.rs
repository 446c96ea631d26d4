//! The REST client the task, plugin, worker and validate commands share.
//!
//! Every error answer (`{"error": {code, message, details}}`) becomes a
//! [`CliError::Api`] that prints the message, each field path on its own
//! line, and a hint for the common cases; never the raw JSON.

use std::time::Duration;

use flowmesh_types::api::{ApiError, EventRecord};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::{CliError, CliResult};
use crate::settings::Target;

/// A client for one server with one token.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    target: Target,
}

impl ApiClient {
    /// A client for `target`.
    pub fn new(target: Target) -> CliResult<Self> {
        let http = flowmesh_tls::client_builder(target.ca_cert.as_deref())
            .map_err(|error| CliError::usage(format!("--ca-cert: {error}")))?
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| CliError::Other(error.into()))?;
        Ok(Self { http, target })
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.target.server
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.target.server)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.target.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// GETs `path` (under `/api/v1`) as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        let response = self
            .send(
                self.request(reqwest::Method::GET, path)
                    .timeout(Duration::from_secs(60)),
            )
            .await?;
        self.json(response).await
    }

    /// `GET /healthz`: whether the server is up, and what one request may
    /// hold.
    pub async fn health<T: DeserializeOwned>(&self) -> CliResult<T> {
        let response = self
            .send(
                self.http
                    .get(format!("{}/healthz", self.target.server))
                    .timeout(Duration::from_secs(10)),
            )
            .await?;
        self.json(response).await
    }

    /// POSTs `body` with `content_type` to `path` and reads a JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        timeout: Duration,
    ) -> CliResult<T> {
        let request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(timeout);
        let response = self.send(request).await?;
        self.json(response).await
    }

    /// DELETEs `path`; the answer's JSON body, or `null` when it has none.
    pub async fn delete(&self, path: &str) -> CliResult<serde_json::Value> {
        let response = self
            .send(
                self.request(reqwest::Method::DELETE, path)
                    .timeout(Duration::from_secs(60)),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(serde_json::Value::Null);
        }
        self.json(response).await
    }

    /// The events of `of` (`/tasks/{id}` or `/workflows/{id}`) as they
    /// come: the stored ones, then (with `follow`) live ones until the task's
    /// result or the workflow's end.
    pub async fn events(
        &self,
        of: &str,
        follow: bool,
    ) -> CliResult<impl Stream<Item = CliResult<EventRecord>> + use<>> {
        let path = format!("{of}/events?follow={follow}");
        let response = self
            .send(
                self.request(reqwest::Method::GET, &path)
                    .header(reqwest::header::ACCEPT, "text/event-stream"),
            )
            .await?;
        let server = self.target.server.clone();
        Ok(
            eventsource_stream::EventStream::new(response.bytes_stream()).map(move |event| {
                match event {
                    Ok(event) => {
                        serde_json::from_str::<EventRecord>(&event.data).map_err(|error| {
                            CliError::Other(anyhow::anyhow!(
                                "the server sent an event this client does not understand: {error}"
                            ))
                        })
                    }
                    Err(error) => Err(CliError::Unreachable {
                        server: server.clone(),
                        error: format!("the event stream broke: {error}"),
                    }),
                }
            }),
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> CliResult<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let error = ApiError::from_body(&body);
        let (message, hint) = if error.code == ApiError::NOT_FLOWMESH {
            (
                format!(
                    "the server at {} answered HTTP {status}: {}",
                    self.target.server, error.message
                ),
                Some("is --server pointing at a FlowMesh server?".to_string()),
            )
        } else {
            (error.message, self.hint(status, &error.code))
        };
        Err(CliError::Api {
            status,
            code: error.code,
            message,
            details: error.details,
            hint,
        })
    }

    async fn json<T: DeserializeOwned>(&self, response: reqwest::Response) -> CliResult<T> {
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?;
        serde_json::from_slice(&bytes).map_err(|error| {
            CliError::Other(anyhow::anyhow!(
                "the server's answer is not what this client expects ({error}); are the client and server versions the same?"
            ))
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            text = format!(
                "{text}\nhint: the server's TLS certificate is not signed by a CA this client trusts: pass --ca-cert FILE (or ca_cert = \"FILE\" in the config file) with the CA that signed it; `flowmesh up --tls-self-signed` and `flowmesh server --tls-self-signed` keep theirs in DATA_DIR/tls/ca.pem"
            );
        }
        CliError::Unreachable {
            server: self.target.server.clone(),
            error: text,
        }
    }

    fn hint(&self, status: u16, code: &str) -> Option<String> {
        match (status, code) {
            (401, _) if self.target.token.is_none() => Some(
                "this server needs a token: pass --token, set FLOWMESH_TOKEN, or put token = \"…\" in the config file (`flowmesh up` writes one)".into(),
            ),
            (401, _) => Some("the token is not known to this server: check --token / FLOWMESH_TOKEN and the config file".into()),
            (403, _) => Some("ask an admin for a token with the needed role (POST /api/v1/tokens)".into()),
            (_, "unknown_task_type") => Some("`flowmesh plugin list` shows the installed task types; `flowmesh plugin install` adds one".into()),
            (_, "no_eligible_worker") => Some("`flowmesh worker list` shows what each live worker runs and why plugins are unavailable".into()),
            _ => None,
        }
    }
}
