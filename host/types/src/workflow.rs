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

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::document::{Errors, HOST_SPEC_FIELDS, Metadata, TaskSpec, check_spec, join, kind_of};
use crate::placeholder::{self, Reference, Use};
use crate::{FieldError, is_valid_name};

/// The most stages a workflow may have.
pub const MAX_STAGES: usize = 100;
/// The longest chain of dependencies a workflow may have, in stages.
pub const MAX_DEPTH: usize = 32;

/// A parsed, checked workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDocument {
    /// Name and labels; every stage's task carries the labels.
    pub metadata: Metadata,
    /// The stages, in document order (an upstream stage may come later in a
    /// graph).
    pub stages: Vec<Stage>,
}

/// One stage of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Unique within the workflow.
    pub name: String,
    /// The stages it waits for directly.
    pub depends_on: Vec<String>,
    /// When to run it at all.
    pub condition: Option<Condition>,
    /// Its task spec, defaults merged in; plugin fields may hold placeholders.
    pub spec: TaskSpec,
    /// The placeholders in its plugin fields, with paths from `spec`
    /// (`spec.messages.0.content`), as the server's validation names them.
    pub placeholders: Vec<Use>,
    /// Where it is in the document (`spec.stages[2]`), for errors.
    pub path: String,
}

impl Stage {
    /// Whether it can be queued as soon as it is submitted: no upstream
    /// stage, nothing to resolve.
    pub fn is_ready(&self) -> bool {
        self.depends_on.is_empty() && self.placeholders.is_empty() && self.condition.is_none()
    }
}

/// `condition`: run the stage only if an upstream output field equals a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    /// The upstream stage whose output decides.
    pub stage: String,
    /// A dotted path into its output (`metrics.passed`, `items.0`).
    pub field: String,
    /// The value that lets the stage run (any JSON value).
    pub equals: Value,
}

impl Condition {
    /// `field` as path segments.
    pub fn path(&self) -> Vec<String> {
        self.field.split('.').map(str::to_string).collect()
    }

    /// Whether `output` satisfies it; an error when the field is not there.
    pub fn holds(&self, output: &Value) -> Result<bool, String> {
        placeholder::lookup_path(output, &self.path()).map(|value| value == self.equals)
    }
}

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

/// Names, references, cycles, depth, and that placeholders and conditions
/// refer to upstream stages.
fn check_graph(stages: &[Stage], errors: &mut Errors) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (at, stage) in stages.iter().enumerate() {
        if let Some(first) = index.insert(&stage.name, at) {
            errors.add(
                &join(&stage.path, "name"),
                format!(
                    "duplicate stage name {:?} (also {}); stage names must be unique",
                    stage.name, stages[first].path
                ),
            );
            index.insert(&stage.name, first);
        }
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (at, stage) in stages.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for (position, name) in stage.depends_on.iter().enumerate() {
            let path = format!("{}.dependsOn[{position}]", stage.path);
            match index.get(name.as_str()) {
                _ if !seen.insert(name) => {
                    errors.add(&path, format!("{name:?} is listed twice"));
                }
                Some(&upstream) if upstream == at => {
                    errors.add(&path, "a stage cannot depend on itself");
                }
                Some(&upstream) => edges[at].push(upstream),
                None => errors.add(&path, unknown_stage(name, stages)),
            }
        }
    }
    if !errors.0.is_empty() {
        return;
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&at| stages[at].name.as_str()).collect();
        errors.add(
            &format!("{}.dependsOn", stages[cycle[0]].path),
            format!(
                "the stages depend on each other in a cycle: {}; a workflow must be a graph without cycles",
                names.join(" → ")
            ),
        );
        return;
    }
    let depth = longest_chain(&edges);
    if depth > MAX_DEPTH {
        errors.add(
            "spec",
            format!(
                "the longest chain of dependent stages has {depth} stages, over the limit of {MAX_DEPTH}"
            ),
        );
    }
    let ancestors = ancestors(&edges);
    for (at, stage) in stages.iter().enumerate() {
        let upstream = |name: &str| {
            index
                .get(name)
                .is_some_and(|upstream| ancestors[at].contains(upstream))
        };
        for found in &stage.placeholders {
            let Some(name) = found.reference.stage() else {
                continue;
            };
            if !upstream(name) {
                errors.add(
                    &relocate(&found.path, &join(&stage.path, "spec")),
                    format!(
                        "{} refers to {}",
                        found.text,
                        not_upstream(name, &stage.name, stages)
                    ),
                );
            }
        }
        if let Some(condition) = &stage.condition
            && !upstream(&condition.stage)
        {
            errors.add(
                &format!("{}.condition.stage", stage.path),
                not_upstream(&condition.stage, &stage.name, stages),
            );
        }
    }
}

fn unknown_stage(name: &str, stages: &[Stage]) -> String {
    let names: Vec<&str> = stages.iter().map(|stage| stage.name.as_str()).collect();
    format!(
        "no stage is named {name:?}; the stages are: {}",
        names.join(", ")
    )
}

fn not_upstream(name: &str, stage: &str, stages: &[Stage]) -> String {
    if stages.iter().any(|other| other.name == name) {
        format!(
            "stage {name:?}, which is not upstream of {stage:?}: it may finish after {stage:?} starts; add it to dependsOn (directly or through a stage in between)"
        )
    } else {
        unknown_stage(name, stages)
    }
}

/// A cycle in the graph (`edges[a]` lists what `a` depends on), as the
/// stages along it, first one repeated at the end.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(at: usize, edges: &[Vec<usize>], marks: &mut [Mark], stack: &mut Vec<usize>) -> bool {
        marks[at] = Mark::Open;
        stack.push(at);
        for &next in &edges[at] {
            let mark = marks[next];
            if mark == Mark::Open {
                let start = stack.iter().position(|&s| s == next).unwrap_or(0);
                stack.drain(..start);
                stack.push(next);
                return true;
            }
            if mark == Mark::New && visit(next, edges, marks, stack) {
                return true;
            }
        }
        stack.pop();
        marks[at] = Mark::Done;
        false
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut stack = Vec::new();
    for start in 0..edges.len() {
        if marks[start] == Mark::New && visit(start, edges, &mut marks, &mut stack) {
            // The stack runs downstream → upstream; show it upstream first.
            stack.reverse();
            return Some(stack);
        }
    }
    None
}

/// The most stages on one chain of dependencies (the graph has no cycle).
fn longest_chain(edges: &[Vec<usize>]) -> usize {
    fn depth(at: usize, edges: &[Vec<usize>], memo: &mut [usize]) -> usize {
        if memo[at] == 0 {
            memo[at] = 1 + edges[at]
                .iter()
                .map(|&up| depth(up, edges, memo))
                .max()
                .unwrap_or(0);
        }
        memo[at]
    }
    let mut memo = vec![0; edges.len()];
    (0..edges.len())
        .map(|at| depth(at, edges, &mut memo))
        .max()
        .unwrap_or(0)
}

/// Every stage's upstream stages, direct or not.
fn ancestors(edges: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    fn collect(at: usize, edges: &[Vec<usize>], memo: &mut Vec<Option<BTreeSet<usize>>>) {
        if memo[at].is_some() {
            return;
        }
        let mut all = BTreeSet::new();
        for &up in &edges[at] {
            collect(up, edges, memo);
            all.insert(up);
            all.extend(memo[up].iter().flatten().copied());
        }
        memo[at] = Some(all);
    }
    let mut memo = vec![None; edges.len()];
    for at in 0..edges.len() {
        collect(at, edges, &mut memo);
    }
    memo.into_iter().map(Option::unwrap_or_default).collect()
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

/// `spec.x.y` (a path from a stage's spec) under the stage's own path.
pub fn relocate(path: &str, spec_path: &str) -> String {
    match path.strip_prefix("spec") {
        Some(rest) => format!("{spec_path}{rest}"),
        None => join(spec_path, path),
    }
}

impl WorkflowDocument {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|stage| stage.name == name)
    }
}

/// Field errors from checking one stage's spec (paths from `spec`) moved
/// under the stage (`spec.stages[1].spec.…`).
pub fn relocate_errors(errors: Vec<FieldError>, stage: &Stage) -> Vec<FieldError> {
    let spec_path = join(&stage.path, "spec");
    errors
        .into_iter()
        .map(|error| FieldError::new(relocate(&error.path, &spec_path), error.message))
        .collect()
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
