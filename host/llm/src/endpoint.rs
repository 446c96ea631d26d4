//! The OpenAI-compatible HTTP API: requests, streamed and whole responses,
//! limits, and errors mapped to `llm-error`.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use flowmesh_runtime::TaskOutput;
use flowmesh_runtime::bindings::flowmesh::host::llm::{
    ChatRequest, CompletionRequest, LlmError, Response, Sampling, Usage,
};
use flowmesh_types::{LogLevel, LogStream};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::LlmConfig;

/// One model as `GET /v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// What requests name it by.
    pub id: String,
    /// Who serves it (`vllm`, `llamacpp`, …), when the endpoint says.
    pub owned_by: Option<String>,
}

/// Streamed text is logged in pieces of at most this many bytes, or at each
/// line end.
const LOG_PIECE: usize = 120;

/// The worker's endpoint.
pub(crate) struct Endpoint {
    http: reqwest::Client,
    config: LlmConfig,
    base: String,
}

impl Endpoint {
    pub(crate) fn new(config: LlmConfig) -> Result<Self, String> {
        flowmesh_tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            // Requests go to the configured endpoint and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| format!("cannot set up an HTTP client: {error}"))?;
        let base = config.base();
        if base.starts_with("https://") {
            return Err(format!(
                "the model endpoint {:?} is https://, and this worker has no TLS client yet; reach it over http:// (a local endpoint, or a TLS-terminating proxy next to the worker)",
                config.url
            ));
        }
        if !base.starts_with("http://") {
            return Err(format!(
                "the model endpoint {:?} is not an http:// URL",
                config.url
            ));
        }
        Ok(Self { http, config, base })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The end of a call: the worker's limit or `deadline`, the earlier.
    fn call_deadline(&self, deadline: Instant) -> Instant {
        (Instant::now() + self.config.timeout).min(deadline)
    }

    /// `GET /v1/models`.
    pub(crate) async fn models(&self, deadline: Instant) -> Result<Vec<ModelInfo>, LlmError> {
        let deadline = self.call_deadline(deadline);
        within(deadline, async {
            let response = self
                .request(reqwest::Method::GET, "/v1/models")
                .send()
                .await
                .map_err(|error| unavailable(&self.base, &error))?;
            let body = self.read_body(response).await?;
            let data = body["data"].as_array().ok_or_else(|| {
                LlmError::Unavailable(format!(
                    "{}/v1/models answered without a data list",
                    self.base
                ))
            })?;
            Ok(data
                .iter()
                .filter_map(|model| {
                    Some(ModelInfo {
                        id: model["id"].as_str()?.to_string(),
                        owned_by: model["owned_by"].as_str().map(str::to_string),
                    })
                })
                .collect())
        })
        .await
    }

    /// `POST /v1/load_lora_adapter`.
    pub(crate) async fn load_adapter(
        &self,
        name: &str,
        source: &str,
        deadline: Instant,
    ) -> Result<(), LlmError> {
        let deadline = self.call_deadline(deadline);
        within(deadline, async {
            let response = self
                .request(reqwest::Method::POST, "/v1/load_lora_adapter")
                .json(&json!({"lora_name": name, "lora_path": source}))
                .send()
                .await
                .map_err(|error| unavailable(&self.base, &error))?;
            let status = response.status();
            let text = self.read_text(response).await?;
            // vLLM answers 400 when the adapter is loaded already.
            if status.is_success() || (status.as_u16() == 400 && text.contains("already")) {
                Ok(())
            } else {
                Err(status_error(status, &text))
            }
        })
        .await
    }

    /// `POST /v1/chat/completions`.
    pub(crate) async fn chat(
        &self,
        request: ChatRequest,
        output: &TaskOutput,
        deadline: Instant,
    ) -> Result<Response, LlmError> {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|message| json!({"role": message.role, "content": message.content}))
            .collect();
        let mut body = Map::new();
        body.insert("model".into(), json!(request.model));
        body.insert("messages".into(), Value::Array(messages));
        self.generate(
            "/v1/chat/completions",
            body,
            Kind::Chat,
            &request.sampling,
            request.streaming,
            request.extra_json.as_deref(),
            output,
            deadline,
        )
        .await
    }

    /// `POST /v1/completions`.
    pub(crate) async fn complete(
        &self,
        request: CompletionRequest,
        output: &TaskOutput,
        deadline: Instant,
    ) -> Result<Response, LlmError> {
        let mut body = Map::new();
        body.insert("model".into(), json!(request.model));
        body.insert("prompt".into(), json!(request.prompt));
        self.generate(
            "/v1/completions",
            body,
            Kind::Completion,
            &request.sampling,
            request.streaming,
            request.extra_json.as_deref(),
            output,
            deadline,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn generate(
        &self,
        path: &str,
        mut body: Map<String, Value>,
        kind: Kind,
        sampling: &Sampling,
        streaming: bool,
        extra_json: Option<&str>,
        output: &TaskOutput,
        deadline: Instant,
    ) -> Result<Response, LlmError> {
        add_sampling(&mut body, sampling);
        body.insert("stream".into(), json!(streaming));
        if streaming {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        merge_extra(&mut body, extra_json)?;
        let deadline = self.call_deadline(deadline);
        within(deadline, async {
            let response = self
                .request(reqwest::Method::POST, path)
                .json(&body)
                .send()
                .await
                .map_err(|error| unavailable(&self.base, &error))?;
            if streaming && response.status().is_success() {
                self.read_stream(response, kind, output).await
            } else {
                let body = self.read_body(response).await?;
                let choice = &body["choices"][0];
                let Some(content) = kind.text(choice, false).map(str::to_string) else {
                    return Err(LlmError::Unavailable(format!(
                        "{} answered without a choice",
                        self.base
                    )));
                };
                let mut pieces = LogPieces::new(output);
                pieces.push(&content);
                pieces.finish();
                Ok(Response {
                    model: body["model"].as_str().unwrap_or_default().to_string(),
                    content,
                    finish_reason: choice["finish_reason"].as_str().map(str::to_string),
                    usage: usage(&body["usage"]),
                })
            }
        })
        .await
    }

    /// Assembles a streamed answer, logging the text as it arrives.
    async fn read_stream(
        &self,
        response: reqwest::Response,
        kind: Kind,
        output: &TaskOutput,
    ) -> Result<Response, LlmError> {
        let mut events = response.bytes_stream().eventsource();
        let mut assembled = Response {
            model: String::new(),
            content: String::new(),
            finish_reason: None,
            usage: None,
        };
        let mut pieces = LogPieces::new(output);
        // The raw stream counts against the limit, not only the text in it.
        let mut received = 0;
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = event.map_err(|error| {
                LlmError::Unavailable(format!("the stream from {} broke: {error}", self.base))
            })?;
            received += event.data.len();
            if received > self.config.max_response_bytes {
                return Err(too_large(self.config.max_response_bytes));
            }
            if event.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Value = serde_json::from_str(&event.data).map_err(|error| {
                LlmError::Unavailable(format!(
                    "{} streamed a chunk that is not JSON: {error}",
                    self.base
                ))
            })?;
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(LlmError::Unavailable(format!(
                    "the endpoint failed mid-stream: {message}"
                )));
            }
            if let Some(model) = chunk["model"].as_str() {
                assembled.model = model.to_string();
            }
            if let Some(usage) = usage(&chunk["usage"]) {
                assembled.usage = Some(usage);
            }
            let choice = &chunk["choices"][0];
            if let Some(reason) = choice["finish_reason"].as_str() {
                assembled.finish_reason = Some(reason.to_string());
            }
            let Some(text) = kind.text(choice, true) else {
                continue;
            };
            assembled.content.push_str(text);
            pieces.push(text);
        }
        pieces.finish();
        if !done && assembled.finish_reason.is_none() {
            return Err(LlmError::Unavailable(format!(
                "the stream from {} ended before the answer was complete",
                self.base
            )));
        }
        Ok(assembled)
    }

    /// A whole JSON body under the size limit; a non-success status is an
    /// error.
    async fn read_body(&self, response: reqwest::Response) -> Result<Value, LlmError> {
        let status = response.status();
        let text = self.read_text(response).await?;
        if !status.is_success() {
            return Err(status_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|error| {
            LlmError::Unavailable(format!(
                "{} answered with a body that is not JSON: {error}",
                self.base
            ))
        })
    }

    /// The body as text, refusing more than the size limit.
    async fn read_text(&self, mut response: reqwest::Response) -> Result<String, LlmError> {
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length as usize > limit)
        {
            return Err(too_large(limit));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| unavailable(&self.base, &error))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Chat or text completion: where the text is in a choice.
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn text(self, choice: &Value, streamed: bool) -> Option<&str> {
        match (self, streamed) {
            (Kind::Chat, true) => choice["delta"]["content"].as_str(),
            (Kind::Chat, false) => choice["message"]["content"].as_str(),
            (Kind::Completion, _) => choice["text"].as_str(),
        }
    }
}

/// Generated text into the task log: a record per line, and per
/// [`LOG_PIECE`] bytes of a longer line, as the text arrives.
struct LogPieces<'a> {
    output: &'a TaskOutput,
    pending: String,
}

impl<'a> LogPieces<'a> {
    fn new(output: &'a TaskOutput) -> Self {
        Self {
            output,
            pending: String::new(),
        }
    }

    fn push(&mut self, text: &str) {
        self.pending.push_str(text);
        while let Some(end) = piece_end(&self.pending) {
            let rest = self.pending.split_off(end);
            let piece = std::mem::replace(&mut self.pending, rest);
            self.emit(piece.strip_suffix('\n').unwrap_or(&piece));
        }
    }

    fn finish(mut self) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }

    fn emit(&self, piece: &str) {
        self.output
            .log(LogStream::Model, LogLevel::Info, piece.to_string());
    }
}

/// Where the next logged piece of `text` ends: after a line end within the
/// first [`LOG_PIECE`] bytes, or at [`LOG_PIECE`] bytes (on a character
/// boundary).
fn piece_end(text: &str) -> Option<usize> {
    if let Some(newline) = text.find('\n').filter(|&at| at < LOG_PIECE) {
        return Some(newline + 1);
    }
    if text.len() < LOG_PIECE {
        return None;
    }
    let mut end = LOG_PIECE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(end)
}

fn add_sampling(body: &mut Map<String, Value>, sampling: &Sampling) {
    if let Some(max_tokens) = sampling.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = sampling.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = sampling.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !sampling.stop.is_empty() {
        body.insert("stop".into(), json!(sampling.stop));
    }
    if let Some(seed) = sampling.seed {
        body.insert("seed".into(), json!(seed));
    }
}

/// Merges the plugin's endpoint-specific options into the body; they may
/// not replace what the request itself sets.
fn merge_extra(body: &mut Map<String, Value>, extra_json: Option<&str>) -> Result<(), LlmError> {
    let Some(extra) = extra_json else {
        return Ok(());
    };
    let extra: Value = serde_json::from_str(extra)
        .map_err(|error| LlmError::BadRequest(format!("extra-json is not JSON: {error}")))?;
    let Value::Object(extra) = extra else {
        return Err(LlmError::BadRequest(
            "extra-json must be a JSON object".into(),
        ));
    };
    for (key, value) in extra {
        if body.contains_key(&key) {
            return Err(LlmError::BadRequest(format!(
                "extra-json may not set {key:?}: the request sets it"
            )));
        }
        body.insert(key, value);
    }
    Ok(())
}

fn usage(value: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: u32::try_from(value["prompt_tokens"].as_u64()?).ok()?,
        completion_tokens: u32::try_from(value["completion_tokens"].as_u64()?).ok()?,
    })
}

/// Runs `call` until `deadline`.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout_at(deadline.into(), call)
        .await
        .unwrap_or(Err(LlmError::TimedOut))
}

fn unavailable(base: &str, error: &reqwest::Error) -> LlmError {
    if error.is_timeout() {
        return LlmError::TimedOut;
    }
    // The source chain says what failed (connection refused, reset, …).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    LlmError::Unavailable(format!("{base}: {message}"))
}

fn too_large(limit: usize) -> LlmError {
    LlmError::TooLarge(format!(
        "the response exceeded this worker's limit of {limit} bytes; ask for fewer tokens"
    ))
}

/// An HTTP error status as an `llm-error`, with the endpoint's message.
fn status_error(status: reqwest::StatusCode, body: &str) -> LlmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|body| {
            body["error"]["message"]
                .as_str()
                .or_else(|| body["message"].as_str())
                .or_else(|| body["detail"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(500).collect());
    let message = format!("HTTP {}: {message}", status.as_u16());
    match status.as_u16() {
        404 if message.contains("model") => LlmError::UnknownModel(message),
        // Busy or slow: another attempt may pass.
        408 | 429 => LlmError::Unavailable(message),
        400..=499 => LlmError::BadRequest(message),
        _ => LlmError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_text_is_logged_by_line_or_piece() {
        assert_eq!(piece_end("no end yet"), None);
        assert_eq!(piece_end("one\ntwo"), Some(4));
        let long = "é".repeat(100);
        let end = piece_end(&long).expect("over the piece size");
        assert!(end <= LOG_PIECE && long.is_char_boundary(end));
        let late_newline = format!("{}\nrest", "x".repeat(200));
        assert_eq!(
            piece_end(&late_newline),
            Some(LOG_PIECE),
            "a piece stays short"
        );
    }

    #[test]
    fn extra_options_are_merged_but_cannot_replace_the_request() {
        let mut body = Map::new();
        body.insert("model".into(), json!("m"));
        merge_extra(&mut body, Some(r#"{"guided_json": {"type": "object"}}"#)).expect("merged");
        assert_eq!(body["guided_json"]["type"], "object");
        let error = merge_extra(&mut body, Some(r#"{"model": "other"}"#)).expect_err("refused");
        assert!(matches!(error, LlmError::BadRequest(m) if m.contains("\"model\"")));
        assert!(merge_extra(&mut body, Some("[1]")).is_err());
    }

    #[test]
    fn statuses_map_to_errors_with_the_endpoints_message() {
        let not_found = status_error(
            reqwest::StatusCode::NOT_FOUND,
            r#"{"error": {"message": "The model `x` does not exist."}}"#,
        );
        assert!(
            matches!(not_found, LlmError::UnknownModel(m) if m == "HTTP 404: The model `x` does not exist.")
        );
        assert!(matches!(
            status_error(reqwest::StatusCode::BAD_REQUEST, "bad"),
            LlmError::BadRequest(_)
        ));
        assert!(matches!(
            status_error(reqwest::StatusCode::BAD_GATEWAY, ""),
            LlmError::Unavailable(_)
        ));
    }
}
