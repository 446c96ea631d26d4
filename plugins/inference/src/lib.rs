//! The `inference` plugin: a chat or text completion from the worker's
//! OpenAI-compatible model endpoint (vLLM, llama.cpp server, …).
//!
//! It imports `flowmesh:host/llm`, so it runs only on workers whose endpoint
//! answered; a task that must reach a given model requires its label,
//! `spec.resources.labels: {llm.model/<id>: served}`. Generated text streams
//! into the task log as it arrives; the output is the assembled answer.
//!
//! `validate()` refuses combinations that would otherwise fail late or be
//! silently ignored (it runs at submit time, and again on the worker): vLLM's
//! own options with `device: cpu` (a CPU endpoint is not vLLM and would
//! ignore them), and a LoRA adapter that does not say where it comes from. A
//! value that is still a placeholder (`${stage.output.path}`) is checked once
//! it is resolved.

use flowmesh_sdk::host::llm::{self, ChatRequest, CompletionRequest, LlmError, Message, Sampling};
use flowmesh_sdk::{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Asks the model endpoint.
pub struct Inference;

/// Spec of an `inference` task: `messages` for a chat, or `prompt` for a
/// text completion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceSpec {
    /// The model: one the worker's endpoint serves.
    pub model: String,
    /// The conversation so far, for a chat completion.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// The text to continue, for a text completion (instead of messages).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: the probability mass to sample from, above 0 and at most 1.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Sequences that end the generation.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where the endpoint supports it.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stream the generated text into the task log as it arrives (default
    /// true).
    #[serde(default = "yes")]
    pub stream: bool,
    /// Where the model must run: `auto` (default), `gpu`, or `cpu` (refuses
    /// a vLLM endpoint, which serves from GPUs).
    #[serde(default)]
    pub device: Option<String>,
    /// Options only vLLM understands (guided decoding, extra sampling).
    #[serde(default)]
    pub vllm: Option<VllmOptions>,
    /// A LoRA adapter to load into the endpoint and answer with instead of
    /// the base model.
    #[serde(default)]
    pub lora: Option<LoraAdapter>,
}

fn yes() -> bool {
    true
}

/// One chat message.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// vLLM's own request options.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VllmOptions {
    /// A JSON Schema the answer must follow.
    #[serde(default)]
    pub guided_json: Option<Value>,
    /// A regular expression the answer must match.
    #[serde(default)]
    pub guided_regex: Option<String>,
    /// The answer is one of these.
    #[serde(default)]
    pub guided_choice: Vec<String>,
    /// Sample from the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<i32>,
    /// Penalise repeated tokens (1 is none).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
}

/// A LoRA adapter and where it comes from: a path on the endpoint's host or
/// a URL its resolver fetches.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraAdapter {
    /// The name it is loaded and requested under.
    pub name: String,
    /// A path on the endpoint's host.
    #[serde(default)]
    pub path: Option<String>,
    /// A URL the endpoint's resolver fetches.
    #[serde(default)]
    pub url: Option<String>,
}

/// Output of an `inference` task.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceOutput {
    /// The model that answered.
    pub model: String,
    /// The generated text.
    pub content: String,
    /// Why generation stopped (`stop`, `length`, …), as the endpoint says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token counts, when the endpoint reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Token counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// Whether `value` is a placeholder still to be resolved: its check waits
/// for the resolved spec.
fn is_placeholder(value: &str) -> bool {
    value.contains("${")
}

const DEVICES: [&str; 3] = ["auto", "gpu", "cpu"];
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

impl InferenceSpec {
    fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.model.trim().is_empty() {
            errors.push(FieldError::new("model", "must name a model"));
        }
        match (self.messages.is_empty(), &self.prompt) {
            (true, None) => errors.push(FieldError::new(
                "messages",
                "give messages (a chat) or prompt (a text completion)",
            )),
            (false, Some(_)) => errors.push(FieldError::new(
                "prompt",
                "give messages or prompt, not both",
            )),
            _ => {}
        }
        for (index, message) in self.messages.iter().enumerate() {
            if !ROLES.contains(&message.role.as_str()) && !is_placeholder(&message.role) {
                errors.push(FieldError::new(
                    format!("messages[{index}].role"),
                    format!("must be one of {}", ROLES.join(", ")),
                ));
            }
        }
        if let Some(temperature) = self.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            errors.push(FieldError::new("temperature", "must be between 0 and 2"));
        }
        if let Some(top_p) = self.top_p
            && !(top_p > 0.0 && top_p <= 1.0)
        {
            errors.push(FieldError::new("topP", "must be above 0 and at most 1"));
        }
        let device = self.device.as_deref().unwrap_or("auto");
        if !is_placeholder(device) && !DEVICES.contains(&device) {
            errors.push(FieldError::new(
                "device",
                format!("must be one of {}", DEVICES.join(", ")),
            ));
        }
        // A CPU endpoint is not vLLM: its options would be silently ignored.
        if device == "cpu" && self.vllm.is_some() {
            errors.push(FieldError::new(
                "vllm",
                "vLLM options have no effect with device: cpu (a CPU endpoint is not vLLM); remove them, or ask for device: gpu or auto",
            ));
        }
        if let Some(lora) = &self.lora {
            if lora.name.trim().is_empty() {
                errors.push(FieldError::new("lora.name", "must name the adapter"));
            }
            match (&lora.path, &lora.url) {
                (None, None) => errors.push(FieldError::new(
                    "lora",
                    "say where the adapter comes from: path (on the endpoint's host) or url",
                )),
                (Some(_), Some(_)) => {
                    errors.push(FieldError::new("lora.url", "give path or url, not both"))
                }
                (_, Some(url))
                    if !is_placeholder(url)
                        && !url.starts_with("http://")
                        && !url.starts_with("https://") =>
                {
                    errors.push(FieldError::new(
                        "lora.url",
                        "must be an http:// or https:// URL",
                    ))
                }
                _ => {}
            }
        }
        errors
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop.clone(),
            seed: self.seed,
        }
    }

    /// vLLM's options as request fields.
    fn extra_json(&self) -> Option<String> {
        let vllm = self.vllm.as_ref()?;
        let mut extra = Map::new();
        if let Some(schema) = &vllm.guided_json {
            extra.insert("guided_json".into(), schema.clone());
        }
        if let Some(regex) = &vllm.guided_regex {
            extra.insert("guided_regex".into(), json!(regex));
        }
        if !vllm.guided_choice.is_empty() {
            extra.insert("guided_choice".into(), json!(vllm.guided_choice));
        }
        if let Some(top_k) = vllm.top_k {
            extra.insert("top_k".into(), json!(top_k));
        }
        if let Some(penalty) = vllm.repetition_penalty {
            extra.insert("repetition_penalty".into(), json!(penalty));
        }
        Some(Value::Object(extra).to_string())
    }
}

fn llm_error(error: LlmError) -> TaskError {
    match error {
        LlmError::BadRequest(message) => {
            TaskError::failed(format!("the model endpoint refused the request: {message}"))
        }
        LlmError::UnknownModel(message) => TaskError::failed(message),
        LlmError::TooLarge(message) => TaskError::failed(message),
        LlmError::TimedOut => TaskError::failed("the model endpoint did not answer in time"),
        LlmError::Unavailable(message) => {
            TaskError::retryable(format!("the model endpoint failed: {message}"))
        }
    }
}

impl TaskType for Inference {
    const NAME: &'static str = "inference";
    const DESCRIPTION: &'static str =
        "A chat or text completion from the worker's OpenAI-compatible model endpoint.";
    type Spec = InferenceSpec;
    type Output = InferenceOutput;

    fn validate(spec: &InferenceSpec) -> Result<(), Vec<FieldError>> {
        match spec.check() {
            errors if errors.is_empty() => Ok(()),
            errors => Err(errors),
        }
    }

    fn execute(spec: InferenceSpec, _task: &TaskInfo) -> Result<InferenceOutput, TaskError> {
        if spec.device.as_deref() == Some("cpu") && llm::engine() == "vllm" {
            return Err(TaskError::failed(
                "device: cpu, but this worker's model endpoint is vLLM, which serves from GPUs; run the task where a CPU endpoint serves the model",
            ));
        }
        let mut model = spec.model.clone();
        if let Some(lora) = &spec.lora {
            let source = lora
                .path
                .as_deref()
                .or(lora.url.as_deref())
                .unwrap_or_default();
            llm::load_adapter(&lora.name, source).map_err(llm_error)?;
            model = lora.name.clone();
        }
        let response = match &spec.prompt {
            Some(prompt) => llm::complete(&CompletionRequest {
                model,
                prompt: prompt.clone(),
                sampling: spec.sampling(),
                streaming: spec.stream,
                extra_json: spec.extra_json(),
            }),
            None => llm::chat(&ChatRequest {
                model,
                messages: spec
                    .messages
                    .iter()
                    .map(|message| Message {
                        role: message.role.clone(),
                        content: message.content.clone(),
                    })
                    .collect(),
                sampling: spec.sampling(),
                streaming: spec.stream,
                extra_json: spec.extra_json(),
            }),
        }
        .map_err(llm_error)?;
        Ok(InferenceOutput {
            model: response.model,
            content: response.content,
            finish_reason: response.finish_reason,
            usage: response.usage.map(|usage| Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            }),
        })
    }
}

/// The `inference` plugin.
pub struct InferencePlugin;

impl Plugin for InferencePlugin {
    const NAME: &'static str = "inference";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Chat and text completions from the worker's model endpoint.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Inference>();
    }
}

flowmesh_sdk::export!(InferencePlugin);
