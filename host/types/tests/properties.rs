//! Properties of the parsers every request goes through, over generated
//! input: the document parser, the placeholder resolver, and the size,
//! CPU and duration parsers. They never panic, whatever the text; and what
//! they accept reads back as what was written.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default).

use std::collections::BTreeMap;
use std::time::Duration;

use flowmesh_types::document::{
    self, Document, MAX_ATTEMPTS_LIMIT, MAX_QUANTITY, MAX_TIMEOUT, TaskDocument, parse_quantity,
};
use flowmesh_types::placeholder::{self, Reference};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,10}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON value with no `$` anywhere, as plugin fields of a task are
/// (placeholders belong to workflow stages).
fn plain_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 .,:_-]{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// What a generated task document says, field by field.
#[derive(Debug, Clone)]
struct Written {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    task_type: String,
    cpu_millis: u32,
    cpu_as_millis: bool,
    memory: (u64, &'static str, u64),
    gpu: (u32, Option<String>),
    timeout_ms: Option<u64>,
    max_attempts: u32,
    fields: Map<String, Value>,
}

fn written() -> impl Strategy<Value = Written> {
    let units: [(&'static str, u64); 9] = [
        ("", 1),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
    ];
    (
        (
            prop::option::of("[a-zA-Z0-9 _-]{1,30}"),
            prop::collection::btree_map("[a-z][a-z0-9_./-]{0,15}", "[a-zA-Z0-9 _.-]{0,20}", 0..4),
            "[a-z][a-z0-9-]{0,20}",
        ),
        (0u32..=64_000, any::<bool>()),
        (0u64..=1 << 20, prop::sample::select(units.to_vec())),
        (0u32..=8, prop::option::of("[A-Z][A-Z0-9]{0,5}")),
        prop::option::of(1u64..=MAX_TIMEOUT.as_millis() as u64),
        1u32..=MAX_ATTEMPTS_LIMIT,
        prop::collection::btree_map("[a-z]{1,8}", plain_json(), 0..5),
    )
        .prop_map(
            |(
                (name, labels, task_type),
                (cpu_millis, cpu_as_millis),
                (amount, (unit, scale)),
                gpu,
                timeout_ms,
                max_attempts,
                fields,
            )| Written {
                name,
                labels,
                task_type,
                cpu_millis,
                cpu_as_millis,
                memory: (amount, unit, scale),
                gpu,
                timeout_ms,
                max_attempts,
                fields: fields
                    .into_iter()
                    .filter(|(key, _)| {
                        !["taskType", "resources", "timeout", "maxAttempts"].contains(&key.as_str())
                    })
                    .collect(),
            },
        )
}

impl Written {
    /// The document as JSON.
    fn document(&self) -> Value {
        let cpu = if self.cpu_as_millis {
            json!(format!("{}m", self.cpu_millis))
        } else {
            json!(f64::from(self.cpu_millis) / 1000.0)
        };
        let (amount, unit, _) = self.memory;
        let mut gpu = json!({"count": self.gpu.0});
        if let Some(model) = &self.gpu.1 {
            gpu["type"] = json!(model);
        }
        let mut spec = self.fields.clone();
        spec.insert("taskType".into(), json!(self.task_type));
        spec.insert(
            "resources".into(),
            json!({"hardware": {"cpu": cpu, "memory": format!("{amount}{unit}"), "gpu": gpu}}),
        );
        if let Some(ms) = self.timeout_ms {
            spec.insert(
                "timeout".into(),
                json!(humantime::format_duration(Duration::from_millis(ms)).to_string()),
            );
        }
        spec.insert("maxAttempts".into(), json!(self.max_attempts));
        let mut metadata = json!({"labels": self.labels});
        if let Some(name) = &self.name {
            metadata["name"] = json!(name);
        }
        json!({"apiVersion": "flowmesh/v1", "kind": "Task", "metadata": metadata, "spec": spec})
    }

    /// Whether `parsed` says what was written.
    fn check(&self, parsed: &TaskDocument) -> Result<(), TestCaseError> {
        prop_assert_eq!(&parsed.metadata.name, &self.name);
        prop_assert_eq!(&parsed.metadata.labels, &self.labels);
        prop_assert_eq!(&parsed.spec.task_type, &self.task_type);
        let hardware = &parsed.spec.resources.hardware;
        prop_assert_eq!(hardware.cpu_millis(), i64::from(self.cpu_millis));
        let (amount, _, scale) = self.memory;
        prop_assert_eq!(hardware.memory_bytes, amount * scale);
        prop_assert_eq!(hardware.gpu.count, self.gpu.0);
        prop_assert_eq!(&hardware.gpu.model, &self.gpu.1);
        prop_assert_eq!(
            parsed.spec.timeout,
            self.timeout_ms.map(Duration::from_millis)
        );
        prop_assert_eq!(parsed.spec.max_attempts, self.max_attempts);
        prop_assert_eq!(&parsed.spec.plugin_fields, &self.fields);
        Ok(())
    }
}

/// A parsed task document written out again as a document.
fn rewritten(parsed: &TaskDocument) -> Value {
    let hardware = &parsed.spec.resources.hardware;
    let mut gpu = json!({"count": hardware.gpu.count, "memory": hardware.gpu.memory_bytes});
    if let Some(model) = &hardware.gpu.model {
        gpu["type"] = json!(model);
    }
    let mut spec = parsed.spec.plugin_fields.clone();
    spec.insert("taskType".into(), json!(parsed.spec.task_type));
    spec.insert(
        "resources".into(),
        json!({"hardware": {"cpu": hardware.cpu, "memory": hardware.memory_bytes, "gpu": gpu},
               "labels": parsed.spec.resources.labels}),
    );
    if let Some(timeout) = parsed.spec.timeout {
        spec.insert(
            "timeout".into(),
            json!(humantime::format_duration(timeout).to_string()),
        );
    }
    spec.insert("maxAttempts".into(), json!(parsed.spec.max_attempts));
    json!({"apiVersion": "flowmesh/v1", "kind": "Task",
           "metadata": {"name": parsed.metadata.name, "labels": parsed.metadata.labels},
           "spec": spec})
}

fn task(text: &str) -> Result<TaskDocument, TestCaseError> {
    match document::parse(text) {
        Ok(Document::Task(task)) => Ok(task),
        other => Err(TestCaseError::fail(format!("{other:?} for {text}"))),
    }
}

/// Escapes `text` so that it holds no placeholder: `${` becomes `$${`.
fn escaped(text: &str) -> String {
    text.replace("${", "$${")
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in ".{0,400}") {
        let _ = document::parse(&text);
    }

    #[test]
    fn yaml_like_text_parses_or_is_refused_without_panicking(
        text in "[a-zA-Z0-9:{}\\[\\],\\-\n '\"#&*!|>%@`$.]{0,300}"
    ) {
        let _ = document::parse(&text);
        let _ = document::parse(&format!("apiVersion: flowmesh/v1\nkind: Task\nspec:\n  {text}"));
        let _ = document::parse(&format!("apiVersion: flowmesh/v1\nkind: Workflow\nspec:\n  stages:\n    - {text}"));
    }

    #[test]
    fn any_json_in_the_envelope_is_checked_without_panicking(
        spec in json_value(),
        metadata in json_value(),
        kind in prop::sample::select(vec!["Task", "Workflow", "Other"]),
    ) {
        let document = json!({"apiVersion": "flowmesh/v1", "kind": kind, "metadata": metadata, "spec": spec});
        let _ = document::parse(&document.to_string());
        let stages = json!({"apiVersion": "flowmesh/v1", "kind": "Workflow",
                            "spec": {"stages": [{"name": "a", "spec": spec}, {"name": "b", "spec": metadata}]}});
        let _ = document::parse(&stages.to_string());
    }

    #[test]
    fn a_task_document_reads_back_as_written(written in written(), as_yaml in any::<bool>()) {
        let document = written.document();
        // JSON is YAML: the YAML reader gets it when it does not look like JSON.
        let text = if as_yaml { format!("# generated\n{document}") } else { document.to_string() };
        let parsed = task(&text)?;
        written.check(&parsed)?;
        // What the parser produced, written out again, parses to the same.
        let again = task(&rewritten(&parsed).to_string())?;
        prop_assert_eq!(again, parsed);
    }

    #[test]
    fn any_quantity_text_parses_or_is_refused_without_panicking(text in ".{0,40}") {
        let _ = parse_quantity(&Value::String(text));
    }

    #[test]
    fn a_byte_count_reads_back_exactly(bytes in 0..=MAX_QUANTITY) {
        prop_assert_eq!(parse_quantity(&json!(bytes)), Ok(bytes));
        prop_assert_eq!(parse_quantity(&json!(bytes.to_string())), Ok(bytes));
    }

    #[test]
    fn a_count_with_a_unit_reads_back_exactly(
        amount in 0u64..=1 << 23,
        (unit, scale) in prop::sample::select(vec![
            ("k", 1_000u64), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
            ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
        ]),
    ) {
        prop_assert_eq!(parse_quantity(&json!(format!("{amount}{unit}"))), Ok(amount * scale));
    }

    #[test]
    fn a_quantity_over_the_limit_is_refused(bytes in MAX_QUANTITY + 1..) {
        prop_assert!(parse_quantity(&json!(bytes)).is_err());
        prop_assert!(parse_quantity(&json!(bytes.to_string())).is_err());
    }

    #[test]
    fn a_timeout_reads_back_exactly(ms in 1..=MAX_TIMEOUT.as_millis() as u64) {
        let written = humantime::format_duration(Duration::from_millis(ms)).to_string();
        let text = format!("apiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: echo, timeout: '{written}'}}\n");
        prop_assert_eq!(task(&text)?.spec.timeout, Some(Duration::from_millis(ms)));
    }

    #[test]
    fn any_timeout_text_is_checked_without_panicking(text in ".{0,30}") {
        let document = json!({"apiVersion": "flowmesh/v1", "kind": "Task",
                              "spec": {"taskType": "echo", "timeout": text}});
        let _ = document::parse(&document.to_string());
    }

    #[test]
    fn placeholders_are_found_and_resolved_without_panicking(
        text in "([a-z.{}$ ]|\\$\\{|\\$\\$\\{|\\}){0,40}",
        value in json_value(),
    ) {
        let spec = json!({"message": text, "nested": [text]});
        let _ = placeholder::contains(&text);
        let _ = placeholder::find(&spec, "spec");
        let _ = placeholder::resolve(&spec, "spec", 1 << 16, &|_| Ok(value.clone()));
        let _ = placeholder::resolve(&spec, "spec", 1 << 16, &|_| Err("not finished".into()));
    }

    #[test]
    fn escaped_text_holds_no_placeholder_and_resolves_to_itself(text in ".{0,60}") {
        let escaped = Value::String(escaped(&text));
        prop_assert!(!placeholder::contains(escaped.as_str().unwrap_or_default()));
        prop_assert_eq!(placeholder::find(&escaped, "spec").map(|uses| uses.len()), Ok(0));
        let (resolved, substitutions) = placeholder::resolve(&escaped, "spec", 1 << 16, &|_| {
            Err("no placeholder to look up".into())
        })
        .map_err(|error| TestCaseError::fail(format!("{error:?}")))?;
        prop_assert_eq!(resolved, Value::String(text));
        prop_assert!(substitutions.is_empty());
    }

    #[test]
    fn a_whole_placeholder_takes_the_value_with_its_type(value in json_value(), stage in "[a-z][a-z0-9_-]{0,10}") {
        prop_assume!(stage != placeholder::WORKFLOW);
        let spec = json!({"input": format!("${{{stage}.output}}")});
        let (resolved, _) = placeholder::resolve(&spec, "spec", usize::MAX, &|reference| match reference {
            Reference::Output { stage: named, path } if *named == stage && path.is_empty() => Ok(value.clone()),
            other => Err(format!("unexpected {other:?}")),
        })
        .map_err(|error| TestCaseError::fail(format!("{error:?}")))?;
        prop_assert_eq!(&resolved["input"], &value);
    }

    #[test]
    fn a_placeholder_in_text_is_replaced_by_the_values_text(
        before in ".{0,20}",
        after in ".{0,20}",
        value in prop_oneof![
            ".{0,20}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
        ],
    ) {
        // `$${` is the escape: a `$` right before a placeholder cannot be
        // written.
        prop_assume!(!before.ends_with('$'));
        // A string that is the placeholder alone takes the value's type.
        prop_assume!(!before.is_empty() || !after.is_empty());
        let spec = json!(format!("{}${{a.output.x}}{}", escaped(&before), escaped(&after)));
        let (resolved, substitutions) = placeholder::resolve(&spec, "spec", usize::MAX, &|_| Ok(value.clone()))
            .map_err(|error| TestCaseError::fail(format!("{error:?}")))?;
        let text = match &value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        prop_assert_eq!(resolved, Value::String(format!("{before}{text}{after}")));
        prop_assert_eq!(substitutions.len(), 1);
    }
}
