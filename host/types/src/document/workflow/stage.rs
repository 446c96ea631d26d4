//! A checked workflow: its stages and their conditions, the limits on its
//! size and depth, and moving a stage's error paths under the stage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::fields::join;
use crate::document::task::{Metadata, TaskSpec};
use crate::manifest::FieldError;
use crate::placeholder::{self, Use};

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

impl WorkflowDocument {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|stage| stage.name == name)
    }
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

/// `spec.x.y` (a path from a stage's spec) under the stage's own path.
pub fn relocate(path: &str, spec_path: &str) -> String {
    match path.strip_prefix("spec") {
        Some(rest) => format!("{spec_path}{rest}"),
        None => join(spec_path, path),
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
