//! `flowmesh:host/llm` on an OpenAI-compatible model endpoint.
//!
//! # The idea
//!
//! A worker next to a model server (vLLM, llama.cpp's server, anything that
//! speaks the OpenAI HTTP API) lends it to plugins: a plugin that imports
//! `llm` asks for a chat or text completion and gets the assembled answer,
//! while the generated text streams into the task's log as it arrives. The
//! worker keeps the endpoint to itself:
//!
//! - **Only the configured endpoint** is ever contacted: plugins name a
//!   model, never a URL; redirects are not followed and no proxy from the
//!   environment is used.
//! - **Limits**: each call ends at the worker's time limit or the task's
//!   deadline, whichever is first, and a response larger than the size
//!   limit is cut off with an error instead of filling memory.
//! - **Errors mean something**: an endpoint that refuses the request (HTTP
//!   4xx) is the plugin's problem; one that fails or does not answer (5xx,
//!   connection errors) is worth retrying.
//!
//! [`LlmProbe`] asks `GET /v1/models` at worker start and every probe
//! interval; the capability is linked only while the endpoint answers, and
//! the models it serves become worker labels (`llm.model/<id>`), so that
//! tasks can require a model.

mod capability;
mod endpoint;
mod probe;

use std::time::Duration;

pub use capability::LlmCapability;
pub use endpoint::ModelInfo;
pub use probe::LlmProbe;

/// The label prefix of the models a worker's endpoint serves:
/// `llm.model/<model id>` = `served` (see [`model_label`]).
pub const MODEL_LABEL_PREFIX: &str = "llm.model/";

/// The label a worker carries while its endpoint serves `model`:
/// `llm.model/<id>`, with characters a label key cannot hold (anything but
/// letters, digits, `-`, `_`, `.` and `/`) written as `-`, e.g.
/// `llm.model/llama3-8b` for `llama3:8b`.
pub fn model_label(model: &str) -> String {
    let id: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{MODEL_LABEL_PREFIX}{id}")
}

/// How a worker uses its model endpoint.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The endpoint's base URL: `http://127.0.0.1:8000` (a trailing `/v1` is
    /// accepted).
    pub url: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    /// Longest one call may take (the task's deadline applies in any case).
    /// Default 10 min.
    pub timeout: Duration,
    /// Largest response, in bytes (a streamed one counted as it arrives).
    /// Default 1 MiB, the default limit of a task's output.
    pub max_response_bytes: usize,
}

impl LlmConfig {
    /// Defaults for the endpoint at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(600),
            max_response_bytes: 1 << 20,
        }
    }

    /// The base URL without a trailing `/` or `/v1`.
    pub fn base(&self) -> String {
        let url = self.url.trim_end_matches('/');
        url.strip_suffix("/v1").unwrap_or(url).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_become_label_keys() {
        assert_eq!(
            model_label("meta-llama/Llama-3.1-8B-Instruct"),
            "llm.model/meta-llama/Llama-3.1-8B-Instruct"
        );
        assert_eq!(model_label("llama3:8b"), "llm.model/llama3-8b");
        assert_eq!(LlmConfig::new("http://h:8000/v1/").base(), "http://h:8000");
    }
}
