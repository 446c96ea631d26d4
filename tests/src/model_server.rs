//! An OpenAI-compatible model server for the tests, on loopback: the wire
//! format of vLLM's server (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions` with and without server-sent-event streaming, usage,
//! OpenAI error bodies, `/v1/load_lora_adapter`), with a deterministic
//! "model" instead of a neural one.
//!
//! The model answers `you said: <the last message or the prompt>`, one
//! token per word (`you said:` is one), and stops at `max_tokens` with
//! `finish_reason: length`. A
//! prompt `repeat N` makes it say `lorem` N times. Two served models behave
//! badly on purpose: `slow-model` answers after a minute, `broken-model`
//! answers HTTP 500. Every request body is kept for the test to read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use serde_json::{Value, json};

/// The models every server serves.
pub const MODELS: [&str; 3] = ["test-model", "slow-model", "broken-model"];

#[derive(Default)]
struct Shared {
    owned_by: String,
    adapters: Mutex<Vec<String>>,
    requests: Mutex<Vec<Value>>,
}

/// A running server; stops when dropped.
pub struct ModelServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Starts a server whose models are `owned_by` the given engine
    /// (`vllm`, `llamacpp`).
    pub async fn start(owned_by: &str) -> Self {
        let shared = Arc::new(Shared {
            owned_by: owned_by.to_string(),
            ..Shared::default()
        });
        let app = axum::Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completion))
            .route("/v1/load_lora_adapter", post(load_adapter))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binding the model server");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        // As vLLM's server does: streamed chunks go out as they are written.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, task }
    }

    /// Every request body received by the generation routes, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(
            json!({"object": "error", "message": message, "type": kind, "code": status.as_u16(),
                    "error": {"message": message, "type": kind, "code": status.as_u16()}}),
        ),
    )
        .into_response()
}

fn served(shared: &Shared) -> Vec<String> {
    let mut models: Vec<String> = MODELS.iter().map(|model| model.to_string()).collect();
    models.extend(
        shared
            .adapters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned(),
    );
    models
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let data: Vec<Value> = served(&shared)
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": shared.owned_by}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn load_adapter(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let name = body["lora_name"].as_str().unwrap_or_default().to_string();
    let path = body["lora_path"].as_str().unwrap_or_default();
    if path.starts_with("/missing") {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            format!("No adapter found for {path}"),
        );
    }
    let mut adapters = shared
        .adapters
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if adapters.contains(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            format!("The lora adapter '{name}' has already been loaded."),
        );
    }
    adapters.push(name.clone());
    (
        StatusCode::OK,
        format!("Success: LoRA adapter '{name}' added successfully."),
    )
        .into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let said = body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_string();
    generate(shared, body, said, true).await
}

async fn completion(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let said = body["prompt"].as_str().unwrap_or_default().to_string();
    generate(shared, body, said, false).await
}

async fn generate(shared: Arc<Shared>, body: Value, said: String, chat: bool) -> Response {
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(body.clone());
    let model = body["model"].as_str().unwrap_or_default().to_string();
    if !served(&shared).contains(&model) {
        return error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            format!("The model `{model}` does not exist."),
        );
    }
    if body["temperature"].as_f64().is_some_and(|t| t > 2.0) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "temperature must be at most 2".into(),
        );
    }
    match model.as_str() {
        "slow-model" => tokio::time::sleep(Duration::from_secs(60)).await,
        "broken-model" => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "the engine crashed".into(),
            );
        }
        _ => {}
    }
    let mut words: Vec<String> = match said.strip_prefix("repeat ") {
        Some(count) => vec!["lorem".to_string(); count.trim().parse().unwrap_or(1)],
        None => std::iter::once("you said:".to_string())
            .chain(said.split_whitespace().map(str::to_string))
            .collect(),
    };
    let prompt_tokens = said.split_whitespace().count();
    let mut finish = "stop";
    if let Some(max) = body["max_tokens"].as_u64()
        && words.len() > max as usize
    {
        words.truncate(max as usize);
        finish = "length";
    }
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": words.len(),
                       "total_tokens": prompt_tokens + words.len()});
    let object = if chat {
        "chat.completion"
    } else {
        "text_completion"
    };
    if body["stream"].as_bool() != Some(true) {
        let text = words.join(" ");
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        };
        return Json(json!({"id": "cmpl-test", "object": object, "model": model,
                           "choices": [choice], "usage": usage}))
        .into_response();
    }
    let chunk_object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = move |choices: Value, usage: Option<&Value>| {
        let mut chunk =
            json!({"id": "cmpl-test", "object": chunk_object, "model": model, "choices": choices});
        if let Some(usage) = usage {
            chunk["usage"] = usage.clone();
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    let piece = move |text: &str, finish: Option<&str>| {
        if chat {
            json!([{"index": 0, "delta": {"content": text}, "finish_reason": finish}])
        } else {
            json!([{"index": 0, "text": text, "finish_reason": finish}])
        }
    };
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        if chat {
            let role = json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]);
            let _ = sender.send(Ok(chunk(role, None))).await;
        }
        for (index, word) in words.iter().enumerate() {
            let text = if index == 0 {
                word.clone()
            } else {
                format!(" {word}")
            };
            if sender
                .send(Ok(chunk(piece(&text, None), None)))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = sender.send(Ok(chunk(piece("", Some(finish)), None))).await;
        if include_usage {
            let _ = sender.send(Ok(chunk(json!([]), Some(&usage)))).await;
        }
        let _ = sender
            .send(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
            .await;
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        ))
        .expect("a streaming response")
}
