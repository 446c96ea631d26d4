//! A workflow's stages as the task rows admission stores.

use flowmesh_types::api::{WaitKind, Waiting};
use flowmesh_types::document::{Metadata, TaskDocument, TaskSpec};
use flowmesh_types::workflow::{Stage, WorkflowDocument};
use serde_json::Value;

use crate::store::{NewStage, NewTask, StagePlan};

/// What each stage of a workflow is stored as.
pub(super) struct StageRows {
    /// Each stage's task id, in document order.
    pub(super) ids: Vec<String>,
    documents: Vec<TaskDocument>,
    plans: Vec<StagePlan>,
}

impl StageRows {
    pub(super) fn of(workflow: &WorkflowDocument) -> Self {
        let documents = workflow
            .stages
            .iter()
            .map(|stage| TaskDocument {
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
            })
            .collect();
        Self {
            ids: workflow
                .stages
                .iter()
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
            documents,
            plans: workflow
                .stages
                .iter()
                .map(|stage| StagePlan {
                    depends_on: stage.depends_on.clone(),
                    condition: stage.condition.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn tasks<'a>(
        &'a self,
        workflow: &'a WorkflowDocument,
        workflow_id: &'a str,
        tenant: &'a str,
        now: i64,
    ) -> Vec<NewTask<'a>> {
        workflow
            .stages
            .iter()
            .zip(&self.documents)
            .zip(&self.plans)
            .zip(&self.ids)
            .map(|(((stage, document), plan), id)| NewTask {
                id,
                tenant,
                document,
                now,
                stage: Some(NewStage {
                    workflow_id,
                    name: &stage.name,
                    plan,
                    blocked: held_back(stage),
                }),
            })
            .collect()
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
