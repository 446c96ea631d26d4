//! Server settings, each with its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::{Durability, STRIDE, TenantRules};

/// How a server runs. [`ServerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen. Default `127.0.0.1:7380`.
    pub bind: SocketAddr,
    /// Data directory: the SQLite file, bootstrap tokens, the plugin
    /// compilation cache.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// How hard a SQLite commit is: [`Durability::Normal`] (survives the
    /// server being killed; the default) or [`Durability::Full`] (survives
    /// power loss, at a cost the burn-down benchmark shows).
    pub durability: Durability,
    /// How often workers heartbeat. Default 5 s.
    pub heartbeat_interval: Duration,
    /// How long a lease (and a worker) lives without a heartbeat. Default 30 s.
    pub lease_ttl: Duration,
    /// How long a task may wait while no live worker could ever run it (none
    /// advertises its type, or none has the hardware) before it fails with
    /// `no_eligible_worker`. Default 5 min.
    pub no_worker_grace: Duration,
    /// How long finished tasks are kept. Default 7 days.
    pub retention: Duration,
    /// The longest a claim long-poll waits. Default 30 s.
    pub max_claim_wait: Duration,
    /// How often a waiting claim looks at the store again without a
    /// wake-up (a retry delay running out; a wake-up from another server
    /// lost with its connection). Default 500 ms.
    pub claim_recheck: Duration,
    /// Delay before a retry; doubles per attempt. Default 1 s.
    pub retry_backoff: Duration,
    /// The longest retry delay. Default 5 min.
    pub max_retry_backoff: Duration,
    /// After a retry delay, how long the failed attempt's worker is passed
    /// over while others may take the task. Default 10 s.
    pub retry_avoid: Duration,
    /// How often pending tasks' reasons are refreshed and the grace period
    /// enforced. Default 1 s; on a deep queue, no more often than every ten
    /// times the pass's own length.
    pub placement_interval: Duration,
    /// Pending tasks a claim looks at, per tenant and task type: the oldest
    /// of each. A claim costs the same however deep the queue; a task
    /// further back waits until those ahead of it are taken. Default 32.
    pub claim_scan: u32,
    /// Plugin components to install at start, before the server listens.
    pub install: Vec<PathBuf>,
    /// How long a plugin's `validate()` may take on one spec before the
    /// submit is refused with `check_failed`. Default 2 s.
    pub validation_timeout: Duration,
    /// Instructions one `validate()` call may run before it is stopped.
    /// Default 2,000,000,000: far more than checking a spec takes.
    pub validation_fuel: u64,
    /// How many of one tenant's `validate()` calls run at once; the rest of
    /// that tenant's wait, so one tenant's slow checks leave the other
    /// cores and instances to the others. Default half the cores, at least
    /// 1.
    pub validation_share: usize,
    /// Documents per second one token may submit (a batch or a dry run
    /// counts its documents), or no limit. Default none.
    pub submit_rate: Option<u32>,
    /// Event streams one token may hold open at once. Default 64.
    pub max_streams_per_token: usize,
    /// The largest request body accepted, in bytes (a plugin component, or
    /// a batch of documents, is the largest thing sent). Default 64 MiB.
    pub max_request_bytes: usize,
    /// The most documents one `POST /tasks` may hold. Default 10,000.
    pub max_batch_documents: usize,
    /// Whether a worker's own plugins (`flowmesh worker --plugin`) may serve
    /// task types no installed plugin declares. Types an installed plugin
    /// declares are only ever served from its digest. Default on.
    pub local_plugins: bool,
    /// Per-tenant rules: where a tenant's tasks may run.
    pub tenants: TenantPolicies,
    /// TLS: none (plain HTTP), the operator's certificate, or one signed by
    /// a local CA made in the data directory. Default none.
    pub tls: Tls,
    /// Serve plain HTTP on an address other than loopback. Without TLS, a
    /// server bound to such an address refuses to start unless this is set
    /// (tokens would travel in the clear). Default off.
    pub insecure_http: bool,
}

/// How the server speaks TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (loopback, or with [`ServerConfig::insecure_http`]).
    #[default]
    Off,
    /// The operator's certificate chain and key, PEM files.
    Files {
        /// The chain, leaf first.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// A certificate for the bound address, `localhost` and the host name,
    /// signed by a local CA kept in `<data dir>/tls` (made on first use);
    /// clients pin `<data dir>/tls/ca.pem`.
    SelfSigned,
}

/// The rules of each tenant, with a default for tenants not named.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicies {
    /// For tenants not listed.
    #[serde(default)]
    pub default: TenantPolicy,
    /// By tenant name.
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, TenantPolicy>,
}

impl TenantPolicies {
    /// The rules of `tenant`.
    pub fn of(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// The rules as a claim applies them.
    pub fn claim_rules(&self) -> TenantRules {
        let default = &self.default;
        TenantRules {
            shared_by_default: default.shared_workers,
            shared_exceptions: self
                .tenants
                .iter()
                .filter(|(_, policy)| policy.shared_workers != default.shared_workers)
                .map(|(tenant, _)| tenant.clone())
                .collect(),
            default_stride: default.stride(),
            strides: self
                .tenants
                .iter()
                .map(|(tenant, policy)| (tenant.clone(), policy.stride()))
                .filter(|(_, stride)| *stride != default.stride())
                .collect(),
            default_max_running: default.max_running.map_or(0, i64::from),
            max_running: self
                .tenants
                .iter()
                .filter(|(_, policy)| policy.max_running != default.max_running)
                .map(|(tenant, policy)| (tenant.clone(), policy.max_running.map_or(0, i64::from)))
                .collect(),
        }
    }
}

/// One tenant's rules.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TenantPolicy {
    /// Whether the tenant's tasks may run on shared workers (registered with
    /// an operator's shared worker token) as well as on the tenant's own.
    /// Default yes; with no, they run only on workers registered with one of
    /// the tenant's worker tokens.
    #[serde(default = "yes")]
    pub shared_workers: bool,
    /// The tenant's share of the fleet against the others' when they all
    /// have work: a tenant of weight 2 is served twice as often as one of
    /// weight 1. Default 1.
    #[serde(default = "one")]
    pub weight: f64,
    /// The most of the tenant's tasks that run at once, across the fleet.
    /// Default none.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// The most of the tenant's tasks that may wait (pending, stages held
    /// back included); a submit that would pass it is refused with 429.
    /// Default none.
    #[serde(default)]
    pub max_pending: Option<u64>,
}

impl TenantPolicy {
    /// The pass one started task adds: [`STRIDE`] / weight.
    pub fn stride(&self) -> i64 {
        if self.weight.is_finite() && self.weight > 0.0 {
            ((STRIDE as f64 / self.weight).round() as i64).max(1)
        } else {
            STRIDE
        }
    }
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            shared_workers: true,
            weight: 1.0,
            max_running: None,
            max_pending: None,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

impl ServerConfig {
    /// Defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7380)),
            data_dir: data_dir.into(),
            database_url: None,
            durability: Durability::Normal,
            heartbeat_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            no_worker_grace: Duration::from_secs(300),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_claim_wait: Duration::from_secs(30),
            claim_recheck: Duration::from_millis(500),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(300),
            retry_avoid: Duration::from_secs(10),
            placement_interval: Duration::from_secs(1),
            claim_scan: 32,
            install: Vec::new(),
            max_request_bytes: 64 << 20,
            max_batch_documents: 10_000,
            submit_rate: None,
            max_streams_per_token: 64,
            validation_timeout: Duration::from_secs(2),
            validation_fuel: 2_000_000_000,
            validation_share: std::thread::available_parallelism()
                .map_or(1, |cores| (cores.get() / 2).max(1)),
            local_plugins: true,
            tenants: TenantPolicies::default(),
            tls: Tls::Off,
            insecure_http: false,
        }
    }
}
