//! Write FlowMesh executor plugins in Rust.
//!
//! A FlowMesh plugin is a WebAssembly component that exports the
//! `flowmesh:executor` interface: it describes the task types it executes,
//! validates their specs, and executes tasks. Workers load it, instantiate it
//! against the host capabilities they really have, and route matching tasks to
//! it, each in a fresh sandbox.
//!
//! With this crate a plugin is plain Rust:
//!
//! - each task type is a type implementing [`TaskType`], with a typed `Spec`
//!   (deserialised with serde) and a typed `Output`;
//! - the JSON Schema the server checks submitted specs against is derived from
//!   the `Spec` type with [`schemars`], so the two never disagree;
//! - a type implementing [`Plugin`] lists the task types, and [`export!`]
//!   turns it into the component's exports;
//! - [`log`] and [`progress`] report to whoever watches the task;
//! - [`host`] holds the optional capabilities (containers, GPUs, a model
//!   endpoint). Calling one makes the component import it, and only workers
//!   that provide it will run the plugin.
//!
//! The task gets a private scratch directory at [`SCRATCH_DIR`], removed when
//! the task ends. It has no environment variables, no arguments, no network
//! and no other files.
//!
//! # Example
//!
//! ```
//! use flowmesh_sdk::{FieldError, JsonSchema, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
//! use serde::{Deserialize, Serialize};
//!
//! /// Greets someone.
//! struct Greet;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct GreetSpec {
//!     /// Who to greet.
//!     name: String,
//!     /// How many times, 1 to 10.
//!     #[serde(default = "one")]
//!     times: u32,
//! }
//!
//! fn one() -> u32 {
//!     1
//! }
//!
//! #[derive(Serialize)]
//! struct Greeting {
//!     text: String,
//! }
//!
//! impl TaskType for Greet {
//!     const NAME: &'static str = "greet";
//!     const DESCRIPTION: &'static str = "Greets someone, a number of times.";
//!     type Spec = GreetSpec;
//!     type Output = Greeting;
//!
//!     fn validate(spec: &GreetSpec) -> Result<(), Vec<FieldError>> {
//!         if !(1..=10).contains(&spec.times) {
//!             return Err(vec![FieldError::new("times", "must be between 1 and 10")]);
//!         }
//!         Ok(())
//!     }
//!
//!     fn execute(spec: GreetSpec, task: &TaskInfo) -> Result<Greeting, TaskError> {
//!         flowmesh_sdk::log::info(&format!("greeting {} (attempt {})", spec.name, task.attempt));
//!         let text = vec![format!("hello, {}", spec.name); spec.times as usize].join(" ");
//!         Ok(Greeting { text })
//!     }
//! }
//!
//! struct GreeterPlugin;
//!
//! impl Plugin for GreeterPlugin {
//!     const NAME: &'static str = "greeter";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "Greets people.";
//!
//!     fn task_types(types: &mut TaskTypes) {
//!         types.add::<Greet>();
//!     }
//! }
//!
//! flowmesh_sdk::export!(GreeterPlugin);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` from a crate
//! with `crate-type = ["cdylib"]`; the `.wasm` file under
//! `target/wasm32-wasip2/release/` is the component to install.

mod dispatch;
pub mod log;
pub mod progress;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A problem with one field of a spec: its path inside the spec (e.g.
/// `messages[0].role`, empty for the spec as a whole) and what to do about it.
pub use flowmesh_types::FieldError;
pub use schemars::{self, JsonSchema};
pub use serde_json;

/// Generated bindings of the `flowmesh:executor/plugin-full` world.
///
/// Plugin code does not need these directly: use [`TaskType`], [`export!`],
/// [`log`], [`progress`] and [`host`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: ["../wit/host", "../wit/executor"],
        world: "flowmesh:executor/plugin-full",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "flowmesh_sdk::bindings",
        generate_all,
    });
}

/// Optional host capabilities.
///
/// Each module is one `flowmesh:host` interface. Calling any of its functions
/// makes the plugin component import that interface, and a worker instantiates
/// the plugin only if it provides the interface: a plugin that calls
/// [`host::containers::run`] runs only on workers with a reachable Docker
/// daemon. Plugins that call none of them run everywhere.
pub mod host {
    pub use crate::bindings::flowmesh::host::{containers, gpu, llm};
}

/// The directory every task may read and write; empty at the start of each
/// task and removed after it.
pub const SCRATCH_DIR: &str = "/scratch";

/// A plugin: a name, a version and the task types it executes.
pub trait Plugin {
    /// Plugin name, e.g. `echo`: lowercase letters, digits and `-`.
    const NAME: &'static str;
    /// Semantic version; `env!("CARGO_PKG_VERSION")` is a good choice.
    const VERSION: &'static str;
    /// One line for humans.
    const DESCRIPTION: &'static str;

    /// Adds every task type this plugin executes.
    fn task_types(types: &mut TaskTypes);
}

/// One task type: how its spec looks, how it is checked, how it runs.
pub trait TaskType {
    /// The name tasks are routed by (`spec.taskType`). Unique across the
    /// plugins installed in a cluster.
    const NAME: &'static str;
    /// One line for humans: what a task of this type does.
    const DESCRIPTION: &'static str;

    /// The plugin-owned spec fields. Its JSON Schema (derived with
    /// `#[derive(JsonSchema)]`) is what the server checks submitted specs
    /// against; doc comments on the fields become schema descriptions. Use
    /// `#[serde(deny_unknown_fields)]` so a misspelt field is an error rather
    /// than a field that silently does nothing.
    type Spec: DeserializeOwned + JsonSchema;
    /// What a successful task returns; serialised to JSON.
    type Output: Serialize;

    /// Checks what the schema cannot express. Runs on the server at submit time
    /// and again right before [`execute`](Self::execute). Paths are relative to
    /// the spec (`messages[0].role`).
    fn validate(spec: &Self::Spec) -> Result<(), Vec<FieldError>> {
        let _ = spec;
        Ok(())
    }

    /// Executes one task.
    fn execute(spec: Self::Spec, task: &TaskInfo) -> Result<Self::Output, TaskError>;
}

/// The set of task types of a plugin; filled in by [`Plugin::task_types`].
#[derive(Default)]
pub struct TaskTypes {
    entries: Vec<dispatch::Entry>,
}

impl TaskTypes {
    /// Adds task type `T`.
    pub fn add<T: TaskType>(&mut self) -> &mut Self {
        self.entries.push(dispatch::Entry::of::<T>());
        self
    }
}

/// What a task knows about itself besides its spec.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Task id, unique in the cluster.
    pub id: String,
    /// The task type being executed.
    pub task_type: String,
    /// 1 for the first attempt, then 2, 3, … on retries.
    pub attempt: u32,
}

impl TaskInfo {
    /// The task's private scratch directory, see [`SCRATCH_DIR`].
    pub fn scratch_dir(&self) -> &'static std::path::Path {
        std::path::Path::new(SCRATCH_DIR)
    }
}

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The spec is invalid; retrying cannot help.
    InvalidInput(Vec<FieldError>),
    /// The task failed for good; retrying cannot help.
    Failed(String),
    /// The task failed for a reason that may pass; the server may retry it.
    Retryable(String),
}

impl TaskError {
    /// A failure that retrying cannot fix.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A failure that may pass on another attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// An invalid field.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput(vec![FieldError::new(path, message)])
    }
}

/// A container that could not run or finish, as the task's error: the
/// worker's refusals (image policy, a missing image) fail the task, a
/// request the worker refuses names the spec field the host named
/// (`network`, `workdir`, `env`), and a failing daemon may pass on another
/// attempt.
impl From<host::containers::ContainerError> for TaskError {
    fn from(error: host::containers::ContainerError) -> Self {
        use host::containers::ContainerError;
        match error {
            ContainerError::ImageNotAllowed(message) | ContainerError::ImageNotFound(message) => {
                Self::failed(message)
            }
            ContainerError::InvalidRequest(message) => {
                // The host names the request field first: `network: …`.
                let (field, text) = message.split_once(": ").unwrap_or(("", &message));
                let path = match field {
                    "network" | "workdir" | "env" => field,
                    _ => "",
                };
                Self::invalid(path, text)
            }
            ContainerError::TimedOut => Self::failed("the container ran past its timeout"),
            ContainerError::Cancelled => Self::failed("cancelled while the container ran"),
            ContainerError::Daemon(message) => {
                Self::retryable(format!("the Docker daemon failed: {message}"))
            }
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidInput(errors) => {
                f.write_str("invalid input")?;
                for error in errors {
                    write!(f, "; {}: {}", error.path, error.message)?;
                }
                Ok(())
            }
            Self::Failed(message) => f.write_str(message),
            Self::Retryable(message) => write!(f, "{message} (retryable)"),
        }
    }
}

/// Turns a type implementing [`Plugin`] into the component's
/// `flowmesh:executor` exports. Use it once per plugin crate.
///
/// ```ignore
/// flowmesh_sdk::export!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        // Only a WebAssembly build exports anything: a native build (a
        // plugin's own `cargo test`) has no component ABI to link against.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::exports::flowmesh::executor::executor as __executor;

            struct __FlowMeshExports;

            impl __executor::Guest for __FlowMeshExports {
                fn describe() -> __executor::Manifest {
                    $crate::__private::describe::<$plugin>()
                }

                fn validate(
                    task_type: ::std::string::String,
                    spec: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::vec::Vec<__executor::FieldError>> {
                    $crate::__private::validate::<$plugin>(&task_type, &spec)
                }

                fn execute(
                    task: __executor::Task,
                ) -> ::std::result::Result<::std::string::String, __executor::TaskError> {
                    $crate::__private::execute::<$plugin>(task)
                }
            }

    $crate::bindings::export_bindings!(__FlowMeshExports with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::{describe, execute, validate};
}
