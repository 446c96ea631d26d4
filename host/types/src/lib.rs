//! Wire types shared by every FlowMesh host component.
//!
//! The runtime produces these, the worker sends them to the server, the server
//! stores and serves them, and the CLI prints them. They carry no behaviour
//! beyond (de)serialisation and a few helpers, and depend on nothing heavier
//! than serde, so any crate can use them.
//!
//! - [`manifest`]: what a plugin says about itself (`describe()`).
//! - [`capability`]: which host interfaces a worker provides, which plugins it
//!   could instantiate and why the others not ([`WorkerCapabilities`]).
//! - [`document`]: task and workflow documents, parsed and envelope-checked
//!   ([`Document`]); [`workflow`] checks a workflow's graph, and
//!   [`placeholder`] finds and resolves `${stage.output.field}`.
//! - [`event`]: what a running task reports: logs and progress ([`TaskEvent`]).
//! - [`task_error`]: why a task did not succeed ([`TaskError`]).

#[cfg(feature = "document")]
pub mod api;
pub mod capability;
#[cfg(feature = "document")]
pub mod document;
pub mod event;
pub mod manifest;
#[cfg(feature = "document")]
pub mod placeholder;
pub mod task_error;
#[cfg(feature = "document")]
pub mod workflow;

pub use capability::{
    CapabilityKind, CapabilityReport, CapabilityStatus, GpuDevice, GpuRequest, PluginReport,
    PluginStatus, WorkerCapabilities,
};
#[cfg(feature = "document")]
pub use document::{Document, TaskDocument, TaskSpec, format_bytes, parse, parse_document};
pub use event::{LogLevel, LogStream, TaskEvent};
pub use manifest::{FieldError, Manifest, NAME_RULE, TaskTypeInfo, is_valid_name};
pub use task_error::{TaskError, TaskErrorCode};
#[cfg(feature = "document")]
pub use workflow::WorkflowDocument;
