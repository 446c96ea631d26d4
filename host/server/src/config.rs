//! Server settings, each with its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Delay before a retry; doubles per attempt. Default 1 s.
    pub retry_backoff: Duration,
    /// The longest retry delay. Default 5 min.
    pub max_retry_backoff: Duration,
    /// After a retry delay, how long the failed attempt's worker is passed
    /// over while others may take the task. Default 10 s.
    pub retry_avoid: Duration,
    /// How often pending tasks' reasons are refreshed and the grace period
    /// enforced. Default 1 s.
    pub placement_interval: Duration,
    /// Pending rows one claim considers. Default 512.
    pub claim_scan: u32,
    /// Plugin components to install at start, before the server listens.
    pub install: Vec<PathBuf>,
}

impl ServerConfig {
    /// Defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7380)),
            data_dir: data_dir.into(),
            database_url: None,
            heartbeat_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            no_worker_grace: Duration::from_secs(300),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_claim_wait: Duration::from_secs(30),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(300),
            retry_avoid: Duration::from_secs(10),
            placement_interval: Duration::from_secs(1),
            claim_scan: 512,
            install: Vec::new(),
        }
    }
}
