//! The task envelope: `metadata` and the host-owned fields of `spec`
//! (`taskType`, `resources`, `timeout`, `maxAttempts`), their types, their
//! limits and their checks. The plugin's fields of `spec` pass through
//! untouched.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{Errors, join, kind_of};
use super::quantity::{parse_cpu, parse_quantity};
use crate::capability::GpuRequest;
use crate::manifest::is_valid_name;

/// The only `apiVersion` this version understands.
pub const API_VERSION: &str = "flowmesh/v1";
/// Attempts of a task that sets no `maxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts a task may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The longest `timeout` a task may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Host-owned fields of `spec`; everything else is the plugin's.
pub(crate) const HOST_SPEC_FIELDS: [&str; 4] = ["taskType", "resources", "timeout", "maxAttempts"];

/// A parsed, envelope-checked task document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDocument {
    /// Name and labels.
    pub metadata: Metadata,
    /// What to run.
    pub spec: TaskSpec,
}

/// `metadata` of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// A name for humans; not unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels, for filtering.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `spec` of a task: the host fields, and the plugin's fields untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// The task type, which decides the plugin and the workers.
    pub task_type: String,
    /// What the task needs of a worker.
    pub resources: Resources,
    /// Wall-clock limit of one attempt; the worker's default when absent.
    #[serde(default, with = "duration_ms", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How many attempts before the task fails for good.
    pub max_attempts: u32,
    /// Every other field of `spec`, for the plugin.
    pub plugin_fields: Map<String, Value>,
}

/// `spec.resources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Hardware the task needs on its worker.
    pub hardware: HardwareRequest,
    /// Labels its worker must carry, each with exactly this value (operator
    /// labels, or those a capability adds, such as `llm.model/<id>`).
    pub labels: BTreeMap<String, String>,
}

/// `spec.resources.hardware`: what a worker must have free to run the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HardwareRequest {
    /// CPU cores (fractions allowed); 0 when not requested.
    pub cpu: f64,
    /// Memory in bytes; 0 when not requested.
    pub memory_bytes: u64,
    /// GPUs.
    pub gpu: GpuRequest,
}

impl HardwareRequest {
    /// The CPU request in thousandths of a core, rounded up: what capacity
    /// checks compare with [`crate::api::Hardware::cpu_millis`].
    pub fn cpu_millis(&self) -> i64 {
        crate::cpu_millis::cpu_millis(self.cpu, f64::ceil)
    }
}

/// Whether `key` may name a label (and be used in a label filter).
pub fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

pub(crate) fn check_metadata(value: &Value, errors: &mut Errors) -> Metadata {
    let mut metadata = Metadata::default();
    let Some(object) = errors.object("metadata", value) else {
        return metadata;
    };
    errors.unknown_fields("metadata", object, &["name", "labels"]);
    match object.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if name.chars().any(char::is_control) => {
            errors.add("metadata.name", "must not contain control characters")
        }
        Some(Value::String(name)) if name.chars().count() <= 253 => {
            metadata.name = Some(name.clone())
        }
        Some(Value::String(_)) => errors.add("metadata.name", "longer than 253 characters"),
        Some(other) => errors.add(
            "metadata.name",
            format!("must be a string, not {}", kind_of(other)),
        ),
    }
    if let Some(labels) = object.get("labels") {
        metadata.labels = check_labels("metadata.labels", labels, errors);
    }
    metadata
}

/// A map of labels at `path`: keys by [`is_label_key`], values strings (a
/// number or boolean is taken as its text).
fn check_labels(path: &str, value: &Value, errors: &mut Errors) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(object) = errors.object(path, value) else {
        return labels;
    };
    for (key, value) in object {
        let path = join(path, key);
        if !is_label_key(key) {
            errors.add(
                &path,
                "a label key is letters, digits, '-', '_', '.' and '/', at most 253 characters",
            );
            continue;
        }
        if value
            .as_str()
            .is_some_and(|text| text.chars().any(char::is_control))
        {
            errors.add(&path, "must not contain control characters");
            continue;
        }
        match value {
            Value::String(text) => {
                labels.insert(key.clone(), text.clone());
            }
            Value::Number(_) | Value::Bool(_) => {
                labels.insert(key.clone(), value.to_string());
            }
            other => errors.add(&path, format!("must be a string, not {}", kind_of(other))),
        }
    }
    labels
}

pub(crate) fn check_spec(path: &str, value: &Value, errors: &mut Errors) -> Option<TaskSpec> {
    let object = errors.object(path, value)?;
    let task_type = match object.get("taskType") {
        Some(Value::String(task_type)) if is_valid_name(task_type) => Some(task_type.clone()),
        Some(Value::String(task_type)) => {
            errors.add(
                &join(path, "taskType"),
                format!(
                    "{task_type:?} is not a task type name: use lowercase letters, digits and '-'"
                ),
            );
            None
        }
        Some(other) => {
            errors.add(
                &join(path, "taskType"),
                format!("must be a string, not {}", kind_of(other)),
            );
            None
        }
        None => {
            errors.add(
                &join(path, "taskType"),
                "missing; name the task type to run, e.g. taskType: echo",
            );
            None
        }
    };
    let resources = object
        .get("resources")
        .map(|value| check_resources(&join(path, "resources"), value, errors))
        .unwrap_or_default();
    let timeout = object.get("timeout").and_then(|value| match value {
        Value::String(text) => match humantime::parse_duration(text) {
            Ok(duration) if duration.is_zero() => {
                errors.add(&join(path, "timeout"), "must be longer than 0s");
                None
            }
            Ok(duration) if duration > MAX_TIMEOUT => {
                errors.add(&join(path, "timeout"), "must be at most 7 days");
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                errors.add(
                    &join(path, "timeout"),
                    format!("{error}: write a duration such as 30s, 5m or 2h"),
                );
                None
            }
        },
        other => {
            errors.add(
                &join(path, "timeout"),
                format!(
                    "must be a duration string such as 30s, not {}",
                    kind_of(other)
                ),
            );
            None
        }
    });
    let max_attempts = match object.get("maxAttempts") {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(value) => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=MAX_ATTEMPTS_LIMIT).contains(&n) => n,
            _ => {
                errors.add(
                    &join(path, "maxAttempts"),
                    format!("must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}, got {value}"),
                );
                DEFAULT_MAX_ATTEMPTS
            }
        },
    };
    let plugin_fields = object
        .iter()
        .filter(|(key, _)| !HOST_SPEC_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Some(TaskSpec {
        task_type: task_type?,
        resources,
        timeout,
        max_attempts,
        plugin_fields,
    })
}

fn check_resources(base: &str, value: &Value, errors: &mut Errors) -> Resources {
    let mut resources = Resources::default();
    let Some(object) = errors.object(base, value) else {
        return resources;
    };
    errors.unknown_fields(base, object, &["hardware", "labels"]);
    if let Some(labels) = object.get("labels") {
        resources.labels = check_labels(&join(base, "labels"), labels, errors);
    }
    let Some(hardware) = object.get("hardware") else {
        return resources;
    };
    let path = &join(base, "hardware");
    let Some(hardware) = errors.object(path, hardware) else {
        return resources;
    };
    errors.unknown_fields(path, hardware, &["cpu", "memory", "gpu"]);
    let request = &mut resources.hardware;
    if let Some(cpu) = hardware.get("cpu") {
        match parse_cpu(cpu) {
            Ok(cores) => request.cpu = cores,
            Err(message) => errors.add(&join(path, "cpu"), message),
        }
    }
    if let Some(memory) = hardware.get("memory") {
        match parse_quantity(memory) {
            Ok(bytes) => request.memory_bytes = bytes,
            Err(message) => errors.add(&join(path, "memory"), message),
        }
    }
    if let Some(gpu) = hardware.get("gpu") {
        let path = &join(path, "gpu");
        if let Some(gpu) = errors.object(path, gpu) {
            errors.unknown_fields(path, gpu, &["count", "type", "memory"]);
            match gpu
                .get("count")
                .map(|count| count.as_u64().and_then(|n| u32::try_from(n).ok()))
            {
                None => {}
                Some(Some(count)) if count <= 64 => request.gpu.count = count,
                Some(_) => errors.add(&join(path, "count"), "must be a whole number from 0 to 64"),
            }
            match gpu.get("type") {
                None | Some(Value::Null) => {}
                Some(Value::String(model))
                    if model.eq_ignore_ascii_case("any") || model.is_empty() => {}
                Some(Value::String(model)) if model.chars().any(char::is_control) => {
                    errors.add(&join(path, "type"), "must not contain control characters")
                }
                Some(Value::String(model)) => request.gpu.model = Some(model.clone()),
                Some(other) => errors.add(
                    &join(path, "type"),
                    format!(
                        "must be a string such as H100 or any, not {}",
                        kind_of(other)
                    ),
                ),
            }
            if let Some(memory) = gpu.get("memory") {
                match parse_quantity(memory) {
                    Ok(bytes) => request.gpu.memory_bytes = bytes,
                    Err(message) => errors.add(&join(path, "memory"), message),
                }
            }
        }
    }
    resources
}

/// Serialises an optional duration as milliseconds.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => {
                serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            }
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}
