//! A workflow's stages as the task rows admission stores.

use flowmesh_types::api::{WaitKind, Waiting};
use flowmesh_types::document::{Metadata, TaskDocument, TaskSpec};
use flowmesh_types::workflow::{Stage, WorkflowDocument};
use serde_json::Value;

use crate::group_commit::{StageRow, WorkflowRows};
use crate::store::StagePlan;

/// The rows a workflow is stored as: its own, and one task per stage, each
/// with a fresh id; a stage that is ready has its escapes (`$${`) written out,
/// one that waits keeps them for the releaser.
pub(super) fn workflow_rows(id: String, workflow: &WorkflowDocument) -> WorkflowRows {
    WorkflowRows {
        id,
        metadata: workflow.metadata.clone(),
        stages: workflow
            .stages
            .iter()
            .map(|stage| StageRow {
                id: uuid::Uuid::now_v7().to_string(),
                name: stage.name.clone(),
                document: TaskDocument {
                    metadata: Metadata {
                        name: Some(match &workflow.metadata.name {
                            Some(name) => format!("{name}/{}", stage.name),
                            None => stage.name.clone(),
                        }),
                        labels: workflow.metadata.labels.clone(),
                    },
                    spec: if stage.is_ready() {
                        unescaped(stage)
                    } else {
                        // The releaser resolves it, escapes included.
                        stage.spec.clone()
                    },
                },
                plan: StagePlan {
                    depends_on: stage.depends_on.clone(),
                    condition: stage.condition.clone(),
                },
                blocked: held_back(stage),
            })
            .collect(),
    }
}

/// A ready stage's spec with `$${` written as the `${` it stands for (it has
/// no placeholder, so nothing else changes).
fn unescaped(stage: &Stage) -> TaskSpec {
    let mut spec = stage.spec.clone();
    let fields = Value::Object(std::mem::take(&mut spec.plugin_fields));
    spec.plugin_fields =
        match flowmesh_types::placeholder::resolve(&fields, "spec", usize::MAX, &|_| {
            Err("a stage without upstream stages has nothing to resolve".to_string())
        }) {
            Ok((Value::Object(resolved), _)) => resolved,
            // Unreachable for a stage without placeholders: keep it as written.
            _ => fields.as_object().cloned().unwrap_or_default(),
        };
    spec
}

/// Why a stage is held back when stored, or `None` if it can be queued at
/// once.
fn held_back(stage: &Stage) -> Option<Waiting> {
    if stage.is_ready() {
        return None;
    }
    let message = if stage.depends_on.is_empty() {
        "waits for its placeholders to be resolved".to_string()
    } else {
        format!(
            "waits for stage(s) {} to finish",
            stage.depends_on.join(", ")
        )
    };
    Some(Waiting {
        kind: WaitKind::Dependencies,
        message,
        counts: Default::default(),
    })
}
