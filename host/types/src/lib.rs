//! Types, document checks and placeholder resolution shared by every FlowMesh
//! host component.
//!
//! The runtime produces these types, the worker sends them to the server, the
//! server stores and serves them, and the CLI prints them. Besides the types
//! and their (de)serialisation, the crate holds the logic that every
//! component must apply the same way: parsing and checking task and workflow
//! documents, finding and resolving placeholders, and parsing quantities and
//! durations. It depends on nothing heavier than serde (and, with the
//! `document` feature, a YAML parser and `humantime`), so any crate can use
//! it.
//!
//! Always built, and all a plugin needs through the SDK:
//!
//! - [`manifest`]: what a plugin says about itself (`describe()`,
//!   [`Manifest`]), the rule for plugin, task type and stage names
//!   ([`is_valid_name`]), and [`FieldError`], a problem at a field path, which
//!   every check in this crate reports.
//! - [`capability`]: which host interfaces a worker provides, which plugins it
//!   could instantiate and why the others not ([`WorkerCapabilities`]); the
//!   GPUs it has ([`GpuDevice`]) and what a task asks of them ([`GpuRequest`]).
//! - [`private_fs`]: directories for tenant data, created owner-only.
//! - [`event`]: what a running task reports: logs and progress ([`TaskEvent`]).
//! - [`task_error`]: why a task did not succeed ([`TaskError`]), with a stable
//!   code that says whether it may be retried ([`TaskErrorCode`]).
//!
//! Behind the `document` feature (on by default):
//!
//! - [`api`]: the REST API's wire types, grouped by audience: tasks,
//!   workflows, the event stream, the worker protocol, the fleet (workers,
//!   plugins, tokens) and error bodies.
//! - [`document`]: task and workflow documents, parsed from YAML or JSON
//!   ([`parse`] gives a [`Document`]) and envelope-checked: unknown fields,
//!   names, labels, CPU and byte quantities (`500m`, `512Mi`), durations
//!   (`30s`) and limits, every problem reported with its path
//!   (`spec.resources.hardware.memory`).
//! - [`workflow`] (the same module as `document::workflow`): a workflow's
//!   stages, defaults merged into each, and the checks of its graph: stage
//!   names, references (existing and upstream), cycles, size and depth.
//! - [`placeholder`]: finds `${stage.output.field}` placeholders in a stage's
//!   fields and resolves them against upstream stages' outputs.
//!
//! The `openapi` feature derives `utoipa::ToSchema` for the wire types, for
//! the server's `/openapi.json`.

#[cfg(feature = "document")]
pub mod api;
pub mod capability;
#[cfg(feature = "document")]
mod cpu_millis;
#[cfg(feature = "document")]
pub mod document;
pub mod event;
pub mod manifest;
#[cfg(feature = "document")]
pub mod placeholder;
pub mod private_fs;
#[cfg(feature = "document")]
pub mod strict_json;
pub mod task_error;

pub use capability::{
    CapabilityKind, CapabilityReport, CapabilityStatus, GpuDevice, GpuRequest, PluginReport,
    PluginStatus, WorkerCapabilities,
};
#[cfg(feature = "document")]
pub use document::workflow;
#[cfg(feature = "document")]
pub use document::{
    Document, TaskDocument, TaskSpec, WorkflowDocument, format_bytes, parse, parse_document,
};
pub use event::{LogLevel, LogStream, TaskEvent};
pub use manifest::{FieldError, Manifest, NAME_RULE, TaskTypeInfo, is_valid_name};
pub use task_error::{TaskError, TaskErrorCode};
