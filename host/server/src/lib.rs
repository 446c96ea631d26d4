//! The FlowMesh server: a durable task queue with a REST API.
//!
//! Clients submit task documents; the server checks them (the envelope, the
//! plugin's JSON Schema, the plugin's own `validate()`), stores them, and
//! hands each one to a worker that advertises its type and has the hardware
//! free, under a lease the worker renews by heartbeating.
//!
//! - [`store`]: the durable queue on SQLite or PostgreSQL; the claim.
//! - [`placement`]: why a pending task is not running.
//! - [`api`]: the routes, the worker protocol, errors and auth.
//! - [`validation`]: checking specs with the installed plugins.
//! - [`Server`]: start and stop.
//!
//! A task's life: `pending` → `running` (claimed under a lease) →
//! `succeeded` | `failed` | `cancelled`, with `cancelling` while a running
//! task is being interrupted. An attempt that fails with a retryable error,
//! or whose worker stops heartbeating, sends the task back to `pending` with
//! the next attempt number, after a delay that doubles each time, and with
//! the failed worker passed over for a while; after `maxAttempts` it fails
//! with the attempt history.

pub mod api;
pub mod background;
pub mod bus;
pub mod config;
pub mod installed_plugins;
pub mod metrics;
pub mod placement;
mod server;
pub mod state;
pub mod store;
pub mod submissions;
pub mod validation;
pub mod workflows;

pub use config::ServerConfig;
pub use server::{BootstrapTokens, Server, write_private_file};
