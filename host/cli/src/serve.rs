//! `flowmesh server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flowmesh_server::{Server, ServerConfig};

/// `flowmesh server` options.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380", env = "FLOWMESH_BIND")]
    bind: SocketAddr,
    /// Data directory (SQLite file, bootstrap tokens, compiled plugins).
    #[arg(long, env = "FLOWMESH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB. Default: SQLite in the data directory.
    #[arg(long, env = "FLOWMESH_DATABASE_URL")]
    database_url: Option<String>,
    /// How often workers heartbeat.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// How long a lease lives without a heartbeat.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// How long a task may wait while no live worker could run it.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    no_worker_grace: Duration,
    /// How long finished tasks are kept.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Delay before the first retry (doubles per attempt).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_backoff: Duration,
    /// Install this plugin component at start (repeatable).
    #[arg(long = "plugin", value_name = "FILE")]
    plugins: Vec<PathBuf>,
}

pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(args.data_dir.unwrap_or_else(crate::default_data_dir));
    config.bind = args.bind;
    config.database_url = args.database_url;
    config.heartbeat_interval = args.heartbeat_interval;
    config.lease_ttl = args.lease_ttl;
    config.no_worker_grace = args.no_worker_grace;
    config.retention = args.retention;
    config.retry_backoff = args.retry_backoff;
    config.install = args.plugins;
    if config.lease_ttl <= config.heartbeat_interval {
        anyhow::bail!(
            "--lease-ttl ({}) must be longer than --heartbeat-interval ({}), or every lease expires between heartbeats",
            humantime::format_duration(config.lease_ttl),
            humantime::format_duration(config.heartbeat_interval)
        );
    }
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await?;
    eprintln!("FlowMesh server listening on {}", server.url());
    if server.bootstrap_tokens().is_some() {
        eprintln!(
            "created tokens: admin in {}, worker in {}",
            data_dir.join("admin.token").display(),
            data_dir.join("worker.token").display()
        );
    }
    crate::shutdown_signal().await;
    eprintln!("shutting down");
    server.shutdown().await;
    Ok(())
}
