//! Task and workflow documents: the FlowMesh envelope, parsed and checked.
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
//!
//! A `kind: Workflow` document composes task specs into stages; [`workflow`]
//! checks its stages and their graph. [`parse`] reads either kind.
//!
//! Inside, the checks are split by what they check, each part depending only
//! on the ones before it: collecting field errors with their paths
//! (`fields`), sizes such as `512Mi` and `500m` (`quantity`), the task
//! envelope and its host fields (`task`), and workflows ([`workflow`]). This
//! module reads the text, dispatches on `kind`, and re-exports the public
//! items, so they are all `flowmesh_types::document::…`.

pub mod batch;
mod fields;
mod quantity;
mod task;
pub mod workflow;

use serde_json::Value;

use crate::manifest::FieldError;
use fields::Errors;
use task::{check_metadata, check_spec};
use workflow::check_workflow;

pub use crate::capability::GpuRequest;
pub use quantity::{MAX_QUANTITY, format_bytes, parse_quantity};
pub use task::{
    API_VERSION, DEFAULT_MAX_ATTEMPTS, HardwareRequest, MAX_ATTEMPTS_LIMIT, MAX_TIMEOUT, Metadata,
    Resources, TaskDocument, TaskSpec, is_label_key,
};
pub use workflow::WorkflowDocument;

/// The longest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// A parsed, checked document of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `kind: Task`.
    Task(TaskDocument),
    /// `kind: Workflow`.
    Workflow(WorkflowDocument),
}

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
    let value = parse_value(text).map_err(|error| vec![error])?;
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
/// errors are clearer for JSON input). A key given twice is an error at its
/// path.
pub(crate) fn parse_value(text: &str) -> Result<Value, FieldError> {
    if text.trim_start().starts_with('{') {
        crate::strict_json::from_str(text).map_err(|error| match error.path {
            Some(path) => FieldError::new(path, error.message),
            None => FieldError::new("", format!("not a valid JSON document: {}", error.message)),
        })
    } else {
        serde_saphyr::from_str(text)
            .map_err(|error| FieldError::new("", format!("not a valid YAML document: {error}")))
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
        check_workflow(metadata, spec, errors).map(Document::Workflow)
    } else {
        let spec = check_spec("spec", spec, errors)?;
        Some(Document::Task(TaskDocument { metadata, spec }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
