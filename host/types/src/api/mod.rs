//! The REST API's wire types: what clients, workers and the server exchange.
//!
//! Everything is JSON with camelCase field names. Times are RFC 3339 strings
//! in views meant for people ([`TaskView`], [`WorkerView`]) and milliseconds
//! in the worker protocol, where they are arithmetic.
//!
//! The worker protocol is five calls, all made by the worker:
//!
//! 1. **register** ([`WorkerRegistration`] → [`Registered`]): what the worker
//!    can run (its [`WorkerCapabilities`](crate::WorkerCapabilities)), its
//!    detected [`Hardware`], labels and slots. The answer fixes the heartbeat
//!    interval and the lease TTL.
//! 2. **claim** ([`ClaimRequest`] → [`ClaimResponse`]): a long poll that
//!    returns as soon as tasks the worker can run are waiting. The server picks
//!    them in one atomic statement: type advertised, hardware free.
//! 3. **heartbeat** ([`Heartbeat`] → [`HeartbeatResponse`]): renews the
//!    worker's leases and answers which of its tasks to cancel or drop.
//! 4. **events** ([`EventBatch`]): logs and progress, batched.
//! 5. **complete** ([`CompletionBatch`] → [`CompletionResponse`]): outcomes,
//!    each fenced by the lease token of its claim, so an attempt whose lease
//!    expired cannot complete the task.
//!
//! The types are grouped by audience, one file each, and all re-exported
//! here, so every type is `flowmesh_types::api::…`:
//!
//! - `tasks`: a task as clients see it ([`TaskView`], [`TaskState`], why it
//!   waits: [`Waiting`]), its result ([`ResultEnvelope`]) and attempts, and
//!   the answers of `POST /tasks` and `GET /tasks`.
//! - `workflows`: a workflow as clients see it ([`WorkflowView`],
//!   [`WorkflowState`], [`StageView`]) and its submit and list answers.
//! - `events`: the event stream of a task or workflow ([`EventRecord`],
//!   [`EventBody`]).
//! - `worker_protocol`: the five worker calls above.
//! - `fleet`: what operators see and manage: workers ([`WorkerView`], their
//!   [`Hardware`]), installed plugins ([`PluginView`]) and tokens ([`Role`],
//!   [`TokenRequest`]).
//! - `errors`: the body of every error answer ([`ErrorBody`], [`ApiError`]).
//!
//! They depend on each other in one direction only: `workflows` on `tasks`,
//! `events` on both, `worker_protocol` on `tasks` and `fleet`; `fleet` on `tasks`
//! (the plugin a worker serves a type from); `errors` on no sibling.

mod errors;
mod events;
mod fleet;
mod tasks;
mod worker_protocol;
mod workflows;

pub use errors::{ApiError, ErrorBody};
pub use events::{EventBody, EventRecord};
pub use fleet::{
    GpuDevice, Hardware, PluginView, RefusedType, Role, ServedTypes, TokenCreated, TokenRequest,
    TokenView, WorkerPlugin, WorkerPluginStatus, WorkerState, WorkerView,
};
pub use tasks::{
    AttemptRecord, BatchItem, BatchSubmitted, PlacementCounts, PluginRef, RESULT_SCHEMA_VERSION,
    ResultEnvelope, StageRef, Submitted, TaskPage, TaskState, TaskView, WaitKind, Waiting,
};
pub use worker_protocol::{
    ClaimRequest, ClaimResponse, ClaimedTask, Completion, CompletionBatch, CompletionResponse,
    CompletionVerdict, Deregistration, EventBatch, Heartbeat, HeartbeatResponse, Lease, MAX_SLOTS,
    READ_AHEAD_PER_SLOT, Registered, TaskEvents, WorkerRegistration, max_read_ahead,
};
pub use workflows::{StageView, SubmittedWorkflow, WorkflowPage, WorkflowState, WorkflowView};
