//! The fleet as operators see and manage it: workers and their hardware,
//! installed plugins and how each worker stands with them, and API tokens.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tasks::PluginRef;
use crate::capability::{PluginReport, PluginStatus, WorkerCapabilities};

pub use crate::capability::GpuDevice;

/// A worker's hardware, detected on the host, never configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Hardware {
    /// Logical CPUs available to the worker process.
    pub cpus: f64,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// GPUs found by NVML.
    #[serde(default)]
    pub gpus: Vec<GpuDevice>,
}

impl Hardware {
    /// The CPUs in thousandths of a core, a fraction of one rounded down:
    /// what capacity checks compare with
    /// [`crate::document::HardwareRequest::cpu_millis`].
    pub fn cpu_millis(&self) -> i64 {
        crate::cpu_millis::cpu_millis(self.cpus, f64::floor)
    }
}

/// Whether a worker is heartbeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Heartbeating within the lease TTL.
    Live,
    /// Stopped heartbeating, or replaced by a newer registration.
    Gone,
}

impl WorkerState {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Gone => "gone",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Live, Self::Gone]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// A worker as `GET /workers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// Registration id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Live or gone.
    pub state: WorkerState,
    /// Task types, plugins (with reasons when unavailable), capabilities.
    pub capabilities: WorkerCapabilities,
    /// Detected hardware.
    pub hardware: Hardware,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Slots.
    pub slots: u32,
    /// Tasks it may hold beyond its slots, claimed ahead.
    #[serde(default)]
    pub read_ahead: u32,
    /// Tasks it holds now (running, or claimed ahead).
    pub running: u32,
    /// The worker's version.
    pub version: String,
    /// When it registered.
    pub registered_at: String,
    /// Its last heartbeat.
    pub last_heartbeat_at: String,
    /// Whose tasks it runs: the tenant of its token, or none for a shared
    /// worker (an operator's), which runs the tasks of every tenant that
    /// allows shared workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Each task type the server routes to it, with the plugin that serves
    /// it there, and each type it advertised that the server refused, with
    /// why.
    #[serde(default)]
    pub served: ServedTypes,
}

/// The task types the server routes to a worker, decided from the plugins
/// the worker reports: a type that an installed plugin declares is served
/// only from that plugin's digest; any other type only from a local plugin
/// (`flowmesh worker --plugin`), and only where the server allows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServedTypes {
    /// Each served task type and its plugin.
    pub types: BTreeMap<String, PluginRef>,
    /// Task types the worker advertised that it is not given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedType>,
}

/// A task type a worker advertised and the server does not route to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefusedType {
    /// The task type.
    pub task_type: String,
    /// The worker's plugin that declares it.
    pub plugin: PluginRef,
    /// Why, in words.
    pub reason: String,
}

/// An installed plugin as `GET /plugins` and `POST /plugins` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Name, version, digest, manifest and imports, as the server loaded it.
    #[serde(flatten)]
    pub report: PluginReport,
    /// When it was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<String>,
    /// How each live worker stands with it (`GET /plugins/{name}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerPlugin>,
}

/// How one live worker stands with an installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerPlugin {
    /// Registration id.
    pub id: String,
    /// Worker name.
    pub name: String,
    /// Where it stands.
    pub status: WorkerPluginStatus,
    /// Why it is unavailable or still loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The digest the worker runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// See [`WorkerPlugin::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerPluginStatus {
    /// It runs this version.
    Available,
    /// It has this version but cannot run it (a capability is missing).
    Unavailable,
    /// It has not loaded this version yet.
    Loading,
}

impl WorkerPluginStatus {
    /// A worker's own status of the version it has.
    pub fn of(status: PluginStatus) -> Self {
        match status {
            PluginStatus::Available => Self::Available,
            PluginStatus::Unavailable => Self::Unavailable,
        }
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Unavailable => "unavailable",
            Self::Loading => "loading",
        }
    }
}

/// Roles a token can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tokens and plugins; also a user of its tenant.
    Admin,
    /// Submits and reads its tenant's tasks.
    User,
    /// Runs tasks: the worker routes only.
    Worker,
}

impl Role {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Worker => "worker",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Admin, Self::User, Self::Worker]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// `POST /tokens` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The tenant whose tasks the token owns.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// A note for people.
    #[serde(default)]
    pub name: Option<String>,
    /// For a worker token: `true` makes it an operator's token for shared
    /// workers, which run the tasks of every tenant that allows them;
    /// `false` (the default) binds its workers to `tenant`, so they only
    /// ever see that tenant's tasks. Refused on other roles.
    #[serde(default)]
    pub shared: bool,
    /// How long the token lives (`30d`, `12h`); it never expires when left
    /// out. An expired token is refused like an unknown one.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `POST /tokens`'s answer: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// Token id (not secret).
    pub id: String,
    /// The bearer token; only its hash is stored.
    pub token: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// A worker token for shared workers (see [`TokenRequest::shared`]).
    #[serde(default)]
    pub shared: bool,
    /// When it expires (RFC 3339), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A token as `GET /tokens` lists it: everything but the secret, which is
/// never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// Token id: what `DELETE /tokens/{id}` takes.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// A worker token for shared workers.
    #[serde(default)]
    pub shared: bool,
    /// The note given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When it was revoked, if it was: it is refused since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}
