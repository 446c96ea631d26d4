//! `flowmesh server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flowmesh_server::store::Durability;
use flowmesh_server::{Server, ServerConfig, Tls};

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
    /// How hard a SQLite commit is: normal survives the server being killed; full also survives power loss, at a cost per commit [default: normal].
    #[arg(long, value_enum)]
    sqlite_synchronous: Option<Synchronous>,
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
    /// Never route tasks to a worker's own plugins (`flowmesh worker --plugin`): only installed plugins run.
    #[arg(long)]
    no_local_plugins: bool,
    /// Tenants' rules, a TOML file: `[default]` and `[tenants.NAME]` tables, each with `shared-workers = true|false`.
    #[arg(long, value_name = "FILE")]
    tenants: Option<PathBuf>,
    /// How long a plugin's validate() may take on one spec [default: 2s].
    #[arg(long, value_parser = humantime::parse_duration)]
    validation_timeout: Option<Duration>,
    /// The largest request body accepted, such as 64Mi or 500M [default: 64Mi].
    #[arg(long, value_parser = parse_size)]
    max_request_size: Option<u64>,
    /// The most documents one submission (POST /tasks) may hold [default: 10000].
    #[arg(long)]
    max_batch: Option<usize>,
    /// Pending tasks a claim looks at per tenant and task type, the oldest
    /// of each; a task further back waits until those ahead are taken
    /// [default: 32].
    #[arg(long)]
    claim_scan: Option<u32>,
    /// Documents per second one token may submit (429 with Retry-After past it) [default: no limit].
    #[arg(long)]
    submit_rate: Option<u32>,
    /// Event streams one token may hold open at once [default: 64].
    #[arg(long)]
    max_streams: Option<usize>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// `--sqlite-synchronous`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Synchronous {
    /// WAL with synchronous=NORMAL.
    Normal,
    /// synchronous=FULL: every commit waits for the disk.
    Full,
}

/// How `flowmesh server` and `flowmesh up` speak TLS.
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// The server's certificate chain (PEM, leaf first); with --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate signed by a local CA that is made in the data directory (tls/ca.pem, which clients pin).
    #[arg(long)]
    tls_self_signed: bool,
    /// Serve plain HTTP on a non-loopback address anyway (behind a TLS-terminating proxy); without TLS a server bound to such an address refuses to start.
    #[arg(long)]
    insecure_http: bool,
}

impl TlsArgs {
    /// Sets `config`'s TLS from these flags.
    pub(crate) fn apply(&self, config: &mut ServerConfig) {
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ if self.tls_self_signed => Tls::SelfSigned,
            _ => Tls::Off,
        };
        config.insecure_http = self.insecure_http;
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    flowmesh_types::document::parse_quantity(&serde_json::Value::String(text.to_string()))
}

/// Reads the tenants' rules from `path`.
pub(crate) fn read_tenants(
    path: &std::path::Path,
) -> anyhow::Result<flowmesh_server::config::TenantPolicies> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("reading the tenants file {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| {
        anyhow::anyhow!("the tenants file {} is not valid: {error}", path.display())
    })
}

pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(args.data_dir.unwrap_or_else(crate::default_data_dir));
    config.database_url = args.database_url;
    if let Some(synchronous) = args.sqlite_synchronous {
        config.durability = match synchronous {
            Synchronous::Normal => Durability::Normal,
            Synchronous::Full => Durability::Full,
        };
    }
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
    args.tls.apply(&mut config);
    config.submit_rate = args.submit_rate;
    if let Some(streams) = args.max_streams {
        config.max_streams_per_token = streams;
    }
    config.local_plugins = !args.no_local_plugins;
    if let Some(timeout) = args.validation_timeout {
        config.validation_timeout = timeout;
    }
    if let Some(path) = &args.tenants {
        config.tenants = read_tenants(path)?;
    }
    if let Some(size) = args.max_request_size {
        config.max_request_bytes = usize::try_from(size).unwrap_or(usize::MAX);
    }
    if let Some(documents) = args.max_batch {
        config.max_batch_documents = documents.max(1);
    }
    if let Some(scan) = args.claim_scan {
        config.claim_scan = scan.max(1);
    }
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await?;
    eprintln!("FlowMesh server listening on {}", server.url());
    if let Some(ca) = server.ca_cert() {
        eprintln!(
            "TLS certificate signed by the local CA {}: give it to clients and workers (--ca-cert)",
            ca.display()
        );
    }
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
