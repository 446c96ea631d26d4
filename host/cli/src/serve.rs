//! `flowmesh server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flowmesh_server::{Server, ServerConfig};

/// `flowmesh server` options.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:7380].
    #[arg(long, env = "FLOWMESH_BIND")]
    bind: Option<SocketAddr>,
    /// Data directory (SQLite file, bootstrap tokens, compiled plugins).
    #[arg(long, env = "FLOWMESH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB. Default: SQLite in the data directory.
    #[arg(long, env = "FLOWMESH_DATABASE_URL")]
    database_url: Option<String>,
    /// How often workers heartbeat [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    heartbeat_interval: Option<Duration>,
    /// How long a lease lives without a heartbeat [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    lease_ttl: Option<Duration>,
    /// How long a task may wait while no live worker could run it [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    no_worker_grace: Option<Duration>,
    /// How long finished tasks are kept [default: 7d].
    #[arg(long, value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    /// Delay before the first retry (doubles per attempt) [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_backoff: Option<Duration>,
    /// Install this plugin component at start (repeatable).
    #[arg(long = "plugin", value_name = "FILE")]
    plugins: Vec<PathBuf>,
}

pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(args.data_dir.unwrap_or_else(crate::default_data_dir));
    config.database_url = args.database_url;
    config.install = args.plugins;
    // Only what was given overrides ServerConfig's defaults.
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(interval) = args.heartbeat_interval {
        config.heartbeat_interval = interval;
    }
    if let Some(ttl) = args.lease_ttl {
        config.lease_ttl = ttl;
    }
    if let Some(grace) = args.no_worker_grace {
        config.no_worker_grace = grace;
    }
    if let Some(retention) = args.retention {
        config.retention = retention;
    }
    if let Some(backoff) = args.retry_backoff {
        config.retry_backoff = backoff;
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
