//! What a workflow stage waits for, stored with the stage's task.
//!
//! Both the task rows ([`TaskRecord::plan`](super::TaskRecord::plan),
//! [`NewStage::plan`](super::NewStage::plan)) and the workflows built on
//! them use it, so it lives apart from either, depending on neither.

use flowmesh_types::workflow::Condition;
use serde::{Deserialize, Serialize};

/// What a stage waits for, stored with its task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePlan {
    /// Upstream stages, by name.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// When to run it at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}
