//! Plugin manifests: what `describe()` returns, in host form.

use serde::{Deserialize, Serialize};

/// What a plugin is and which task types it executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Plugin name, e.g. `echo`.
    pub name: String,
    /// Semantic version of the plugin.
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// The task types the plugin executes.
    pub task_types: Vec<TaskTypeInfo>,
}

/// One task type of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskTypeInfo {
    /// The name tasks are routed by (`spec.taskType`).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// JSON Schema of the plugin-owned spec fields.
    pub spec_schema: serde_json::Value,
}

/// The rule [`is_valid_name`] checks, in words for error messages.
pub const NAME_RULE: &str = "1 to 64 lowercase letters, digits and '-', starting with a letter";

/// Whether `name` is a valid plugin or task type name: see [`NAME_RULE`].
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A problem with one field of a document or spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.messages[0].role`; empty for the
    /// whole document.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl FieldError {
    /// A field error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
