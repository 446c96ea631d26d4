//! Workflow documents: tasks composed into a graph of stages.
//!
//! ```yaml
//! apiVersion: flowmesh/v1
//! kind: Workflow
//! metadata: {name: finetune-and-ship}
//! spec:
//!   defaults: {timeout: 10m, resources: {labels: {pool: gpu}}}
//!   stages:
//!     - name: train
//!       spec: {taskType: train, image: trainer:1}
//!     - name: evaluate                 # depends on train, the stage before it
//!       spec: {taskType: container, image: evaluator:1, args: ["${train.output.exitCode}"]}
//!     - name: publish
//!       condition: {stage: evaluate, field: exitCode, equals: 0}
//!       spec: {taskType: echo, message: "shipping ${train.id}"}
//! ```
//!
//! - `spec.stages[]` is a list in which a stage without `dependsOn` depends
//!   on the stage before it (`dependsOn: []` makes it a root);
//!   `spec.graph.nodes[]` is an explicit graph, in which a node without
//!   `dependsOn` is a root.
//! - Each stage's `spec` is a task spec, deep-merged over `spec.defaults`:
//!   mappings merge key by key, the stage's own value winning; any other
//!   value (a list, a string) replaces the default whole.
//! - Plugin fields may hold [placeholders](crate::placeholder), which refer
//!   to upstream stages only: a stage's direct `dependsOn`, or theirs, and
//!   so on. Host fields (`taskType`, `resources`, `timeout`, `maxAttempts`)
//!   may not, so a stage's routing is known when it is submitted.
//! - `condition: {stage, field, equals}` runs a stage only when the named
//!   upstream stage's output has `field` (a dotted path, as in placeholders)
//!   equal to `equals`; otherwise the stage is skipped.
//!
//! [`check_workflow`] checks all of it: names (unique, valid), references
//! (existing, upstream), cycles, size ([`MAX_STAGES`]) and depth
//! ([`MAX_DEPTH`]), and reports every problem with its path.
//!
//! The checked workflow ([`WorkflowDocument`], [`Stage`], [`Condition`]) and
//! its limits are in `stage`; the graph checks (names, references, cycles,
//! depth, upstream placeholders and conditions) in `graph`; this module
//! checks the document's fields and each stage, then the graph.

mod graph;
mod stage;

use serde_json::{Map, Value};

use crate::document::fields::{Errors, join, kind_of};
use crate::document::task::{HOST_SPEC_FIELDS, Metadata, check_spec};
use crate::manifest::is_valid_name;
use crate::placeholder::{self, Reference};
use graph::check_graph;

pub use stage::{
    Condition, MAX_DEPTH, MAX_STAGES, Stage, WorkflowDocument, relocate, relocate_errors,
};

/// Checks `spec` of a `kind: Workflow` document; `None` when it is too broken
/// to go on (the errors say why).
pub(crate) fn check_workflow(
    metadata: Metadata,
    spec: &Value,
    errors: &mut Errors,
) -> Option<WorkflowDocument> {
    let object = errors.object("spec", spec)?;
    errors.unknown_fields("spec", object, &["stages", "graph", "defaults"]);
    let defaults = match object.get("defaults") {
        None => Map::new(),
        Some(Value::Object(defaults)) => defaults.clone(),
        Some(other) => {
            errors.add(
                "spec.defaults",
                format!(
                    "must be a mapping of task spec fields, not {}",
                    kind_of(other)
                ),
            );
            Map::new()
        }
    };
    let (list_path, items, implicit_previous) = match (object.get("stages"), object.get("graph")) {
        (Some(stages), None) => ("spec.stages", stages, true),
        (None, Some(graph)) => {
            let graph = errors.object("spec.graph", graph)?;
            errors.unknown_fields("spec.graph", graph, &["nodes"]);
            let Some(nodes) = graph.get("nodes") else {
                errors.add("spec.graph.nodes", "missing; list the graph's nodes");
                return None;
            };
            ("spec.graph.nodes", nodes, false)
        }
        (Some(_), Some(_)) => {
            errors.add(
                "spec",
                "write either spec.stages (a list; each stage follows the previous one unless it says dependsOn) or spec.graph.nodes (an explicit graph), not both",
            );
            return None;
        }
        (None, None) => {
            errors.add(
                "spec.stages",
                "missing; a workflow needs spec.stages or spec.graph.nodes",
            );
            return None;
        }
    };
    let Value::Array(items) = items else {
        errors.add(
            list_path,
            format!("must be a list of stages, not {}", kind_of(items)),
        );
        return None;
    };
    if items.is_empty() {
        errors.add(list_path, "a workflow needs at least one stage");
        return None;
    }
    if items.len() > MAX_STAGES {
        errors.add(
            list_path,
            format!(
                "{} stages, over the limit of {MAX_STAGES}; split the workflow",
                items.len()
            ),
        );
        return None;
    }
    let before = errors.0.len();
    let mut stages = Vec::with_capacity(items.len());
    let mut previous: Option<String> = None;
    for (index, item) in items.iter().enumerate() {
        let path = format!("{list_path}[{index}]");
        let stage = check_stage(&path, item, &defaults, previous.as_deref(), errors);
        previous = stage.as_ref().map(|stage| stage.name.clone());
        if !implicit_previous {
            previous = None;
        }
        stages.extend(stage);
    }
    if errors.0.len() > before {
        return None;
    }
    let empty = Map::new();
    let owns: Vec<&Map<String, Value>> = items
        .iter()
        .map(|item| {
            item.get("spec")
                .and_then(Value::as_object)
                .unwrap_or(&empty)
        })
        .collect();
    unused_defaults(&defaults, &owns, "spec.defaults", errors);
    if metadata.name.is_none() {
        for stage in &stages {
            for found in &stage.placeholders {
                if found.reference == Reference::WorkflowName {
                    errors.add(
                        &relocate(&found.path, &join(&stage.path, "spec")),
                        format!(
                            "{} refers to metadata.name, which the workflow does not have; give it one",
                            found.text
                        ),
                    );
                }
            }
        }
    }
    check_graph(&stages, errors);
    Some(WorkflowDocument { metadata, stages })
}

/// Reports each default that every stage sets itself: it has no effect.
fn unused_defaults(
    defaults: &Map<String, Value>,
    owns: &[&Map<String, Value>],
    path: &str,
    errors: &mut Errors,
) {
    for (key, value) in defaults {
        let theirs: Vec<&Value> = owns.iter().filter_map(|own| own.get(key)).collect();
        if theirs.len() < owns.len() {
            continue;
        }
        let path = join(path, key);
        let nested: Vec<&Map<String, Value>> = theirs
            .iter()
            .filter_map(|value| value.as_object())
            .collect();
        match value {
            Value::Object(inner) if nested.len() == owns.len() => {
                unused_defaults(inner, &nested, &path, errors)
            }
            _ => errors.add(
                &path,
                "has no effect: every stage sets it itself; remove it from the defaults or from the stages",
            ),
        }
    }
}

fn check_stage(
    path: &str,
    item: &Value,
    defaults: &Map<String, Value>,
    previous: Option<&str>,
    errors: &mut Errors,
) -> Option<Stage> {
    let object = errors.object(path, item)?;
    errors.unknown_fields(path, object, &["name", "spec", "dependsOn", "condition"]);
    let name_path = join(path, "name");
    let name = match object.get("name") {
        Some(Value::String(name)) if name == placeholder::WORKFLOW => {
            errors.add(
                &name_path,
                "\"workflow\" is reserved (${workflow.id} refers to the workflow); choose another name",
            );
            None
        }
        Some(Value::String(name)) if is_valid_name(name) => Some(name.clone()),
        Some(Value::String(name)) => {
            errors.add(
                &name_path,
                format!(
                    "{name:?} is not a stage name: use lowercase letters, digits and '-', starting with a letter"
                ),
            );
            None
        }
        Some(other) => {
            errors.add(
                &name_path,
                format!("must be a string, not {}", kind_of(other)),
            );
            None
        }
        None => {
            errors.add(&name_path, "missing; every stage needs a unique name");
            None
        }
    };
    let depends_path = join(path, "dependsOn");
    let depends_on = match object.get("dependsOn") {
        None => previous
            .map(|name| vec![name.to_string()])
            .unwrap_or_default(),
        Some(Value::Array(names)) => names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| match name {
                Value::String(name) => Some(name.clone()),
                other => {
                    errors.add(
                        &format!("{depends_path}[{index}]"),
                        format!("must be a stage name, not {}", kind_of(other)),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            errors.add(
                &depends_path,
                format!("must be a list of stage names, not {}", kind_of(other)),
            );
            Vec::new()
        }
    };
    let condition = object
        .get("condition")
        .and_then(|value| check_condition(&join(path, "condition"), value, errors));
    let spec_path = join(path, "spec");
    let own = match object.get("spec") {
        None => Map::new(),
        Some(Value::Object(own)) => own.clone(),
        Some(other) => {
            errors.add(
                &spec_path,
                format!("must be a task spec mapping, not {}", kind_of(other)),
            );
            return None;
        }
    };
    let merged = Value::Object(merge(&Value::Object(defaults.clone()), &Value::Object(own)));
    for field in HOST_SPEC_FIELDS {
        if let Some(value) = merged.get(field) {
            let mut host_placeholder = false;
            visit_strings(value, &mut |text| {
                host_placeholder |= placeholder::contains(text)
            });
            if host_placeholder {
                errors.add(
                    &join(&spec_path, field),
                    "placeholders are allowed only in the plugin's fields: a stage's type, resources, timeout and attempts are fixed when the workflow is submitted",
                );
            }
        }
    }
    let spec = check_spec(&spec_path, &merged, errors)?;
    let placeholders = match placeholder::find(&Value::Object(spec.plugin_fields.clone()), "spec") {
        Ok(uses) => uses,
        Err(found) => {
            for error in found {
                errors.add(&relocate(&error.path, &spec_path), error.message);
            }
            Vec::new()
        }
    };
    Some(Stage {
        name: name?,
        depends_on,
        condition,
        spec,
        placeholders,
        path: path.to_string(),
    })
}

fn check_condition(path: &str, value: &Value, errors: &mut Errors) -> Option<Condition> {
    let object = errors.object(path, value)?;
    errors.unknown_fields(path, object, &["stage", "field", "equals"]);
    let stage = match object.get("stage") {
        Some(Value::String(stage)) => Some(stage.clone()),
        _ => {
            errors.add(
                &join(path, "stage"),
                "missing; name the upstream stage whose output decides",
            );
            None
        }
    };
    let field = match object.get("field") {
        Some(Value::String(field))
            if !field.is_empty()
                && field.split('.').all(|segment| {
                    !segment.is_empty()
                        && segment
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                }) =>
        {
            Some(field.clone())
        }
        Some(Value::String(_)) => {
            errors.add(
                &join(path, "field"),
                "a dotted path into the stage's output, such as passed or metrics.accuracy",
            );
            None
        }
        _ => {
            errors.add(
                &join(path, "field"),
                "missing; a dotted path into the stage's output, such as passed",
            );
            None
        }
    };
    let Some(equals) = object.get("equals") else {
        errors.add(
            &join(path, "equals"),
            "missing; the value the field must have for the stage to run",
        );
        return None;
    };
    Some(Condition {
        stage: stage?,
        field: field?,
        equals: equals.clone(),
    })
}

/// Deep merge: mappings key by key, `over` winning; anything else replaced.
pub fn merge(base: &Value, over: &Value) -> Map<String, Value> {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    if let Value::Object(over) = over {
        for (key, value) in over {
            let combined = match (merged.get(key), value) {
                (Some(base @ Value::Object(_)), Value::Object(_)) => {
                    Value::Object(merge(base, value))
                }
                _ => value.clone(),
            };
            merged.insert(key.clone(), combined);
        }
    }
    merged
}

fn visit_strings(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, visit)),
        Value::Object(object) => object.values().for_each(|item| visit_strings(item, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::document::{Document, parse};

    use super::*;

    fn workflow(text: &str) -> WorkflowDocument {
        match parse(text) {
            Ok(Document::Workflow(workflow)) => workflow,
            other => panic!("not a workflow: {other:?}"),
        }
    }

    fn problems(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect_err("invalid")
            .into_iter()
            .map(|error| (error.path, error.message))
            .collect()
    }

    const HEAD: &str = "apiVersion: flowmesh/v1\nkind: Workflow\nmetadata: {name: wf}\n";

    #[test]
    fn stages_follow_each_other_and_merge_defaults() {
        let workflow = workflow(&format!(
            "{HEAD}spec:\n  defaults: {{taskType: echo, timeout: 30s, resources: {{labels: {{pool: a}}}}}}\n  stages:\n    - name: first\n      spec: {{message: one}}\n    - name: second\n      spec: {{message: '${{first.output.message}}', resources: {{labels: {{zone: b}}}}}}\n    - name: third\n      dependsOn: [second]\n      condition: {{stage: second, field: ok, equals: true}}\n      spec: {{taskType: sleep, duration: 1s}}\n"
        ));
        let names: Vec<&str> = workflow.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["first", "second", "third"]);
        assert!(workflow.stages[0].depends_on.is_empty());
        assert!(workflow.stages[0].is_ready());
        assert_eq!(workflow.stages[1].depends_on, ["first"]);
        assert_eq!(workflow.stages[2].depends_on, ["second"]);
        let second = &workflow.stages[1].spec;
        assert_eq!(second.task_type, "echo");
        assert_eq!(second.timeout, Some(std::time::Duration::from_secs(30)));
        assert_eq!(second.resources.labels.len(), 2, "labels merged");
        assert_eq!(workflow.stages[1].placeholders[0].path, "spec.message");
        assert_eq!(workflow.stages[2].spec.task_type, "sleep");
        assert!(
            problems(&format!(
                "{HEAD}spec:\n  stages:\n    - name: a\n      spec: {{taskType: echo}}\n    - name: b\n      condition: {{stage: c, field: ok, equals: 1}}\n      spec: {{taskType: echo}}\n    - name: c\n      spec: {{taskType: echo}}\n"
            ))[0]
                .1
                .contains("not upstream"),
            "a condition on a later stage"
        );
    }

    #[test]
    fn graph_nodes_without_depends_on_are_roots() {
        let workflow = workflow(&format!(
            "{HEAD}spec:\n  graph:\n    nodes:\n      - {{name: join, dependsOn: [left, right], spec: {{taskType: echo, message: '${{left.output.message}} ${{right.id}}'}}}}\n      - {{name: left, spec: {{taskType: echo}}}}\n      - {{name: right, spec: {{taskType: echo}}}}\n"
        ));
        assert!(workflow.stage("left").expect("left").depends_on.is_empty());
        assert!(
            workflow
                .stage("right")
                .expect("right")
                .depends_on
                .is_empty()
        );
        let join = workflow.stage("join").expect("join");
        assert_eq!(join.placeholders.len(), 2);
    }

    #[test]
    fn malformed_graphs_are_reported_with_paths() {
        let cycle = problems(&format!(
            "{HEAD}spec:\n  graph:\n    nodes:\n      - {{name: a, dependsOn: [c], spec: {{taskType: echo}}}}\n      - {{name: b, dependsOn: [a], spec: {{taskType: echo}}}}\n      - {{name: c, dependsOn: [b], spec: {{taskType: echo}}}}\n"
        ));
        assert_eq!(cycle.len(), 1, "{cycle:?}");
        assert_eq!(cycle[0].0, "spec.graph.nodes[0].dependsOn", "{cycle:?}");
        assert!(cycle[0].1.contains(": a → b → c → a;"), "{cycle:?}");

        let broken = problems(&format!(
            "{HEAD}spec:\n  stages:\n    - {{name: a, spec: {{taskType: echo}}, retries: 2}}\n    - {{name: a, spec: {{taskType: echo}}}}\n    - {{name: b, dependsOn: [ghost, b], spec: {{taskType: echo}}}}\n"
        ));
        let paths: Vec<&str> = broken.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.stages[0].retries"],
            "unknown fields first: {broken:?}"
        );

        let references = problems(&format!(
            "{HEAD}spec:\n  stages:\n    - {{name: a, spec: {{taskType: echo}}}}\n    - {{name: a, spec: {{taskType: echo}}}}\n    - {{name: b, dependsOn: [ghost, b], spec: {{taskType: echo}}}}\n"
        ));
        let paths: Vec<&str> = references.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.stages[1].name",
                "spec.stages[2].dependsOn[0]",
                "spec.stages[2].dependsOn[1]"
            ],
            "{references:?}"
        );
        assert!(references[1].1.contains("no stage is named \"ghost\""));
    }

    #[test]
    fn placeholders_must_point_upstream_and_stay_out_of_host_fields() {
        let found = problems(&format!(
            "{HEAD}spec:\n  graph:\n    nodes:\n      - {{name: a, spec: {{taskType: echo, message: '${{b.output.x}}'}}}}\n      - {{name: b, spec: {{taskType: echo, message: '${{nobody.id}}', timeout: '${{a.output.t}}'}}}}\n"
        ));
        let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
        assert!(
            paths.contains(&"spec.graph.nodes[1].spec.timeout"),
            "{found:?}"
        );
        let found = problems(&format!(
            "{HEAD}spec:\n  graph:\n    nodes:\n      - {{name: a, spec: {{taskType: echo, message: '${{b.output.x}}'}}}}\n      - {{name: b, spec: {{taskType: echo, message: '${{nobody.id}}'}}}}\n"
        ));
        assert_eq!(
            found
                .iter()
                .map(|(path, _)| path.as_str())
                .collect::<Vec<_>>(),
            [
                "spec.graph.nodes[0].spec.message",
                "spec.graph.nodes[1].spec.message"
            ]
        );
        assert!(found[0].1.contains("not upstream of \"a\""), "{found:?}");
        assert!(
            found[1].1.contains("no stage is named \"nobody\""),
            "{found:?}"
        );
    }

    #[test]
    fn size_and_shape_limits() {
        let many: String = (0..=MAX_STAGES)
            .map(|i| format!("    - {{name: s{i}, spec: {{taskType: echo}}}}\n"))
            .collect();
        let found = problems(&format!("{HEAD}spec:\n  stages:\n{many}"));
        assert!(found[0].1.contains("over the limit"), "{found:?}");
        let deep: String = (0..=MAX_DEPTH)
            .map(|i| format!("    - {{name: s{i}, spec: {{taskType: echo}}}}\n"))
            .collect();
        let found = problems(&format!("{HEAD}spec:\n  stages:\n{deep}"));
        assert!(found[0].1.contains("longest chain"), "{found:?}");
        let found = problems(&format!(
            "{HEAD}spec: {{stages: [], graph: {{nodes: []}}}}\n"
        ));
        assert_eq!(found[0].0, "spec");
        let found = problems(&format!(
            "{HEAD}spec:\n  stages:\n    - {{name: workflow}}\n"
        ));
        assert!(found[0].1.contains("reserved"), "{found:?}");
    }

    #[test]
    fn conditions_compare_output_fields() {
        let condition = Condition {
            stage: "eval".into(),
            field: "metrics.passed".into(),
            equals: json!(true),
        };
        assert_eq!(
            condition.holds(&json!({"metrics": {"passed": true}})),
            Ok(true)
        );
        assert_eq!(
            condition.holds(&json!({"metrics": {"passed": false}})),
            Ok(false)
        );
        assert!(condition.holds(&json!({"metrics": {}})).is_err());
    }

    #[test]
    fn a_default_every_stage_overrides_has_no_effect() {
        let found = problems(&format!(
            "{HEAD}spec:\n  defaults: {{taskType: echo, timeout: 1m, resources: {{labels: {{a: x}}, hardware: {{cpu: 1}}}}}}\n  stages:\n    - {{name: a, spec: {{message: x, timeout: 2m, resources: {{hardware: {{cpu: 2}}}}}}}}\n    - {{name: b, spec: {{message: y, timeout: 3m, resources: {{hardware: {{cpu: 1}}}}}}}}\n"
        ));
        let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.defaults.resources.hardware.cpu",
                "spec.defaults.timeout"
            ],
            "{found:?}"
        );
    }

    #[test]
    fn merge_is_deep_for_mappings_only() {
        let merged = merge(
            &json!({"a": {"x": 1, "y": 2}, "list": [1, 2], "keep": true}),
            &json!({"a": {"y": 3}, "list": [9]}),
        );
        assert_eq!(
            Value::Object(merged),
            json!({"a": {"x": 1, "y": 3}, "list": [9], "keep": true})
        );
    }
}
