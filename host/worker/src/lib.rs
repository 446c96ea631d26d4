//! The FlowMesh worker agent.
//!
//! A worker loads the installed plugins into an executor runtime linked with
//! the capabilities this host really has, registers with the server (what it
//! can run, what hardware it has, how many slots), and then loops: claim
//! tasks with a long poll, run each in a fresh sandbox, stream its events,
//! report its outcome fenced by the claim's lease token, and heartbeat to
//! keep the leases alive. The plugins the server installs reach the worker
//! through the heartbeat: it fetches, compiles and advertises them without a
//! restart. See [`agent`] for what runs and where each part lives.

pub mod agent;
mod attempt;
mod backoff;
pub mod client;
mod config;
mod exchange;
pub mod hardware;
mod heartbeat;
mod outbox;
mod pace;
mod plugin_sync;
mod probing;
mod registration;
mod shared;

pub use agent::{Worker, WorkerConfig};
pub use client::{CallError, Client};
