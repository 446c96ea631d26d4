//! Task documents: the FlowMesh envelope, parsed and checked.
//!
//! A document is YAML or JSON:
//!
//! ```yaml
//! apiVersion: flowmesh/v1
//! kind: Task
//! metadata: {name: hello, labels: {team: ml}}
//! spec:
//!   taskType: echo      # routed by this
//!   message: hi         # plugin-owned fields
//!   resources: {hardware: {cpu: 1, memory: 512Mi, gpu: {count: 0, type: any, memory: 0}}}
//!   timeout: 30s
//!   maxAttempts: 3
//! ```
//!
//! The envelope — `apiVersion`, `kind`, `metadata`, and the host fields of
//! `spec` (`taskType`, `resources`, `timeout`, `maxAttempts`) — belongs to
//! FlowMesh and is checked here: an unknown envelope field is an error naming
//! its path, because a field that does nothing must not look as if it did.
//! Every other field of `spec` belongs to the plugin that serves `taskType`
//! and is checked against that plugin's JSON Schema and `validate()` by the
//! server, not here.
//!
//! [`parse_document`] reports every problem it finds, each with its path
//! (`spec.resources.hardware.memory`) and what to write instead.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{FieldError, is_valid_name};

/// The only `apiVersion` this version understands.
pub const API_VERSION: &str = "flowmesh/v1";
/// Attempts of a task that sets no `maxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts a task may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The longest `timeout` a task may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The largest size a quantity may have (what a signed 64-bit column holds).
pub const MAX_QUANTITY: u64 = i64::MAX as u64;
/// The longest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

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
        (self.cpu * 1000.0).ceil() as i64
    }
}

pub use crate::capability::GpuRequest;

/// A parsed, checked document of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `kind: Task`.
    Task(TaskDocument),
    /// `kind: Workflow`.
    Workflow(WorkflowDocument),
}

pub use crate::workflow::WorkflowDocument;

/// Parses a YAML or JSON document of either kind and checks it: the task
/// envelope, or a workflow's stages, graph and placeholders.
///
/// All problems are reported at once, each with its path.
pub fn parse(text: &str) -> Result<Document, Vec<FieldError>> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(vec![FieldError::new(
            "",
            format!(
                "the document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}; keep large data outside the task and pass a reference",
                text.len()
            ),
        )]);
    }
    let value = parse_value(text).map_err(|message| vec![FieldError::new("", message)])?;
    let mut errors = Errors::default();
    let document = check_document(&value, &mut errors);
    match document {
        Some(document) if errors.0.is_empty() => Ok(document),
        _ => Err(errors.0),
    }
}

/// Parses a YAML or JSON task document and checks its envelope; a workflow
/// is an error (see [`parse`] for both).
pub fn parse_document(text: &str) -> Result<TaskDocument, Vec<FieldError>> {
    match parse(text)? {
        Document::Task(document) => Ok(document),
        Document::Workflow(_) => Err(vec![FieldError::new(
            "kind",
            "a Workflow document where a Task is expected",
        )]),
    }
}

/// JSON when it looks like JSON, YAML otherwise (YAML is a superset, but JSON
/// errors are clearer for JSON input).
pub(crate) fn parse_value(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|error| format!("not a valid JSON document: {error}"))
    } else {
        serde_saphyr::from_str(text).map_err(|error| format!("not a valid YAML document: {error}"))
    }
}

#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Reports every key of `object` not in `known`.
    pub(crate) fn unknown_fields(
        &mut self,
        path: &str,
        object: &Map<String, Value>,
        known: &[&str],
    ) {
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            self.add(
                &join(path, key),
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }

    pub(crate) fn object<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                self.add(path, format!("must be a mapping, not {}", kind_of(other)));
                None
            }
        }
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn check_document(value: &Value, errors: &mut Errors) -> Option<Document> {
    let root = errors.object("", value)?;
    errors.unknown_fields("", root, &["apiVersion", "kind", "metadata", "spec"]);
    match root.get("apiVersion") {
        Some(Value::String(version)) if version == API_VERSION => {}
        Some(other) => errors.add(
            "apiVersion",
            format!("unsupported version {other}; write apiVersion: {API_VERSION}"),
        ),
        None => errors.add(
            "apiVersion",
            format!("missing; write apiVersion: {API_VERSION}"),
        ),
    }
    // An unknown kind is checked as a task, so that every problem shows.
    let workflow = match root.get("kind") {
        Some(Value::String(kind)) if kind == "Task" => false,
        Some(Value::String(kind)) if kind == "Workflow" => true,
        Some(other) => {
            errors.add(
                "kind",
                format!("unknown kind {other}; write kind: Task or kind: Workflow"),
            );
            false
        }
        None => {
            errors.add("kind", "missing; write kind: Task or kind: Workflow");
            false
        }
    };
    let metadata = root
        .get("metadata")
        .map(|value| check_metadata(value, errors))
        .unwrap_or_default();
    let Some(spec) = root.get("spec") else {
        errors.add(
            "spec",
            if workflow {
                "missing; a workflow needs spec.stages or spec.graph.nodes"
            } else {
                "missing; a task needs at least spec.taskType"
            },
        );
        return None;
    };
    if workflow {
        crate::workflow::check_workflow(metadata, spec, errors).map(Document::Workflow)
    } else {
        let spec = check_spec("spec", spec, errors)?;
        Some(Document::Task(TaskDocument { metadata, spec }))
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
        Some(Value::String(name)) if name.len() <= 253 => metadata.name = Some(name.clone()),
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

/// `2`, `0.5` or `500m` (millicores).
fn parse_cpu(value: &Value) -> Result<f64, String> {
    let hint = "write a number of cores such as 2 or 0.5, or millicores such as 500m";
    let cores = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.strip_suffix('m') {
            Some(millis) => millis.trim().parse::<f64>().ok().map(|m| m / 1000.0),
            None => text.trim().parse::<f64>().ok(),
        },
        _ => None,
    };
    match cores {
        Some(cores) if cores.is_finite() && (0.0..=1024.0).contains(&cores) => Ok(cores),
        Some(_) => Err(format!("must be between 0 and 1024 cores; {hint}")),
        None => Err(format!("not a CPU amount: {value}; {hint}")),
    }
}

/// A byte count as people read it, in binary units: `512 B`, `1.5 GiB`.
pub fn format_bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A byte quantity: a number of bytes, or a number with a unit: `512Mi`,
/// `1.5Gi`, `2G`, `300k` (binary `Ki Mi Gi Ti`, decimal `k M G T`).
pub fn parse_quantity(value: &Value) -> Result<u64, String> {
    let hint = "write bytes or a size such as 512Mi, 2Gi or 4G";
    let text = match value {
        Value::Number(number) => {
            return number
                .as_u64()
                .filter(|bytes| *bytes <= MAX_QUANTITY)
                .ok_or_else(|| format!("must be a whole number of bytes from 0 to 8Ei; {hint}"));
        }
        Value::String(text) => text.trim(),
        other => return Err(format!("must be a size, not {}; {hint}", kind_of(other))),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} in {text:?}; {hint}")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("not a size: {text:?}; {hint}"))?;
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > MAX_QUANTITY as f64 {
        return Err(format!("{text:?} is out of range; {hint}"));
    }
    Ok(bytes.round() as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_yaml_task_document_parses_with_defaults_and_plugin_fields() {
        let document = parse_document(
            "apiVersion: flowmesh/v1\nkind: Task\nmetadata: {name: hello, labels: {team: ml}}\nspec:\n  taskType: echo\n  message: hi\n",
        )
        .expect("valid");
        assert_eq!(document.metadata.name.as_deref(), Some("hello"));
        assert_eq!(document.metadata.labels["team"], "ml");
        assert_eq!(document.spec.task_type, "echo");
        assert_eq!(document.spec.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(document.spec.timeout, None);
        assert_eq!(document.spec.plugin_fields["message"], "hi");
        assert_eq!(document.spec.plugin_fields.len(), 1);
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(24 << 30), "24.0 GiB");
    }

    #[test]
    fn host_fields_are_parsed_with_units() {
        let document = parse_document(
            r#"{"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {
                "taskType": "train", "timeout": "90s", "maxAttempts": 5,
                "resources": {"hardware": {"cpu": "500m", "memory": "1.5Gi",
                    "gpu": {"count": 2, "type": "H100", "memory": "40G"}}}}}"#,
        )
        .expect("valid");
        let spec = document.spec;
        assert_eq!(spec.timeout, Some(Duration::from_secs(90)));
        assert_eq!(spec.max_attempts, 5);
        let hardware = spec.resources.hardware;
        assert_eq!(hardware.cpu, 0.5);
        assert_eq!(hardware.memory_bytes, 3 << 29);
        assert_eq!(hardware.gpu.count, 2);
        assert_eq!(hardware.gpu.model.as_deref(), Some("H100"));
        assert_eq!(hardware.gpu.memory_bytes, 40_000_000_000);
        assert!(spec.plugin_fields.is_empty());
    }

    #[test]
    fn gpu_type_any_means_no_constraint() {
        let document = parse_document(
            "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: x, resources: {hardware: {gpu: {count: 1, type: any}}}}",
        )
        .expect("valid");
        assert_eq!(document.spec.resources.hardware.gpu.model, None);
    }

    #[test]
    fn unknown_envelope_fields_are_rejected_with_their_paths() {
        let errors = parse_document(
            "apiVersion: flowmesh/v1\nkind: Task\nextra: 1\nmetadata: {nme: x}\nspec:\n  taskType: echo\n  resources: {hardware: {cpus: 2, gpu: {cnt: 1}}, disk: 1}\n",
        )
        .expect_err("unknown fields");
        assert_eq!(
            paths(&errors),
            [
                "extra",
                "metadata.nme",
                "spec.resources.disk",
                "spec.resources.hardware.cpus",
                "spec.resources.hardware.gpu.cnt"
            ]
        );
        assert!(
            errors[0]
                .message
                .contains("expected one of: apiVersion, kind, metadata, spec")
        );
    }

    #[test]
    fn every_bad_host_field_is_reported_at_once() {
        let errors = parse_document(
            "apiVersion: flowmesh/v2\nkind: Job\nspec:\n  taskType: Echo Task\n  timeout: soon\n  maxAttempts: 0\n  resources: {hardware: {cpu: lots, memory: 5Qi}}\n",
        )
        .expect_err("invalid");
        assert_eq!(
            paths(&errors),
            [
                "apiVersion",
                "kind",
                "spec.taskType",
                "spec.resources.hardware.cpu",
                "spec.resources.hardware.memory",
                "spec.timeout",
                "spec.maxAttempts"
            ]
        );
        assert!(errors.iter().all(|e| !e.message.is_empty()));
    }

    #[test]
    fn a_missing_task_type_and_broken_syntax_are_explained() {
        let errors = parse_document("apiVersion: flowmesh/v1\nkind: Task\nspec: {message: hi}\n")
            .expect_err("no task type");
        assert_eq!(paths(&errors), ["spec.taskType"]);
        let errors = parse_document("{\"apiVersion\": ").expect_err("broken JSON");
        assert!(
            errors[0].message.starts_with("not a valid JSON document"),
            "{errors:?}"
        );
        let errors = parse_document("spec: [unclosed").expect_err("broken YAML");
        assert!(
            errors[0].message.starts_with("not a valid YAML document"),
            "{errors:?}"
        );
        let errors = parse_document("- just\n- a list\n").expect_err("not a mapping");
        assert_eq!(errors[0].message, "must be a mapping, not a list");
    }

    #[test]
    fn quantities_accept_binary_and_decimal_units() {
        let q = |text: &str| parse_quantity(&Value::String(text.into()));
        assert_eq!(q("512Mi"), Ok(512 << 20));
        assert_eq!(q("2G"), Ok(2_000_000_000));
        assert_eq!(q("1024"), Ok(1024));
        assert_eq!(parse_quantity(&serde_json::json!(0)), Ok(0));
        assert!(q("12 parsecs").is_err());
        assert!(parse_quantity(&serde_json::json!(-1)).is_err());
    }
}
