//! The FlowMesh server: a durable task queue with a REST API.
//!
//! Clients submit task documents; the server checks them (the envelope, the
//! plugin's JSON Schema, the plugin's own `validate()`), stores them, and
//! hands each one to a worker that advertises its type and has the hardware
//! free, under a lease the worker renews by heartbeating.
//!
//! A document's way through, one module per step (ARCHITECTURE.md in the
//! repository draws it):
//!
//! - [`api`]: the routes, typed query parameters, the worker protocol,
//!   errors and auth; handlers parse and map, nothing more;
//! - [`admission`]: every task and workflow comes in here: checked with
//!   [`validation`] (the plugin's schema and `validate()`), fail-fast
//!   against the live workers, dry runs, ids, rows, the write (through
//!   [`group_commit`]), events, metrics and wake-ups;
//! - [`store`]: the durable queue on SQLite or PostgreSQL; the claim;
//! - [`placement`]: the constraints a worker must meet to run a task, and
//!   why a pending task is not running; the claim SQL is tested against them;
//! - [`attempt_outcome`]: what the end of an attempt means (success, a
//!   retry after a delay and away from its worker, failure);
//! - [`releaser`]: moves workflows forward as their stages finish;
//! - [`background`]: lease expiry, waiting reasons, unplaceable tasks,
//!   plugin sync, garbage collection;
//! - [`Server`]: start and stop.
//!
//! A task's life: `pending` → `running` (claimed under a lease) →
//! `succeeded` | `failed` | `cancelled`, with `cancelling` while a running
//! task is being interrupted. An attempt that fails with a retryable error,
//! or whose worker stops heartbeating, sends the task back to `pending` with
//! the next attempt number, after a delay that doubles each time, and with
//! the failed worker passed over for a while; after `maxAttempts` it fails
//! with the attempt history.

pub mod admission;
pub mod api;
pub mod attempt_outcome;
pub mod background;
pub mod browser_sessions;
pub mod bus;
pub mod clock;
pub mod component_files;
pub mod config;
pub mod console;
pub mod group_commit;
pub mod installed_plugins;
pub mod limits;
pub mod metrics;
pub mod placement;
pub mod plugin_identity;
pub mod releaser;
pub mod round_trips;
pub mod routes;
mod server;
pub mod state;
pub mod store;
pub mod validation;
pub mod wake_across;

pub use config::{ServerConfig, Tls};
pub use server::{BootstrapTokens, Server, write_private_file};
